"""Where each node's long-term memory lives: one store per ``node_id``."""

from __future__ import annotations

from typing import Protocol

from kato.engine import LTMStore, MemoryLTM

__all__ = ["MemoryNodes", "NodeStores"]


class NodeStores(Protocol):
    """Gives the long-term memory store of a node; nodes never see each other's patterns."""

    def ltm(self, node_id: str) -> LTMStore: ...


class MemoryNodes:
    """Every node's LTM in this process's memory (for one process: notebooks, tests)."""

    def __init__(self) -> None:
        self._nodes: dict[str, MemoryLTM] = {}

    def ltm(self, node_id: str) -> LTMStore:
        store = self._nodes.get(node_id)
        if store is None:
            store = self._nodes[node_id] = MemoryLTM()
        return store
