"""The in-process backend: a whole KATO deployment inside this Python process.

It runs the same :class:`~kato.core.Kato` as the HTTP service, over the in-memory session store
and in-memory node stores, on a private event-loop thread. The thread makes the synchronous
client usable anywhere, including inside Jupyter, whose own event loop is already running; it
also serialises every operation of the process, which the in-memory store relies on.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from kato.core import Kato
from kato.nodes import MemoryNodes
from kato.sessions import MemorySessionStore
from kato.settings import Settings

__all__ = ["LocalBackend", "default_backend"]

T = TypeVar("T")


class LocalBackend:
    """Sessions and long-term memory in this process. Clients that share one backend share
    their nodes' learned patterns, as clients of one server do."""

    def __init__(self, settings: Settings | None = None) -> None:
        settings = settings or Settings()
        self.kato = Kato(
            settings, MemorySessionStore(auto_extend=settings.auto_extend), MemoryNodes()
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._start_lock = threading.Lock()

    def run(self, operation: Coroutine[Any, Any, T]) -> T:
        """Run one core operation on the backend's loop thread and return its result."""
        return asyncio.run_coroutine_threadsafe(operation, self._running_loop()).result()

    async def run_async(self, operation: Coroutine[Any, Any, T]) -> T:
        """Await one core operation run on the backend's loop thread (from any event loop)."""
        future = asyncio.run_coroutine_threadsafe(operation, self._running_loop())
        return await asyncio.wrap_future(future)

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._start_lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="kato-local", daemon=True)
                thread.start()
                self._loop = loop
            return self._loop


_default: LocalBackend | None = None
_default_lock = threading.Lock()


def default_backend() -> LocalBackend:
    """The process's shared in-process backend, created on first use (not at import)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = LocalBackend()
        return _default
