"""The hostile-input campaign: 10,000 generated bad requests against a real ``kato serve`` with
two workers on Redis give no 5xx, a stable code on every rejection, and an unchanged store; and
the campaign's own checks are shown to catch a 5xx and a store change when there is one."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as redis_asyncio
import uvicorn

from kato.exceptions import SessionNotFoundError
from kato.lab.fuzz import Service, campaign
from kato.lab.fuzz.campaign import CANARIES
from kato.lab.fuzz.fingerprint import fingerprint
from kato.lab.targets import serve
from kato.service import create_app
from kato.sessions import Lease
from kato.sessions.redis import RedisSessionStore
from kato.settings import Settings
from kato.stores.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTED = (ROOT / "README.md").read_text()


def _check_codes(by_code: dict[str, int]) -> None:
    for code in by_code:
        if code != "(http-server)":  # the HTTP parser's own 400, before the app runs
            assert f"`{code}`" in DOCUMENTED, f"{code} is not documented in README.md"


def test_ten_thousand_bad_requests_no_5xx(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "kato", "lab", "fuzz", "--requests", "10000"]
    command += ["--seed", "0", "--workers", "2", "--out", str(tmp_path), "--quiet"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    lines = done.stdout.strip().splitlines()
    assert lines and lines[-1] == "fuzz: 10000 requests, 0 server errors", done.stdout[-3000:]
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(next(tmp_path.glob("*/fuzz.json")).read_text())
    assert report["requests"] == sum(report["by_status"].values()) == 10_000
    assert report["server_errors"]["count"] == 0, report["server_errors"]
    assert not any(status.startswith("5") for status in report["by_status"])
    assert report["dropped"]["count"] == 0, report["dropped"]
    assert report["bad_shape"]["count"] == 0, report["bad_shape"]
    _check_codes(report["by_code"])
    rejected = report["requests"] - report["accepted"]["count"]
    assert rejected == sum(report["by_code"].values()) >= 7_000
    checks = report["store_checks"]
    assert checks["changed"] == 0, checks["examples"]
    assert checks["checked"] >= 0.95 * rejected, checks
    assert {"seed", "duration", "accepted"} <= set(report)


def test_every_rejected_request_leaves_the_store_unchanged(tmp_path: Path) -> None:
    env = {"KATO_MAX_SESSIONS_PER_NODE": str(CANARIES)}
    args = ("--workers", "2", "--store", "redis", "--ltm", "sqlite", "--data-dir", str(tmp_path))
    with RedisServer() as store, serve(*args, env={**env, "KATO_REDIS_URL": store.url}) as server:
        service = Service(server.url, store.url, tmp_path / "ltm.sqlite3")
        report = asyncio.run(campaign(service, requests=400, seed=7, batch_size=1))
    rejected = report.requests - report.accepted
    assert report.server_errors == 0 and report.dropped == 0 and report.bad_shape == 0
    assert report.checked == rejected and report.comparisons >= rejected
    assert report.changed == 0, report.changed_examples


class PlantedBugsStore(RedisSessionStore):
    """The real Redis store with two planted bugs: looking up a missing session leaves a key
    behind, and one forged id makes it crash."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.side = redis_asyncio.Redis.from_url(url)

    async def get(self, session_id: str, *, touch: bool = True, predictions: bool = True) -> Lease:
        if "0123456789abcdef" in session_id:  # the hand-written forged id
            raise RuntimeError("planted crash")
        try:
            return await super().get(session_id, touch=touch, predictions=predictions)
        except SessionNotFoundError:
            await self.side.incr("kato:planted")
            raise


@contextlib.contextmanager
def _served(app: Any) -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def test_the_campaign_catches_a_5xx_and_a_store_change() -> None:
    with RedisServer() as store:
        settings = Settings(store="redis", redis_url=store.url)
        with _served(create_app(settings, session_store=PlantedBugsStore(store.url))) as url:
            report = asyncio.run(campaign(Service(url, store.url), requests=200, batch_size=4))
    assert report.server_errors >= 1
    assert any("0123456789abcdef" in e["target"] for e in report.server_error_examples)
    assert report.changed >= 1
    example = report.changed_examples[0]["difference"]
    assert "kato:planted" in example["added"] + example["changed"]


def test_the_fingerprint_sees_data_not_ttls_or_dead_index_entries() -> None:
    with RedisServer() as server:
        client = redis.Redis.from_url(server.url)
        sid = "session-" + "1" * 32 + "-1"
        client.hset(f"kato:{{{sid}}}", mapping={"v": "1", "d": "{}", "t": "60000"})
        client.zadd("kato:sessions", {sid: 5})
        client.zadd("{kato:sessions}:node:n", {sid: 5})
        before = fingerprint(client)
        client.pexpire(f"kato:{{{sid}}}", 1234)  # a TTL is not data
        client.zadd("kato:sessions", {sid: 99, "session-" + "2" * 32 + "-1": 1})  # dead entry
        client.zadd("{kato:sessions}:node:n", {"session-" + "3" * 32 + "-1": 1})
        assert fingerprint(client) == before
        client.hset(f"kato:{{{sid}}}", "d", '{"x": 1}')
        assert fingerprint(client) != before
        client.close()
