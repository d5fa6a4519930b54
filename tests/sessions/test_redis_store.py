"""What only the Redis store can show: outages, in-flight deletes, cost, several processes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time
from dataclasses import replace

import pytest
import redis

from kato.exceptions import SessionNotFoundError, StoreUnavailableError
from kato.sessions import Change, SessionRecord, new_session_id
from kato.sessions.redis import RedisSessionStore
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
        assert await store.exists(rec.session_id) == (False, False)
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
    import asyncio, sys
    from dataclasses import replace
    from kato.sessions import Change
    from kato.sessions.redis import RedisSessionStore

    url, prefix, session_id, tag, count = sys.argv[1:6]

    def append(symbol):
        def change(rec):
            state = replace(rec.state, stm=(*rec.state.stm, (symbol,)))
            return Change(replace(rec, state=state), None)
        return change

    async def main():
        store = RedisSessionStore(url, key_prefix=prefix)
        await asyncio.gather(*(store.update(session_id, append(f"{tag}-{i}"))
                               for i in range(int(count))))
        print(store.counters.conflicts)
        await store.close()

    asyncio.run(main())
    """
)


def test_writers_in_several_processes_lose_nothing(
    redis_server: RedisServer, key_prefix: str
) -> None:
    async def create() -> SessionRecord:
        store = RedisSessionStore(redis_server.url, key_prefix=key_prefix)
        rec = record()
        await store.create(rec)
        await store.close()
        return rec

    rec = asyncio.run(create())
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
                "40",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(3)
    ]
    conflicts = sum(int(w.communicate(timeout=120)[0]) for w in writers)
    assert all(w.returncode == 0 for w in writers)

    async def final() -> SessionRecord:
        store = RedisSessionStore(redis_server.url, key_prefix=key_prefix)
        lease = await store.get(rec.session_id)
        await store.close()
        return lease.record

    state = asyncio.run(final())
    expected = {f"p{n}-{i}" for n in range(3) for i in range(40)}
    assert {event[0] for event in state.state.stm} == expected
    assert len(state.state.stm) == 120 and state.version == 120
    assert conflicts > 0, "three processes writing one session should have collided"
