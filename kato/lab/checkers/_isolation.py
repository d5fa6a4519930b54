"""Isolation: no session ever shows a symbol that was only sent to other sessions (R7).

The anomaly (``kind: "foreign-symbol"``)::

    c1 observe s1 a ok     a is sent to s1 only
    c2 observe s2 b ok
    c2 read s2 [a b] ok    s2 shows a

Symbols sent to the session itself (in any outcome) are fine; a symbol sent nowhere is the
``no_lost_updates`` checker's "unexpected" and the linearizability checker's business. One case
per (session, foreign symbol), witnessed by the first read (by invocation) that showed it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kato.lab.checkers._index import HistoryIndex, SessionOps, as_index, stm_of
from kato.lab.checkers._verdict import Case, Verdict, verdict
from kato.lab.history import Op

__all__ = ["isolation", "isolation_cases"]

_MAX_NAMED = 5


def isolation_cases(history: Iterable[Op]) -> list[Case]:
    """Every (session, symbol) where a read of the session shows a symbol sent only elsewhere.

    Each case: ``{"kind": "foreign-symbol", "op": first read showing it, "session_id", "seen":
    symbol, "expected": "only symbols sent to the session", "sent_to": [sessions],
    "writers": [observe op ids]}``.
    """
    index = as_index(history)
    found: list[tuple[str, str, Op]] = []
    for sid, session in index.sessions.items():
        if session.reads:
            found.extend(
                (sid, symbol, read) for symbol, read in _first_shown(session, index).items()
            )
    senders = _senders({symbol for _, symbol, _ in found}, index)
    cases: list[Case] = [
        {
            "kind": "foreign-symbol",
            "op": read.op_id,
            "session_id": sid,
            "expected": "only symbols sent to the session",
            "seen": symbol,
            "sent_to": sorted(senders[symbol][0])[:_MAX_NAMED],
            "writers": sorted(senders[symbol][1])[:_MAX_NAMED],
        }
        for sid, symbol, read in found
    ]
    cases.sort(key=lambda case: (case["op"], case["seen"]))
    return cases


def isolation(history: Iterable[Op]) -> Verdict:
    """Checker: no read shows another session's symbol. Counts: ``reads``, ``foreign``."""
    index = as_index(history)
    cases = isolation_cases(index)
    reads = sum(len(session.reads) for session in index.sessions.values())
    return verdict("isolation", cases, counts={"reads": reads, "foreign": len(cases)})


def _first_shown(session: SessionOps, index: HistoryIndex) -> dict[str, Op]:
    """Each foreign symbol the session's reads show, with the first read (by invocation) showing
    it. Reads that are prefixes of the longest one are judged through it (compared in C)."""
    longest = max(session.reads, key=lambda op: len(stm_of(op)))
    master = stm_of(longest)
    master_foreign = _foreign(master, session.sent, index.all_sent)
    first: dict[str, Op] = {}
    for read in sorted(session.reads, key=lambda op: (op.invoke_ns, op.op_id)):
        stm = stm_of(read)
        if stm == master[: len(stm)]:
            shown = [symbol for position, symbol in master_foreign if position < len(stm)]
        else:
            shown = [symbol for _, symbol in _foreign(stm, session.sent, index.all_sent)]
        for symbol in shown:
            first.setdefault(symbol, read)
    return first


def _foreign(stm: list[Any], own: set[str], everywhere: set[str]) -> list[tuple[int, str]]:
    """``(position, symbol)`` of each symbol of ``stm`` sent elsewhere but never to ``own``."""
    return [
        (position, symbol)
        for position, event in enumerate(stm)
        for symbol in event
        if symbol not in own and symbol in everywhere
    ]


def _senders(symbols: set[str], index: HistoryIndex) -> dict[str, tuple[set[str], list[int]]]:
    """For each symbol, the sessions it was sent to and the observes that sent it."""
    senders: dict[str, tuple[set[str], list[int]]] = {symbol: (set(), []) for symbol in symbols}
    if not symbols:
        return senders
    for sid, session in index.sessions.items():
        for op in session.observes:
            for symbol in symbols.intersection(index.events[op.op_id]):
                senders[symbol][0].add(sid)
                senders[symbol][1].append(op.op_id)
    return senders
