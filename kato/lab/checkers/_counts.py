"""Counts: ``/sessions/count`` and LTM pattern frequencies agree with the history (R6, guarantee 3).

A count out of bounds (``kind: "count"``)::

    c1 create s1 ok        [0, 10]
    c1 delete s1 ok        [20, 30]
    c2 count 1 ok          [40, 50]   s1 is certainly gone: the count must be 0

An ok ``count`` read at some instant of ``[invoke_ns, complete_ns]``, so its value must lie
between the sessions *certainly live* over that whole window and the sessions *possibly live*
at some instant of it (see :mod:`kato.lab.checkers._lifetimes`; creates with no reply count as
possibly live). The history must hold every session of the store (a store that starts empty).

A frequency out of bounds (``kind: "frequency"``)::

    c1 learn s1 P ok       [0, 10]
    c2 learn s2 P ok       [0, 10]
    c3 get_pattern P 1 ok  [20, 30]   two learns of P completed: the frequency must be 2

A count refused as if it named a session (``kind: "count-failed"``)::

    c1 count /sessions/count/ fail SESSION_NOT_FOUND   the path was read as a session id (R10)

A store that did not start empty (the ``url`` target: a deployment not the workbench's) is read
first by a *baseline* count (``args {"baseline": true}``, before any create): its value is the
sessions of others, assumed to stay for the whole run (no other traffic), and every later count
is judged against the bounds plus it. A baseline that did not succeed leaves the counts
undecided (``kind: "count-baseline"``: the checker is ``unknown``, not valid).

``/sessions/count`` names no session, so no correct service answers it SESSION_NOT_FOUND,
whatever the spelling (``args.trailing_slash``) or the sessions that exist.

An ok ``get_pattern`` (``args {node_id, pattern_name}``, ``value {frequency}``) must report at
least the ok learns of that pattern on that node that completed before it was invoked, and at
most the learns that may have happened (ok or unknown) invoked before it completed. A learn's
node is its ``args.node_id`` or else its session's (the create's ``args.node_id``); an unknown
learn has no pattern name, so it may be any pattern of its node. An ok observe reporting an
``auto_learned_pattern`` counts as an ok learn (an unknown observe that may have auto-learned
does not: run frequency checks without auto-learn under faults). Pattern names compare without
the ``PTRN|`` prefix. ``clear_all`` (which wipes a node's LTM) is not modelled.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field

from kato.lab.checkers._index import FOREVER, HistoryIndex, as_index, pattern_key
from kato.lab.checkers._lifetimes import anonymous_possible, lifetime
from kato.lab.checkers._verdict import Case, Verdict, verdict
from kato.lab.history import Op

_NOT_FOUND = "SESSION_NOT_FOUND"

__all__ = ["count_cases", "counts", "failed_count_cases", "frequency_cases"]


def count_cases(
    history: Iterable[Op], *, default_ttl_seconds: float | None = None, sliding: bool = True
) -> list[Case]:
    """Every ok ``count`` whose value lies outside the bounds the history implies.

    Each case: ``{"kind": "count", "op", "expected": [low, high], "seen": count}``.
    """
    index = as_index(history)
    bounds = _SessionBounds.of(index, default_ttl_seconds=default_ttl_seconds, sliding=sliding)
    others = _baseline(index)
    if others is None and _undecided_baselines(index):
        return []  # the sessions of others are not known: no count can be judged
    cases: list[Case] = []
    for op in index.counts:
        if op.outcome != "ok" or op.complete_ns is None or op.args.get("baseline"):
            continue
        seen = op.value["count"]
        low, high = ((others or 0) + bound for bound in bounds.at(op.invoke_ns, op.complete_ns))
        if not low <= seen <= high:
            cases.append({"kind": "count", "op": op.op_id, "expected": [low, high], "seen": seen})
    return cases


def _baseline(index: HistoryIndex) -> int | None:
    """The sessions of others a baseline count saw (``None``: no ok baseline count)."""
    for op in index.counts:
        if op.args.get("baseline") and op.outcome == "ok":
            return int(op.value["count"])
    return None


def _undecided_baselines(index: HistoryIndex) -> list[Case]:
    """A baseline count that did not succeed: the counts after it cannot be judged."""
    if _baseline(index) is not None:
        return []
    return [
        {"kind": "count-baseline", "op": op.op_id, "expected": "a count", "seen": op.outcome}
        for op in index.counts
        if op.args.get("baseline")
    ]


def failed_count_cases(history: Iterable[Op]) -> list[Case]:
    """Every ``count`` that failed with SESSION_NOT_FOUND (it names no session).

    Each case: ``{"kind": "count-failed", "op", "trailing_slash", "expected": "a count",
    "seen": error code}``.
    """
    return [
        {
            "kind": "count-failed",
            "op": op.op_id,
            "trailing_slash": bool(op.args.get("trailing_slash")),
            "expected": "a count",
            "seen": op.error_code,
        }
        for op in as_index(history).counts
        if op.outcome == "fail" and op.error_code == _NOT_FOUND
    ]


def frequency_cases(history: Iterable[Op]) -> list[Case]:
    """Every ok ``get_pattern`` whose frequency disagrees with the learns around it.

    Each case: ``{"kind": "frequency", "op", "node_id", "pattern_name", "expected": [low,
    high], "seen": frequency, "learns": [op ids of the ok learns of it, a few]}``.
    """
    index = as_index(history)
    learns = _Learns.of(index)
    cases: list[Case] = []
    for op in index.get_patterns:
        if op.outcome != "ok" or op.complete_ns is None:
            continue
        node, name = op.args.get("node_id"), op.args.get("pattern_name")
        if not isinstance(name, str):
            continue
        key = (node if isinstance(node, str) else None, pattern_key(name))
        seen = op.value["frequency"]
        low, high = learns.bounds(key, op.invoke_ns, op.complete_ns)
        if not low <= seen <= high:
            cases.append(
                {
                    "kind": "frequency",
                    "op": op.op_id,
                    "node_id": key[0],
                    "pattern_name": name,
                    "expected": [low, high],
                    "seen": seen,
                    "learns": learns.ok_ids.get(key, [])[:5],
                }
            )
    return cases


def counts(
    history: Iterable[Op], *, default_ttl_seconds: float | None = None, sliding: bool = True
) -> Verdict:
    """Checker: session counts within bounds and never SESSION_NOT_FOUND; pattern frequencies
    within bounds.

    Counts: ``counts`` and ``get_patterns`` (ok ops checked), ``count_out_of_bounds``,
    ``count_failed``, ``frequency_out_of_bounds``.
    """
    index = as_index(history)
    by_count = count_cases(index, default_ttl_seconds=default_ttl_seconds, sliding=sliding)
    by_frequency = frequency_cases(index)
    failed = failed_count_cases(index)
    undecided = _undecided_baselines(index)
    return verdict(
        "counts",
        by_count + failed + by_frequency,
        undecided=undecided,
        counts={
            "counts": sum(1 for op in index.counts if op.outcome == "ok"),
            "get_patterns": sum(1 for op in index.get_patterns if op.outcome == "ok"),
            "count_out_of_bounds": len(by_count),
            "count_failed": len(failed),
            "frequency_out_of_bounds": len(by_frequency),
        },
    )


@dataclass(slots=True)
class _SessionBounds:
    """Every session's certain and possible life, flattened for counting by bisection."""

    certain_lo: list[int]
    certain_by_hi: list[tuple[int, int]]  # (hi, lo), sorted
    possible_lo: list[int]
    possible_hi: list[int]

    @classmethod
    def of(
        cls, index: HistoryIndex, *, default_ttl_seconds: float | None, sliding: bool
    ) -> _SessionBounds:
        certain: list[tuple[int, int]] = []
        possible: list[tuple[int, int]] = []
        for session in index.sessions.values():
            life = lifetime(session, ttl_ns=session.ttl_ns(default_ttl_seconds), sliding=sliding)
            certain.extend(life.certain)
            possible.extend(life.possible)
        for create in index.anonymous_creates:
            ttl = create.args.get("ttl_seconds", default_ttl_seconds)
            ttl_ns = None if not isinstance(ttl, int | float) else int(ttl * 1_000_000_000)
            interval = anonymous_possible(create, ttl_ns=ttl_ns)
            if interval is not None:
                possible.append(interval)
        return cls(
            certain_lo=sorted(lo for lo, _ in certain),
            certain_by_hi=sorted((hi, lo) for lo, hi in certain),
            possible_lo=sorted(lo for lo, _ in possible),
            possible_hi=sorted(hi for _, hi in possible),
        )

    def at(self, start: int, end: int) -> tuple[int, int]:
        """``(low, high)``: sessions certainly live over ``[start, end]``, and possibly live at
        some instant of it (a session whose possible life has a gap inside the window may be
        counted twice in ``high``: a looser bound, never a false alarm)."""
        # certain: intervals (lo, hi] with lo < start and hi >= end.
        began = bisect.bisect_left(self.certain_lo, start)
        ended_before = bisect.bisect_left(self.certain_by_hi, (start, -FOREVER))
        ending_inside = self.certain_by_hi[
            ended_before : bisect.bisect_left(self.certain_by_hi, (end, -FOREVER))
        ]
        low = began - ended_before - sum(1 for _, lo in ending_inside if lo < start)
        # possible: intervals (lo, hi] with lo < end and hi >= start.
        high = bisect.bisect_left(self.possible_lo, end) - bisect.bisect_left(
            self.possible_hi, start
        )
        return low, high


