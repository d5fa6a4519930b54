"""No lost updates: every acknowledged observation is in the session's final STM (R1, R2, R4),
and nothing is there that was never sent — the shape of Jepsen's ``Set`` checker, per session.

A lost update (``kind: "lost"``)::

    c1 observe s1 a ok     [0, 10]    acknowledged
    c2 observe s1 b ok     [5, 15]    acknowledged (an unlocked read-modify-write overwrote a)
    c1 read s1 [b] ok      [20, 30]   the final read: a is gone

Per session: *acknowledged* are the symbols of ok observes; the *final read* is the last ok
``read_stm`` invoked after every acknowledged observe completed (a session deleted on purpose
needs none: what it held was dropped legitimately) — or a ``read_stm`` that failed with
``SESSION_NOT_FOUND`` while the session certainly existed (see
:mod:`kato.lab.checkers._lifetimes`): the store lost the whole session, so that read saw an empty
STM (its lost cases carry ``final_read_error``); *lost* = acknowledged − final
symbols; *unexpected* = final symbols − every symbol ever sent to the session (ok, fail or
unknown observes); observes of unknown outcome whose symbols are all present are *recovered*
(counted, not an anomaly). A session with acknowledged observes but no final read is
*never read*: undecided, so the verdict is ``"unknown"`` unless something is lost.

Where the STM is legitimately emptied the definition is cut short: only observes invoked after
the last clearing op (``learn``, ``clear_stm``, ``clear_all``, or an observe that reports an
``auto_learned_pattern``) completed are acknowledged. A final read of ``stm_max_events`` events
or more may have been trimmed (oldest first), so its session is undecided for lost updates.
The checker compares symbols as sets: sessions are expected to receive distinct symbols.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import chain

from kato.lab.checkers._index import FOREVER, STM_CLEARING, SessionOps, as_index, stm_of
from kato.lab.checkers._lifetimes import lifetime
from kato.lab.checkers._verdict import Case, Verdict, verdict
from kato.lab.history import Op

__all__ = ["STM_MAX_EVENTS", "lost_update_cases", "no_lost_updates", "unexpected_cases"]

#: The service's default STM bound (sessions.md): a longer STM keeps only its newest events.
STM_MAX_EVENTS = 1000


@dataclass(slots=True)
class _Tally:
    lost: list[Case] = field(default_factory=list)
    unexpected: list[Case] = field(default_factory=list)
    undecided: list[Case] = field(default_factory=list)
    counts: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            (
                "acknowledged",
                "lost",
                "unexpected",
                "recovered",
                "never_read_sessions",
                "trimmed_sessions",
            ),
            0,
        )
    )


def lost_update_cases(history: Iterable[Op], *, stm_max_events: int = STM_MAX_EVENTS) -> list[Case]:
    """Every acknowledged observe missing from its session's final read.

    Each case: ``{"kind": "lost", "op", "session_id", "final_read", "expected": [symbols],
    "seen": [those of them present]}``.
    """
    return _judge(history, stm_max_events=stm_max_events).lost


def unexpected_cases(history: Iterable[Op], *, stm_max_events: int = STM_MAX_EVENTS) -> list[Case]:
    """Every symbol in a session's final read that no observe ever sent to that session.

    Each case: ``{"kind": "unexpected", "op": final read, "session_id", "seen": symbol,
    "expected": "a symbol sent to the session"}``.
    """
    return _judge(history, stm_max_events=stm_max_events).unexpected


def no_lost_updates(history: Iterable[Op], *, stm_max_events: int = STM_MAX_EVENTS) -> Verdict:
    """Checker: lost and unexpected symbols per session (see the module docstring).

    Counts: ``acknowledged`` (ok observes checked), ``lost``, ``unexpected``, ``recovered``,
    ``never_read_sessions``, ``trimmed_sessions``.
    """
    tally = _judge(history, stm_max_events=stm_max_events)
    return verdict(
        "no_lost_updates",
        tally.lost + tally.unexpected,
        undecided=tally.undecided,
        counts=tally.counts,
    )


def _judge(history: Iterable[Op], *, stm_max_events: int) -> _Tally:
    index = as_index(history)
    tally = _Tally()
    for sid, session in index.sessions.items():
        _judge_session(sid, session, index.events, stm_max_events, tally)
    tally.lost.sort(key=lambda case: case["op"])
    tally.unexpected.sort(key=lambda case: (case["op"], case["seen"]))
    return tally


def _judge_session(
    sid: str,
    session: SessionOps,
    events: dict[int, tuple[str, ...]],
    stm_max_events: int,
    tally: _Tally,
) -> None:
    cut = _last_clear(session)
    acknowledged = [
        op
        for op in session.observes
        if op.outcome == "ok" and events[op.op_id] and op.invoke_ns > cut
    ]
    tally.counts["acknowledged"] += len(acknowledged)
    final = _final_read(session, acknowledged, cut)
    if final is None:
        if acknowledged:
            tally.counts["never_read_sessions"] += 1
            tally.undecided.append(
                {
                    "kind": "never-read",
                    "session_id": sid,
                    "expected": "a read after the last acknowledged observe",
                    "seen": None,
                    "ops": [op.op_id for op in acknowledged[:5]],
                }
            )
        return
    stm = stm_of(final) if final.outcome == "ok" else []  # else: the session was lost
    present = set(chain.from_iterable(stm))
    for symbol in sorted(present - session.sent):
        tally.counts["unexpected"] += 1
        tally.unexpected.append(
            {
                "kind": "unexpected",
                "op": final.op_id,
                "session_id": sid,
                "expected": "a symbol sent to the session",
                "seen": symbol,
            }
        )
    tally.counts["recovered"] += sum(
        1
        for op in session.observes
        if op.outcome == "unknown" and events[op.op_id] and present.issuperset(events[op.op_id])
    )
    if len(stm) >= stm_max_events:
        tally.counts["trimmed_sessions"] += 1
        tally.undecided.append(
            {
                "kind": "trimmed",
                "session_id": sid,
                "op": final.op_id,
                "expected": f"fewer than {stm_max_events} events",
                "seen": len(stm),
            }
        )
        return
    for op in acknowledged:
        event = events[op.op_id]
        if not present.issuperset(event):
            tally.counts["lost"] += 1
            case: Case = {
                "kind": "lost",
                "op": op.op_id,
                "session_id": sid,
                "final_read": final.op_id,
                "expected": list(event),
                "seen": [symbol for symbol in event if symbol in present],
            }
            if final.outcome != "ok":
                case["final_read_error"] = final.error_code
            tally.lost.append(case)


def _last_clear(session: SessionOps) -> int:
    """When the last op that may have emptied the STM surely ended (-1: none; FOREVER: never)."""
    cut = -1
    for op in session.ops:
        clears = op.f in STM_CLEARING and op.outcome != "fail"
        clears = clears or (
            op.f == "observe" and op.outcome == "ok" and bool(op.value.get("auto_learned_pattern"))
        )
        clears = clears or (op.f == "delete" and op.outcome == "ok")  # gone on purpose
        if clears:
            cut = max(cut, FOREVER if op.outcome == "unknown" else _end(op))
    return cut


def _final_read(session: SessionOps, acknowledged: list[Op], cut: int) -> Op | None:
    """The last ok read invoked after every acknowledged observe (and the last clear) ended."""
    if cut >= FOREVER:
        return None
    after = max((_end(op) for op in acknowledged), default=cut)
    after = max(after, cut)
    final: Op | None = None
    for read in [*session.reads, *_vanished_reads(session)]:
        if read.invoke_ns > after and (final is None or read.invoke_ns > final.invoke_ns):
            final = read
    return final


def _vanished_reads(session: SessionOps) -> list[Op]:
    """``read_stm`` ops answered SESSION_NOT_FOUND while the session certainly existed."""
    failed = [
        op
        for op in session.ops
        if op.f == "read_stm"
        and op.outcome == "fail"
        and op.error_code == "SESSION_NOT_FOUND"
        and op.complete_ns is not None
    ]
    if not failed:
        return []
    life = lifetime(session, ttl_ns=session.ttl_ns(None))
    return [op for op in failed if life.certainly_live(op.invoke_ns, _end(op))]


def _end(op: Op) -> int:
    return op.complete_ns if op.complete_ns is not None else FOREVER
