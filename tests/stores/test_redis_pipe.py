"""The session store's shared Redis connection: each command gets its own reply under
concurrency, and faults (a paused, killed or flushed server; a cancelled caller) fail the
commands they touch with redis-py's errors and leave the next command working."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
import redis
from redis import exceptions as redis_exceptions

from kato.stores.redis_pipe import Script, SharedConnection
from kato.stores.redis_server import RedisServer

ECHO = Script("return {KEYS[1], ARGV[1]}")


@pytest.fixture
def server() -> Iterator[RedisServer]:
    """A server of the test's own: these tests pause, kill and flush it."""
    with RedisServer() as own:
        yield own


def shared(url: str, timeout: float = 2.0) -> SharedConnection:
    return SharedConnection(url, timeout=timeout, connect_timeout=timeout)


@pytest.mark.parametrize("kind", ["tcp", "unix"])
def test_concurrent_commands_each_get_their_own_reply(server: RedisServer, kind: str) -> None:
    url = server.url if kind == "tcp" else server.local_url

    async def main() -> None:
        connection = shared(url)
        await connection.execute("SET", "base", 0)
        replies = await asyncio.gather(
            *(connection.evalsha(ECHO, [f"k{i}"], [i]) for i in range(500)),
            *(connection.execute("INCR", "base") for _ in range(500)),
        )
        assert replies[:500] == [[f"k{i}".encode(), str(i).encode()] for i in range(500)]
        assert sorted(replies[500:]) == list(range(1, 501))  # every INCR applied once
        await connection.close()

    asyncio.run(main())
    assert redis.Redis.from_url(server.url).get("base") == b"500"


def test_the_url_names_the_database(server: RedisServer) -> None:
    async def main() -> None:
        connection = shared(server.url.replace("/0", "/3"))
        await connection.execute("SET", "where", "three")
        await connection.close()

    asyncio.run(main())
    assert redis.Redis.from_url(server.url.replace("/0", "/3")).get("where") == b"three"
    assert redis.Redis.from_url(server.url).get("where") is None


def test_an_error_reply_fails_its_command_only(server: RedisServer) -> None:
    async def main() -> None:
        connection = shared(server.url)
        await connection.execute("SET", "text", "a")
        wrong, right = await asyncio.gather(
            connection.execute("INCR", "text"),
            connection.execute("GET", "text"),
            return_exceptions=True,
        )
        assert isinstance(wrong, redis_exceptions.ResponseError)
        assert right == b"a"
        await connection.close()

    asyncio.run(main())


def test_a_script_the_server_forgot_is_sent_whole(server: RedisServer) -> None:
    async def main() -> None:
        connection = shared(server.url)
        assert await connection.evalsha(ECHO, ["k"], ["v"]) == [b"k", b"v"]
        await connection.execute("SCRIPT", "FLUSH")
        assert await connection.evalsha(ECHO, ["k"], ["w"]) == [b"k", b"w"]
        await connection.close()

    asyncio.run(main())


def test_a_paused_server_times_commands_out_and_is_used_again_after(server: RedisServer) -> None:
    async def main() -> None:
        connection = shared(server.url, timeout=0.3)
        await connection.execute("PING")
        server.pause()
        try:
            started = time.monotonic()
            results = await asyncio.gather(
                *(connection.execute("INCR", "n") for _ in range(5)), return_exceptions=True
            )
            waited = time.monotonic() - started
        finally:
            server.resume()
        # the first to expire fails with TimeoutError and takes the connection down with it
        assert all(
            isinstance(r, redis_exceptions.ConnectionError | redis_exceptions.TimeoutError)
            for r in results
        ), results
        assert any(isinstance(r, redis_exceptions.TimeoutError) for r in results)
        assert waited < 2.0
        assert await connection.execute("PING") == b"PONG"  # a new connection
        await connection.close()

    asyncio.run(main())


def test_a_killed_server_fails_the_waiting_commands_and_a_restarted_one_answers(
    server: RedisServer,
) -> None:
    async def main() -> None:
        connection = shared(server.url, timeout=5.0)
        await connection.execute("PING")
        slow = asyncio.ensure_future(connection.execute("DEBUG", "SLEEP", "2"))
        await asyncio.sleep(0.2)
        server.kill()
        with pytest.raises(redis_exceptions.ConnectionError):
            await slow
        with pytest.raises(redis_exceptions.ConnectionError):  # nothing listens: refused
            await connection.execute("PING")
        server.start()
        assert await connection.execute("PING") == b"PONG"
        await connection.close()

    asyncio.run(main())


def test_a_cancelled_command_leaves_the_replies_of_the_others_in_step(
    server: RedisServer,
) -> None:
    async def main() -> None:
        connection = shared(server.url)
        slow = asyncio.ensure_future(connection.execute("DEBUG", "SLEEP", "0.3"))
        after = asyncio.ensure_future(connection.execute("ECHO", "after"))
        await asyncio.sleep(0.05)
        slow.cancel()
        assert await after == b"after"
        assert await connection.execute("ECHO", "next") == b"next"
        await connection.close()

    asyncio.run(main())


def test_a_closed_connection_is_made_again_in_the_next_event_loop(server: RedisServer) -> None:
    connection = shared(server.url)

    async def once(run: int) -> bytes:
        try:
            return bytes(await connection.execute("ECHO", str(run)))
        finally:
            await connection.close()

    for run in range(3):
        assert asyncio.run(once(run)) == str(run).encode()


def test_nothing_listening_is_a_connection_error() -> None:
    with RedisServer() as gone:
        url = gone.url
    with pytest.raises(redis_exceptions.ConnectionError, match="connecting to Redis"):
        asyncio.run(shared(url, timeout=0.5).execute("PING"))
