"""Faults: per fault window, which requests failed with which code during and after it, how long
the service took to recover, and whether its errors were honest.

A *window* runs from the invocation of a nemesis ``fault``/``start`` op to the completion of its
``stop`` (the end of the history if it never stopped); *after* it runs from there to the start
of the next window (or the end of the history). For each window the report (an example of
``kind: "window"``) gives::

    {"kind": "window", "name": "redis-restart", "start_op": 41, "stop_op": 97,
     "start_ms": 612.0, "end_ms": 1240.5,          # since the run's first op
     "during": {"STORE_UNAVAILABLE": 103},         # failed ops overlapping the window, by code
     "after": {"STORE_UNAVAILABLE": 6},            # failed ops invoked after it, by code
     "ok_during": 12, "ok_after": 160,
     "recovery_ms": 3.2, "first_ok_after": 101,   # window end → first ok op invoked after it
     "not_found": [], "not_found_count": 0,        # SESSION_NOT_FOUND, certainly-live sessions
     "unavailable_ms": 2210.4,                     # longest stretch of the window with no op
                                                   # completing ok (0: always served)
     "lost": [57, 58], "lost_count": 2,            # acknowledged observes invoked since the
                                                   # previous window, up to this one's end, that
                                                   # the final reads miss (no_lost_updates' cases)
     "stop": {...}}                                # what the stop call did (e.g. replacement)

A failed op's code is its ``error_code``, else ``HTTP_<status>``, else ``TRANSPORT`` (no answer:
a timeout or a dropped connection).

Anomalies (``kind``):

- ``dishonest-error``: during or after a window, a 5xx other than 503 ``STORE_UNAVAILABLE``. An
  outage must be reported as what it is;
- ``worker-not-replaced``: a ``worker-kill`` whose ``stop`` saw no replacement worker
  (``value.replacement`` null; a command hook's stop reports none and is not judged).

A ``SESSION_NOT_FOUND`` on a session that certainly existed is the ``read_your_writes``
checker's anomaly; here such ops are listed per window (``not_found``) and counted
(``not_found``) but not counted again as anomalies. What acknowledged observations were lost is
``no_lost_updates``' answer. A fault call that raised (``outcome`` unknown) makes the verdict
``"unknown"`` (``kind: "fault-failed"``): the fault may not have happened.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from kato.lab.checkers._index import FOREVER, HistoryIndex, as_index
from kato.lab.checkers._lost_updates import lost_update_cases
from kato.lab.checkers._read_your_writes import stale_read_cases
from kato.lab.checkers._verdict import Case, Valid, Verdict, _examples
from kato.lab.history import Op

__all__ = ["FaultWindow", "dishonest_error_cases", "fault_windows", "faults"]

HONEST_UNAVAILABLE = "STORE_UNAVAILABLE"
_LISTED = 20  # op ids listed per window report (the counts are complete)


@dataclass(frozen=True, slots=True)
class FaultWindow:
    """One fault window: its start op, its stop op (``None``: never stopped), and its bounds."""

    name: str
    start: Op
    stop: Op | None
    begin_ns: int
    end_ns: int
    #: Where "after" ends: the next window's start, or never.
    until_ns: int


def fault_windows(history: Iterable[Op]) -> list[FaultWindow]:
    """The fault windows of ``history``, in time order (each start paired with its stop)."""
    faults = sorted((op for op in history if op.f == "fault"), key=lambda o: o.invoke_ns)
    pairs: list[tuple[Op, Op | None]] = []
    open_: dict[str, Op] = {}
    for op in faults:
        name = str(op.args.get("name"))
        if op.args.get("phase") == "start":
            open_[name] = op
        elif name in open_:
            pairs.append((open_.pop(name), op))
    pairs += [(start, None) for start in open_.values()]
    pairs.sort(key=lambda pair: pair[0].invoke_ns)
    windows = []
    for i, (start, stop) in enumerate(pairs):
        end = FOREVER if stop is None else _end(stop)
        until = pairs[i + 1][0].invoke_ns if i + 1 < len(pairs) else FOREVER
        windows.append(
            FaultWindow(str(start.args.get("name")), start, stop, start.invoke_ns, end, until)
        )
    return windows


def _end(op: Op) -> int:
    return op.complete_ns if op.complete_ns is not None else FOREVER


def _code(op: Op) -> str:
    if op.error_code:
        return op.error_code
    if op.http_status is not None:
        return f"HTTP_{op.http_status}"
    return "TRANSPORT"


def _during(op: Op, window: FaultWindow) -> bool:
    return op.invoke_ns <= window.end_ns and _end(op) >= window.begin_ns


def _after(op: Op, window: FaultWindow) -> bool:
    return window.end_ns < op.invoke_ns <= window.until_ns


def _client_ops(history: Iterable[Op]) -> list[Op]:
    return [op for op in history if op.f != "fault"]


def dishonest_error_cases(history: Iterable[Op]) -> list[Case]:
    """Every 5xx other than 503 STORE_UNAVAILABLE during or after a fault window.

    Each case: ``{"kind": "dishonest-error", "op", "f", "session_id", "fault", "when":
    "during"|"after", "expected": "503 STORE_UNAVAILABLE", "seen": "<status> <code>"}``.
    """
    ops = list(history)
    cases: list[Case] = []
    for window in fault_windows(ops):
        for op in _client_ops(ops):
            if op.http_status is None or op.http_status < 500:
                continue
            if op.http_status == 503 and op.error_code == HONEST_UNAVAILABLE:
                continue
            when = "during" if _during(op, window) else "after" if _after(op, window) else None
            if when is not None:
                cases.append(
                    {
                        "kind": "dishonest-error",
                        "op": op.op_id,
                        "f": op.f,
                        "session_id": op.session_id,
                        "fault": window.name,
                        "when": when,
                        "expected": f"503 {HONEST_UNAVAILABLE}",
                        "seen": f"{op.http_status} {op.error_code}",
                    }
                )
    cases.sort(key=lambda case: case["op"])
    return cases


@dataclass(frozen=True, slots=True)
class _Report:
    window: FaultWindow
    during: Counter[str]
    after: Counter[str]
    ok_during: int
    ok_after: int
    recovered: Op | None
    not_found: list[int]
    unavailable_ms: float
    lost: list[int]

    @property
    def recovery_ms(self) -> float | None:
        if self.recovered is None or self.recovered.complete_ns is None:
            return None
        return round((self.recovered.complete_ns - self.window.end_ns) / 1e6, 3)

    def case(self, origin_ns: int) -> Case:
        w = self.window
        return {
            "kind": "window",
            "name": w.name,
            "start_op": w.start.op_id,
            "stop_op": None if w.stop is None else w.stop.op_id,
            "start_ms": round((w.begin_ns - origin_ns) / 1e6, 3),
            "end_ms": None if w.end_ns >= FOREVER else round((w.end_ns - origin_ns) / 1e6, 3),
            "during": dict(sorted(self.during.items())),
            "after": dict(sorted(self.after.items())),
            "ok_during": self.ok_during,
            "ok_after": self.ok_after,
            "recovery_ms": self.recovery_ms,
            "first_ok_after": None if self.recovered is None else self.recovered.op_id,
            "not_found": self.not_found[:_LISTED],
            "not_found_count": len(self.not_found),
            "unavailable_ms": self.unavailable_ms,
            "lost": self.lost[:_LISTED],
            "lost_count": len(self.lost),
            "stop": {} if w.stop is None else dict(w.stop.value),
        }


def _unavailable_ms(window: FaultWindow, during: list[Op]) -> float:
    """The longest stretch of ``window`` in which no op completed ok (bounded by the history's
    last completion when the window never closed)."""
    done = sorted(
        op.complete_ns for op in during if op.outcome == "ok" and op.complete_ns is not None
    )
    end = window.end_ns
    if end >= FOREVER:
        last = max((_end(op) for op in during if _end(op) < FOREVER), default=window.begin_ns)
        end = max(last, window.begin_ns)
    marks = [window.begin_ns, *(t for t in done if window.begin_ns <= t <= end), end]
    return round(max(b - a for a, b in itertools.pairwise(marks)) / 1e6, 3)


def _report(window: FaultWindow, ops: list[Op], not_found: set[int], lost: list[int]) -> _Report:
    during = [op for op in ops if _during(op, window)]
    after = [op for op in ops if _after(op, window)]
    recovered = min(
        (op for op in after if op.outcome == "ok" and op.complete_ns is not None),
        key=lambda op: op.invoke_ns,
        default=None,
    )
    return _Report(
        window,
        Counter(_code(op) for op in during if op.outcome != "ok"),
        Counter(_code(op) for op in after if op.outcome != "ok"),
        sum(op.outcome == "ok" for op in during),
        sum(op.outcome == "ok" for op in after),
        recovered,
        sorted(op.op_id for op in during + after if op.op_id in not_found),
        _unavailable_ms(window, during),
        lost,
    )


def _lost_by_window(history: HistoryIndex, windows: list[FaultWindow]) -> list[list[int]]:
    """Per window, the lost acknowledged observes invoked after the previous window's end and
    up to this one's (``no_lost_updates`` decides which are lost)."""
    if not windows:
        return []
    by_id = {op.op_id: op for op in history}
    lost = sorted(int(case["op"]) for case in lost_update_cases(history))
    spans, since = [], 0
    for window in windows:
        spans.append([i for i in lost if since < by_id[i].invoke_ns <= window.end_ns])
        since = window.end_ns
    return spans


