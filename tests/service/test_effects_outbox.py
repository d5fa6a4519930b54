"""Sessions.md guarantee 3 against a real ``kato serve`` (1 worker, SQLite LTM): while another
process holds the LTM's write lock, acknowledged learns wait in their sessions' outboxes and are
applied exactly once afterwards — by a retry, by the next request, or by the drainer."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kato.engine import pattern_name
from kato.lab.ltm_lock import LTMLock

NODE = "outbox-node"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from tests.conftest import running_server

    data = tmp_path_factory.mktemp("outbox-data")
    # a short LTM timeout: a write behind the lock fails after 0.5 s instead of 10 s
    args = ("--store", "memory", "--ltm", "sqlite", "--data-dir", str(data))
    with running_server(*args, env={"KATO_LTM_TIMEOUT": "0.5"}) as running:
        running.ltm_path = data / "ltm.sqlite3"
        yield running


def _session(url: str, **config: Any) -> str:
    response = httpx.post(url + "/sessions", json={"node_id": NODE, "config": config})
    assert response.status_code == 200, response.text
    return str(response.json()["session_id"])


def _frequency(url: str, symbols: list[str]) -> int:
    name = pattern_name([[symbol] for symbol in symbols])
    response = httpx.get(f"{url}/pattern/{name}", params={"node_id": NODE})
    if response.status_code == 404:
        return 0
    assert response.status_code == 200, response.text
    return int(response.json()["pattern"]["pattern"]["frequency"])


def _ltm_health(url: str, expected: str) -> dict[str, Any]:
    """``/health`` once its LTM check says ``expected`` (a verdict stands up to 2 s)."""
    deadline = time.monotonic() + 5
    while True:
        body: dict[str, Any] = httpx.get(url + "/health").json()
        if body["checks"]["ltm"]["status"] == expected or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


def _ready(url: str) -> None:
    """Make sure the LTM file exists (a learn of its own) before it is locked."""
    session = _session(url)
    for symbol in ("warm", "up"):
        httpx.post(f"{url}/sessions/{session}/observe", json={"strings": [symbol]})
    assert httpx.post(f"{url}/sessions/{session}/learn").status_code == 200


def test_auto_learn_behind_a_lock_is_applied_once_by_the_retry(server: Any) -> None:
    url = server.url
    _ready(url)
    session = _session(url, max_pattern_length=2)
    observe = f"{url}/sessions/{session}/observe"
    assert httpx.post(observe, json={"strings": ["p1"]}).status_code == 200
    with LTMLock(server.ltm_path):
        first = httpx.post(observe, json={"strings": ["p2"], "unique_id": "u2"}, timeout=30)
        assert first.status_code in (200, 503), first.text
        health = _ltm_health(url, "degraded")
        assert health["checks"]["ltm"]["status"] == "degraded", health
        assert health["status"] == "degraded", health
        assert health["checks"]["store"]["status"] == "ok", health
        assert _frequency(url, ["p1", "p2"]) == 0  # pending: not in the LTM yet
    retry = httpx.post(observe, json={"strings": ["p2"], "unique_id": "u2"}, timeout=30)
    assert retry.status_code == 200, retry.text
    assert retry.json()["auto_learned_pattern"] == pattern_name([["p1"], ["p2"]])
    assert _frequency(url, ["p1", "p2"]) == 1
    again = httpx.post(observe, json={"strings": ["p2"], "unique_id": "u2"}, timeout=30)
    assert again.json() == retry.json()
    assert _frequency(url, ["p1", "p2"]) == 1  # a retry after a success applies nothing
    assert _ltm_health(url, "ok")["status"] == "healthy"


def test_learn_behind_a_lock_is_applied_once_by_the_next_request(server: Any) -> None:
    url = server.url
    _ready(url)
    session = _session(url)
    for symbol in ("l1", "l2"):
        httpx.post(f"{url}/sessions/{session}/observe", json={"strings": [symbol]})
    with LTMLock(server.ltm_path):
        learned = httpx.post(f"{url}/sessions/{session}/learn", timeout=30)
        assert learned.status_code == 200, learned.text  # committed: its effects are pending
        assert _frequency(url, ["l1", "l2"]) == 0
    assert httpx.get(f"{url}/sessions/{session}/stm").json()["stm"] == []
    assert _frequency(url, ["l1", "l2"]) == 1
    assert httpx.get(f"{url}/sessions/{session}/stm").status_code == 200
    assert _frequency(url, ["l1", "l2"]) == 1


def test_the_drainer_applies_an_untouched_sessions_learn_once(server: Any) -> None:
    url = server.url
    _ready(url)
    session = _session(url)
    for symbol in ("d1", "d2"):
        httpx.post(f"{url}/sessions/{session}/observe", json={"strings": [symbol]})
    with LTMLock(server.ltm_path):
        assert httpx.post(f"{url}/sessions/{session}/learn", timeout=30).status_code == 200
    deadline = time.monotonic() + 10
    while _frequency(url, ["d1", "d2"]) == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _frequency(url, ["d1", "d2"]) == 1
    time.sleep(1.5)  # more drainer passes apply nothing more
    assert _frequency(url, ["d1", "d2"]) == 1


def _vectors(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT count(*) FROM vectors").fetchone()[0])


def test_vector_observe_behind_a_lock_registers_its_vector_on_retry(server: Any) -> None:
    url = server.url
    _ready(url)
    session = _session(url)
    before = _vectors(server.ltm_path)
    body = {"vectors": [[0.25, 7.5, -1.0]], "unique_id": "v1"}
    with LTMLock(server.ltm_path):
        first = httpx.post(f"{url}/sessions/{session}/observe", json=body, timeout=30)
        assert first.status_code in (200, 503), first.text
    retry = httpx.post(f"{url}/sessions/{session}/observe", json=body, timeout=30)
    assert retry.status_code == 200, retry.text
    assert _vectors(server.ltm_path) == before + 1
