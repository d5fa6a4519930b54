"""Emotive and metadata accumulators (engine.md §1.7, §1.8): pure reductions over lists of dicts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["average_emotives", "drop_zero_emotives", "merge_metadata", "reduce_metadata"]


def average_emotives(entries: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """Per key, the mean over the dicts that contain that key.

    >>> average_emotives([{"e1": 4, "e2": 5}, {"e2": 6}, {"e1": 5, "e3": -4}])
    {'e1': 4.5, 'e2': 5.5, 'e3': -4.0}
    """
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for entry in entries:
        for key, value in entry.items():
            sums[key] = sums.get(key, 0.0) + float(value)
            counts[key] = counts.get(key, 0) + 1
    return {key: sums[key] / counts[key] for key in sums}


def drop_zero_emotives(averaged: Mapping[str, float]) -> dict[str, float]:
    """The learn-time filter: keys whose averaged value is exactly 0 are dropped."""
    return {key: value for key, value in averaged.items() if value != 0}


def reduce_metadata(entries: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    """``{key: sorted(set(str(value)))}`` over every occurrence of every key."""
    seen: dict[str, set[str]] = {}
    for entry in entries:
        for key, value in entry.items():
            seen.setdefault(key, set()).add(str(value))
    return {key: sorted(values) for key, values in seen.items()}


def merge_metadata(
    existing: Mapping[str, Sequence[str]], new: Mapping[str, Sequence[str]]
) -> dict[str, list[str]]:
    """Per key, the existing values in their order, then the new values not yet present."""
    merged = {key: list(values) for key, values in existing.items()}
    for key, values in new.items():
        current = merged.setdefault(key, [])
        current.extend(value for value in values if value not in current)
    return merged
