"""Engine configuration: the per-session parameters of engine.md §5.1, validated as a whole.

An update is checked in full before any of it is applied: one bad value rejects the whole
update with an :class:`~kato.exceptions.InvalidConfigError` naming every bad field and its
allowed range. The one documented exception is ``stm_mode``: any string other than ``CLEAR`` or
``ROLLING`` is accepted and normalised to ``CLEAR``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from kato.exceptions import InvalidConfigError

__all__ = [
    "RANK_SORT_ALGOS",
    "SESSION_FIELDS",
    "EngineConfig",
    "overrides_schema",
    "validate_overrides",
]

#: Prediction fields a session may rank by; ``potential`` reproduces engine.md §4.7.
RANK_SORT_ALGOS = (
    "potential",
    "similarity",
    "evidence",
    "confidence",
    "snr",
    "predictive_information",
    "itfdf_similarity",
    "confluence",
    "frequency",
    "weighted_strength",
    "pattern_probability",
)
INDEXER_TYPES = ("VI", "LSH", "ANNOY", "FAISS")


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """The effective configuration of one operation (service defaults + session overrides)."""

    max_pattern_length: int = 0
    stm_mode: str = "CLEAR"
    persistence: int = 5
    recall_threshold: float = 0.1
    max_predictions: int = 100
    sort_symbols: bool = True
    process_predictions: bool = True
    indexer_type: str = "VI"
    rank_sort_algo: str = "potential"
    #: Safety cap on STM events; a service-level limit that sessions cannot override.
    stm_max_events: int = 1000
    #: Safety cap on the emotive and metadata accumulators (entries each, the newest kept);
    #: service-level, like ``stm_max_events`` (sessions.md, "Limits").
    accumulator_max_entries: int = 1000
    #: Work bounds of one request (service-level; :mod:`kato.engine.limits`, README "Limits").
    #: Strings one observation may carry.
    max_event_symbols: int = 50_000
    #: Symbols the STM may hold with a new event (over it: 409 ``STM_FULL``).
    max_stm_symbols: int = 100_000
    #: Characters of all the symbols the STM may hold with a new event (409 ``STM_FULL``).
    max_stm_chars: int = 16 * 1024 * 1024
    #: Emotive keys one observation may carry.
    max_emotive_keys: int = 256
    #: Bytes of one observation's metadata, as compact UTF-8 JSON.
    max_metadata_bytes: int = 64 * 1024
    #: Pairs of equal symbols (pattern x state) one prediction's matcher may visit.
    max_match_pairs: int = 4_000_000

    def __post_init__(self) -> None:
        errors = _field_errors(asdict(self), include_service=True)
        if errors:
            raise InvalidConfigError(errors)
        if self.stm_mode not in ("CLEAR", "ROLLING"):
            object.__setattr__(self, "stm_mode", "CLEAR")
        object.__setattr__(self, "recall_threshold", float(self.recall_threshold))

    def with_overrides(self, overrides: Mapping[str, Any]) -> EngineConfig:
        """This configuration with validated session ``overrides`` applied."""
        return replace(self, **validate_overrides(overrides))

    def session_view(self) -> dict[str, Any]:
        """The effective values of the session-overridable parameters, as clients see them."""
        return {name: getattr(self, name) for name in SESSION_FIELDS}


@dataclass(frozen=True, slots=True)
class _Rule:
    """One field's rule: ``check`` says what is wrong with a value (``None``: nothing), and
    ``schema`` states the same rule in JSON Schema, for the service's OpenAPI document."""

    check: Callable[[Any], str | None]
    schema: dict[str, Any]


def _int_in(low: int, high: int | None) -> _Rule:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return f"must be an integer{_range_text(low, high)}, got {value!r}"
        if value < low or (high is not None and value > high):
            return f"must be{_range_text(low, high)}, got {value}"
        return None

    bounds = {"minimum": low} if high is None else {"minimum": low, "maximum": high}
    return _Rule(check, {"type": "integer", **bounds})


def _range_text(low: float, high: float | None) -> str:
    return f" >= {low}" if high is None else f" in [{low}, {high}]"