def faults(history: Iterable[Op]) -> Verdict:
    """Checker: the per-window report, dishonest errors and unreplaced workers (see above).

    Counts: ``windows``, ``failed_during``, ``failed_after``, ``store_unavailable``,
    ``transport``, ``not_found`` (SESSION_NOT_FOUND on certainly-live sessions, in or after a
    window), ``dishonest``, ``max_recovery_ms`` (rounded up; -1 if some window never recovered),
    ``lost`` (lost acknowledged observes, in all windows), ``max_unavailable_ms`` (rounded up).
    A lost observe is ``no_lost_updates``' anomaly; here it is only attributed to a window.
    """
    index = as_index(history)
    ops = _client_ops(index)
    windows = fault_windows(index)
    origin = min((op.intended_ns or op.invoke_ns for op in ops), default=0)
    stale = {int(case["op"]) for case in stale_read_cases(index)} if windows else set()
    lost = _lost_by_window(index, windows)
    reports = [_report(w, ops, stale, ids) for w, ids in zip(windows, lost, strict=True)]
    cases = dishonest_error_cases(index)
    undecided: list[Case] = []
    for window in windows:
        for op in (window.start, window.stop):
            if op is not None and op.outcome != "ok":
                undecided.append(
                    {
                        "kind": "fault-failed",
                        "op": op.op_id,
                        "fault": window.name,
                        "expected": "the fault call succeeded",
                        "seen": op.value.get("error"),
                    }
                )
        stop = window.stop
        if (
            window.name == "worker-kill"
            and stop is not None
            and stop.outcome == "ok"
            and "replacement" in stop.value  # a fault that watched for one (not a command hook)
            and stop.value["replacement"] is None
        ):
            cases.append(
                {
                    "kind": "worker-not-replaced",
                    "op": stop.op_id,
                    "fault": window.name,
                    "expected": "a new worker",
                    "seen": stop.value,
                }
            )
    recoveries = [r.recovery_ms for r in reports]
    max_recovery = -1 if None in recoveries else max((r or 0.0 for r in recoveries), default=0.0)
    counts = {
        "windows": len(windows),
        "failed_during": sum(r.during.total() for r in reports),
        "failed_after": sum(r.after.total() for r in reports),
        "store_unavailable": sum(
            r.during[HONEST_UNAVAILABLE] + r.after[HONEST_UNAVAILABLE] for r in reports
        ),
        "transport": sum(r.during["TRANSPORT"] + r.after["TRANSPORT"] for r in reports),
        "not_found": sum(len(r.not_found) for r in reports),
        "dishonest": sum(case["kind"] == "dishonest-error" for case in cases),
        "max_recovery_ms": math.ceil(max_recovery),
        "lost": sum(len(r.lost) for r in reports),
        "max_unavailable_ms": math.ceil(max((r.unavailable_ms for r in reports), default=0.0)),
    }
    valid: Valid = False if cases else ("unknown" if undecided else True)
    return Verdict(
        name="faults",
        valid=valid,
        anomalies=len(cases),
        examples=_examples(cases) + _examples(undecided) + [r.case(origin) for r in reports],
        counts=counts,
    )
