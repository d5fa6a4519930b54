"""Where each node's long-term memory lives: one store per ``node_id``."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Collection, Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Protocol

from kato.engine import (
    Effect,
    LTMStore,
    LTMView,
    MemoryLTM,
    Pattern,
    SymbolStats,
    Totals,
    WouldWait,
)

__all__ = ["MemoryNodes", "NodeStores", "open_nodes"]


class NodeStores(Protocol):
    """Gives the long-term memory store of a node; nodes never see each other's patterns.

    Every call may block (a locked file, a slow server): :class:`~kato.core.Kato` makes them
    from worker threads, never on the event loop; except ``snapshot(at_once=True)``, which
    never waits (it refuses with :class:`~kato.engine.WouldWait` instead, and the step goes to
    a worker thread).
    """

    def ltm(self, node_id: str) -> LTMStore: ...

    def ping(self) -> None:
        """Return if the stores answer; raise ``StoreUnavailableError`` if they do not."""
        ...

    def check_writable(self) -> None:
        """Return if the stores take writes now; raise ``StoreUnavailableError`` if not."""
        ...

    def close(self) -> None:
        """Release this process's connections (the service's shutdown calls it)."""
        ...


class _LockedLTM:
    """A :class:`MemoryLTM` that threads share: one lock around each read, snapshot and apply
    (the service computes steps and applies effects in worker threads)."""

    def __init__(self) -> None:
        self._ltm = MemoryLTM()
        self._lock = threading.RLock()

    @contextlib.contextmanager
    def _snapshot(self, at_once: bool) -> Iterator[LTMView]:
        if not self._lock.acquire(blocking=not at_once):
            raise WouldWait("another thread holds the node")
        try:
            with self._ltm.snapshot(at_once=at_once) as view:
                yield view
        finally:
            self._lock.release()

    def snapshot(self, *, at_once: bool = False) -> AbstractContextManager[LTMView]:
        return self._snapshot(at_once)

    def candidates(self, symbols: Collection[str]) -> list[Pattern]:
        with self._lock:
            return self._ltm.candidates(symbols)

    def pattern(self, name: str) -> Pattern | None:
        with self._lock:
            return self._ltm.pattern(name)

    def symbol_stats(self, symbols: Collection[str]) -> dict[str, SymbolStats]:
        with self._lock:
            return self._ltm.symbol_stats(symbols)

    def totals(self) -> Totals:
        with self._lock:
            return self._ltm.totals()

    def apply(self, effects: Iterable[Effect], *, effect_id: str | None = None) -> bool:
        with self._lock:
            return self._ltm.apply(effects, effect_id=effect_id)

    def applied(self, effect_ids: Collection[str]) -> set[str]:
        with self._lock:
            return self._ltm.applied(effect_ids)

    def patterns(self, *, offset: int = 0, limit: int | None = None) -> list[Pattern]:
        with self._lock:
            return self._ltm.patterns(offset=offset, limit=limit)

    def pattern_count(self) -> int:
        with self._lock:
            return self._ltm.pattern_count()

    def all_symbol_stats(self) -> list[SymbolStats]:
        with self._lock:
            return self._ltm.all_symbol_stats()

    def vector(self, name: str) -> tuple[float, ...] | None:
        with self._lock:
            return self._ltm.vector(name)


class MemoryNodes:
    """Every node's LTM in this process's memory (for one process: notebooks, tests)."""

    def __init__(self) -> None:
        self._nodes: dict[str, _LockedLTM] = {}
        self._lock = threading.Lock()

    def ltm(self, node_id: str) -> LTMStore:
        with self._lock:
            store = self._nodes.get(node_id)
            if store is None:
                store = self._nodes[node_id] = _LockedLTM()
            return store

    def ping(self) -> None:
        """Memory always answers."""

    def check_writable(self) -> None:
        """Memory always takes writes."""

    def close(self) -> None:
        """Nothing to release: the patterns live as long as this object."""


def open_nodes(location: str, *, timeout: float | None = None) -> NodeStores:
    """The node stores a location names; nothing is opened until a node is used.

    - ``"memory"``: :class:`MemoryNodes` (one process only);
    - ``"sqlite:PATH"`` or ``"sqlite://PATH"`` (so ``"sqlite:///abs/ltm.sqlite3"`` is an
      absolute path): :class:`kato.ltm.sqlite.SQLiteNodes`, the embedded store that several
      processes share;
    - ``"mongodb://…"`` or ``"mongodb+srv://…"``: :class:`kato.ltm.mongo.MongoNodes`.

    ``timeout``: seconds an LTM operation waits (for SQLite's write lock, for a MongoDB server)
    before the store is reported unavailable (``None``: the store's default). Raises
    ``ValueError`` for an unknown location. pymongo is imported only for a MongoDB location.
    """
    if location in ("memory", "memory://"):
        return MemoryNodes()
    if location.startswith("sqlite:"):
        from kato.ltm.sqlite import SQLiteNodes

        path = location.removeprefix("sqlite:")
        path = path.removeprefix("//")
        if not path:
            raise ValueError(f"no file in LTM location {location!r}")
        return SQLiteNodes(path) if timeout is None else SQLiteNodes(path, timeout=timeout)
    if location.startswith(("mongodb://", "mongodb+srv://")):
        from kato.ltm.mongo import MongoNodes

        if timeout is None:
            return MongoNodes(location)
        return MongoNodes(location, timeout_ms=int(timeout * 1000))
    raise ValueError(
        f"unknown LTM location {location!r}: use 'memory', 'sqlite:PATH' or 'mongodb://…'"
    )
