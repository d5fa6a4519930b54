"""One connection to one Redis shared by every coroutine of a process: the session store's scripts.

redis-py gives each command a connection of its pool for the command's whole round trip: under
64 concurrent requests that is 64 connections, a write and a read system call per command, and
the pool's, the retry's and the timeout's bookkeeping around each (a third of a bare observe's
event-loop time, #17). Redis answers the commands of one connection in the order it received
them, so one connection can carry them all: :class:`SharedConnection` writes each command as it
is called (the commands called in one turn of the event loop go out in one write), and hands
each reply, parsed by hiredis, to the oldest command still waiting — concurrent requests share
system calls both ways and pay a few microseconds of bookkeeping each.

Errors are redis-py's, so :func:`kato.stores.redis_errors.redis_errors` translates them as for
any other command: a connection that cannot be made, or that is lost, fails every command
waiting on it with ``ConnectionError`` (the next command connects anew); a command without its
reply within ``timeout`` seconds fails with ``TimeoutError`` and, as redis-py drops a connection
that timed out, takes the connection down with it; an error reply is a ``ResponseError``
(``NoScriptError`` for a script the server has not cached, which :meth:`SharedConnection.evalsha`
answers by sending the script whole). A command that failed may still have been applied, as
with redis-py: the store's compare-and-set and idempotency keys make a retry safe, not the
client.

Blocking commands (``BLPOP``) would stall every command behind them: they stay on redis-py.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from collections.abc import Sequence
from typing import Any, cast

import hiredis
from redis import exceptions as redis_exceptions
from redis.connection import parse_url

__all__ = ["Script", "SharedConnection"]

Arg = str | bytes | int | float


class _Connection(asyncio.Protocol):
    """One connection: the commands written in this turn of the event loop, and the commands
    waiting for their replies, oldest first."""

    def __init__(self) -> None:
        self.waiting: deque[asyncio.Future[Any]] = deque()
        self.pending: list[bytes] = []
        self.transport: asyncio.Transport | None = None
        self.lost: redis_exceptions.ConnectionError | None = None
        self._reader = hiredis.Reader(
            protocolError=redis_exceptions.InvalidResponse,
            replyError=redis_exceptions.ResponseError,
        )

    def send(self, command: bytes) -> asyncio.Future[Any]:
        """The future of ``command``'s reply; the command goes out at the end of this turn."""
        if self.lost is not None:
            raise self.lost
        assert self.transport is not None
        future = asyncio.get_running_loop().create_future()
        self.waiting.append(future)
        if not self.pending:
            asyncio.get_running_loop().call_soon(self._flush)
        self.pending.append(command)
        return future

    def _flush(self) -> None:
        pending, self.pending = self.pending, []
        if self.lost is None and self.transport is not None:
            self.transport.write(b"".join(pending))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        waiting = self.waiting
        while (reply := reader.gets()) is not False:
            if not waiting:  # a reply nobody asked for: the stream is out of step
                self.abort("a reply came with no command waiting for it")
                return
            future = waiting.popleft()
            if future.done():  # cancelled: its reply is dropped
                continue
            if isinstance(reply, redis_exceptions.ResponseError):
                future.set_exception(_response_error(reply))
            else:
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(f"connection to Redis lost: {exc}" if exc else "connection to Redis closed")

    def abort(self, why: str) -> None:
        """Close the connection now; every command waiting on it fails with ``why``."""
        self._fail(why)
        if self.transport is not None:
            self.transport.abort()

    def _fail(self, why: str) -> None:
        self.lost = self.lost or redis_exceptions.ConnectionError(why)
        self.pending = []
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(self.lost)


def _response_error(reply: redis_exceptions.ResponseError) -> redis_exceptions.RedisError:
    """The redis-py class of an error reply, for the errors callers tell apart."""
    text = str(reply)
    for prefix, kind in _ERRORS:
        if text.startswith(prefix):
            return kind(text)
    return reply


_ERRORS: tuple[tuple[str, type[redis_exceptions.RedisError]], ...] = (
    ("NOSCRIPT", redis_exceptions.NoScriptError),
    ("LOADING", redis_exceptions.BusyLoadingError),  # a ConnectionError too: unavailable
    ("READONLY", redis_exceptions.ReadOnlyError),
    ("MASTERDOWN", redis_exceptions.MasterDownError),
)


