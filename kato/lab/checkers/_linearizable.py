"""Per-session linearizability of STM, for append-only histories — Porcupine's question answered
from the structure of appends instead of a search.

The model (pure): the state is a sequence of events; ``observe(e)`` appends ``e`` and returns the
new length (``value.stm_length``); ``read_stm`` returns the sequence. A session's history is
linearizable if some total order of its ops, consistent with real time (an op that completed
before another was invoked comes first), explains every ok result. Ops of unknown outcome may
take effect at any time after their invocation, or never; failed ops never take effect.

A non-linearizable history (``kind: "reordered"``)::

    c1 observe s1 a ok     [0, 10]
    c2 observe s1 b ok     [20, 30]   invoked after a completed …
    c3 read s1 [b a] ok    [40, 50]   … yet the STM puts b first

Why no search is needed. Every ok read returns a prefix of the one sequence, so all reads must be
prefixes of the longest read ``M``, and ``M`` fixes the position of every observe it shows. Each
read sits between the observe at its length and the next one. Ok observes no read shows come
after ``M``, in ``stm_length`` order when every ok observe reports it (else in any order: by
invocation). Unknown observes no read shows are left out (they may happen last, or never). That
leaves one candidate order, up to reorderings of ops in the same slot (sorted by invocation,
which never hurts), and a total order of intervals can be given linearization points iff no op
in it completed before an earlier op was invoked: one pass with a running maximum of
invocations decides it. Cost: a sort per session, O(n log n) overall, and one comparison of each
read with ``M`` (in C).

The counter-example names the op that cannot be placed (``op``), the op it should have preceded
(``conflicts_with``), and the longest explainable prefix of the order (``linearized``: its length,
``linearized_tail``: its last op ids), with a sentence (``why``) for people. Kinds:
``unsent-event`` and ``duplicate-event`` (a read shows an event no possible observe sent, or one
twice), ``divergent-read`` (a read that is not a prefix of the longest), ``stm-length`` (observes
reporting impossible lengths, e.g. two observes both at position 3 — a lost update),
``reordered``, ``stale-read`` (a read misses an observe that completed before it began),
``future-read`` (a read shows an observe invoked after it completed), ``non-monotonic-read``.

Undecided (``"unknown"``) sessions: the same event sent twice (appends cannot be told apart),
an STM that may have been trimmed (``stm_max_events``), an observe that auto-learned, a
clearing op (``learn``, ``clear_stm``, ``clear_all``) of unknown outcome or concurrent with an
STM op. Clearing ops that run alone split the session into epochs, each checked from an empty
STM.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from kato.lab.checkers._index import (
    FOREVER,
    SessionOps,
    as_index,
    canonical,
    effect_end,
    stm_of,
)
from kato.lab.checkers._lost_updates import STM_MAX_EVENTS
from kato.lab.checkers._verdict import Case, Verdict, verdict
from kato.lab.history import Op

__all__ = ["linearizable_stm", "nonlinearizable_cases"]

Event = tuple[str, ...]
_Found = tuple[Literal["anomaly", "undecided"], Case]
_TAIL = 5


@dataclass(slots=True)
class _Result:
    cases: list[Case] = field(default_factory=list)
    undecided: list[Case] = field(default_factory=list)
    counts: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            ("sessions", "linearizable", "nonlinearizable", "undecided", "observes", "reads"), 0
        )
    )


def nonlinearizable_cases(
    history: Iterable[Op], *, stm_max_events: int = STM_MAX_EVENTS, use_stm_length: bool = True
) -> list[Case]:
    """One counter-example per session whose STM history is not linearizable.

    Each case: ``{"kind", "op", "session_id", "conflicts_with", "expected", "seen", "why",
    "linearized", "linearized_tail"}`` (see the module docstring for the kinds).
    ``use_stm_length=False`` ignores the lengths observes report.
    """
    return _judge(history, stm_max_events=stm_max_events, use_stm_length=use_stm_length).cases


def linearizable_stm(
    history: Iterable[Op], *, stm_max_events: int = STM_MAX_EVENTS, use_stm_length: bool = True
) -> Verdict:
    """Checker: every session's STM history is linearizable (see the module docstring).

    Counts: ``sessions`` (with observes or reads), ``linearizable``, ``nonlinearizable``,
    ``undecided``, ``observes`` and ``reads`` checked.
    """
    result = _judge(history, stm_max_events=stm_max_events, use_stm_length=use_stm_length)
    return verdict(
        "linearizable_stm", result.cases, undecided=result.undecided, counts=result.counts
    )


def _judge(history: Iterable[Op], *, stm_max_events: int, use_stm_length: bool) -> _Result:
    index = as_index(history)
    result = _Result()
    for sid, session in index.sessions.items():
        if not session.observes and not session.reads:
            continue
        result.counts["sessions"] += 1
        found = _check_session(sid, session, index.events, stm_max_events, use_stm_length)
        if found is None:
            result.counts["linearizable"] += 1
            result.counts["observes"] += sum(1 for o in session.observes if o.outcome != "fail")
            result.counts["reads"] += len(session.reads)
        elif found[0] == "anomaly":
            result.counts["nonlinearizable"] += 1
            result.cases.append(found[1])
        else:
            result.counts["undecided"] += 1
            result.undecided.append(found[1])
    result.cases.sort(key=lambda case: case["op"])
    return result


def _check_session(
    sid: str,
    session: SessionOps,
    events: dict[int, Event],
    stm_max_events: int,
    use_stm_length: bool,
) -> _Found | None:
    epochs = _epochs(sid, session)
    if isinstance(epochs, dict):
        return "undecided", epochs
    for observes, reads in epochs:
        found = _Epoch(sid, observes, reads, events, stm_max_events, use_stm_length).check()
        if found is not None:
            return found
    return None


def _epochs(sid: str, session: SessionOps) -> list[tuple[list[Op], list[Op]]] | Case:
    """The session's STM ops split at clearing ops, or why that cannot be done."""
    for op in session.observes:
        if op.outcome == "ok" and op.value.get("auto_learned_pattern"):
            return _undecided(sid, "auto-learn emptied the STM inside an observe", [op.op_id])
    clears = sorted(
        (op for op in session.clears if op.outcome != "fail"), key=lambda op: op.invoke_ns
    )
    if not clears:
        return [(session.observes, session.reads)]
    for clear in clears:
        if clear.outcome == "unknown" or clear.complete_ns is None:
            return _undecided(sid, f"{clear.f} of unknown outcome", [clear.op_id])
    starts = [clear.invoke_ns for clear in clears]
    latest_end: list[int] = []
    for clear in clears:
        assert clear.complete_ns is not None
        latest_end.append(max(clear.complete_ns, latest_end[-1] if latest_end else -1))
    epochs: list[tuple[list[Op], list[Op]]] = [([], []) for _ in range(len(clears) + 1)]
    for op in [*session.observes, *session.reads]:
        at = bisect.bisect_right(starts, op.invoke_ns)
        overlaps = (at > 0 and latest_end[at - 1] > op.invoke_ns) or (
            at < len(clears) and starts[at] < effect_end(op)
        )
        if overlaps and op.outcome != "fail":
            before = at > 0 and latest_end[at - 1] > op.invoke_ns
            clear = max(clears[:at], key=_done) if before else clears[at]
            return _undecided(sid, f"{clear.f} concurrent with {op.f}", [clear.op_id, op.op_id])
        epochs[at][0 if op.f == "observe" else 1].append(op)
    return epochs


