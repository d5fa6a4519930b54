"""The ``VCTR|`` registry behind one small protocol: which vector a vector symbol stands for.

    index = StoreVectors(nodes.ltm("node-a"))           # the embedded default
    index = QdrantVectors(open_qdrant(url=...), "node-a")
    index.add("VCTR|fe5d…", [1.0, 2.0, 3.0])
    index.get("VCTR|fe5d…")                             # (1.0, 2.0, 3.0)

- :class:`StoreVectors` keeps the registry in the node's LTM store: ``add`` is the engine's
  :class:`~kato.engine.RegisterVector` effect, so it is exactly as multi-process safe as that
  store (SQLite or MongoDB), and ``clear_all`` wipes it in the same transaction as the patterns.
- :class:`QdrantVectors` keeps it in Qdrant, one collection per node, point ids derived from the
  name (``uuid5``), so every process maps a name to the same point. Qdrant's local mode
  (``open_qdrant(path=…)``) locks its folder and serves one process only; behind several
  workers point ``url=`` at a Qdrant server.

Vectors are returned exactly as given (float64), also from Qdrant, whose own copy is float32:
the exact values travel in the point's payload. Nearest-neighbour search is optional
(:class:`SearchableVectorIndex`); the engine does not use it (engine.md §1.6).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from kato.engine import LTMStore, RegisterVector
from kato.exceptions import StoreUnavailableError

if TYPE_CHECKING:
    from qdrant_client import QdrantClient

__all__ = [
    "QdrantVectors",
    "SearchableVectorIndex",
    "StoreVectors",
    "VectorIndex",
    "open_qdrant",
    "point_id",
]

_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "kato:vctr")


@runtime_checkable
class VectorIndex(Protocol):
    """A node's ``VCTR name → vector`` registry."""

    def add(self, name: str, vector: Sequence[float]) -> None:
        """Remember ``vector`` under ``name`` (adding it again replaces it)."""
        ...

    def get(self, name: str) -> tuple[float, ...] | None:
        """The vector added under ``name``, exactly, or ``None``."""
        ...

    def clear(self) -> None:
        """Forget every vector of the node (its clear-all)."""
        ...


@runtime_checkable
class SearchableVectorIndex(VectorIndex, Protocol):
    def nearest(self, vector: Sequence[float], k: int) -> list[tuple[str, float]]:
        """Up to ``k`` ``(name, distance)`` pairs, nearest first (Euclidean distance)."""
        ...


def point_id(name: str) -> str:
    """The Qdrant point id of a vector name: a UUID every process derives alike."""
    return str(uuid.uuid5(_NAMESPACE, name))


class StoreVectors:
    """The registry inside the node's LTM store (the embedded, multi-process default)."""

    def __init__(self, ltm: LTMStore) -> None:
        self._ltm = ltm

    def add(self, name: str, vector: Sequence[float]) -> None:
        self._ltm.apply([RegisterVector(name, tuple(float(x) for x in vector))])

    def get(self, name: str) -> tuple[float, ...] | None:
        return self._ltm.vector(name)

    def clear(self) -> None:
        """Nothing to do: the node's ``ClearNode`` effect wipes the registry together with the
        rest of its LTM, in one transaction (and only that effect may: a registry cleared on
        its own would leave patterns naming vectors it no longer knows)."""


def open_qdrant(*, path: str | None = None, url: str | None = None) -> QdrantClient:
    """A Qdrant client: local mode in folder ``path`` (one process), or the server at ``url``."""
    if (path is None) == (url is None):
        raise ValueError("give exactly one of path= (local mode) or url= (a Qdrant server)")
    from qdrant_client import QdrantClient

    return QdrantClient(path=path) if path is not None else QdrantClient(url=url)


@contextlib.contextmanager
def _qdrant_errors(operation: str) -> Iterator[None]:
    """A Qdrant server that does not answer is unavailable; other errors propagate."""
    from qdrant_client.http.exceptions import ResponseHandlingException

    try:
        yield
    except ResponseHandlingException as exc:
        raise StoreUnavailableError(
            f"vector store (Qdrant) unavailable during {operation}: {exc}"
        ) from exc


class QdrantVectors:
    """A node's registry in Qdrant: collection ``<prefix><node_id>``, Euclidean distance.

    The collection is created by the first ``add``, sized by that vector; a vector of another
    length then raises ``ValueError`` (one node, one dimension).
    """

    def __init__(self, client: QdrantClient, node_id: str, *, prefix: str = "kato_") -> None:
        self._client = client
        self.collection = prefix + node_id

    def add(self, name: str, vector: Sequence[float]) -> None:
        from qdrant_client import models

        values = [float(x) for x in vector]
        with _qdrant_errors("add"):
            if not self._client.collection_exists(self.collection):
                self._client.create_collection(
                    self.collection,
                    vectors_config=models.VectorParams(
                        size=len(values), distance=models.Distance.EUCLID
                    ),
                )
            point = models.PointStruct(
                id=point_id(name), vector=values, payload={"name": name, "vector": values}
            )
            self._client.upsert(self.collection, points=[point])

    def get(self, name: str) -> tuple[float, ...] | None:
        with _qdrant_errors("get"):
            if not self._client.collection_exists(self.collection):
                return None
            records = self._client.retrieve(self.collection, ids=[point_id(name)])
        if not records or records[0].payload is None:
            return None
        return tuple(float(x) for x in records[0].payload["vector"])

    def nearest(self, vector: Sequence[float], k: int) -> list[tuple[str, float]]:
        with _qdrant_errors("nearest"):
            if not self._client.collection_exists(self.collection):
                return []
            found = self._client.query_points(
                self.collection, query=[float(x) for x in vector], limit=k, with_payload=["name"]
            ).points
        return [(str((point.payload or {})["name"]), float(point.score)) for point in found]

    def clear(self) -> None:
        with _qdrant_errors("clear"):
            self._client.delete_collection(self.collection)
