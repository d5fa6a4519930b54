"""Read-your-writes: a session found once is found until it is deleted or expires (R3, R5, R8).

The anomaly (``kind: "not-found"``)::

    c1 create s1 ok        [0, 10]    the session exists from t=10 …
    c2 observe s1 a ok     [20, 30]   … and is refreshed by every access
    c3 read s1 fail        [40, 50]   SESSION_NOT_FOUND, with no delete and well within the TTL

An op that fails with ``SESSION_NOT_FOUND`` is an anomaly only if the session *certainly*
existed over the whole op (see :mod:`kato.lab.checkers._lifetimes`): its create completed ok
before the op was invoked, no delete that may have happened (any outcome but ``fail``) was
invoked before the op completed, and some ok access that completed before the op was invoked
refreshed the TTL (``args.ttl_seconds`` of the create) recently enough that it cannot have run
out before the op completed. Where expiry was merely possible the failure is explained, so the
checker never reports a failure that a correct store could have given.
"""

from __future__ import annotations

from collections.abc import Iterable

from kato.lab.checkers._index import SessionOps, as_index
from kato.lab.checkers._lifetimes import last_access, lifetime
from kato.lab.checkers._verdict import Case, Verdict, verdict
from kato.lab.history import Op

__all__ = ["read_your_writes", "stale_read_cases"]

NOT_FOUND = "SESSION_NOT_FOUND"


def stale_read_cases(
    history: Iterable[Op], *, default_ttl_seconds: float | None = None, sliding: bool = True
) -> list[Case]:
    """Every op that failed with SESSION_NOT_FOUND on a session that certainly existed.

    Each case: ``{"kind": "not-found", "op", "f", "session_id", "created_by", "last_access",
    "expected": "session exists", "seen": "SESSION_NOT_FOUND"}``. ``default_ttl_seconds`` is the
    TTL of sessions whose create names none (``None``: they do not expire during the run);
    ``sliding=False`` means accesses do not extend the TTL (``SESSION_AUTO_EXTEND=false``).
    """
    return _judge(history, default_ttl_seconds=default_ttl_seconds, sliding=sliding)[0]


def read_your_writes(
    history: Iterable[Op], *, default_ttl_seconds: float | None = None, sliding: bool = True
) -> Verdict:
    """Checker: no SESSION_NOT_FOUND on a session that certainly exists.

    Counts: ``not_found`` (ops failing SESSION_NOT_FOUND), ``before_create``, ``deleted``,
    ``expired`` (each explained failure by its explanation) and ``stale`` (the anomalies).
    """
    cases, counts = _judge(history, default_ttl_seconds=default_ttl_seconds, sliding=sliding)
    return verdict("read_your_writes", cases, counts=counts)


def _judge(
    history: Iterable[Op], *, default_ttl_seconds: float | None, sliding: bool
) -> tuple[list[Case], dict[str, int]]:
    index = as_index(history)
    counts = dict.fromkeys(("not_found", "before_create", "deleted", "expired", "stale"), 0)
    cases: list[Case] = []
    for sid, session in index.sessions.items():
        failed = [
            op
            for op in session.ops
            if op.outcome == "fail"
            and op.error_code == NOT_FOUND
            and op.f != "create"
            and op.complete_ns is not None
        ]
        if not failed:
            continue
        life = lifetime(session, ttl_ns=session.ttl_ns(default_ttl_seconds), sliding=sliding)
        for op in failed:
            assert op.complete_ns is not None
            counts["not_found"] += 1
            if life.certainly_live(op.invoke_ns, op.complete_ns):
                counts["stale"] += 1
                cases.append(
                    {
                        "kind": "not-found",
                        "op": op.op_id,
                        "f": op.f,
                        "session_id": sid,
                        "created_by": life.created_by,
                        "last_access": last_access(session, op.invoke_ns),
                        "expected": "session exists",
                        "seen": NOT_FOUND,
                    }
                )
            else:
                counts[_explanation(op, session)] += 1
    cases.sort(key=lambda case: case["op"])
    return cases, counts


def _explanation(op: Op, session: SessionOps) -> str:
    """Why a SESSION_NOT_FOUND was legitimate: no create yet, a delete, or a possible expiry."""
    assert op.complete_ns is not None
    created = [
        c.complete_ns
        for c in session.creates
        if c.outcome == "ok" and c.complete_ns is not None and c.complete_ns < op.invoke_ns
    ]
    if not created:
        return "before_create"
    if any(d.outcome != "fail" and d.invoke_ns < op.complete_ns for d in session.deletes):
        return "deleted"
    return "expired"
