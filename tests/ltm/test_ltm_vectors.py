"""The VCTR registry adapters: the LTM-store default and Qdrant (local mode, one process)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kato.engine import MemoryLTM
from kato.ltm.vectors import (
    QdrantVectors,
    SearchableVectorIndex,
    StoreVectors,
    VectorIndex,
    open_qdrant,
    point_id,
)


@pytest.fixture
def qdrant(tmp_path: Path) -> Iterator[Any]:
    client = open_qdrant(path=str(tmp_path / "qdrant"))
    yield client
    client.close()


def test_point_ids_are_derived_from_the_name() -> None:
    assert point_id("VCTR|a") == point_id("VCTR|a") != point_id("VCTR|b")
    # pinned: changing the derivation would orphan every point already stored
    assert point_id("VCTR|a") == "aac85cdf-5397-5e38-aaec-40a2bc8efc97"


def test_open_qdrant_needs_exactly_one_place() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        open_qdrant()
    with pytest.raises(ValueError, match="exactly one"):
        open_qdrant(path="x", url="http://localhost:6333")


def test_both_adapters_implement_the_protocol(qdrant: Any) -> None:
    assert isinstance(StoreVectors(MemoryLTM()), VectorIndex)
    assert not isinstance(StoreVectors(MemoryLTM()), SearchableVectorIndex)
    assert isinstance(QdrantVectors(qdrant, "n"), SearchableVectorIndex)


def test_qdrant_keeps_exact_vectors_per_node(qdrant: Any) -> None:
    a, b = QdrantVectors(qdrant, "a"), QdrantVectors(qdrant, "b")
    assert a.get("VCTR|x") is None and a.nearest([0.0, 0.0], 3) == []
    exact = (0.1, 1e-300)
    a.add("VCTR|x", [9.0, 9.0])
    a.add("VCTR|x", exact)  # replaces
    a.add("VCTR|y", [1.0, 1.0])
    a.add("VCTR|z", [5.0, 5.0])
    assert a.get("VCTR|x") == exact  # float64 as given, not Qdrant's float32 copy
    assert b.get("VCTR|x") is None
    assert [name for name, _ in a.nearest([1.1, 1.1], 2)] == ["VCTR|y", "VCTR|x"]
    with pytest.raises(ValueError, match="dim"):
        a.add("VCTR|w", [1.0, 2.0, 3.0])
    a.clear()
    assert a.get("VCTR|x") is None and a.nearest([1.0, 1.0], 1) == []
    b.add("VCTR|x", [3.0])  # after a clear, another node, another dimension
    assert b.get("VCTR|x") == (3.0,)
