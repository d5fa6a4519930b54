"""No resurrection: after a delete of a session completes, the session is gone for good (R4).

The anomaly (``kind: "resurrected"``)::

    c1 observe s1 a ok     [0, 30]    in flight …
    c2 delete s1 ok        [10, 20]   … when the delete ran
    c3 read s1 [a] ok      [40, 50]   invoked after the delete completed: s1 is back, with data

Any ok operation on a session (other than its create) invoked after an ok delete of it completed
is an anomaly: a correct store answers SESSION_NOT_FOUND to every later request, since session
ids are never reused (sessions.md guarantee 4). Only ok deletes count (an unknown one may not
have happened), and only ops invoked after the delete *completed* (an op overlapping the delete
may take effect before it). A second ok delete is an anomaly too: there was something to delete.
"""

from __future__ import annotations

from collections.abc import Iterable

from kato.lab.checkers._index import as_index, stm_of
from kato.lab.checkers._verdict import Case, Verdict, verdict
from kato.lab.history import Op

__all__ = ["resurrection", "resurrection_cases"]


def resurrection_cases(history: Iterable[Op]) -> list[Case]:
    """Every ok op on a session invoked after an ok delete of that session completed.

    Each case: ``{"kind": "resurrected", "op", "f", "session_id", "deleted_by", "expected":
    "SESSION_NOT_FOUND", "seen": "ok" (+ ", STM of N events" for an STM read)}``.
    """
    cases: list[Case] = []
    for sid, session in as_index(history).sessions.items():
        done = [d for d in session.deletes if d.outcome == "ok" and d.complete_ns is not None]
        if not done:
            continue
        first = min(done, key=lambda d: (d.complete_ns or 0, d.op_id))
        assert first.complete_ns is not None
        for op in session.ops:
            if op.outcome != "ok" or op.f == "create" or op.invoke_ns <= first.complete_ns:
                continue
            seen = "ok"
            if op.f == "read_stm":
                seen += f", STM of {len(stm_of(op))} events"
            cases.append(
                {
                    "kind": "resurrected",
                    "op": op.op_id,
                    "f": op.f,
                    "session_id": sid,
                    "deleted_by": first.op_id,
                    "expected": "SESSION_NOT_FOUND",
                    "seen": seen,
                }
            )
    cases.sort(key=lambda case: case["op"])
    return cases


def resurrection(history: Iterable[Op]) -> Verdict:
    """Checker: nothing succeeds on a deleted session. Counts: ``deleted`` (sessions with an ok
    delete), ``resurrected`` (of those, sessions with an anomaly)."""
    index = as_index(history)
    cases = resurrection_cases(index)
    deleted = sum(
        any(d.outcome == "ok" for d in session.deletes) for session in index.sessions.values()
    )
    resurrected = len({case["session_id"] for case in cases})
    return verdict("resurrection", cases, counts={"deleted": deleted, "resurrected": resurrected})
