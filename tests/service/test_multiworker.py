"""The report's failures, asked again of ``kato serve --workers 4`` on the embedded Redis, and
of two such hosts on an embedded Redis Cluster.

Every test talks to real servers with four worker processes each, through several independent
HTTP clients (separate connection pools), so consecutive requests land on different workers:
``redis`` is one host on a real redis-server with the shared SQLite long-term memory;
``cluster`` is two hosts on the session-wide embedded Redis Cluster (3 masters, 3 replicas)
sharing a MongoDB long-term memory (``nx-27017``), the clients alternating between the hosts.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from kato.client._http import IDLE_EXPIRY_S
from kato.engine import pattern_name
from kato.ltm.nx27017 import running_nx27017
from kato.stores.redis_cluster import EmbeddedCluster
from kato.stores.redis_server import RedisServer

WORKERS = 4


@pytest.fixture(scope="module")
def redis_for_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@dataclass(frozen=True)
class Service:
    """The hosts under test, and how to freeze and thaw every Redis they use."""

    urls: list[str]
    pause: Callable[[], None]
    resume: Callable[[], None]


@pytest.fixture(scope="module", params=["redis", "cluster"])
def cluster(
    request: pytest.FixtureRequest, start_server: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    """``kato serve --workers 4 --store redis``: one host on a Redis the test controls with the
    SQLite LTM, or two hosts on the embedded cluster with a MongoDB LTM."""
    args = ("--workers", str(WORKERS), "--store", "redis")
    if request.param == "redis":
        redis_server: RedisServer = request.getfixturevalue("redis_for_server")
        env = {"KATO_REDIS_URL": redis_server.url, "KATO_REDIS_TIMEOUT": "1"}
        with start_server(*args, "--ltm", "sqlite", env=env) as server:
            yield Service([server.url], redis_server.pause, redis_server.resume)
        return
    redis_cluster: EmbeddedCluster = request.getfixturevalue("redis_cluster")
    with running_nx27017(Path(tmp_path_factory.mktemp("multihost-ltm"))) as mongo_url:
        env = {
            "KATO_REDIS_URL": redis_cluster.url,
            "KATO_REDIS_TIMEOUT": "1",
            "KATO_MONGO_URL": mongo_url,
        }
        with (
            start_server(*args, "--ltm", "mongo", env=env) as first,
            start_server(*args, "--ltm", "mongo", env=env) as second,
        ):

            def pause() -> None:
                for node in redis_cluster.nodes:
                    node.pause()

            def resume() -> None:
                for node in redis_cluster.nodes:
                    node.resume()

            yield Service([first.url, second.url], pause, resume)


class Pool:
    """Several independent HTTP clients used round-robin (each has its own connections)."""

    def __init__(self, base_urls: list[str], size: int = 8) -> None:
        self.clients = [
            httpx.AsyncClient(
                base_url=base_urls[i % len(base_urls)],
                timeout=30,
                limits=httpx.Limits(max_connections=16, keepalive_expiry=IDLE_EXPIRY_S),
            )
            for i in range(size)
        ]
        self.hosts = self.clients[: len(base_urls)]  # one client of each host
        self._next = itertools.cycle(self.clients)
        self.workers: Counter[str] = Counter()

    def client(self) -> httpx.AsyncClient:
        return next(self._next)

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = await self.client().request(method, path, **kwargs)
        self.workers[response.headers.get("x-kato-worker", "?")] += 1
        return response

    async def close(self) -> None:
        await asyncio.gather(*(c.aclose() for c in self.clients))


def run(service: Service, scenario: Any) -> Any:
    async def main() -> Any:
        pool = Pool(service.urls)
        try:
            return await scenario(pool)
        finally:
            await pool.close()

    return asyncio.run(main())


async def create(pool: Pool, node: str, **body: Any) -> str:
    response = await pool.request("POST", "/sessions", json={"node_id": node, **body})
    assert response.status_code == 200, response.text
    return str(response.json()["session_id"])


def test_200_concurrent_observes_into_one_session_are_all_kept(cluster: Service) -> None:
    async def scenario(pool: Pool) -> None:
        sid = await create(pool, "mw-shared")
        symbols = [f"sym-{i:03d}" for i in range(200)]
        responses = await asyncio.gather(
            *(
                pool.request("POST", f"/sessions/{sid}/observe", json={"strings": [s]})
                for s in symbols
            )
        )
        assert [r.status_code for r in responses] == [200] * 200
        stm = (await pool.request("GET", f"/sessions/{sid}/stm")).json()["stm"]
        assert sorted(event[0] for event in stm) == symbols
        # the order is the commit order: each acknowledged time is the event's position
        by_time = sorted(responses, key=lambda r: r.json()["time"])
        assert [r.json()["time"] for r in by_time] == list(range(1, 201))
        order = [symbols[responses.index(r)] for r in by_time]
        assert [event[0] for event in stm] == order
        assert len(pool.workers) > 1, "all requests went to one worker"

    run(cluster, scenario)


def test_1000_create_then_read_pairs_never_miss(cluster: Service) -> None:
    async def scenario(pool: Pool) -> None:
        misses: list[str] = []
        pairs_on_two_workers = 0

        async def pair(i: int) -> None:
            nonlocal pairs_on_two_workers
            writer, reader = pool.clients[i % 8], pool.clients[(i + 3) % 8]
            created = await writer.post("/sessions", json={"node_id": "mw-visibility"})
            sid = created.json()["session_id"]
            read = await reader.get(f"/sessions/{sid}")
            if read.status_code != 200:
                misses.append(f"{sid}: {read.status_code} {read.text[:100]}")
            if created.headers["x-kato-worker"] != read.headers["x-kato-worker"]:
                pairs_on_two_workers += 1
            await reader.delete(f"/sessions/{sid}")

        semaphore = asyncio.Semaphore(64)

        async def bounded(i: int) -> None:
            async with semaphore:
                await pair(i)

        await asyncio.gather(*(bounded(i) for i in range(1000)))
        assert misses == []
        # how connections spread over workers is the kernel's choice; some pairs must cross
        assert pairs_on_two_workers > 0, "no read was served by another worker than its create"

    run(cluster, scenario)


def test_the_reports_stress_test_succeeds_every_time(cluster: Service) -> None:
    """The seed's shape: 50 rapid create → observe → delete cycles, at most 10 at once."""

    async def scenario(pool: Pool) -> None:
        semaphore = asyncio.Semaphore(10)

        async def cycle(i: int) -> bool:
            async with semaphore:
                sid = await create(pool, f"mw-stress-{i}")
                observed = await pool.request(
                    "POST", f"/sessions/{sid}/observe", json={"strings": [f"s{i}"]}
                )
                stm = await pool.request("GET", f"/sessions/{sid}/stm")
                deleted = await pool.request("DELETE", f"/sessions/{sid}")
                return (
                    observed.status_code == 200
                    and stm.json()["stm"] == [[f"s{i}"]]
                    and deleted.status_code == 200
                )

        results = await asyncio.gather(*(cycle(i) for i in range(50)))
        assert sum(results) == 50

    run(cluster, scenario)


