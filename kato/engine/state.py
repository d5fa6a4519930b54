"""A session's engine state and the observation that changes it: immutable values, JSON-ready.

:class:`SessionState` holds everything engine.md §1.9 lists as "per session" (configuration
overrides live in the session record, beside it). :class:`Observation` is a validated observe
payload; building one checks every field (§2.1) so that a bad request changes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from kato.exceptions import ValidationError, VectorDimensionError

__all__ = ["Observation", "SessionState"]

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
        """A JSON-serialisable copy (tuples become lists)."""
        return _jsonable(asdict(self))  # type: ignore[no-any-return]

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


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return value


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
    def parse(cls, payload: Mapping[str, Any]) -> Observation:
        """Validate a raw payload; raise ``ValidationError`` or ``VectorDimensionError``.

        ``None`` for a field means "not given". Numbers must be finite; booleans are not numbers.
        """
        if not isinstance(payload, Mapping):
            raise ValidationError(
                "observation must be an object",
                details={"errors": [{"field": "observation", "problem": "not an object"}]},
            )
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
    if any(not _is_text(key) for key in value) or any(
        isinstance(item, str) and not _is_text(item) for item in value.values()
    ):
        errors.append({"field": "metadata", "problem": "keys and texts must be UTF-8 strings"})
        return {}
    return dict(value)
