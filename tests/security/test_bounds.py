"""Bounded work per request and per connection, and bounded echoes of client-supplied ids.

Each bound is tested with the request that would break it: an observation over a bound is
refused with its stable code and leaves the session and the node's LTM exactly as they were; a
late body is answered 408 and its connection closed; bodies beyond the worker's budget are
refused 503 before they are read; late headers close the connection; a 65 KB session id full of
control characters comes back as at most 64 printable characters.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kato.engine import EngineConfig
from kato.exceptions import ECHO_LIMIT, echo
from kato.lab.targets import serve
from kato.service import create_app
from kato.settings import Settings

SMALL = EngineConfig(
    max_event_symbols=8,
    max_stm_symbols=12,
    max_stm_chars=200,
    max_emotive_keys=2,
    max_metadata_bytes=40,
    max_match_pairs=100,
)


def _snapshot(http: TestClient, sid: str, node: str) -> list[Any]:
    """Everything a refused request must leave unchanged: the session's state and the LTM."""
    return [
        http.get(f"/sessions/{sid}/stm").json()["stm"],
        http.get(f"/sessions/{sid}/percept-data").json()["percept_data"],
        http.get(f"/sessions/{sid}/predictions").json(),
        http.get("/symbols/stats", params={"node_id": node}).json(),
        http.get("/patterns", params={"node_id": node}).json(),
    ]


