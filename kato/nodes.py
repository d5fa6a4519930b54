"""Where each node's long-term memory lives: one store per ``node_id``."""

from __future__ import annotations

from typing import Protocol

from kato.engine import LTMStore, MemoryLTM

__all__ = ["MemoryNodes", "NodeStores", "open_nodes"]


class NodeStores(Protocol):
    """Gives the long-term memory store of a node; nodes never see each other's patterns."""

    def ltm(self, node_id: str) -> LTMStore: ...

    def ping(self) -> None:
        """Return if the stores answer; raise ``StoreUnavailableError`` if they do not."""
        ...

    def close(self) -> None:
        """Release this process's connections (the service's shutdown calls it)."""
        ...


class MemoryNodes:
    """Every node's LTM in this process's memory (for one process: notebooks, tests)."""

    def __init__(self) -> None:
        self._nodes: dict[str, MemoryLTM] = {}

    def ltm(self, node_id: str) -> LTMStore:
        store = self._nodes.get(node_id)
        if store is None:
            store = self._nodes[node_id] = MemoryLTM()
        return store

    def ping(self) -> None:
        """Memory always answers."""

    def close(self) -> None:
        """Nothing to release: the patterns live as long as this object."""


def open_nodes(location: str) -> NodeStores:
    """The node stores a location names; nothing is opened until a node is used.

    - ``"memory"``: :class:`MemoryNodes` (one process only);
    - ``"sqlite:PATH"`` or ``"sqlite://PATH"`` (so ``"sqlite:///abs/ltm.sqlite3"`` is an
      absolute path): :class:`kato.ltm.sqlite.SQLiteNodes`, the embedded store that several
      processes share;
    - ``"mongodb://…"`` or ``"mongodb+srv://…"``: :class:`kato.ltm.mongo.MongoNodes`.

    Raises ``ValueError`` for anything else. pymongo is imported only for a MongoDB location.
    """
    if location in ("memory", "memory://"):
        return MemoryNodes()
    if location.startswith("sqlite:"):
        from kato.ltm.sqlite import SQLiteNodes

        path = location.removeprefix("sqlite:")
        path = path.removeprefix("//")
        if not path:
            raise ValueError(f"no file in LTM location {location!r}")
        return SQLiteNodes(path)
    if location.startswith(("mongodb://", "mongodb+srv://")):
        from kato.ltm.mongo import MongoNodes

        return MongoNodes(location)
    raise ValueError(
        f"unknown LTM location {location!r}: use 'memory', 'sqlite:PATH' or 'mongodb://…'"
    )