@dataclass(slots=True)
class _Learns:
    """Learn completions and invocations per (node, pattern), unknown learns per node."""

    ok_done: dict[tuple[str | None, str], list[int]] = field(default_factory=dict)
    ok_ids: dict[tuple[str | None, str], list[int]] = field(default_factory=dict)
    may_start: dict[tuple[str | None, str], list[int]] = field(default_factory=dict)
    unknown_start: dict[str | None, list[int]] = field(default_factory=dict)

    @classmethod
    def of(cls, index: HistoryIndex) -> _Learns:
        learns = cls()
        node_of = {sid: session.node_id for sid, session in index.sessions.items()}
        auto_learning: list[Op] = [
            op
            for session in index.sessions.values()
            for op in session.observes
            if op.outcome == "ok" and op.value.get("auto_learned_pattern")
        ]
        for op in [*index.learns, *auto_learning]:
            node = op.args.get("node_id") if op.f == "learn" else None
            if not isinstance(node, str):
                node = node_of.get(op.session_id) if op.session_id is not None else None
            if op.outcome == "unknown":
                learns.unknown_start.setdefault(node, []).append(op.invoke_ns)
                continue
            name = op.value.get("pattern_name" if op.f == "learn" else "auto_learned_pattern")
            if op.outcome != "ok" or not isinstance(name, str) or not name:
                continue
            key = (node, pattern_key(name))
            learns.ok_done.setdefault(key, []).append(
                op.complete_ns if op.complete_ns is not None else FOREVER
            )
            learns.ok_ids.setdefault(key, []).append(op.op_id)
            learns.may_start.setdefault(key, []).append(op.invoke_ns)
        for times in (*learns.ok_done.values(), *learns.may_start.values()):
            times.sort()
        for times in learns.unknown_start.values():
            times.sort()
        for ids in learns.ok_ids.values():
            ids.sort()
        return learns

    def bounds(self, key: tuple[str | None, str], start: int, end: int) -> tuple[int, int]:
        """``(low, high)`` frequency of ``key`` for a read during ``[start, end]``."""
        node, name = key
        low = bisect.bisect_left(self.ok_done.get(key, []), start)
        high = bisect.bisect_left(self.may_start.get(key, []), end)
        high += bisect.bisect_left(self.unknown_start.get(node, []), end)
        if node is not None:  # learns whose node is not known may be on this one
            high += bisect.bisect_left(self.may_start.get((None, name), []), end)
            high += bisect.bisect_left(self.unknown_start.get(None, []), end)
        return low, high
