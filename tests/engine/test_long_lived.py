"""Large LTMs are frozen out of the collector's full collections, and nothing dead is pinned."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from kato.engine import ltm as engine_ltm


@pytest.fixture
def unfrozen(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Nothing frozen and no pattern counted before; as it was, after."""
    monkeypatch.setattr(engine_ltm, "_unfrozen", 0)
    gc.unfreeze()
    yield
    gc.unfreeze()


class Node:
    """A weakly referenceable object to build a reference cycle from."""

    other: object = None


def test_enough_long_lived_patterns_freeze_the_collectors_objects(unfrozen: None) -> None:
    kept = [object() for _ in range(10)]
    first, second = Node(), Node()
    first.other, second.other = second, first  # a cycle, unreachable once the names go
    gone = weakref.ref(first)
    del first, second
    engine_ltm.long_lived(engine_ltm.FREEZE_AFTER)
    assert gc.get_freeze_count() > 0
    assert gone() is None, "garbage cycles are collected before the freeze, not pinned"
    assert kept


def test_few_patterns_freeze_nothing(unfrozen: None) -> None:
    engine_ltm.long_lived(engine_ltm.FREEZE_AFTER - 1)
    assert gc.get_freeze_count() == 0
