"""Verdicts: what a checker returns, and how several checkers are composed into one report.

A checker is a pure function from a history to a :class:`Verdict`. :func:`compose` runs several
of them over one prepared history, the way Jepsen's ``compose`` and ``check-safe`` do: validity
is merged with ``False`` > ``"unknown"`` > ``True``, and a checker that raises becomes
``valid="unknown"`` with the error attached while the others still report.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from kato.lab.checkers._index import as_index
from kato.lab.history import Op

__all__ = [
    "MAX_EXAMPLES",
    "Case",
    "Checker",
    "Valid",
    "Verdict",
    "Verdicts",
    "compose",
    "merge_valid",
    "verdict",
]

#: ``True`` (no anomaly), ``False`` (at least one) or ``"unknown"`` (the checker could not decide).
Valid = bool | Literal["unknown"]

#: One witness of an anomaly: a small JSON-able dict naming the ops involved (``kind``, ``op``, …).
Case = dict[str, Any]

#: Examples kept per anomaly kind (the count in ``anomalies`` is never truncated).
MAX_EXAMPLES = 5


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one checker found.

    ``anomalies`` counts every witness found; ``examples`` keeps at most :data:`MAX_EXAMPLES` of
    each ``kind``, each naming the op ids involved. ``counts`` holds the checker's tallies
    (``acknowledged``, ``lost``, …). ``error`` is set when the checker itself failed.
    """

    name: str
    valid: Valid
    anomalies: int
    examples: list[Case] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The ``verdicts.json`` entry: ``{"name", "valid", "anomalies", "examples", "counts"}``
        (plus ``"error"`` when the checker failed)."""
        entry: dict[str, Any] = {
            "name": self.name,
            "valid": self.valid,
            "anomalies": self.anomalies,
            "examples": [dict(example) for example in self.examples],
            "counts": dict(self.counts),
        }
        if self.error is not None:
            entry["error"] = self.error
        return entry


@dataclass(frozen=True, slots=True)
class Verdicts:
    """The verdicts of several checkers over one history, and their merged validity."""

    valid: Valid
    checkers: tuple[Verdict, ...]

    def __getitem__(self, name: str) -> Verdict:
        for result in self.checkers:
            if result.name == name:
                return result
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """``{"valid": true|false|"unknown", "checkers": [{"name", "valid", "anomalies",
        "examples", "counts"}, …]}`` — the shape of ``verdicts.json``."""
        return {"valid": self.valid, "checkers": [result.to_dict() for result in self.checkers]}


#: A checker: a pure function from a history (any iterable of ops) to a verdict.
Checker = Callable[[Iterable[Op]], Verdict]

_PRIORITY: dict[Valid, int] = {True: 0, "unknown": 1, False: 2}


def merge_valid(values: Iterable[Valid]) -> Valid:
    """The worst of ``values``: ``False`` > ``"unknown"`` > ``True`` (``True`` when empty)."""
    worst: Valid = True
    for value in values:
        if _PRIORITY[value] > _PRIORITY[worst]:
            worst = value
    return worst


def verdict(
    name: str,
    cases: Sequence[Case],
    *,
    undecided: Sequence[Case] = (),
    counts: Mapping[str, int] | None = None,
) -> Verdict:
    """A verdict from a checker's anomaly ``cases`` and its ``undecided`` parts.

    Invalid if there is any case; otherwise ``"unknown"`` if some part could not be decided;
    otherwise valid. Examples are the cases (then the undecided parts), at most
    :data:`MAX_EXAMPLES` per ``kind``.
    """
    valid: Valid = False if cases else ("unknown" if undecided else True)
    return Verdict(
        name=name,
        valid=valid,
        anomalies=len(cases),
        examples=_examples(cases) + _examples(undecided),
        counts=dict(counts or {}),
    )


def _examples(cases: Sequence[Case]) -> list[Case]:
    kept: list[Case] = []
    per_kind: dict[str, int] = {}
    for case in cases:
        kind = str(case.get("kind", ""))
        if per_kind.get(kind, 0) < MAX_EXAMPLES:
            per_kind[kind] = per_kind.get(kind, 0) + 1
            kept.append(case)
    return kept


def compose(checkers: Mapping[str, Checker]) -> Callable[[Iterable[Op]], Verdicts]:
    """One checker out of several: ``compose({"isolation": isolation, …})(history)``.

    The history is indexed once and handed to every checker. Each verdict is renamed after its
    key; a checker that raises gives ``Verdict(name, "unknown", 0, error="Type: message …")``
    and the others still run.
    """
    named = dict(checkers)

    def run(history: Iterable[Op]) -> Verdicts:
        index = as_index(history)
        results = tuple(_check_safe(name, checker, index) for name, checker in named.items())
        return Verdicts(merge_valid(result.valid for result in results), results)

    return run


def _check_safe(name: str, checker: Checker, history: Iterable[Op]) -> Verdict:
    """Run one checker; its exception becomes an ``"unknown"`` verdict carrying the error."""
    try:
        result = checker(history)
    except Exception as exc:  # the one boundary: the error is kept in the verdict, not hidden
        return Verdict(name=name, valid="unknown", anomalies=0, error=_describe(exc))
    return replace(result, name=name)


def _describe(exc: Exception) -> str:
    message = "".join(traceback.format_exception_only(exc)).strip()
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        where = frames[-1]
        message += f" (in {where.name}, {where.filename}:{where.lineno})"
    return message
