"""A session's engine state and the observation that changes it: immutable values, JSON-ready.

:class:`SessionState` holds everything engine.md §1.9 lists as "per session" (configuration
overrides live in the session record, beside it). :class:`Observation` is a validated observe
payload; building one checks every field (§2.1) so that a bad request changes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kato.engine.config import EngineConfig
from kato.engine.limits import check_metadata, check_observation_size
from kato.exceptions import ValidationError, VectorDimensionError

__all__ = ["MAX_JSON_DEPTH", "Observation", "SessionState", "json_problem"]

#: Nesting allowed in free-form JSON (metadata): deeper documents are refused, because every
#: later step (storing, reducing, answering) walks them recursively.
MAX_JSON_DEPTH = 32

Event = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SessionState:
    """The engine-visible state of one session; every operation returns a new one."""

    stm: tuple[Event, ...] = ()
    emotives_accumulator: tuple[Mapping[str, float], ...] = ()
    metadata_accumulator: tuple[Mapping[str, Any], ...] = ()
    current_emotives: Mapping[str, float] = field(default_factory=dict)
    time: int = 0
    symbols: tuple[str, ...] = ()
    percept_data: Mapping[str, Any] = field(default_factory=dict)
    predictions: tuple[Mapping[str, Any], ...] = ()
    future_potentials: tuple[Mapping[str, Any], ...] = ()
    last_unique_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable view: the top-level tuples become lists; nested values are shared,
        not copied (they are immutable by contract, and ``json`` writes tuples as arrays).

        ``dataclasses.asdict`` deep-copied every prediction instead: 8 ms of a 53 KB session
        document's 8.1 ms to JSON, most of an observe's time in the service (py-spy, kato bench).
        """
        return {
            "stm": [list(event) for event in self.stm],
            "emotives_accumulator": list(self.emotives_accumulator),
            "metadata_accumulator": list(self.metadata_accumulator),
            "current_emotives": self.current_emotives,
            "time": self.time,
            "symbols": list(self.symbols),
            "percept_data": self.percept_data,
            "predictions": list(self.predictions),
            "future_potentials": list(self.future_potentials),
            "last_unique_id": self.last_unique_id,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SessionState:
        """The inverse of :meth:`to_dict`."""
        return cls(
            stm=tuple(tuple(event) for event in data.get("stm", ())),
            emotives_accumulator=tuple(dict(e) for e in data.get("emotives_accumulator", ())),
            metadata_accumulator=tuple(dict(m) for m in data.get("metadata_accumulator", ())),
            current_emotives=dict(data.get("current_emotives", {})),
            time=int(data.get("time", 0)),
            symbols=tuple(data.get("symbols", ())),
            percept_data=dict(data.get("percept_data", {})),
            predictions=tuple(data.get("predictions", ())),
            future_potentials=tuple(data.get("future_potentials", ())),
            last_unique_id=data.get("last_unique_id"),
        )


@dataclass(frozen=True, slots=True)
class Observation:
    """A validated observe payload (engine.md §2.1). Build it with :meth:`parse`."""

    strings: tuple[str, ...] = ()
    vectors: tuple[tuple[float, ...], ...] = ()
    emotives: Mapping[str, float] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    unique_id: str | None = None

    @property
    def is_empty(self) -> bool:
        """No strings and no vectors: the observation adds no event (§1.1)."""
        return not self.strings and not self.vectors

    @classmethod
    def parse(cls, payload: Mapping[str, Any], limits: EngineConfig | None = None) -> Observation:
        """Validate a raw payload; raise ``ValidationError`` or ``VectorDimensionError``.

        ``None`` for a field means "not given". Numbers must be finite; booleans are not numbers.
        With ``limits``, an observation over its work bounds raises ``LimitExceededError``, the
        counts checked before any item is (:mod:`kato.engine.limits`).
        """
        if not isinstance(payload, Mapping):
            raise ValidationError(
                "observation must be an object",
                details={"errors": [{"field": "observation", "problem": "not an object"}]},
            )
        if limits is not None:
            check_observation_size(payload, limits)
        errors: list[dict[str, str]] = []
        strings = _parse_strings(payload.get("strings"), errors)
        vectors = _parse_vectors(payload.get("vectors"), errors)
        emotives = _parse_emotives(payload.get("emotives"), errors)
        metadata = _parse_metadata(payload.get("metadata"), errors)
        unique_id = payload.get("unique_id")
        if unique_id is not None and not _is_text(unique_id):
            errors.append({"field": "unique_id", "problem": "must be a UTF-8 string"})
        if errors:
            summary = "; ".join(f"{e['field']}: {e['problem']}" for e in errors)
            raise ValidationError(f"Invalid observation: {summary}", details={"errors": errors})
        if vectors and (len({len(v) for v in vectors}) != 1 or any(not v for v in vectors)):
            lengths = sorted({len(v) for v in vectors})
            raise VectorDimensionError(
                f"all vectors of one observation must have the same non-zero length, got {lengths}",
                details={"lengths": [len(v) for v in vectors]},
            )
        if limits is not None and metadata:
            check_metadata(metadata, limits)
        return cls(strings, vectors, emotives, metadata, unique_id)


def _is_text(value: Any) -> bool:
    """A ``str`` that UTF-8 can carry (no lone surrogates: no store could keep it)."""
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _parse_strings(value: Any, errors: list[dict[str, str]]) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        errors.append({"field": "strings", "problem": "must be a list of strings"})
        return ()
    bad = [i for i, item in enumerate(value) if not _is_text(item)]
    if bad:
        errors.append({"field": f"strings[{bad[0]}]", "problem": "must be a UTF-8 string"})
        return ()
    return tuple(value)


def _parse_vectors(value: Any, errors: list[dict[str, str]]) -> tuple[tuple[float, ...], ...]:
    if value is None:
        return ()
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        errors.append({"field": "vectors", "problem": "must be a list of lists of numbers"})
        return ()
    vectors = []
    for i, vector in enumerate(value):
        if not isinstance(vector, Sequence) or isinstance(vector, str | bytes):
            errors.append({"field": f"vectors[{i}]", "problem": "must be a list of numbers"})
            return ()
        for j, item in enumerate(vector):
            if not _is_number(item):
                errors.append({"field": f"vectors[{i}][{j}]", "problem": "must be a finite number"})
                return ()
        vectors.append(tuple(float(item) for item in vector))
    return tuple(vectors)


def _parse_emotives(value: Any, errors: list[dict[str, str]]) -> dict[str, float]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        errors.append({"field": "emotives", "problem": "must be an object of numbers"})
        return {}
    for key, item in value.items():
        if not _is_text(key):
            errors.append({"field": "emotives", "problem": "keys must be UTF-8 strings"})
            return {}
        if not _is_number(item):
            errors.append({"field": f"emotives.{key}", "problem": "must be a finite number"})
            return {}
    return {key: float(item) for key, item in value.items()}


def _parse_metadata(value: Any, errors: list[dict[str, str]]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        errors.append({"field": "metadata", "problem": "must be an object"})
        return {}
    problem = json_problem(value)
    if problem is not None:
        errors.append({"field": "metadata", "problem": problem})
        return {}
    return dict(value)


def json_problem(value: Any) -> str | None:
    """Why ``value`` is not a JSON document every store and response can carry, or ``None``.

    Objects with UTF-8 string keys, lists, UTF-8 strings, finite numbers, booleans and null, at
    most :data:`MAX_JSON_DEPTH` levels deep. Walked without recursion, so any depth is safe.
    """
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, Mapping | list | tuple) and depth > MAX_JSON_DEPTH:
            return f"nested more than {MAX_JSON_DEPTH} levels deep"
        if isinstance(item, Mapping):
            if not all(_is_text(key) for key in item):
                return "keys and texts must be UTF-8 strings"
            pending.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list | tuple):
            pending.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            if not _is_text(item):
                return "keys and texts must be UTF-8 strings"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return "numbers must be finite (no NaN or Infinity)"
        elif item is not None and not isinstance(item, bool | int):
            return f"{type(item).__name__} is not a JSON value"
    return None
