"""One contract, every session store: the guarantees of sessions.md, checked the same way.

Each test runs against the in-memory store, against the Redis store on a real embedded
redis-server, and against the Redis store on an embedded Redis Cluster (3 masters, 3
replicas). The store's own clock is the thing under test: Redis's is real (its TTL tests
sleep about a second, the shortest TTL it keeps), the memory store's is a clock the test moves
(``make_store.sleep``), so its TTL tests take no time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest

from kato.engine import ClearNode, LearnPattern, RegisterVector, SessionState
from kato.exceptions import SessionLimitError, SessionNotFoundError
from kato.sessions import (
    Change,
    Lease,
    MemorySessionStore,
    Pending,
    SessionRecord,
    SessionStore,
    effect_id,
    new_session_id,
)
from kato.sessions.redis import RedisSessionStore


class MovedClock:
    """A monotonic clock that moves only when a test sleeps on it."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)  # still a point where other tasks run, like a real sleep


@dataclass(frozen=True)
class StoreFactory:
    """Makes a store of one backend, and lets time pass on that store's clock."""

    make: Callable[..., SessionStore]
    sleep: Callable[[float], Awaitable[None]]

    def __call__(self, **options: Any) -> SessionStore:
        return self.make(**options)


@pytest.fixture(params=["memory", "redis", "cluster"])
def make_store(request: pytest.FixtureRequest, key_prefix: str) -> StoreFactory:
    if request.param == "memory":
        clock = MovedClock()
        return StoreFactory(
            lambda **options: MemorySessionStore(clock=clock, **options), clock.sleep
        )
    if request.param == "cluster":
        url = request.getfixturevalue("redis_cluster").url
    else:
        url = request.getfixturevalue("redis_server").url
    return StoreFactory(
        lambda **options: RedisSessionStore(url, key_prefix=key_prefix, **options),
        asyncio.sleep,
    )


def run(
    make_store: StoreFactory, scenario: Callable[[SessionStore], Awaitable[Any]], **options: Any
) -> Any:
    async def main() -> Any:
        store = make_store(**options)
        try:
            return await scenario(store)
        finally:
            await store.close()

    return asyncio.run(main())


def record(ttl: int = 60, node: str = "node") -> SessionRecord:
    return SessionRecord(new_session_id(int(time.time() * 1000)), node, time.time(), ttl)


def append(symbol: str) -> Callable[[SessionRecord], Change[str]]:
    def change(rec: SessionRecord) -> Change[str]:
        state = replace(rec.state, stm=(*rec.state.stm, (symbol,)))
        return Change(replace(rec, state=state), symbol, {"appended": symbol})

    return change


def test_visible_the_moment_create_returns(make_store: StoreFactory) -> None:
    async def scenario(store: SessionStore) -> None:
        rec = record()
        lease = await store.create(rec)
        assert lease.record == rec
        assert (await store.get(rec.session_id)).record == rec
        assert await store.exists(rec.session_id) is True
        assert time.time() + 55 < lease.expires_at <= time.time() + 61

    run(make_store, scenario)


def test_update_is_atomic_and_versions_grow(make_store: StoreFactory) -> None:
    async def scenario(store: SessionStore) -> None:
        rec = record()
        await store.create(rec)
        outcome = await store.update(rec.session_id, append("a"))
        assert outcome.value == "a" and outcome.lease.record.version == 1
        assert (await store.get(rec.session_id)).record.state.stm == (("a",),)

    run(make_store, scenario)


def test_concurrent_updates_lose_nothing(make_store: StoreFactory) -> None:
    async def scenario(store: SessionStore) -> None:
        rec = record()
        await store.create(rec)
        symbols = [f"s{i}" for i in range(60)]
        await asyncio.gather(*(store.update(rec.session_id, append(s)) for s in symbols))
        final = (await store.get(rec.session_id)).record
        assert sorted(event[0] for event in final.state.stm) == sorted(symbols)
        assert final.version == len(symbols)

    run(make_store, scenario)


def test_unique_id_applies_once_and_replays_the_first_reply(make_store: StoreFactory) -> None:
    async def scenario(store: SessionStore) -> None:
        rec = record()
        await store.create(rec)
        first = await store.update(rec.session_id, append("a"), unique_id="u-1")
        calls = []

        def must_not_run(r: SessionRecord) -> Change[str]:
            calls.append(r)
            return append("b")(r)

        again = await store.update(rec.session_id, must_not_run, unique_id="u-1")
        assert first.replayed is None and again.value is None
        assert again.replayed == {"appended": "a"} and not calls
        assert (await store.get(rec.session_id)).record.state.stm == (("a",),)

    run(make_store, scenario)