class _Epoch:
    """One epoch of a session: observes and ok reads from an empty STM, with no clear between."""

    def __init__(
        self,
        sid: str,
        observes: list[Op],
        reads: list[Op],
        events: dict[int, Event],
        stm_max_events: int,
        use_stm_length: bool,
    ) -> None:
        self.sid = sid
        self.observes = observes
        self.reads = reads
        self.events = events
        self.stm_max_events = stm_max_events
        self.use_stm_length = use_stm_length
        self.length = {read.op_id: len(stm_of(read)) for read in reads}

    def check(self) -> _Found | None:
        writers = self._writers()
        if isinstance(writers, dict):
            return "undecided", writers
        live, failed = writers
        longest = max(self.reads, key=lambda r: (self.length[r.op_id], -r.invoke_ns), default=None)
        master: list[Any] = [] if longest is None else stm_of(longest)
        if len(master) >= self.stm_max_events:
            return "undecided", _undecided(self.sid, "STM may have been trimmed", [_id(longest)])
        order = self._place(master, longest, live, failed)
        if not isinstance(order, list):
            return order
        found = self._prefixes(master, longest, order)
        if found is not None:
            return found
        placed = {op.op_id for op in order}
        tail = [op for op in live.values() if op.outcome == "ok" and op.op_id not in placed]
        spare = [op for op in live.values() if op.outcome == "unknown" and op.op_id not in placed]
        tail_order = self._tail(order, tail, spare, longest)
        if not isinstance(tail_order, list):
            return tail_order
        return self._real_time(self._sequence(order, tail_order))

    def _writers(self) -> tuple[dict[Event, Op], dict[Event, Op]] | Case:
        """The observe that may have appended each event, and those that failed to."""
        live: dict[Event, Op] = {}
        failed: dict[Event, Op] = {}
        for op in self.observes:
            event = self.events[op.op_id]
            if not event:
                continue
            if op.outcome == "fail":
                failed.setdefault(event, op)
            elif event in live:
                ops = [live[event].op_id, op.op_id]
                return _undecided(self.sid, f"event {list(event)} sent twice", ops)
            else:
                live[event] = op
        return live, failed

    def _place(
        self,
        master: list[Any],
        longest: Op | None,
        live: dict[Event, Op],
        failed: dict[Event, Op],
    ) -> list[Op] | _Found:
        """The observes in the order the longest read shows their events."""
        order: list[Op] = []
        placed: set[int] = set()
        for position, raw in enumerate(master, 1):
            event = canonical(raw)
            writer = live.get(event)
            if writer is not None and writer.op_id not in placed:
                placed.add(writer.op_id)
                order.append(writer)
                continue
            if writer is None:
                kind = "unsent-event"
                culprit = failed.get(event)
                why = f"read {_id(longest)} shows {list(event)} at {position}, " + (
                    f"sent only by op {culprit.op_id}, which failed"
                    if culprit is not None
                    else "which no observe of this session sent"
                )
            else:
                kind, culprit = "duplicate-event", writer
                why = (
                    f"read {_id(longest)} shows {list(event)} twice, sent once by op {writer.op_id}"
                )
            return "anomaly", {
                "kind": kind,
                "op": _id(longest),
                "session_id": self.sid,
                "conflicts_with": None if culprit is None else culprit.op_id,
                "expected": "an event sent once to the session",
                "seen": list(event),
                "position": position,
                "why": why,
                **_prefix(order),
            }
        return order

    def _prefixes(self, master: list[Any], longest: Op | None, order: list[Op]) -> _Found | None:
        """Every read must be a prefix of the longest one."""
        for read in sorted(self.reads, key=lambda op: op.op_id):
            stm = stm_of(read)
            if stm == master[: len(stm)]:
                continue
            at = next(
                (i for i, raw in enumerate(stm) if canonical(raw) != canonical(master[i])), None
            )
            if at is None:
                continue
            return "anomaly", {
                "kind": "divergent-read",
                "op": read.op_id,
                "session_id": self.sid,
                "conflicts_with": _id(longest),
                "expected": list(canonical(master[at])),
                "seen": list(canonical(stm[at])),
                "position": at + 1,
                "why": f"read {read.op_id} and read {_id(longest)} differ at position {at + 1}",
                **_prefix(order[:at]),
            }
        return None

    def _tail(
        self, order: list[Op], tail: list[Op], spare: list[Op], longest: Op | None
    ) -> list[Op] | _Found:
        """The appends no read shows, in the order they must take after the longest read.

        Without reported lengths: ok observes by invocation (unknown ones may come last, or
        never). With them: by reported length, and each position no ok observe claims is
        filled by an unknown observe — the earliest invoked for the earliest gap, which is the
        best choice since a later gap precedes fewer ops.
        """
        lengths = _reported_lengths(self.observes) if self.use_stm_length else None
        if lengths is None:
            return sorted(tail, key=lambda op: (op.invoke_ns, op.op_id))
        if lengths and max(lengths.values()) >= self.stm_max_events:
            ops = [max(lengths, key=lambda op_id: lengths[op_id])]
            return "undecided", _undecided(self.sid, "STM may have been trimmed", ops)
        for position, op in enumerate(order, 1):
            reported = lengths.get(op.op_id)
            if reported is not None and reported != position:
                why = (
                    f"op {op.op_id} reports length {reported}, "
                    f"read {_id(longest)} puts it at {position}"
                )
                case = _length_case(
                    self.sid, op, longest, position, reported, why, order[: position - 1]
                )
                return "anomaly", case
        tail = sorted(tail, key=lambda op: (lengths[op.op_id], op.invoke_ns, op.op_id))
        floor, previous = len(order), None
        for op in tail:
            reported = lengths[op.op_id]
            if reported <= floor:
                other = order[reported - 1] if 0 < reported <= len(order) else previous
                why = f"op {op.op_id} reports length {reported}, taken by op {_id(other)}"
                return "anomaly", _length_case(self.sid, op, other, floor + 1, reported, why, order)
            floor, previous = reported, op
        gaps = floor - len(order) - len(tail)
        if gaps > len(spare):
            most = len(order) + len(tail) + len(spare)
            why = f"op {tail[-1].op_id} reports length {floor}; at most {most} appends happened"
            return "anomaly", _length_case(self.sid, tail[-1], longest, most, floor, why, order)
        fillers = iter(sorted(spare, key=lambda op: (op.invoke_ns, op.op_id)))
        filled: list[Op] = []
        position = len(order)
        for op in tail:
            position += 1
            while position < lengths[op.op_id]:
                filled.append(next(fillers))
                position += 1
            filled.append(op)
        return filled

    def _sequence(self, order: list[Op], tail: list[Op]) -> list[Op]:
        """The candidate total order: reads by length between the observes they separate."""
        reads = sorted(self.reads, key=lambda op: (self.length[op.op_id], op.invoke_ns, op.op_id))
        sequence: list[Op] = []
        at = 0
        for position in range(len(order) + 1):
            while at < len(reads) and self.length[reads[at].op_id] == position:
                sequence.append(reads[at])
                at += 1
            if position < len(order):
                sequence.append(order[position])
        sequence.extend(tail)
        return sequence

    def _real_time(self, sequence: list[Op]) -> _Found | None:
        """The first op that completed before an op placed earlier was invoked."""
        latest: Op | None = None
        for at, op in enumerate(sequence):
            if latest is not None and effect_end(op) < latest.invoke_ns:
                return "anomaly", self._order_case(op, latest, sequence[:at])
            if latest is None or op.invoke_ns > latest.invoke_ns:
                latest = op
        return None

    def _order_case(self, op: Op, earlier: Op, prefix: Sequence[Op]) -> Case:
        """Why ``op`` cannot follow ``earlier`` though the STM says it must."""
        mine, theirs = self._shown(op), self._shown(earlier)
        expected: Any
        seen: Any
        if op.f == "observe" and earlier.f == "observe":
            kind, expected, seen = "reordered", [mine, theirs], [theirs, mine]
            why = (
                f"op {op.op_id} {mine} completed before op {earlier.op_id} {theirs} was "
                f"invoked, but the STM puts {theirs} first"
            )
        elif op.f == "observe":
            kind, expected, seen = "stale-read", mine, f"absent from read {earlier.op_id}"
            why = (
                f"op {op.op_id} {mine} completed before read {earlier.op_id} was invoked, "
                f"but the read misses it"
            )
        elif earlier.f == "observe":
            kind, expected, seen = "future-read", f"absent from read {op.op_id}", theirs
            why = (
                f"read {op.op_id} completed before op {earlier.op_id} {theirs} was invoked, "
                f"but shows it"
            )
        else:
            kind = "non-monotonic-read"
            expected = f">= {self.length[op.op_id]} events"
            seen = self.length[earlier.op_id]
            why = (
                f"read {op.op_id} ({self.length[op.op_id]} events) completed before read "
                f"{earlier.op_id} was invoked, which shows only {self.length[earlier.op_id]}"
            )
        return {
            "kind": kind,
            "op": op.op_id,
            "session_id": self.sid,
            "conflicts_with": earlier.op_id,
            "expected": expected,
            "seen": seen,
            "why": why,
            **_prefix(prefix),
        }

    def _shown(self, op: Op) -> list[str]:
        return list(self.events.get(op.op_id, ())) if op.f == "observe" else []