def _refused(response: Any, status: int, code: str, limit: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert (error["code"], error["details"]["limit"]) == (code, limit)
    assert error["details"]["got"] > error["details"]["max"]


@pytest.mark.parametrize(
    ("body", "limit"),
    [
        ({"strings": [f"s{i}" for i in range(9)]}, "event_symbols"),
        ({"strings": ["a"], "emotives": {"x": 1.0, "y": 2.0, "z": 3.0}}, "emotive_keys"),
        ({"strings": ["a"], "metadata": {"note": "m" * 40}}, "metadata_bytes"),
    ],
)
def test_an_observation_over_a_bound_is_413_and_changes_nothing(
    body: dict[str, Any], limit: str, node_id: str
) -> None:
    with TestClient(create_app(Settings(engine=SMALL))) as http:
        sid = http.post("/sessions", json={"node_id": node_id}).json()["session_id"]
        http.post(f"/sessions/{sid}/observe", json={"strings": ["a", "b"]})
        http.post(f"/sessions/{sid}/learn")
        http.post(f"/sessions/{sid}/observe", json={"strings": ["a", "b"]})
        before = _snapshot(http, sid, node_id)
        _refused(http.post(f"/sessions/{sid}/observe", json=body), 413, "LIMIT_EXCEEDED", limit)
        sequence = {"observations": [{"strings": ["c"]}, body], "learn_after_each": True}
        response = http.post(f"/sessions/{sid}/observe-sequence", json=sequence)
        _refused(response, 413, "LIMIT_EXCEEDED", limit)
        assert _snapshot(http, sid, node_id) == before


def test_an_stm_over_its_bound_is_409_stm_full_and_changes_nothing(node_id: str) -> None:
    settings = Settings(engine=EngineConfig(max_stm_symbols=12, max_pattern_length=3))
    with TestClient(create_app(settings)) as http:
        sid = http.post("/sessions", json={"node_id": node_id}).json()["session_id"]
        for _ in range(2):
            response = http.post(f"/sessions/{sid}/observe", json={"strings": list("abcde")})
            assert response.status_code == 200
        before = _snapshot(http, sid, node_id)
        # would take the STM to 15 symbols, and auto-learn its 3 events: neither happens
        response = http.post(f"/sessions/{sid}/observe", json={"strings": list("fghij")})
        _refused(response, 409, "STM_FULL", "stm_symbols")
        assert _snapshot(http, sid, node_id) == before
        assert http.post(f"/sessions/{sid}/learn").status_code == 200  # the way out
        assert http.post(f"/sessions/{sid}/observe", json={"strings": ["x"]}).status_code == 200


def test_repeated_symbols_over_the_matching_bound_are_refused(node_id: str) -> None:
    """``a`` x 20 against a learned ``a`` x 20 is 400 pairs for difflib's first pass (the
    quadratic case of the matcher); the bound refuses it before any matching runs."""
    settings = Settings(engine=EngineConfig(max_match_pairs=399, sort_symbols=False))
    with TestClient(create_app(settings)) as http:
        teacher = http.post("/sessions", json={"node_id": node_id}).json()["session_id"]
        http.post(f"/sessions/{teacher}/observe", json={"strings": ["a"] * 20})
        http.post(f"/sessions/{teacher}/learn")
        sid = http.post("/sessions", json={"node_id": node_id}).json()["session_id"]
        before = _snapshot(http, sid, node_id)
        response = http.post(f"/sessions/{sid}/observe", json={"strings": ["a"] * 20})
        _refused(response, 413, "LIMIT_EXCEEDED", "match_pairs")
        assert _snapshot(http, sid, node_id) == before
        response = http.post(f"/sessions/{sid}/observe", json={"strings": ["a"] * 19})
        assert response.status_code == 200  # 380 pairs fit


def test_default_bounds_let_kato_workloads_through() -> None:
    defaults = EngineConfig()
    assert defaults.max_event_symbols >= 50_000 and defaults.max_stm_symbols >= 100_000
    settings = Settings.from_env({"KATO_MAX_EVENT_SYMBOLS": "7", "KATO_BODY_TIMEOUT_S": "2.5"})
    assert (settings.engine.max_event_symbols, settings.body_timeout_s) == (7, 2.5)
    with pytest.raises(Exception, match="max_bodies_in_flight"):
        Settings(max_body_bytes=10, max_bodies_in_flight=9)


async def _asgi(app: Any, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    """One request straight into the ASGI app: no HTTP client would send a 65 KB path."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode("utf-8", "surrogateescape"),
        "root_path": "",
        "query_string": b"node_id=n",
        "headers": [(b"host", b"x"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def test_errors_echo_a_bounded_sanitised_prefix_of_a_hostile_id() -> None:
    hostile = ("\x00\x1b[31m\r\nX-Evil: 1\x07" * 4096)[:65_536]
    app = create_app()
    for method, path, body in (
        ("GET", f"/sessions/{hostile}", b""),
        ("POST", f"/sessions/{hostile}/observe", b'{"strings": ["a"]}'),
        ("POST", f"/sessions/{hostile}/observe", b'{"strings": 1}'),
        ("GET", f"/pattern/{hostile}", b""),
        ("GET", f"/no-such-route/{hostile}", b""),
        ("PUT", f"/sessions/{hostile}", b""),
    ):
        status, content = asyncio.run(_asgi(app, method, path, body))
        assert 400 <= status < 500, (status, content[:200])
        assert len(content) < 1024, len(content)
        text = json.dumps(json.loads(content), ensure_ascii=False)
        assert not any(ord(char) < 32 or ord(char) == 127 for char in text)
        error = json.loads(content)["error"]
        if error["session_id"] is not None:
            assert len(error["session_id"]) <= ECHO_LIMIT + 1
    assert echo("ab\x00c") == "ab\\x00c" and echo("x" * 100) == "x" * ECHO_LIMIT + "…"
    assert echo("é" * 10) == "é" * 10


def _raw(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (then this side closes)."""
    with sock:
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def _upload_head(path: str, length: int) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def test_slow_bodies_late_headers_and_the_body_budget_on_a_real_server() -> None:
    env = {
        "KATO_BODY_TIMEOUT_S": "1",
        "KATO_HEADER_TIMEOUT_S": "1",
        "KATO_MAX_BODY_BYTES": "1000",
        "KATO_MAX_BODIES_IN_FLIGHT": "2000",
    }
    with serve("--store", "memory", "--ltm", "memory", env=env) as server:
        # two uploads that never finish hold the whole budget ...
        slow = [_raw(server.url) for _ in range(2)]
        for sock in slow:
            sock.sendall(_upload_head("/sessions", 1000) + b'{"node_id": ')
        time.sleep(0.3)
        # ... so a third is refused at once, its body unread, the connection closed
        busy = _raw(server.url)
        started = time.monotonic()
        busy.sendall(_upload_head("/sessions", 1000))
        answer = _read_all(busy)
        assert time.monotonic() - started < 0.9  # not after the others' timeouts
        assert answer.startswith(b"HTTP/1.1 503") and b"retry-after: 1" in answer.lower()
        assert b'"SERVER_BUSY"' in answer
        # the late bodies are answered 408 and their connections closed
        for sock in slow:
            answer = _read_all(sock)
            assert answer.startswith(b"HTTP/1.1 408") and b'"REQUEST_TIMEOUT"' in answer
        # late headers: closed without an answer
        late = _raw(server.url)
        late.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        assert _read_all(late) == b""
        assert 0.5 < time.monotonic() - started < 5
        # and the budget is whole again
        fine = _raw(server.url)
        body = b'{"node_id": "n"}'
        fine.sendall(_upload_head("/sessions", len(body)).replace(b"1.1", b"1.0") + body)
        assert _read_all(fine).startswith(b"HTTP/1.1 200")
