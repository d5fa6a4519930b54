"""The text forms of a pattern's parts that the SQLite and MongoDB stores keep.

Every encoding round-trips exactly: events and symbols as JSON strings, floats through ``repr``
(what :func:`json.dumps` writes), and the order of dict keys is kept. ``ensure_ascii`` is left on
so that any Python ``str``, even one holding a lone surrogate, becomes storable text.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence

from kato.engine import Pattern

__all__ = [
    "decode_emotive_entry",
    "decode_events",
    "decode_metadata_pairs",
    "encode_emotive_entry",
    "encode_events",
    "encode_metadata_pairs",
    "pattern_from_parts",
]

Event = tuple[str, ...]


def encode_events(events: Sequence[Sequence[str]]) -> str:
    """``[["a"], ["b", "c"]]`` as JSON text."""
    return json.dumps([list(event) for event in events])


def decode_events(text: str) -> tuple[Event, ...]:
    return tuple(tuple(event) for event in json.loads(text))


def encode_emotive_entry(entry: Mapping[str, float]) -> str:
    """One entry of a pattern's emotive window as JSON ``[[key, value], …]`` (key order kept)."""
    return json.dumps([[key, float(value)] for key, value in entry.items()])


def decode_emotive_entry(text: str) -> dict[str, float]:
    return {key: float(value) for key, value in json.loads(text)}


def encode_metadata_pairs(metadata: Mapping[str, Sequence[str]]) -> list[str]:
    """Each ``(key, value)`` of a metadata dict as its own JSON text, in dict and list order."""
    return [json.dumps([key, value]) for key, values in metadata.items() for value in values]


def decode_metadata_pairs(pairs: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """The metadata dict whose pairs, in first-seen order, are ``pairs`` (repeats dropped).

    Reading pairs in the order they were appended gives exactly the merge of engine.md §1.8:
    a key's existing values keep their order and new values follow in the order they came.
    """
    merged: dict[str, list[str]] = {}
    for text in pairs:
        key, value = json.loads(text)
        values = merged.setdefault(key, [])
        if value not in values:
            values.append(value)
    return {key: tuple(values) for key, values in merged.items()}


def pattern_from_parts(
    name: str,
    events: tuple[Event, ...],
    frequency: int,
    emotives: Iterable[str],
    metadata: Mapping[str, Sequence[str]],
) -> Pattern:
    return Pattern(
        name=name,
        events=events,
        frequency=int(frequency),
        emotives=tuple(decode_emotive_entry(entry) for entry in emotives),
        metadata={key: tuple(values) for key, values in metadata.items()},
    )