def test_a_session_deleted_during_writes_never_comes_back(cluster: Service) -> None:
    async def scenario(pool: Pool) -> None:
        for round_ in range(5):
            sid = await create(pool, "mw-delete")
            writes = [
                pool.request("POST", f"/sessions/{sid}/observe", json={"strings": [f"w{i}"]})
                for i in range(40)
            ]
            tasks = [asyncio.ensure_future(w) for w in writes]
            await asyncio.sleep(0.005 * round_)
            deleted = await pool.request("DELETE", f"/sessions/{sid}")
            assert deleted.status_code == 200
            finished = await asyncio.gather(*tasks)
            assert {r.status_code for r in finished} <= {200, 404}
            for late in finished:
                if late.status_code == 404:
                    assert late.json()["error"]["code"] == "SESSION_NOT_FOUND"
            await asyncio.sleep(0.05)
            for path in ("", "/stm", "/exists"):
                after = await pool.request("GET", f"/sessions/{sid}{path}")
                if path == "/exists":
                    assert after.json()["exists"] is False
                else:
                    assert after.status_code == 404

    run(cluster, scenario)


def test_count_is_exact_under_churn_and_after_expiry(cluster: Service) -> None:
    async def scenario(pool: Pool) -> None:
        async def count() -> int:
            # every worker must give the same answer: the count lives in the store
            answers = {
                (await c.get("/sessions/count")).json()["active_session_count"]
                for c in pool.clients
            }
            assert len(answers) == 1, answers
            return answers.pop()

        base = await count()
        await asyncio.gather(*(create(pool, "mw-count", ttl_seconds=1) for _ in range(10)))
        long = await asyncio.gather(*(create(pool, "mw-count", ttl_seconds=600) for _ in range(15)))
        assert await count() == base + 25
        await asyncio.gather(*(pool.request("DELETE", f"/sessions/{s}") for s in long[:5]))
        assert await count() == base + 20
        await asyncio.sleep(1.3)
        assert await count() == base + 10
        await asyncio.gather(*(pool.request("DELETE", f"/sessions/{s}") for s in long[5:]))
        assert await count() == base

    run(cluster, scenario)


