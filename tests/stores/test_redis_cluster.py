"""The session store on an embedded Redis Cluster: one slot per script, WAIT, failover."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.crc import key_slot

from kato.exceptions import SessionLimitError, SessionNotFoundError, StoreUnavailableError
from kato.observability import Metrics
from kato.sessions import SessionRecord, new_session_id
from kato.sessions.redis import RedisSessionStore
from kato.stores.redis_cluster import EmbeddedCluster, is_cluster_url, parse_cluster_url


def _record(node: str = "node") -> SessionRecord:
    return SessionRecord(new_session_id(int(time.time() * 1000)), node, time.time(), 60)


def test_every_script_touches_one_slot(redis_cluster: EmbeddedCluster, key_prefix: str) -> None:
    store = RedisSessionStore(redis_cluster.url, key_prefix=key_prefix)
    try:
        session_keys = store.keys(new_session_id(0))
        assert len({key_slot(key.encode()) for key in session_keys}) == 1
        index_keys = [store.index_key, f"{{{store.index_key}}}:node:some-node"]
        assert len({key_slot(key.encode()) for key in index_keys}) == 1
    finally:
        asyncio.run(store.close())


def test_limits_count_and_wait_replicas(redis_cluster: EmbeddedCluster, key_prefix: str) -> None:
    async def main() -> None:
        metrics = Metrics()
        store = RedisSessionStore(
            redis_cluster.url,
            key_prefix=key_prefix,
            wait_replicas=1,
            max_sessions_per_node=3,
            observer=metrics,
        )
        try:
            records = [_record(node) for node in ("a", "b", "c") for _ in range(3)]
            for rec in records:  # sessions spread over the three masters' slots
                await store.create(rec)
            with pytest.raises(SessionLimitError):
                await store.create(_record("a"))
            assert await store.count() == 9
            await store.delete(records[0].session_id)
            assert await store.count() == 8
            await store.create(_record("a"))
            assert store.counters.replica_shortfalls == 0
            assert store.counters.replica_acks == store.counters.replica_waits >= 11
            waited = metrics.replica_waits.labels("ok")._value.get()
            assert waited == store.counters.replica_waits
        finally:
            await store.close()

    assert is_cluster_url(redis_cluster.url)
    asyncio.run(main())


def test_a_failover_is_waited_out_or_unavailable_never_not_found(key_prefix: str) -> None:
    """A cluster of its own: killing a master must not disturb the shared one."""

    async def main(cluster: EmbeddedCluster) -> None:
        store = RedisSessionStore(cluster.url, key_prefix=key_prefix, wait_replicas=1)
        try:
            records = [_record() for _ in range(12)]
            for rec in records:
                await store.create(rec)
            failover = asyncio.create_task(asyncio.to_thread(cluster.fail_over))
            outcomes: set[str] = set()
            while not failover.done():
                for rec in records:
                    try:
                        await store.get(rec.session_id)
                        outcomes.add("ok")
                    except StoreUnavailableError:
                        outcomes.add("unavailable")
                    except SessionNotFoundError:  # pragma: no cover - the failure under test
                        outcomes.add("not-found")
                await asyncio.sleep(0.01)
            await failover
            assert "not-found" not in outcomes
            for rec in records:  # WAIT 1 acknowledged every create: nothing lost
                assert (await store.get(rec.session_id)).record.session_id == rec.session_id
            assert await store.count() == len(records)
        finally:
            await store.close()

    with EmbeddedCluster(3) as cluster:
        asyncio.run(main(cluster))


def test_a_cluster_url_names_its_startup_nodes() -> None:
    first, nodes = parse_cluster_url("redis+cluster://user:pw@a.internal:7000,b.internal:7001/0")
    assert first == "redis://user:pw@a.internal:7000/0"
    assert nodes == [("a.internal", 7000), ("b.internal", 7001)]
    assert parse_cluster_url("redis+cluster://c")[1] == [("c", 6379)]
    with pytest.raises(ValueError, match="not a redis\\+cluster:// URL"):
        parse_cluster_url("redis://a:1")


def test_a_store_started_while_the_first_node_is_down_finds_the_others(
    redis_cluster: EmbeddedCluster, key_prefix: str
) -> None:
    url = redis_cluster.url.replace("redis+cluster://", "redis+cluster://127.0.0.1:1,", 1)

    async def main() -> None:
        store = RedisSessionStore(url, key_prefix=key_prefix)
        try:
            rec = _record()
            await store.create(rec)
            assert (await store.get(rec.session_id)).record.session_id == rec.session_id
        finally:
            await store.close()

    asyncio.run(main())
