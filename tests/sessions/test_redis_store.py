"""What only the Redis store can show: outages, in-flight deletes, cost, several processes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import time
from dataclasses import replace

import pytest
import redis

from kato.engine import SessionState
from kato.exceptions import SessionNotFoundError, StoreUnavailableError
from kato.sessions import Change, Pending, SessionRecord, codec, new_session_id
from kato.sessions.redis import LEASE_WAIT_S, CompareAndSet, Read, RedisSessionStore, Write
from kato.stores.redis_server import RedisServer


def record(ttl: int = 60) -> SessionRecord:
    return SessionRecord(new_session_id(int(time.time() * 1000)), "node", time.time(), ttl)


def append(symbol: str):  # type: ignore[no-untyped-def]
    def change(rec: SessionRecord) -> Change[str]:
        return Change(
            replace(rec, state=replace(rec.state, stm=(*rec.state.stm, (symbol,)))), symbol
        )

    return change


def test_an_update_costs_two_round_trips(redis_server: RedisServer, key_prefix: str) -> None:
    async def scenario() -> tuple[int, int]:
        store = RedisSessionStore(redis_server.url, key_prefix=key_prefix)
        rec = record()
        await store.create(rec)
        before = store.counters.round_trips
        for i in range(10):
            await store.update(rec.session_id, append(f"s{i}"))
        updates = store.counters.round_trips - before
        before = store.counters.round_trips
        await store.get(rec.session_id)
        reads = store.counters.round_trips - before
        await store.close()
        return updates, reads

    updates, reads = asyncio.run(scenario())
    assert updates == 20 and reads == 1


def test_an_update_that_learns_still_costs_two_round_trips_and_is_indexed(
    redis_server: RedisServer, key_prefix: str
) -> None:
    """A write whose record carries pending effects indexes its session in the outbox index
    inside the compare-and-set script: no third round trip."""

    def learns(rec: SessionRecord) -> Change[None]:
        entry = Pending(f"{rec.session_id}:x", ())
        return Change(replace(rec, pending=(*rec.pending, entry)), None)

    async def scenario() -> tuple[int, list[tuple[str, float]]]:
        store = RedisSessionStore(redis_server.url, key_prefix=key_prefix)
        rec = record()
        await store.create(rec)
        before = store.counters.round_trips
        await store.update(rec.session_id, learns)
        trips = store.counters.round_trips - before
        indexed = await store.outbox(10)
        await store.close()
        return trips, indexed

    trips, indexed = asyncio.run(scenario())
    assert trips == 2 and len(indexed) == 1


def test_a_session_an_earlier_kato_stored_whole_is_read_and_rewritten_in_parts(
    redis_server: RedisServer, key_prefix: str
) -> None:
    rec = replace(record(), state=SessionState(stm=(("a",),), time=1, predictions=({"n": 1.5},)))
    doc = json.dumps(
        {
            "session_id": rec.session_id, "node_id": rec.node_id, "created_at": rec.created_at,
            "ttl_seconds": rec.ttl_seconds, "metadata": {}, "config": {},
            "state": rec.state.to_dict(), "version": 3,
        }
    )  # fmt: skip
    client = redis.Redis.from_url(redis_server.url)
    key = f"{key_prefix}:{{{rec.session_id}}}"
    client.hset(key, mapping={"v": 3, "d": doc, "t": 60_000})
    client.pexpire(key, 60_000)

    async def scenario() -> tuple[SessionRecord, SessionRecord, object]:
        store = RedisSessionStore(redis_server.url, key_prefix=key_prefix)
        before = (await store.get(rec.session_id)).record
        await store.update(rec.session_id, append("b"))
        lease = await store.get(rec.session_id)
        await store.close()
        return before, lease.record, codec.materialize(codec.stored_predictions(lease).predictions)

    before, after, predictions = asyncio.run(scenario())
    assert before == replace(rec, version=3)
    assert after.state.stm == (("a",), ("b",)) and predictions == [{"n": 1.5}]
    assert after.version == 4 and not client.hexists(key, "d")
    client.close()


@pytest.mark.parametrize("held_ms", [300, 60_000], ids=["expires", "never-released"])
def test_a_lease_left_by_a_dead_writer_delays_an_update_but_never_blocks_or_loses_it(
    redis_server: RedisServer, key_prefix: str, held_ms: int
) -> None:
    """A writer that died holding a session's lease (never released): the next update waits
    until it expires, or at most ``LEASE_WAIT_S`` and then goes on without one; either way it
    is applied, once."""

    async def scenario() -> tuple[float, SessionRecord, int]:
        store = RedisSessionStore(redis_server.url, key_prefix=key_prefix)
        rec = record()
        await store.create(rec)
        await store.redis.set(store.keys(rec.session_id)[3], "dead-writer", px=held_ms)
        started = time.monotonic()
        await store.update(rec.session_id, append("a"))
        took = time.monotonic() - started
        final = (await store.get(rec.session_id)).record
        waits = store.counters.lease_waits
        await store.close()
        return took, final, waits

    took, final, waits = asyncio.run(scenario())
    assert final.state.stm == (("a",),) and final.version == 1
    assert waits >= 1
    if held_ms < LEASE_WAIT_S * 1000:
        assert held_ms / 1000 * 0.8 <= took < LEASE_WAIT_S
    else:
        assert LEASE_WAIT_S * 0.9 <= took < LEASE_WAIT_S + 2


def test_a_failed_update_releases_its_lease(redis_server: RedisServer, key_prefix: str) -> None:
    def fails(rec: SessionRecord) -> Change[None]:
        raise ValueError("a change that raises")

    async def scenario() -> int:
        store = RedisSessionStore(redis_server.url, key_prefix=key_prefix)
        rec = record()
        await store.create(rec)
        with pytest.raises(ValueError):
            await store.update(rec.session_id, fails)
        held = await store.redis.exists(store.keys(rec.session_id)[3])
        await store.close()
        return int(held)

    assert asyncio.run(scenario()) == 0


def test_the_seams_see_every_commit_and_every_touching_read(
    redis_server: RedisServer, key_prefix: str
) -> None:
    """``commit`` and ``refresh`` wrap production's own steps here, so behaviour is unchanged
    and what they are handed is visible (the bug zoo replaces them)."""
    seen: list[tuple[str, int]] = []

    class RecordingCommit:
        def __init__(self, store: RedisSessionStore) -> None:
            self.inner = CompareAndSet(store)

        async def __call__(self, write: Write) -> int | None:
            assert write.record.version == write.read.record.version + 1
            seen.append(("commit", write.record.version))
            return await self.inner(write)

    class RecordingRefresh:
        def __init__(self, store: RedisSessionStore) -> None:
            assert store.redis is not None

        async def __call__(self, read: Read) -> None:
            assert read.keys[0] == f"{key_prefix}:{{{read.session_id}}}"
            seen.append(("refresh", read.record.version))

    async def scenario() -> None:
        store = RedisSessionStore(
            redis_server.url, key_prefix=key_prefix, commit=RecordingCommit,
            refresh=RecordingRefresh,
        )  # fmt: skip
        rec = record()
        await store.create(rec)
        await store.get(rec.session_id, touch=False)  # no refresh without a touch
        outcome = await store.update(rec.session_id, append("a"))
        assert outcome.lease.expires_at > time.time() + 55
        await store.get(rec.session_id)
        await store.close()

    asyncio.run(scenario())
    assert seen == [("refresh", 0), ("commit", 1), ("refresh", 1)]


def test_writers_of_one_process_queue_instead_of_colliding(
    redis_server: RedisServer, key_prefix: str
) -> None:
    async def scenario() -> tuple[int, SessionRecord]:
        store = RedisSessionStore(redis_server.url, key_prefix=key_prefix)
        rec = record()
        await store.create(rec)
        await asyncio.gather(*(store.update(rec.session_id, append(f"s{i}")) for i in range(50)))
        final = (await store.get(rec.session_id)).record
        await store.close()
        return store.counters.conflicts, final

    conflicts, final = asyncio.run(scenario())
    assert len(final.state.stm) == 50 and final.version == 50
    assert conflicts == 0


def test_a_writer_stuck_behind_a_stalled_one_goes_on_unqueued(key_prefix: str) -> None:
    """The queue is bounded: with Redis paused, each queued writer fails on its own timeout
    (503) within WRITER_QUEUE_S + the socket timeout, not one after another."""
    from kato.sessions.redis import WRITER_QUEUE_S

    with RedisServer() as server:

        async def scenario() -> float:
            store = RedisSessionStore(server.url, key_prefix=key_prefix, socket_timeout=0.5)
            rec = record()
            await store.create(rec)
            server.pause()
            began = time.perf_counter()
            try:
                outcomes = await asyncio.gather(
                    *(store.update(rec.session_id, append(f"s{i}")) for i in range(8)),
                    return_exceptions=True,
                )
            finally:
                server.resume()
            elapsed = time.perf_counter() - began
            await store.close()
            assert all(isinstance(o, StoreUnavailableError) for o in outcomes), outcomes
            return elapsed

        elapsed = asyncio.run(scenario())
    assert elapsed < WRITER_QUEUE_S + 3 * 0.5  # one after another would take 8 × 0.5 s


def test_a_delete_during_an_update_is_never_undone(
    redis_server: RedisServer, key_prefix: str
) -> None:
    sync = redis.Redis.from_url(redis_server.url)

    async def scenario() -> None:
        store = RedisSessionStore(redis_server.url, key_prefix=key_prefix)
        rec = record()
        await store.create(rec)

        def change_while_deleted(r: SessionRecord) -> Change[str]:
            # the session is deleted after this update read it and before it writes
            sync.delete(f"{key_prefix}:{{{rec.session_id}}}")
            return append("late")(r)

        with pytest.raises(SessionNotFoundError):
            await store.update(rec.session_id, change_while_deleted)
        assert await store.exists(rec.session_id) is False
        assert sync.exists(f"{key_prefix}:{{{rec.session_id}}}") == 0
        await store.close()

    asyncio.run(scenario())


def test_an_unreachable_redis_is_503_never_404_and_service_recovers(key_prefix: str) -> None:
    with RedisServer() as server:

        async def scenario() -> None:
            store = RedisSessionStore(server.url, key_prefix=key_prefix, socket_timeout=0.5)
            rec = record()
            await store.create(rec)
            server.kill()
            for attempt in (
                store.get(rec.session_id),
                store.update(rec.session_id, append("x")),
                store.create(record()),
                store.count(),
                store.delete(rec.session_id),
                store.exists(rec.session_id),
            ):
                with pytest.raises(StoreUnavailableError) as info:
                    await attempt
                assert not isinstance(info.value, SessionNotFoundError)
                assert info.value.__cause__ is not None
            server.start()  # same port, new empty server (persistence off)
            fresh = record()
            await store.create(fresh)
            await store.update(fresh.session_id, append("back"))
            with pytest.raises(SessionNotFoundError):  # lost with the restart: honest 404 now
                await store.get(rec.session_id)
            await store.close()

        asyncio.run(scenario())


def test_a_paused_redis_times_out_as_unavailable(key_prefix: str) -> None:
    with RedisServer() as server:

        async def scenario() -> None:
            store = RedisSessionStore(server.url, key_prefix=key_prefix, socket_timeout=0.3)
            rec = record()
            await store.create(rec)
            server.pause()
            try:
                with pytest.raises(StoreUnavailableError):
                    await store.get(rec.session_id)
            finally:
                server.resume()
            await store.close()

        asyncio.run(scenario())


WRITER = textwrap.dedent(
    """
    import asyncio, sys, time
    from dataclasses import replace
    from kato.sessions import Change
    from kato.sessions.redis import RedisSessionStore

    url, prefix, session_id, tag, count, start_at, leases = sys.argv[1:8]

    def append(symbol):
        def change(rec):
            state = replace(rec.state, stm=(*rec.state.stm, (symbol,)))
            return Change(replace(rec, state=state), None)
        return change

    async def main():
        store = RedisSessionStore(url, key_prefix=prefix, leases=leases == "1")
        await store.get(session_id)  # connected before the start
        await asyncio.sleep(max(0.0, float(start_at) - time.time()))  # all processes at once
        await asyncio.gather(*(store.update(session_id, append(f"{tag}-{i}"))
                               for i in range(int(count))))
        print(store.counters.conflicts, store.counters.lease_waits)
        await store.close()

    asyncio.run(main())
    """
)


@pytest.mark.parametrize("leases", [False, True], ids=["cas-only", "leases"])
def test_writers_in_several_processes_lose_nothing(
    redis_server: RedisServer, key_prefix: str, leases: bool
) -> None:
    """Without leases the compare-and-set alone keeps every write (they collide); with them,
    writers of other processes wait for each other instead, and still lose nothing."""
    async def create() -> SessionRecord:
        store = RedisSessionStore(redis_server.url, key_prefix=key_prefix)
        rec = record()
        await store.create(rec)
        await store.close()
        return rec

    rec = asyncio.run(create())
    # Writers of one process queue behind each other (RedisSessionStore._queued): collisions
    # come from the other processes, so all three start writing at the same moment.
    start_at = str(time.time() + 2.0)
    writers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WRITER,
                redis_server.url,
                key_prefix,
                rec.session_id,
                f"p{n}",
                "100",
                start_at,
                "1" if leases else "0",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(3)
    ]
    counts = [w.communicate(timeout=120)[0].split() for w in writers]
    assert all(w.returncode == 0 for w in writers)
    conflicts = sum(int(c) for c, _ in counts)
    waits = sum(int(w) for _, w in counts)

    async def final() -> SessionRecord:
        store = RedisSessionStore(redis_server.url, key_prefix=key_prefix)
        lease = await store.get(rec.session_id)
        await store.close()
        return lease.record

    state = asyncio.run(final())
    expected = {f"p{n}-{i}" for n in range(3) for i in range(100)}
    assert {event[0] for event in state.state.stm} == expected
    assert len(state.state.stm) == 300 and state.version == 300
    if leases:
        assert waits > 0, "three processes writing one session should have waited for leases"
        assert conflicts < 30, "writers holding leases should rarely collide"
    else:
        assert conflicts > 0, "three processes writing one session should have collided"
        assert waits == 0


CREATOR = textwrap.dedent(
    """
    import asyncio, sys, time
    from kato.exceptions import SessionLimitError
    from kato.sessions import SessionRecord, new_session_id
    from kato.sessions.redis import RedisSessionStore

    url, prefix, count, start_at = sys.argv[1:5]

    async def create(store):
        rec = SessionRecord(new_session_id(int(time.time() * 1000)), "crowd", time.time(), 60)
        try:
            await store.create(rec)
            return 1
        except SessionLimitError:
            return 0

    async def main():
        store = RedisSessionStore(url, key_prefix=prefix, max_sessions_per_node=10)
        await store.count()  # connected before the start
        await asyncio.sleep(max(0.0, float(start_at) - time.time()))  # all processes at once
        print(sum(await asyncio.gather(*(create(store) for _ in range(int(count))))))
        await store.close()

    asyncio.run(main())
    """
)


def test_a_node_limit_is_exact_across_processes(redis_server: RedisServer, key_prefix: str) -> None:
    start_at = str(time.time() + 2.0)
    creators = [
        subprocess.Popen(
            [sys.executable, "-c", CREATOR, redis_server.url, key_prefix, "8", start_at],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    created = sum(int(c.communicate(timeout=120)[0]) for c in creators)
    assert all(c.returncode == 0 for c in creators)
    assert created == 10

    async def count() -> int:
        store = RedisSessionStore(redis_server.url, key_prefix=key_prefix)
        live = await store.count()
        await store.close()
        return live

    assert asyncio.run(count()) == 10  # the refused creates left nothing behind


def test_with_limits_an_update_still_costs_two_round_trips(
    redis_server: RedisServer, key_prefix: str
) -> None:
    async def scenario() -> tuple[int, int]:
        store = RedisSessionStore(
            redis_server.url, key_prefix=key_prefix, max_sessions=100, max_sessions_per_node=10
        )
        rec = record()
        before = store.counters.round_trips
        await store.create(rec)
        creates = store.counters.round_trips - before
        before = store.counters.round_trips
        for i in range(10):
            await store.update(rec.session_id, append(f"s{i}"))
        updates = store.counters.round_trips - before
        await store.close()
        return creates, updates

    assert asyncio.run(scenario()) == (1, 20)