def test_remembered_replies_are_bounded(make_store: StoreFactory) -> None:
    async def scenario(store: SessionStore) -> None:
        rec = record()
        await store.create(rec)
        for i in range(5):
            await store.update(rec.session_id, append(f"s{i}"), unique_id=f"u-{i}")
        oldest = await store.update(rec.session_id, append("again"), unique_id="u-0")
        newest = await store.update(rec.session_id, append("never"), unique_id="u-4")
        assert oldest.replayed is None, "the oldest reply should have been forgotten"
        assert newest.replayed == {"appended": "s4"}

    run(make_store, scenario, applied_limit=3)


def test_delete_is_final(make_store: StoreFactory) -> None:
    async def scenario(store: SessionStore) -> None:
        rec = record()
        await store.create(rec)
        await store.delete(rec.session_id)
        for attempt in (
            store.get(rec.session_id),
            store.update(rec.session_id, append("x")),
            store.delete(rec.session_id),
            store.extend(rec.session_id, 60),
        ):
            with pytest.raises(SessionNotFoundError):
                await attempt
        assert await store.exists(rec.session_id) is False
        assert await store.exists("not-a-session-id") is False

    run(make_store, scenario)


def test_sessions_are_isolated(make_store: StoreFactory) -> None:
    async def scenario(store: SessionStore) -> None:
        a, b = record(node="n"), record(node="n")
        await store.create(a)
        await store.create(b)
        await store.update(a.session_id, append("only-a"))
        assert (await store.get(b.session_id)).record.state == SessionState()
        await store.delete(a.session_id)
        c = record(node="n")
        await store.create(c)
        assert (await store.get(c.session_id)).record.state == SessionState()

    run(make_store, scenario)


def test_sliding_expiry_restarts_on_access_but_not_on_exists(make_store: StoreFactory) -> None:
    """``exists`` is true exactly while the session is live; an expired session is gone like a
    deleted one (no store can tell them apart: its TTL is the only clock), also in a store that
    still holds the entry when asked."""

    async def scenario(store: SessionStore) -> None:
        rec = record(ttl=1)
        await store.create(rec)
        await make_store.sleep(0.6)
        await store.get(rec.session_id)  # restarts the 1 s TTL
        await make_store.sleep(0.6)
        assert await store.exists(rec.session_id) is True, "the read should have extended it"
        await store.update(rec.session_id, append("x"))  # and so does a write
        await make_store.sleep(0.6)
        assert await store.exists(rec.session_id) is True
        await make_store.sleep(0.7)  # exists never extends: now it is gone
        assert await store.exists(rec.session_id) is False
        with pytest.raises(SessionNotFoundError):
            await store.get(rec.session_id)

    run(make_store, scenario)


def test_fixed_expiry_when_auto_extend_is_off(make_store: StoreFactory) -> None:
    async def scenario(store: SessionStore) -> None:
        rec = record(ttl=1)
        await store.create(rec)
        await make_store.sleep(0.6)
        await store.get(rec.session_id)
        await store.update(rec.session_id, append("x"))
        await make_store.sleep(0.6)
        with pytest.raises(SessionNotFoundError):
            await store.get(rec.session_id)

    run(make_store, scenario, auto_extend=False)


def test_extend_sets_and_restarts_the_ttl(make_store: StoreFactory) -> None:
    async def scenario(store: SessionStore) -> None:
        rec = record(ttl=1)
        await store.create(rec)
        lease = await store.extend(rec.session_id, 120)
        assert lease.record.ttl_seconds == 120
        assert time.time() + 100 < lease.expires_at
        await make_store.sleep(1.2)
        assert (await store.get(rec.session_id)).record.ttl_seconds == 120

    run(make_store, scenario, auto_extend=False)


def test_count_is_exact_under_churn_and_after_expiry(make_store: StoreFactory) -> None:
    async def scenario(store: SessionStore) -> None:
        base = await store.count()
        short = [record(ttl=1) for _ in range(5)]
        long = [record(ttl=60) for _ in range(7)]
        await asyncio.gather(*(store.create(r) for r in short + long))
        assert await store.count() == base + 12
        await asyncio.gather(*(store.delete(r.session_id) for r in long[:3]))
        assert await store.count() == base + 9
        await make_store.sleep(0.6)
        await store.get(short[0].session_id)  # a read extends it past the others' expiry
        await make_store.sleep(0.7)
        assert await store.count() == base + 4 + 1
        await make_store.sleep(0.5)
        assert await store.count() == base + 4

    run(make_store, scenario)


def _created(results: list[Any]) -> int:
    assert all(isinstance(r, Lease | SessionLimitError) for r in results), results
    return sum(isinstance(r, Lease) for r in results)