def _done(op: Op) -> int:
    return op.complete_ns if op.complete_ns is not None else FOREVER


def _reported_lengths(observes: list[Op]) -> dict[int, int] | None:
    """``stm_length`` of every ok observe that appended something, or ``None`` if one lacks it."""
    lengths: dict[int, int] = {}
    for op in observes:
        if op.outcome != "ok" or not op.args.get("strings"):
            continue
        reported = op.value.get("stm_length")
        if not isinstance(reported, int):
            return None
        lengths[op.op_id] = reported
    return lengths


def _length_case(
    sid: str,
    op: Op,
    other: Op | None,
    expected: int,
    seen: int,
    why: str,
    prefix: Sequence[Op],
) -> Case:
    return {
        "kind": "stm-length",
        "op": op.op_id,
        "session_id": sid,
        "conflicts_with": _id(other),
        "expected": expected,
        "seen": seen,
        "why": why,
        **_prefix(prefix),
    }


def _prefix(prefix: Sequence[Op]) -> dict[str, Any]:
    return {
        "linearized": len(prefix),
        "linearized_tail": [op.op_id for op in prefix[-_TAIL:]],
    }


def _undecided(sid: str, reason: str, ops: Sequence[int | None]) -> Case:
    return {"kind": "undecided", "session_id": sid, "reason": reason, "ops": list(ops)}


def _id(op: Op | None) -> int | None:
    return None if op is None else op.op_id