def test_100_sessions_learning_the_same_sequence_count_exactly(cluster: Service) -> None:
    node = f"mw-learn-{os.getpid()}"

    async def scenario(pool: Pool) -> None:
        sessions = await asyncio.gather(*(create(pool, node) for _ in range(100)))

        async def learn(sid: str) -> str:
            for symbol in ("alpha", "beta", "gamma"):
                r = await pool.request(
                    "POST", f"/sessions/{sid}/observe", json={"strings": [symbol]}
                )
                assert r.status_code == 200, r.text
            learned = await pool.request("POST", f"/sessions/{sid}/learn")
            return str(learned.json()["pattern_name"])

        names = await asyncio.gather(*(learn(s) for s in sessions))
        expected = pattern_name([["alpha"], ["beta"], ["gamma"]])
        assert set(names) == {expected}
        pattern = await pool.request("GET", f"/pattern/{expected}", params={"node_id": node})
        assert pattern.json()["pattern"]["pattern"]["frequency"] == 100
        stats = (await pool.request("GET", "/symbols/stats", params={"node_id": node})).json()
        assert stats["totals"]["total_pattern_frequencies"] == 100
        assert {s["name"]: s["frequency"] for s in stats["symbols"]} == {
            "alpha": 100,
            "beta": 100,
            "gamma": 100,
        }

    run(cluster, scenario)


@pytest.mark.alone  # a busy machine lets one worker accept every connection: none "other"
def test_a_learn_on_one_worker_is_predicted_on_every_other(cluster: Service) -> None:
    node = f"mw-visible-{os.getpid()}"

    async def scenario(pool: Pool) -> None:
        teacher = await create(pool, node)
        for symbol in ("red", "green", "blue"):
            await pool.request("POST", f"/sessions/{teacher}/observe", json={"strings": [symbol]})
        learned = await pool.request("POST", f"/sessions/{teacher}/learn")
        taught_by = learned.headers["x-kato-worker"]
        seen_on: set[str] = set()
        # New connections (``Connection: close``) until another worker has answered: kept-alive
        # ones can all belong to the worker that taught (one busy worker may accept them all).
        fresh = {"connection": "close"}
        for attempt in range(200):
            student = await create(pool, node)
            await pool.request(
                "POST", f"/sessions/{student}/observe", json={"strings": ["red"]}, headers=fresh
            )
            answer = await pool.request(
                "POST", f"/sessions/{student}/observe", json={"strings": ["green"]}, headers=fresh
            )
            predictions = (
                await pool.request("GET", f"/sessions/{student}/predictions", headers=fresh)
            ).json()
            assert predictions["count"] == 1, predictions
            assert predictions["predictions"][0]["future"] == [["blue"]]
            seen_on.add(answer.headers["x-kato-worker"])
            if attempt >= 40 and seen_on - {taught_by}:
                break
        assert seen_on - {taught_by}, "no other worker was asked"

    run(cluster, scenario)


def test_metrics_aggregate_every_worker(cluster: Service) -> None:
    async def scenario(pool: Pool) -> None:
        sid = await create(pool, "mw-metrics")
        for i in range(40):
            await pool.request("POST", f"/sessions/{sid}/observe", json={"strings": [f"m{i}"]})
        from prometheus_client.parser import text_string_to_metric_families

        observed = 0.0
        for host in pool.hosts:  # each host adds up its own workers
            text = (await host.get("/metrics", headers={"Accept": "text/plain"})).text
            families = {f.name: f for f in text_string_to_metric_families(text)}
            observed += sum(
                s.value
                for s in families["kato_http_requests"].samples
                if s.name == "kato_http_requests_total"
                and s.labels["route"] == "/sessions/{session_id}/observe"
            )
        assert observed >= 40, "the exposition did not add up the workers' counters"
        assert "kato_store_round_trips" in families
        assert "kato_store_conflicts" in families

    run(cluster, scenario)


def test_redis_down_is_503_and_the_service_recovers(cluster: Service) -> None:
    async def scenario(pool: Pool) -> None:
        sid = await create(pool, "mw-outage")
        cluster.pause()
        try:
            answers = await asyncio.gather(
                *(pool.request("GET", f"/sessions/{sid}/stm") for _ in range(8)),
                pool.request("POST", "/sessions", json={"node_id": "mw-outage"}),
            )
        finally:
            cluster.resume()
        for answer in answers:
            assert answer.status_code == 503, answer.text
            assert answer.json()["error"]["code"] == "STORE_UNAVAILABLE"
        health = await pool.request("GET", "/health")
        assert health.status_code == 200
        assert (await pool.request("GET", f"/sessions/{sid}/stm")).status_code == 200

    run(cluster, scenario)
