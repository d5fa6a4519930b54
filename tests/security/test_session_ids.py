"""Session ids: 128 bits from the CSPRNG, and malformed ids rejected with bounded work and no
store call (a spy that is a real store counts the calls)."""

from __future__ import annotations

import re
import secrets
import time
from collections import Counter
from typing import Any

import pytest
from fastapi.testclient import TestClient

import kato.sessions.ids as ids
from kato.service import create_app
from kato.sessions import MemorySessionStore, looks_like_session_id, new_session_id
from kato.sessions.redis import RedisSessionStore
from kato.settings import Settings
from kato.stores.redis_server import RedisServer

SAMPLES = 100_000
# chi-square, 15 degrees of freedom: P(X > 60) ~ 1e-7 for one nibble position; over all 32
# positions together (480 dof, mean 480, sd 31) a bound 6 sd out.
NIBBLE_BOUND, TOTAL_BOUND = 60.0, 480 + 6 * 31


def _random_parts(count: int) -> list[str]:
    now = int(time.time() * 1000)
    return [new_session_id(now).split("-")[1] for _ in range(count)]


def test_ids_have_the_documented_shape_and_128_random_bits() -> None:
    now = int(time.time() * 1000)
    sid = new_session_id(now)
    assert re.fullmatch(rf"session-[0-9a-f]{{32}}-{now}", sid)
    parts = _random_parts(SAMPLES)
    assert len(set(parts)) == SAMPLES, "100k ids must be distinct"
    total = 0.0
    for position in range(32):
        counts = Counter(part[position] for part in parts)
        assert set(counts) == set("0123456789abcdef"), f"nibble {position} misses values"
        expected = SAMPLES / 16
        chi2 = sum((counts[h] - expected) ** 2 / expected for h in "0123456789abcdef")
        assert chi2 < NIBBLE_BOUND, (position, chi2)
        total += chi2
    assert total < TOTAL_BOUND, total
    # every one of the 128 bits varies and is balanced: 128 >= 122 bits of entropy
    for bit in range(128):
        ones = sum((int(part, 16) >> bit) & 1 for part in parts[:20_000])
        assert abs(ones - 10_000) < 6 * 71, (bit, ones)  # 6 sd of Binomial(20000, 1/2)


def test_ids_come_from_the_os_csprng(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[int] = []
    real = secrets.token_hex

    def token_hex(nbytes: int) -> str:
        asked.append(nbytes)
        return real(nbytes)

    monkeypatch.setattr(ids.secrets, "token_hex", token_hex)
    new_session_id(1)
    assert asked == [16]


class _Spy:
    """Stands in for the id pattern and records what it was asked to match."""

    def __init__(self) -> None:
        self.asked: list[int] = []
        self.pattern = ids.SESSION_ID_PATTERN

    def fullmatch(self, value: str) -> Any:
        self.asked.append(len(value))
        return self.pattern.fullmatch(value)


def test_the_length_is_checked_before_the_pattern(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = _Spy()
    real = new_session_id(int(time.time() * 1000))
    monkeypatch.setattr(ids, "SESSION_ID_PATTERN", spy)
    for value in ["", "x" * 41, "x" * 58, real + "0" * 20, "session-" * 1_000_000]:
        assert not looks_like_session_id(value)
    assert spy.asked == [], "over- or under-long ids must not reach the pattern"
    assert looks_like_session_id(real)
    assert not looks_like_session_id(real.upper())
    assert spy.asked == [len(real), len(real)]


class CountingStore(MemorySessionStore):
    """The real in-memory store, counting every call that names a session."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()

    async def get(self, session_id: str, *, touch: bool = True, predictions: bool = True) -> Any:
        self.calls["get"] += 1
        return await super().get(session_id, touch=touch, predictions=predictions)

    async def update(self, session_id: str, change: Any, *, unique_id: str | None = None) -> Any:
        self.calls["update"] += 1
        return await super().update(session_id, change, unique_id=unique_id)

    async def delete(self, session_id: str) -> None:
        self.calls["delete"] += 1
        await super().delete(session_id)

    async def exists(self, session_id: str) -> tuple[bool, bool]:
        self.calls["exists"] += 1
        return await super().exists(session_id)

    async def extend(self, session_id: str, ttl_seconds: int) -> Any:
        self.calls["extend"] += 1
        return await super().extend(session_id, ttl_seconds)


MALFORMED = [
    "*",
    "%7B%7D",
    "a%3Ab",
    "%0a",
    "%2e%2e",
    "session-" + "F" * 32 + "-1",
    "session-" + "0" * 32 + "-" + "1" * 17,
    "session-" + "0" * 31 + "-1",
    "x" * 10_000,
]
ROUTES = [
    ("GET", ""),
    ("DELETE", ""),
    ("GET", "/exists"),
    ("POST", "/extend?ttl_seconds=60"),
    ("GET", "/config"),
    ("POST", "/config"),
    ("POST", "/observe"),
    ("POST", "/observe-sequence"),
    ("GET", "/stm"),
    ("POST", "/learn"),
    ("GET", "/predictions"),
    ("POST", "/clear-stm"),
    ("POST", "/clear-all"),
    ("GET", "/percept-data"),
    ("GET", "/cognition-data"),
]


def _hit_every_route(http: TestClient) -> None:
    for sid in MALFORMED:
        for method, suffix in ROUTES:
            body = {"strings": ["a"]} if method == "POST" and suffix != "/extend" else None
            response = http.request(method, f"/sessions/{sid}{suffix}", json=body)
            if suffix == "/exists":
                assert response.status_code == 200 and response.json()["exists"] is False
            else:
                assert response.status_code == 404, (method, suffix, response.text[:200])
                assert response.json()["error"]["code"] == "SESSION_NOT_FOUND"


def test_malformed_ids_never_reach_the_memory_store() -> None:
    store = CountingStore()
    with TestClient(create_app(session_store=store)) as http:
        _hit_every_route(http)
    assert sum(store.calls.values()) == 0, store.calls


def test_malformed_ids_cost_no_redis_round_trip(redis_server: RedisServer) -> None:
    settings = Settings(store="redis", redis_url=redis_server.url)
    app = create_app(settings)
    inner = app.state.kato.sessions.inner
    assert isinstance(inner, RedisSessionStore)
    with TestClient(app) as http:
        before = inner.counters.round_trips
        _hit_every_route(http)
        assert inner.counters.round_trips == before
        forged = "session-" + "0" * 32 + "-1700000000000"  # the right shape is looked up
        assert http.get(f"/sessions/{forged}").status_code == 404
        assert inner.counters.round_trips == before + 1