class SharedConnection:
    """The module docstring's connection to the Redis at ``url`` (``redis://`` or ``unix://``,
    with the database, user and password it names), made when first used, in the running event
    loop (a connection is never used from another loop: a call from a new loop connects anew)."""

    def __init__(self, url: str, *, timeout: float, connect_timeout: float) -> None:
        self._options: dict[str, Any] = parse_url(url)  # type: ignore[no-untyped-call]
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._connection: _Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = asyncio.Lock()

    async def execute(self, *args: Arg) -> Any:
        """One command's reply (see the module docstring for its errors)."""
        return await self._reply(await self._connected(), _pack(args))

    async def evalsha(self, script: Script, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        """Run ``script`` by its SHA, and whole (``EVAL``, which also caches it) when the server
        does not have it cached (a restarted or flushed server)."""
        try:
            return await self.execute("EVALSHA", script.sha, len(keys), *keys, *args)
        except redis_exceptions.NoScriptError:
            return await self.execute("EVAL", script.text, len(keys), *keys, *args)

    async def _reply(self, connection: _Connection, command: bytes) -> Any:
        future = connection.send(command)
        expiry = asyncio.get_running_loop().call_later(
            self._timeout, _expire, connection, future, self._timeout
        )
        try:
            return await future
        finally:
            expiry.cancel()

    async def _connected(self) -> _Connection:
        loop = asyncio.get_running_loop()
        connection = self._connection
        if connection is not None and connection.lost is None and self._loop is loop:
            return connection
        if self._loop is not loop:  # a new event loop: nothing of the old one is usable
            self._loop, self._connection, self._lock = loop, None, asyncio.Lock()
        async with self._lock:
            connection = self._connection
            if connection is None or connection.lost is not None:
                connection = self._connection = await self._connect(loop)
            return connection

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> _Connection:
        options = self._options
        try:
            async with asyncio.timeout(self._connect_timeout):
                if "path" in options:
                    _, connection = await loop.create_unix_connection(_Connection, options["path"])
                else:
                    _, connection = await loop.create_connection(
                        _Connection, options.get("host", "localhost"), options.get("port", 6379)
                    )
                for command in _handshake(options):
                    await self._reply(connection, _pack(command))
        except (OSError, TimeoutError) as exc:
            kind = "timed out" if isinstance(exc, TimeoutError) else f"failed: {exc}"
            raise redis_exceptions.ConnectionError(f"connecting to Redis {kind}") from exc
        return connection

    async def close(self) -> None:
        """Close the connection (commands still waiting fail with ``ConnectionError``)."""
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.abort("connection to Redis closed by the store")


class Script:
    """A Lua script's text and SHA1 (what ``EVALSHA`` names it by)."""

    __slots__ = ("sha", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.sha = hashlib.sha1(text.encode()).hexdigest()


def _handshake(options: dict[str, Any]) -> list[tuple[Arg, ...]]:
    """The commands a new connection sends first: ``AUTH`` and ``SELECT`` as the URL asks."""
    commands: list[tuple[Arg, ...]] = []
    if options.get("password") is not None:
        user = options.get("username")
        password = options["password"]
        commands.append(("AUTH", user, password) if user else ("AUTH", password))
    if options.get("db"):
        commands.append(("SELECT", int(options["db"])))
    return commands


def _pack(args: tuple[Arg, ...]) -> bytes:
    """A command in Redis's protocol (hiredis's stubs type it for one argument only)."""
    command: bytes = hiredis.pack_command(cast(Any, args))
    return command


def _expire(connection: _Connection, future: asyncio.Future[Any], seconds: float) -> None:
    """A command without its reply in ``seconds``: it fails, and so does the connection, as
    redis-py drops a connection that timed out (a server that stopped answering one command
    answers none; the next command connects anew)."""
    if not future.done():
        future.set_exception(redis_exceptions.TimeoutError(f"no reply from Redis in {seconds} s"))
        connection.abort(f"a command had no reply from Redis in {seconds} s")
