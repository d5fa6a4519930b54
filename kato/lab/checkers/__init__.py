"""Checkers: pure functions from a history to a verdict, with the ops that witness each anomaly.

    from kato.lab.checkers import check
    report = check(history)            # the verdicts.json shape
    # {"valid": True | False | "unknown",
    #  "checkers": [{"name": "no_lost_updates", "valid": False, "anomalies": 1,
    #                "examples": [{"kind": "lost", "op": 17, "session_id": "s1", …}],
    #                "counts": {"acknowledged": 40, "lost": 1, …}}, …]}

Each anomaly has its own small function returning a list of cases (small dicts naming the op
ids involved: ``kind``, ``op``, ``session_id``, ``expected``, ``seen``, …), and a checker wraps
it into a :class:`Verdict`:

- ``read_your_writes`` — :func:`stale_read_cases`: SESSION_NOT_FOUND on a session that
  certainly exists;
- ``no_lost_updates`` — :func:`lost_update_cases`, :func:`unexpected_cases`: an acknowledged
  observe missing from the final read; a symbol never sent;
- ``linearizable_stm`` — :func:`nonlinearizable_cases`: STM states that no order consistent
  with real time explains;
- ``resurrection`` — :func:`resurrection_cases`: an ok op on a session invoked after an ok
  delete of it completed;
- ``isolation`` — :func:`isolation_cases`: a symbol sent only to another session;
- ``counts`` — :func:`count_cases`, :func:`frequency_cases`: a session count or a pattern
  frequency outside the bounds the history implies;
- ``ltm_effects`` — :func:`ltm_effects_cases`: a pattern whose final frequency in the LTM is
  not the number of its learns that happened (lost, or counted twice: R11);
- ``faults`` — :func:`dishonest_error_cases`: per fault window (:func:`fault_windows`), failures
  by code during and after it and the recovery time; a 5xx other than 503 STORE_UNAVAILABLE.

Validity is ``True``, ``False`` or ``"unknown"`` (something could not be decided, e.g. a session
never read, or a checker that raised); :func:`compose` merges them with ``False`` >
``"unknown"`` > ``True``. A run on a target that could not serve some check (a url target
without ``/sessions/count``, …) lists it as skipped, and is ``"partial"`` rather than ``True``
(:func:`check`). Outcomes follow the history's contract: ``ok`` happened, ``fail``
certainly did not, ``unknown`` may have happened at any time after its invocation — so every
checker reports only what no correct store could have produced. The fields read from each
operation are listed in :data:`FIELDS`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from kato.lab.checkers._counts import count_cases, counts, failed_count_cases, frequency_cases
from kato.lab.checkers._faults import FaultWindow, dishonest_error_cases, fault_windows, faults
from kato.lab.checkers._index import HistoryIndex, as_index, canonical
from kato.lab.checkers._isolation import isolation, isolation_cases
from kato.lab.checkers._linearizable import linearizable_stm, nonlinearizable_cases
from kato.lab.checkers._lost_updates import (
    STM_MAX_EVENTS,
    lost_update_cases,
    no_lost_updates,
    unexpected_cases,
)
from kato.lab.checkers._ltm_effects import ltm_effects, ltm_effects_cases
from kato.lab.checkers._read_your_writes import read_your_writes, stale_read_cases
from kato.lab.checkers._resurrection import resurrection, resurrection_cases
from kato.lab.checkers._verdict import (
    Case,
    Checker,
    Valid,
    Verdict,
    Verdicts,
    compose,
    merge_valid,
)
from kato.lab.history import Op

__all__ = [
    "ALL",
    "FIELDS",
    "PARTIAL",
    "STM_MAX_EVENTS",
    "Case",
    "Checker",
    "FaultWindow",
    "HistoryIndex",
    "Valid",
    "Verdict",
    "Verdicts",
    "as_index",
    "canonical",
    "check",
    "compose",
    "count_cases",
    "counts",
    "dishonest_error_cases",
    "failed_count_cases",
    "fault_windows",
    "faults",
    "frequency_cases",
    "isolation",
    "isolation_cases",
    "linearizable_stm",
    "lost_update_cases",
    "ltm_effects",
    "ltm_effects_cases",
    "merge_valid",
    "no_lost_updates",
    "nonlinearizable_cases",
    "read_your_writes",
    "resurrection",
    "resurrection_cases",
    "stale_read_cases",
    "unexpected_cases",
]

#: What the checkers read from each operation, beyond ``op_id``, ``f``, ``session_id``, times
#: and ``outcome`` (the complement of :data:`kato.lab.history.OPERATIONS`).
FIELDS: dict[str, str] = {
    "create": "args {node_id, ttl_seconds?}; value {session_id} (or op.session_id)",
    "observe": (
        "args {strings: [str]} (one event; distinct per session); "
        "value {stm_length?, auto_learned_pattern?}"
    ),
    "read_stm": "value {stm: [[str]]}",
    "delete": "outcome only",
    "learn": (
        "args {node_id} (else the node of its session's create); value {pattern_name}; "
        "empties the STM"
    ),
    "clear_stm": "empties the STM",
    "clear_all": "empties the STM",
    "get_pattern": "args {node_id, pattern_name}; value {frequency}",
    "count": "args {trailing_slash?, baseline?}; value {count}; error_code on a failed count",
    "fault": "args {name, phase: start|stop}; value {replacement?} (worker-kill stop)",
    "*": "error_code SESSION_NOT_FOUND on a failed session op (read-your-writes)",
}

#: A run's validity when every checker that ran passed but some check could not run.
PARTIAL: Final = "partial"

#: Every checker by name, in report order.
ALL: dict[str, Checker] = {
    "read_your_writes": read_your_writes,
    "no_lost_updates": no_lost_updates,
    "linearizable_stm": linearizable_stm,
    "resurrection": resurrection,
    "isolation": isolation,
    "counts": counts,
    "ltm_effects": ltm_effects,
    "faults": faults,
}


def check(history: Iterable[Op], *, skipped: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Run every checker of :data:`ALL` over ``history``; the ``verdicts.json`` document.

    ``{"valid": true|false|"unknown"|"partial", "checkers": [{"name", "valid", "anomalies",
    "examples", "counts"} (+ "error" if that checker raised), …], "skipped": [{"check",
    "reason"}, …]}``

    ``skipped``: checks the target could not run, by name, with the reason
    (:meth:`kato.lab.remote.Capabilities.skipped`). They are listed under ``"skipped"`` (absent
    when nothing was skipped), and a run whose checkers all passed is then ``"partial"``, never
    ``true``: ``false`` still means an anomaly, ``"unknown"`` something undecided.
    """
    report = compose(ALL)(history).to_dict()
    if skipped:
        report["skipped"] = [{"check": name, "reason": why} for name, why in skipped.items()]
        if report["valid"] is True:
            report["valid"] = PARTIAL
    return report
