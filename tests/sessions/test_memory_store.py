"""The in-memory session store: TTL on its own clock, sliding expiry, exact counts."""

from __future__ import annotations

import asyncio

import pytest

from kato.exceptions import SessionNotFoundError
from kato.sessions import Change, MemorySessionStore, SessionRecord, new_session_id


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def record(ttl: int = 60) -> SessionRecord:
    return SessionRecord(new_session_id(0), "node", created_at=0.0, ttl_seconds=ttl)


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_sliding_expiry_restarts_on_every_access_but_exists() -> None:
    clock = FakeClock()
    store = MemorySessionStore(clock=clock)
    rec = record(60)
    run(store.create(rec))
    clock.now += 50
    run(store.get(rec.session_id))  # touch: 60 s more from now
    clock.now += 50
    assert run(store.exists(rec.session_id)) is True  # no touch
    clock.now += 11
    assert run(store.exists(rec.session_id)) is False  # expired: gone, as if deleted
    with pytest.raises(SessionNotFoundError, match="expired"):
        run(store.get(rec.session_id))


def test_fixed_expiry_when_auto_extend_is_off() -> None:
    clock = FakeClock()
    store = MemorySessionStore(clock=clock, auto_extend=False)
    rec = record(60)
    run(store.create(rec))
    clock.now += 50
    run(store.update(rec.session_id, lambda r: Change(r, None)))
    clock.now += 11
    with pytest.raises(SessionNotFoundError):
        run(store.get(rec.session_id))


def test_update_bumps_version_and_delete_prevents_resurrection() -> None:
    store = MemorySessionStore()
    rec = record()
    run(store.create(rec))
    outcome = run(store.update(rec.session_id, lambda r: Change(r, "done")))
    assert outcome.value == "done" and outcome.lease.record.version == 1
    run(store.delete(rec.session_id))
    with pytest.raises(SessionNotFoundError):
        run(store.update(rec.session_id, lambda r: Change(r, None)))
    with pytest.raises(SessionNotFoundError):
        run(store.delete(rec.session_id))


def test_count_is_exact_and_drops_expired_sessions() -> None:
    clock = FakeClock()
    store = MemorySessionStore(clock=clock)
    short, long = record(10), record(100)
    run(store.create(short))
    run(store.create(long))
    assert run(store.count()) == 2
    clock.now += 11
    assert run(store.count()) == 1
