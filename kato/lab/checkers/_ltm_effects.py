"""LTM effects exactly once: every learn that happened is counted in the LTM once (R11).

At the end of a run each pattern's frequency in the node's long-term memory must equal the
number of learns of it that happened — explicit learns and observes that auto-learned — nothing
lost (an acknowledged learn missing) and nothing counted twice (sessions.md guarantee 3)::

    c1 observe s1 a, b, c ok
    c1 learn s1 → 503        unknown: the LTM was locked when the learn's effects were applied
    c1 read_stm s1 → [] ok   the learn's session write happened: its effects must count
    final get_pattern abc 0  lost: the learn took effect in the session, never in the LTM

What happened: ok learns (by their ``pattern_name``) and ok observes with an
``auto_learned_pattern``; also an *unknown* learn whose session shows that it took effect — the
next op on its session, by the same client, is an ok ``read_stm`` of an empty STM, the ops on
that session since the previous learn being ok observes of that client, or reads (so the learn
of exactly those events emptied it). Such a learn's pattern is the one those events make. An
unknown learn whose next read still shows those events certainly did not happen; any other
unknown learn may have happened, once, with any pattern of its node. Only the last
``get_pattern`` of a pattern, invoked after every other op of the run, is judged (the run's
end); one that failed ``NOT_FOUND`` read a frequency of 0.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from kato.engine import pattern_name
from kato.lab.checkers._index import HistoryIndex, SessionOps, as_index, pattern_key, stm_of
from kato.lab.checkers._verdict import Case, Verdict, verdict
from kato.lab.history import Op

__all__ = ["ltm_effects", "ltm_effects_cases"]

Key = tuple[str | None, str]  # (node, bare pattern name)


@dataclass(slots=True)
class _Happened:
    """Per pattern, the learns that happened (op ids); per node, those that may have."""

    acknowledged: dict[Key, list[int]] = field(default_factory=dict)
    inferred: dict[Key, list[int]] = field(default_factory=dict)
    maybe: dict[str | None, int] = field(default_factory=dict)

    def low(self, key: Key) -> int:
        return len(self.acknowledged.get(key, ())) + len(self.inferred.get(key, ()))

    def high(self, key: Key) -> int:
        return self.low(key) + self.maybe.get(key[0], 0) + self.maybe.get(None, 0)


def _learns(index: HistoryIndex) -> _Happened:
    happened = _Happened()
    for session in index.sessions.values():
        node = session.node_id
        for position, op in enumerate(session.ops):
            if op.f == "observe" and op.outcome == "ok":
                name = op.value.get("auto_learned_pattern")
                if isinstance(name, str) and name:
                    key = (node, pattern_key(name))
                    happened.acknowledged.setdefault(key, []).append(op.op_id)
            if op.f != "learn" or op.outcome == "fail":
                continue
            learn_node = op.args.get("node_id") if isinstance(op.args.get("node_id"), str) else node
            if op.outcome == "ok":
                name = op.value.get("pattern_name")
                if isinstance(name, str) and name:
                    key = (learn_node, pattern_key(name))
                    happened.acknowledged.setdefault(key, []).append(op.op_id)
                continue
            decided = _decide(session, position)
            if decided is None:
                happened.maybe[learn_node] = happened.maybe.get(learn_node, 0) + 1
            elif decided:
                happened.inferred.setdefault((learn_node, decided), []).append(op.op_id)
    return happened


def _decide(session: SessionOps, position: int) -> str | None:
    """For the unknown learn at ``session.ops[position]``: the bare name of the pattern it
    certainly learned, ``""`` if it certainly did not happen, ``None`` if undecided."""
    learn = session.ops[position]
    events: list[list[str]] = []
    for op in reversed(session.ops[:position]):
        if op.f == "learn" or op.f == "create":
            break
        if op.f == "read_stm":
            continue  # a read changes nothing
        if op.f != "observe" or op.outcome != "ok" or op.client != learn.client:
            return None
        strings = sorted(op.args.get("strings") or ())
        if strings:
            events.insert(0, strings)
    later = session.ops[position + 1 : position + 2]
    if not events or not later:
        return None
    read = later[0]
    if read.f != "read_stm" or read.outcome != "ok" or read.client != learn.client:
        return None
    stm = [sorted(event) for event in stm_of(read)]
    if stm == []:
        return pattern_key(pattern_name(events))
    return "" if stm == events else None


def ltm_effects_cases(history: Iterable[Op]) -> list[Case]:
    """Every pattern whose frequency at the end is not the number of its learns that happened.

    Each case: ``{"kind": "lost" | "counted_twice", "op" (the get_pattern), "node_id",
    "pattern_name", "expected": [low, high], "seen", "learns": [acknowledged op ids, a few],
    "inferred": [unknown learns shown to have happened, a few]}``.
    """
    index = as_index(history)
    happened = _learns(index)
    cases: list[Case] = []
    for op in _final_reads(index):
        node, name = op.args.get("node_id"), str(op.args["pattern_name"])
        key = (node if isinstance(node, str) else None, pattern_key(name))
        seen = op.value["frequency"] if op.outcome == "ok" else 0  # NOT_FOUND: never learned
        low, high = happened.low(key), happened.high(key)
        if low <= seen <= high:
            continue
        cases.append(
            {
                "kind": "lost" if seen < low else "counted_twice",
                "op": op.op_id,
                "node_id": key[0],
                "pattern_name": name,
                "expected": [low, high],
                "seen": seen,
                "learns": happened.acknowledged.get(key, [])[:5],
                "inferred": happened.inferred.get(key, [])[:5],
            }
        )
    return cases


def _final_reads(index: HistoryIndex) -> list[Op]:
    """Per pattern, its last ``get_pattern`` if it was invoked after every other op and found
    it (ok) or found it missing (``NOT_FOUND``: frequency 0)."""
    last_other = max(
        (op.invoke_ns for op in index if op.f not in ("get_pattern", "fault")), default=0
    )
    final: dict[tuple[object, object], Op] = {}
    for op in index.get_patterns:
        answered = op.outcome == "ok" or op.error_code == "NOT_FOUND"
        if answered and op.invoke_ns > last_other and "pattern_name" in op.args:
            final[(op.args.get("node_id"), op.args["pattern_name"])] = op
    return list(final.values())


def ltm_effects(history: Iterable[Op]) -> Verdict:
    """Checker: each pattern's final frequency counts its learns exactly once.

    Counts: ``patterns`` (judged), ``acknowledged`` (ok learns and auto-learns), ``inferred``
    (unknown learns shown to have happened), ``maybe`` (unknown learns undecided), ``lost`` and
    ``counted_twice`` (patterns), ``lost_learns`` (learns missing from those patterns).
    """
    index = as_index(history)
    happened = _learns(index)
    cases = ltm_effects_cases(index)
    return verdict(
        "ltm_effects",
        cases,
        counts={
            "patterns": len(_final_reads(index)),
            "acknowledged": sum(len(ids) for ids in happened.acknowledged.values()),
            "inferred": sum(len(ids) for ids in happened.inferred.values()),
            "maybe": sum(happened.maybe.values()),
            "lost": sum(1 for case in cases if case["kind"] == "lost"),
            "counted_twice": sum(1 for case in cases if case["kind"] == "counted_twice"),
            "lost_learns": sum(
                case["expected"][0] - case["seen"] for case in cases if case["kind"] == "lost"
            ),
        },
    )