def _check_threshold(value: Any) -> str | None:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or (isinstance(value, float) and not math.isfinite(value)):
        return f"must be a number in [0.0, 1.0], got {value!r}"
    if not 0.0 <= value <= 1.0:
        return f"must be in [0.0, 1.0], got {value}"
    return None


def _check_bool(value: Any) -> str | None:
    return None if isinstance(value, bool) else f"must be true or false, got {value!r}"


def _one_of(choices: tuple[str, ...]) -> _Rule:
    def check(value: Any) -> str | None:
        if value in choices and isinstance(value, str):
            return None
        return f"must be one of {', '.join(choices)}, got {value!r}"

    return _Rule(check, {"type": "string", "enum": list(choices)})


def _check_stm_mode(value: Any) -> str | None:
    return None if isinstance(value, str) else f"must be a string (CLEAR or ROLLING), got {value!r}"


_BOOL = _Rule(_check_bool, {"type": "boolean"})
_CHECKS: dict[str, _Rule] = {
    "max_pattern_length": _int_in(0, None),
    "stm_mode": _Rule(
        _check_stm_mode, {"type": "string", "description": "CLEAR or ROLLING (else CLEAR)"}
    ),
    "persistence": _int_in(1, 100),
    "recall_threshold": _Rule(_check_threshold, {"type": "number", "minimum": 0, "maximum": 1}),
    "max_predictions": _int_in(1, 10000),
    "sort_symbols": _BOOL,
    "process_predictions": _BOOL,
    "indexer_type": _one_of(INDEXER_TYPES),
    "rank_sort_algo": _one_of(RANK_SORT_ALGOS),
}
SESSION_FIELDS = tuple(_CHECKS)
_SERVICE_CHECKS: dict[str, _Rule] = {
    "stm_max_events": _int_in(1, None),
    "accumulator_max_entries": _int_in(1, None),
    "max_event_symbols": _int_in(1, None),
    "max_stm_symbols": _int_in(1, None),
    "max_stm_chars": _int_in(1, None),
    "max_emotive_keys": _int_in(0, None),
    "max_metadata_bytes": _int_in(2, None),
    "max_match_pairs": _int_in(1, None),
}
_ALIASES = {"sort": "sort_symbols"}


def _field_errors(values: Mapping[str, Any], *, include_service: bool = False) -> dict[str, str]:
    checks = {**_CHECKS, **_SERVICE_CHECKS} if include_service else _CHECKS
    errors = {}
    for name, value in values.items():
        problem = checks[name].check(value)
        if problem is not None:
            errors[name] = problem
    return errors


def validate_overrides(changes: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a session configuration update and return the normalised overrides.

    Unknown keys and ``None`` values ("not given") are ignored; ``sort`` is an alias of
    ``sort_symbols``; an unknown ``stm_mode`` string becomes ``CLEAR``; integral floats are not
    integers. Raises ``InvalidConfigError`` naming every bad field, and then applies nothing.
    """
    if not isinstance(changes, Mapping):
        raise InvalidConfigError({"config": f"must be an object, got {type(changes).__name__}"})
    picked: dict[str, Any] = {}
    for key, value in changes.items():
        name = _ALIASES.get(key, key)
        if name in _CHECKS and value is not None:
            picked[name] = value
    errors = _field_errors(picked)
    if errors:
        raise InvalidConfigError(errors)
    if "stm_mode" in picked and picked["stm_mode"] not in ("CLEAR", "ROLLING"):
        picked["stm_mode"] = "CLEAR"
    if "recall_threshold" in picked:
        picked["recall_threshold"] = float(picked["recall_threshold"])
    return picked


def overrides_schema() -> dict[str, Any]:
    """The JSON Schema of a session configuration update: the rules :func:`validate_overrides`
    applies (``null`` means "not given", unknown keys are ignored, ``sort`` is an alias)."""
    names = {**{name: name for name in _CHECKS}, **_ALIASES}
    return {
        "type": "object",
        "properties": {
            key: {"anyOf": [_CHECKS[name].schema, {"type": "null"}]} for key, name in names.items()
        },
        "additionalProperties": True,
    }
