"""A loopback TCP proxy that adds latency on demand: the ``redis-latency`` fault's instrument.

    with LatencyProxy("127.0.0.1", redis.port) as proxy:   # kato serve talks to proxy.url
        proxy.set_delay(latency_s=0.05, jitter_s=0.01)     # every request now waits 50 ± 10 ms
        proxy.set_delay(0, 0)                              # back to a plain relay

It runs its own asyncio loop in a daemon thread, listens on a free loopback port and relays every
connection to ``upstream``. While a delay is set, each chunk sent *to the upstream* is held for
``latency ± jitter`` (never below zero) before it is forwarded, so each request/response round
trip through the proxy gains that much; chunks keep their order (a chunk is never released
before the one read ahead of it). Answers flow back at once. A delay change applies to chunks
read from then on.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import threading
import time
from typing import Self

__all__ = ["LatencyProxy"]

_CHUNK = 65536


class LatencyProxy:
    """Relay loopback TCP connections to ``upstream_host:upstream_port``, optionally delayed.

    **Parameters:**

    * **upstream_host**, **upstream_port** - where to relay to (a process the workbench started).
    * **seed** - seeds the jitter, so two runs of one spec draw the same delays.
    """

    def __init__(self, upstream_host: str, upstream_port: int, *, seed: int = 0) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self._latency_s = 0.0
        self._jitter_s = 0.0
        self._random = random.Random(seed)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.connections = 0

    @property
    def url(self) -> str:
        """A ``redis://`` URL through the proxy (database 0)."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def delay(self) -> tuple[float, float]:
        """The current ``(latency_s, jitter_s)``."""
        return self._latency_s, self._jitter_s

    def set_delay(self, latency_s: float, jitter_s: float = 0.0) -> None:
        """Hold each chunk to the upstream for ``latency_s ± jitter_s`` from now on."""
        if latency_s < 0 or jitter_s < 0:
            raise ValueError("latency and jitter must be >= 0")
        self._latency_s, self._jitter_s = latency_s, jitter_s

    def _draw(self) -> float:
        if self._latency_s == 0 and self._jitter_s == 0:
            return 0.0
        return max(0.0, self._latency_s + self._random.uniform(-self._jitter_s, self._jitter_s))

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, *, timeout: float = 10.0) -> Self:
        """Start listening (in a thread of its own); return once connections are accepted."""
        if self._thread is not None:
            return self
        ready = threading.Event()
        failure: list[BaseException] = []

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                listener = socket.socket()
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                listener.bind(("127.0.0.1", 0))
                self.port = int(listener.getsockname()[1])
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._relay, sock=listener)
                )
            except BaseException as exc:  # handed to start()'s caller
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self._shutdown())
                loop.close()

        self._thread = threading.Thread(target=main, name="kato-lab-proxy", daemon=True)
        self._thread.start()
        if not ready.wait(timeout) or failure:
            self._thread = None
            raise RuntimeError(f"the latency proxy did not start: {failure[:1]}")
        return self

    def stop(self) -> None:
        """Close the listener and every relayed connection; join the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop already ended
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._thread = self._loop = None

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- relaying ----------------------------------------------------------------------------
    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        try:
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            except OSError:
                return  # the upstream is down: the client sees its connection close
            _nodelay(writer)
            _nodelay(up_writer)
            try:
                await asyncio.gather(
                    self._pipe(reader, up_writer, delayed=True),
                    self._pipe(up_reader, writer, delayed=False),
                )
            finally:
                up_writer.close()
        finally:
            writer.close()
            self._tasks.discard(task)

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, delayed: bool
    ) -> None:
        """Copy ``reader`` to ``writer``; hold each chunk for the current delay if ``delayed``.

        Reading goes on while earlier chunks wait, so a delay adds latency without limiting
        throughput; a queue keeps the chunks in order.
        """
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def release() -> None:
            while True:
                due, data = await queue.get()
                if not data:  # the other side closed: so does this one (in ``finally``)
                    return
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()

        sender = asyncio.create_task(release())
        last_due = 0.0
        try:
            while True:
                try:
                    data = await reader.read(_CHUNK)
                except OSError:
                    data = b""
                due = time.monotonic() + (self._draw() if delayed else 0.0)
                last_due = max(last_due, due)  # never overtake an earlier chunk
                queue.put_nowait((last_due, data))
                if not data:
                    break
            await sender
        except (OSError, ConnectionError):
            pass
        finally:
            if not sender.done():
                sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError, ConnectionError):
                await sender
            writer.close()


def _nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