def test_session_limits_per_node_and_per_deployment(make_store: StoreFactory) -> None:
    async def scenario(store: SessionStore) -> None:
        base = await store.count()
        results = await asyncio.gather(
            *(store.create(record(node="full")) for _ in range(8)), return_exceptions=True
        )
        assert _created(results) == 3, "the node limit is exact under concurrent creates"
        refused = next(r for r in results if isinstance(r, SessionLimitError))
        assert refused.code == "SESSION_LIMIT" and refused.status == 429
        assert refused.details == {"limit": "node", "max": 3}
        assert await store.count() == base + 3  # nothing of a refused create is left
        live = [r.record.session_id for r in results if isinstance(r, Lease)]
        await store.delete(live[0])
        await store.create(record(node="full"))  # a delete makes room
        other = [await store.create(record(node=f"n{i}")) for i in range(2 - base)]
        with pytest.raises(SessionLimitError) as info:
            await store.create(record(node="another"))
        assert info.value.details == {"limit": "deployment", "max": 5}
        assert len(other) == 2 - base

    run(make_store, scenario, max_sessions=5, max_sessions_per_node=3)


def test_session_limits_count_sessions_kept_alive_by_reads(make_store: StoreFactory) -> None:
    """A session read after its first deadline still counts; one that expired does not."""

    async def scenario(store: SessionStore) -> None:
        kept, dropped = record(ttl=1, node="busy"), record(ttl=1, node="busy")
        await store.create(kept)
        await store.create(dropped)
        for _ in range(3):  # past both first deadlines; reads keep one of them alive
            await make_store.sleep(0.5)
            await store.get(kept.session_id)
        await store.create(record(node="busy"))  # room: the unread one expired
        with pytest.raises(SessionLimitError):  # none: the read one still counts
            await store.create(record(node="busy"))

    run(make_store, scenario, max_sessions_per_node=2)


def test_pending_effects_travel_in_the_record_and_index_the_session(
    make_store: StoreFactory,
) -> None:
    learn = LearnPattern("p", (("a",), ("b",)), {"joy": 0.5}, {"k": ("v",)}, 3)
    vector = RegisterVector("VCTR|v", (0.1, -2.0))

    def with_pending(rec: SessionRecord) -> Change[None]:
        entry = Pending(effect_id(rec.session_id, rec.version + 1), (learn, vector, ClearNode()))
        return Change(replace(rec, pending=(*rec.pending, entry)), None)

    def settle(rec: SessionRecord) -> Change[None]:
        return Change(replace(rec, pending=()), None)

    async def scenario(store: SessionStore) -> None:
        rec, other = record(), record()
        await store.create(rec)
        await store.create(other)
        await store.update(other.session_id, append("x"))  # no pending effects: not indexed
        assert await store.outbox(10) == []
        await store.update(rec.session_id, with_pending)
        pending = (await store.get(rec.session_id)).record.pending
        assert [p.effect_id for p in pending] == [f"{rec.session_id}:1"]
        assert pending[0].effects == (learn, vector, ClearNode())
        [(indexed, mark)] = await store.outbox(10)
        assert indexed == rec.session_id
        await store.update(rec.session_id, with_pending)  # indexed anew: the old mark is stale
        await store.settled(rec.session_id, mark)
        [(_, newer)] = await store.outbox(10)
        await store.update(rec.session_id, settle)
        await store.settled(rec.session_id, newer)
        assert await store.outbox(10) == []

    run(make_store, scenario)


def test_a_second_pending_write_in_the_same_instant_outlives_a_stale_settle(
    make_store: StoreFactory,
) -> None:
    """The drainer read the session's mark, then a second write with pending effects indexed it
    again in the same millisecond: settling the first mark must keep the entry (an equal mark
    once dropped it, leaving the second write's effects pending and unindexed)."""

    def with_pending(rec: SessionRecord) -> Change[None]:
        entry = Pending(effect_id(rec.session_id, rec.version + 1), (ClearNode(),))
        return Change(replace(rec, pending=(*rec.pending, entry)), None)

    async def scenario(store: SessionStore) -> None:
        if isinstance(store, RedisSessionStore):
            store.now_ms = lambda: 1_796_000_000_000  # type: ignore[method-assign]
        rec = record()
        await store.create(rec)
        await store.update(rec.session_id, with_pending)
        [(_, mark)] = await store.outbox(10)
        await store.update(rec.session_id, with_pending)
        await store.settled(rec.session_id, mark)
        [(indexed, newer)] = await store.outbox(10)
        assert indexed == rec.session_id and newer > mark
        await store.settled(rec.session_id, newer)
        assert await store.outbox(10) == []

    run(make_store, scenario)
