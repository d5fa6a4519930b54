"""When a session certainly exists, and when it may exist, judged from the history alone.

Both are unions of half-open time intervals ``(lo, hi]`` (nanoseconds, the history's clock).

*Certainly live* at ``t``: an ok create completed before ``t``; some ok access ``a`` (the create
included) completed before ``t`` and refreshed the TTL no earlier than its invocation, so
``a.complete_ns < t <= a.invoke_ns + ttl``; and no delete that may have happened (any outcome
but ``fail``) was invoked before ``t``.

*Possibly live* at ``t``: a create that may have happened was invoked before ``t``; some access
that may have happened (any outcome but ``fail``, or a ``fail`` other than SESSION_NOT_FOUND,
which may still have touched the TTL) was invoked before ``t`` and its refresh may be as late as
its completion (never-ending if unknown), so ``a.invoke_ns < t <= end(a) + ttl``; and no delete
completed ok before ``t``.

Without a known TTL a session never expires; with ``sliding=False`` (``SESSION_AUTO_EXTEND=false``)
only the create sets the expiry. Every access except ``delete`` and ``exists`` refreshes the TTL
(sessions.md, guarantee 5).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from kato.lab.checkers._index import FOREVER, SessionOps, effect_end
from kato.lab.history import Op

__all__ = ["Lifetime", "anonymous_possible", "last_access", "lifetime"]

_NOT_ACCESS = frozenset({"delete", "exists"})
Interval = tuple[int, int]


@dataclass(frozen=True, slots=True)
class Lifetime:
    """A session's certain and possible life, each as sorted disjoint ``(lo, hi]`` intervals."""

    certain: list[Interval]
    possible: list[Interval]
    created_by: int | None

    def certainly_live(self, start: int, end: int) -> bool:
        """Whether the session certainly exists at every instant of ``[start, end]``."""
        at = bisect.bisect_left(self.certain, (start, -1)) - 1
        return at >= 0 and self.certain[at][0] < start and end <= self.certain[at][1]


def lifetime(session: SessionOps, *, ttl_ns: int | None, sliding: bool = True) -> Lifetime:
    """The certain and possible life of ``session`` (see the module docstring)."""
    ok_creates = [op for op in session.creates if op.outcome == "ok" and op.complete_ns is not None]
    live_creates = [op for op in session.creates if op.outcome != "fail"]
    refreshers = session.ops if sliding else session.creates
    certain: list[Interval] = []
    if ok_creates:
        born = min(_done(op) for op in ok_creates)
        deleted = min(
            (op.invoke_ns for op in session.deletes if op.outcome != "fail"), default=FOREVER
        )
        if ttl_ns is None:
            certain = [(born, deleted)] if born < deleted else []
        else:
            for op in refreshers:
                if op.outcome == "ok" and op.complete_ns is not None and op.f not in _NOT_ACCESS:
                    lo, hi = max(op.complete_ns, born), min(deleted, op.invoke_ns + ttl_ns)
                    if lo < hi:
                        certain.append((lo, hi))
    possible: list[Interval] = []
    if live_creates:
        born = min(op.invoke_ns for op in live_creates)
        gone = min((_done(op) for op in session.deletes if op.outcome == "ok"), default=FOREVER)
        if ttl_ns is None:
            possible = [(born, gone)] if born < gone else []
        else:
            for op in refreshers:
                if op.f not in _NOT_ACCESS and _may_refresh(op):
                    end = effect_end(op)
                    hi = gone if end >= FOREVER else min(gone, end + ttl_ns)
                    lo = max(op.invoke_ns, born)
                    if lo < hi:
                        possible.append((lo, hi))
    first_ok = min(ok_creates, key=_done, default=None)
    return Lifetime(
        certain=_merge(certain),
        possible=_merge(possible),
        created_by=None if first_ok is None else first_ok.op_id,
    )


def last_access(session: SessionOps, before: int) -> int | None:
    """The op id of the session's last ok access that completed before ``before``."""
    latest: Op | None = None
    for op in session.ops:
        if op.outcome == "ok" and op.f not in _NOT_ACCESS:
            done = _done(op)
            if done < before and (latest is None or done > _done(latest)):
                latest = op
    return None if latest is None else latest.op_id


def anonymous_possible(create: Op, *, ttl_ns: int | None) -> Interval | None:
    """The possible life of a session whose create named no session (an unknown create)."""
    if create.outcome == "fail":
        return None
    end = effect_end(create)
    hi = FOREVER if ttl_ns is None or end >= FOREVER else end + ttl_ns
    return (create.invoke_ns, hi)


def _may_refresh(op: Op) -> bool:
    return op.outcome != "fail" or op.error_code != "SESSION_NOT_FOUND"


def _done(op: Op) -> int:
    return op.complete_ns if op.complete_ns is not None else FOREVER


def _merge(intervals: list[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for lo, hi in sorted(intervals):
        if merged and lo <= merged[-1][1]:
            if hi > merged[-1][1]:
                merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    return merged
