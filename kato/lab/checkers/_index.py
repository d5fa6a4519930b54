"""One pass over a history, grouping what the checkers read: ops per session, counts, learns.

Every checker accepts any iterable of :class:`~kato.lab.history.Op`; :func:`as_index` builds a
:class:`HistoryIndex` from it, or returns it unchanged when it already is one, so a composed
check indexes the history once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from kato.lab.history import Op

__all__ = [
    "FOREVER",
    "STM_CLEARING",
    "HistoryIndex",
    "SessionOps",
    "as_index",
    "canonical",
    "effect_end",
    "pattern_key",
    "stm_of",
]

#: A time later than any op: the "completion" of an op that may still take effect.
FOREVER = 1 << 62

#: Operations that empty a session's STM when they happen.
STM_CLEARING = frozenset({"learn", "clear_stm", "clear_all"})

_NOT_SESSION_SCOPED = frozenset({"count", "get_pattern", "fault"})


def canonical(strings: Iterable[str]) -> tuple[str, ...]:
    """An event as the checkers compare it: its symbols sorted (KATO sorts them by default)."""
    return tuple(sorted(strings))


def effect_end(op: Op) -> int:
    """The latest time ``op`` can take effect: its completion, or never-ending if unknown."""
    if op.outcome == "unknown" or op.complete_ns is None:
        return FOREVER
    return op.complete_ns


def stm_of(op: Op) -> list[Any]:
    """The STM returned by an ok ``read_stm``: a list of events, each a list of symbols."""
    stm = op.value["stm"]
    if not isinstance(stm, list):
        raise TypeError(f"op {op.op_id}: read_stm value 'stm' is {type(stm).__name__}, not list")
    return stm


def pattern_key(name: str) -> str:
    """A pattern name without KATO's ``PTRN|`` prefix, so both spellings compare equal."""
    return name.removeprefix("PTRN|")


@dataclass(slots=True)
class SessionOps:
    """Every op naming one session, split by role (each list in history order)."""

    session_id: str
    ops: list[Op] = field(default_factory=list)
    creates: list[Op] = field(default_factory=list)
    observes: list[Op] = field(default_factory=list)
    reads: list[Op] = field(default_factory=list)
    deletes: list[Op] = field(default_factory=list)
    clears: list[Op] = field(default_factory=list)
    sent: set[str] = field(default_factory=set)

    def ttl_ns(self, default_ttl_seconds: float | None) -> int | None:
        """The session's TTL from its create's ``args.ttl_seconds`` (else the default)."""
        for create in self.creates:
            ttl = create.args.get("ttl_seconds")
            if isinstance(ttl, int | float):
                return int(ttl * 1_000_000_000)
        if default_ttl_seconds is None:
            return None
        return int(default_ttl_seconds * 1_000_000_000)

    @property
    def node_id(self) -> str | None:
        """The node the session was created on (its create's ``args.node_id``)."""
        for create in self.creates:
            node = create.args.get("node_id")
            if isinstance(node, str):
                return node
        return None


class HistoryIndex:
    """A history grouped for the checkers; iterating it yields the ops in history order.

    - ``sessions``: session id → :class:`SessionOps` (a create's session id is taken from
      ``op.session_id`` or else ``value.session_id``);
    - ``anonymous_creates``: creates that name no session (an unknown create got no reply);
    - ``counts``, ``learns``, ``get_patterns``: ops of those kinds, every outcome;
    - ``events``: observe op id → its event, canonical (symbols sorted; empty = appends nothing);
    - ``all_sent``: every symbol sent to any session, in any outcome.
    """

    def __init__(self, ops: Iterable[Op]) -> None:
        self.ops: list[Op] = list(ops)
        self.sessions: dict[str, SessionOps] = {}
        self.anonymous_creates: list[Op] = []
        self.counts: list[Op] = []
        self.learns: list[Op] = []
        self.get_patterns: list[Op] = []
        self.events: dict[int, tuple[str, ...]] = {}
        self.all_sent: set[str] = set()
        for op in self.ops:
            self._add(op)

    def __iter__(self) -> Iterator[Op]:
        return iter(self.ops)

    def __len__(self) -> int:
        return len(self.ops)

    def _add(self, op: Op) -> None:
        f = op.f
        if f == "count":
            self.counts.append(op)
            return
        if f == "get_pattern":
            self.get_patterns.append(op)
            return
        if f in _NOT_SESSION_SCOPED:
            return
        if f == "learn":
            self.learns.append(op)
        sid = op.session_id
        if sid is None and f == "create":
            named = op.value.get("session_id")
            sid = named if isinstance(named, str) else None
        if sid is None:
            if f == "create":
                self.anonymous_creates.append(op)
            return
        session = self.sessions.get(sid)
        if session is None:
            session = self.sessions[sid] = SessionOps(sid)
        session.ops.append(op)
        if f == "observe":
            event = canonical(op.args.get("strings") or ())
            self.events[op.op_id] = event
            session.observes.append(op)
            session.sent.update(event)
            self.all_sent.update(event)
        elif f == "read_stm":
            if op.outcome == "ok":
                session.reads.append(op)
        elif f == "create":
            session.creates.append(op)
        elif f == "delete":
            session.deletes.append(op)
        elif f in STM_CLEARING:
            session.clears.append(op)


def as_index(history: Iterable[Op]) -> HistoryIndex:
    """``history`` indexed for the checkers (returned as is if it already is an index)."""
    return history if isinstance(history, HistoryIndex) else HistoryIndex(history)
