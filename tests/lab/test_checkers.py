"""Each checker, fed small hand-built histories: a valid one passes, and one with exactly the
anomaly fails naming the exact offending ops.

Histories are written in a tiny language (in the spirit of Elle's ``"rx1ax2"``), one op per
clause, op ids counting from 1::

    build("c1 observe s1 a ok @0-10; c2 observe s1 b ok @5-15; c1 read s1 [b] ok @20-30")

A clause is ``client f [operands] outcome [@invoke-complete]``: ``create SID [ttl=S] [node=N]``,
``observe SID a,b [len=K]``, ``read SID [a b,c]`` (events split by spaces, symbols by commas),
``delete SID``, ``learn SID NAME [node=N]``, ``clear SID``, ``get NODE NAME FREQ``, ``count N``.
Outcomes: ``ok``, ``unknown``, ``fail`` (SESSION_NOT_FOUND) or ``fail:CODE``. Times are ns, or
take an ``s``/``ms`` suffix; without ``@`` op *i* runs over ``[10 i, 10 i + 5]``; ``@T-`` means
no completion time.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from kato.engine import pattern_name
from kato.lab.checkers import (
    ALL,
    Verdict,
    check,
    compose,
    count_cases,
    counts,
    faults,
    frequency_cases,
    isolation,
    isolation_cases,
    linearizable_stm,
    lost_update_cases,
    ltm_effects,
    ltm_effects_cases,
    merge_valid,
    no_lost_updates,
    nonlinearizable_cases,
    read_your_writes,
    resurrection,
    resurrection_cases,
    stale_read_cases,
    unexpected_cases,
)
from kato.lab.history import History, Op

_F = {"read": "read_stm", "get": "get_pattern", "clear": "clear_stm"}
_UNITS = {"s": 1_000_000_000, "ms": 1_000_000, "": 1}


def _ns(text: str) -> int:
    match = re.fullmatch(r"([0-9.]+)(s|ms|)", text)
    assert match, f"bad time {text!r}"
    return round(float(match.group(1)) * _UNITS[match.group(2)])


def _clause(op_id: int, text: str) -> Op:
    times = None
    if "@" in text:
        text, times = (part.strip() for part in text.split("@"))
    bracket = re.search(r"\[(.*?)\]", text)
    stm = None
    if bracket:
        stm = [event.split(",") for event in bracket.group(1).split()]
        text = text[: bracket.start()] + text[bracket.end() :]
    words = text.split()
    client, f, *operands, outcome = words
    f = _F.get(f, f)
    options = dict(word.split("=") for word in operands if "=" in word)
    operands = [word for word in operands if "=" not in word]
    op = Op(op_id=op_id, client=client, f=f, invoke_ns=10 * op_id, complete_ns=10 * op_id + 5)
    op.outcome, _, code = outcome.partition(":")  # type: ignore[assignment]
    assert op.outcome in ("ok", "fail", "unknown"), outcome
    if op.outcome == "fail":
        op.error_code = code or "SESSION_NOT_FOUND"
    ok = op.outcome == "ok"
    if times is not None:
        start, _, end = times.partition("-")
        op.invoke_ns, op.complete_ns = _ns(start), (_ns(end) if end else None)
    if f == "count":
        op.value = {"count": int(operands[0])} if ok else {}
        return op
    if f == "get_pattern":
        node, name, frequency = operands
        op.args = {"node_id": node, "pattern_name": name}
        op.value = {"frequency": int(frequency)} if ok else {}
        return op
    sid, *rest = operands
    op.session_id = sid
    if f == "create":
        op.args = {"node_id": options.get("node", "n1")}
        if "ttl" in options:
            op.args["ttl_seconds"] = float(options["ttl"])
        if ok:
            op.value = {"session_id": sid}
        else:
            op.session_id = None
    elif f == "observe":
        op.args = {"strings": rest[0].split(",")}
        if ok and "len" in options:
            op.value = {"stm_length": int(options["len"])}
    elif f == "read_stm" and ok:
        op.value = {"stm": stm if stm is not None else []}
    elif f == "learn":
        if "node" in options:
            op.args = {"node_id": options["node"]}
        if ok:
            op.value = {"pattern_name": rest[0]}
    return op


def build(text: str) -> History:
    """A history from clauses separated by ``;`` or new lines (see the module docstring)."""
    clauses = [part.strip() for part in re.split(r"[;\n]", text) if part.strip()]
    return History(_clause(n, clause) for n, clause in enumerate(clauses, 1))


def ops_of(cases: list[dict[str, Any]]) -> list[int]:
    return [case["op"] for case in cases]


def test_builder_reads_the_language() -> None:
    h = build("c1 create s1 ttl=5 ok; c2 observe s1 a,b len=1 ok @1s-2ms; c3 read s1 [a,b c] ok")
    create, observe, read = h
    assert create.args == {"node_id": "n1", "ttl_seconds": 5.0}
    assert create.value == {"session_id": "s1"}
    assert (observe.op_id, observe.args, observe.value) == (
        2,
        {"strings": ["a", "b"]},
        {"stm_length": 1},
    )
    assert (observe.invoke_ns, observe.complete_ns) == (1_000_000_000, 2_000_000)
    assert read.value == {"stm": [["a", "b"], ["c"]]}
    assert (read.invoke_ns, read.complete_ns) == (30, 35)


# -- read-your-writes ---------------------------------------------------------------------------


def test_read_your_writes_valid_with_delete() -> None:
    h = build(
        "c1 create s1 ok; c1 observe s1 a ok; c2 read s1 [a] ok; c1 delete s1 ok; c2 read s1 fail"
    )
    result = read_your_writes(h)
    assert result.valid is True
    assert result.counts["deleted"] == 1


def test_stale_read_names_the_failed_op_its_create_and_last_access() -> None:
    h = build("c1 create s1 ok; c1 observe s1 a ok; c2 read s1 fail")
    assert stale_read_cases(h) == [
        {
            "kind": "not-found",
            "op": 3,
            "f": "read_stm",
            "session_id": "s1",
            "created_by": 1,
            "last_access": 2,
            "expected": "session exists",
            "seen": "SESSION_NOT_FOUND",
        }
    ]
    assert read_your_writes(h).valid is False


def test_not_found_before_the_create_completed_is_fine() -> None:
    h = build("c1 create s1 ok @0-20; c2 read s1 fail @5-10")
    result = read_your_writes(h)
    assert (result.valid, result.counts["before_create"]) == (True, 1)


def test_not_found_after_a_delete_of_unknown_outcome_is_fine() -> None:
    h = build("c1 create s1 ok; c2 delete s1 unknown @25-100; c3 observe s1 a fail @30-40")
    assert stale_read_cases(h) == []


def test_not_found_after_the_ttl_ran_out_is_fine() -> None:
    h = build("c1 create s1 ttl=1 ok @0-1ms; c2 read s1 fail @2s-2.001s")
    result = read_your_writes(h)
    assert (result.valid, result.counts["expired"]) == (True, 1)


def test_every_access_extends_the_ttl() -> None:
    text = (
        "c1 create s1 ttl=1 ok @0-1ms; c1 observe s1 a ok @0.9s-0.901s;c2 read s1 fail @1.5s-1.501s"
    )
    assert ops_of(stale_read_cases(build(text))) == [3]
    assert stale_read_cases(build(text), sliding=False) == []  # SESSION_AUTO_EXTEND=false
    unknown = text.replace("a ok @0.9s", "a unknown @0.9s")  # may not have happened
    assert stale_read_cases(build(unknown)) == []


def test_default_ttl_applies_to_sessions_created_without_one() -> None:
    h = build("c1 create s1 ok @0-1ms; c2 read s1 fail @5s-5.001s")
    assert ops_of(stale_read_cases(h)) == [2]
    assert stale_read_cases(h, default_ttl_seconds=1) == []


# -- no lost updates ----------------------------------------------------------------------------


def test_no_lost_updates_valid() -> None:
    h = build("c1 create s1 ok; c1 observe s1 a ok; c2 observe s1 b ok; c1 read s1 [a b] ok")
    result = no_lost_updates(h)
    assert result.valid is True
    assert result.counts == {
        "acknowledged": 2,
        "lost": 0,
        "unexpected": 0,
        "recovered": 0,
        "never_read_sessions": 0,
        "trimmed_sessions": 0,
    }


def test_lost_update_in_three_lines() -> None:
    h = build("c1 observe s1 a ok @0-10; c2 observe s1 b ok @5-15; c1 read s1 [b] ok @20-30")
    assert lost_update_cases(h) == [
        {
            "kind": "lost",
            "op": 1,
            "session_id": "s1",
            "final_read": 3,
            "expected": ["a"],
            "seen": [],
        }
    ]
    result = no_lost_updates(h)
    assert (result.valid, result.anomalies, result.counts["lost"]) == (False, 1, 1)


def test_unexpected_symbol_in_the_final_read() -> None:
    h = build("c1 observe s1 a ok; c2 observe s1 b fail:INVALID; c1 read s1 [a b z] ok")
    assert unexpected_cases(h) == [
        {
            "kind": "unexpected",
            "op": 3,
            "session_id": "s1",
            "expected": "a symbol sent to the session",
            "seen": "z",
        }
    ]  # b was sent (its observe failed): not unexpected, only z is


def test_unknown_observes_present_are_recovered() -> None:
    h = build(
        "c1 observe s1 a ok; c2 observe s1 b unknown; c3 observe s1 c unknown; c1 read s1 [a b] ok"
    )
    result = no_lost_updates(h)
    assert (result.valid, result.counts["recovered"]) == (True, 1)


def test_never_read_is_unknown() -> None:
    h = build("c1 observe s1 a ok @0-10; c2 read s1 [] ok @5-8")  # the read began too early
    result = no_lost_updates(h)
    assert result.valid == "unknown"
    assert result.counts["never_read_sessions"] == 1
    assert result.examples[0]["kind"] == "never-read"
    assert result.examples[0]["ops"] == [1]


def test_a_session_deleted_on_purpose_needs_no_final_read() -> None:
    h = build("c1 create s1 ok; c1 observe s1 a ok; c1 delete s1 ok")
    assert no_lost_updates(h).valid is True
    unsure = build("c1 create s1 ok; c1 observe s1 a ok; c1 delete s1 unknown")
    assert no_lost_updates(unsure).valid == "unknown", "an unknown delete decides nothing"


def test_observes_before_a_learn_may_be_gone() -> None:
    h = build("c1 observe s1 a ok; c1 learn s1 P ok; c1 observe s1 b ok; c1 read s1 [b] ok")
    result = no_lost_updates(h)
    assert (result.valid, result.counts["acknowledged"]) == (True, 1)


def test_a_full_stm_may_have_been_trimmed() -> None:
    h = build("c1 observe s1 a ok; c1 observe s1 b ok; c1 observe s1 c ok; c1 read s1 [b c] ok")
    assert ops_of(lost_update_cases(h)) == [1]
    result = no_lost_updates(h, stm_max_events=2)
    assert (result.valid, result.counts["trimmed_sessions"]) == ("unknown", 1)


# -- linearizability of STM ---------------------------------------------------------------------


def test_concurrent_appends_in_either_order_are_linearizable() -> None:
    h = build("c1 observe s1 a ok @0-30; c2 observe s1 b ok @10-20; c3 read s1 [b a] ok @40-50")
    assert linearizable_stm(h).valid is True
    h = build("c1 observe s1 a ok @0-30; c2 observe s1 b ok @10-20; c3 read s1 [a b] ok @40-50")
    assert linearizable_stm(h).valid is True


def test_reordered_appends() -> None:
    h = build("c1 observe s1 a ok @0-10; c2 observe s1 b ok @20-30; c3 read s1 [b a] ok @40-50")
    (case,) = nonlinearizable_cases(h)
    assert case["kind"] == "reordered"
    assert (case["op"], case["conflicts_with"]) == (1, 2)  # a cannot follow b: it was done first
    assert (case["linearized"], case["linearized_tail"]) == (1, [2])
    assert case["expected"] == [["a"], ["b"]] and case["seen"] == [["b"], ["a"]]


def test_stale_read_misses_a_completed_append() -> None:
    h = build("c1 observe s1 a ok @0-10; c2 read s1 [] ok @20-30")
    (case,) = nonlinearizable_cases(h)
    assert (case["kind"], case["op"], case["conflicts_with"]) == ("stale-read", 1, 2)


def test_future_read_shows_an_append_not_yet_invoked() -> None:
    h = build("c2 read s1 [a] ok @0-10; c1 observe s1 a ok @20-30")
    (case,) = nonlinearizable_cases(h)
    assert (case["kind"], case["op"], case["conflicts_with"]) == ("future-read", 1, 2)


def test_reads_going_backwards() -> None:
    h = build("c1 observe s1 a ok @0-100; c2 read s1 [a] ok @10-20; c3 read s1 [] ok @30-40")
    (case,) = nonlinearizable_cases(h)
    assert (case["kind"], case["op"], case["conflicts_with"]) == ("non-monotonic-read", 2, 3)


def test_two_appends_at_the_same_position_is_a_lost_update() -> None:
    h = build("c1 observe s1 a len=1 ok @0-10; c2 observe s1 b len=1 ok @0-10")
    (case,) = nonlinearizable_cases(h)
    assert (case["kind"], case["op"], case["conflicts_with"], case["seen"]) == (
        "stm-length",
        2,
        1,
        1,
    )
    assert linearizable_stm(h, use_stm_length=False).valid is True


def test_reported_length_must_match_the_read() -> None:
    h = build("c1 observe s1 a len=2 ok @0-10; c2 read s1 [a] ok @20-30")
    (case,) = nonlinearizable_cases(h)
    assert (case["kind"], case["op"], case["expected"], case["seen"]) == ("stm-length", 1, 1, 2)


def test_events_no_observe_sent_or_sent_once_but_shown_twice() -> None:
    h = build("c1 observe s1 a ok; c2 observe s1 x fail:INVALID; c3 read s1 [a x] ok")
    (case,) = nonlinearizable_cases(h)
    assert (case["kind"], case["op"], case["conflicts_with"], case["seen"]) == (
        "unsent-event",
        3,
        2,
        ["x"],
    )
    h = build("c1 observe s1 a ok; c3 read s1 [a a] ok")
    (case,) = nonlinearizable_cases(h)
    assert (case["kind"], case["op"], case["conflicts_with"], case["position"]) == (
        "duplicate-event",
        2,
        1,
        2,
    )


def test_reads_that_disagree() -> None:
    h = build(
        "c1 observe s1 a ok @0-30; c2 observe s1 b ok @0-30; c3 read s1 [a b] ok @40-50;"
        "c4 read s1 [b] ok @40-50"
    )
    (case,) = nonlinearizable_cases(h)
    assert (case["kind"], case["op"], case["conflicts_with"], case["position"]) == (
        "divergent-read",
        4,
        3,
        1,
    )


def test_unknown_appends_may_happen_late_or_never() -> None:
    h = build(
        "c1 observe s1 a unknown @0-10; c2 observe s1 b ok @20-30; c3 read s1 [b] ok @40-50;"
        "c3 read s1 [b a] ok @60-70; c4 observe s1 c unknown @0-"
    )
    assert linearizable_stm(h).valid is True


def test_symbols_within_an_event_compare_sorted() -> None:
    h = build("c1 observe s1 b,a ok; c2 read s1 [a,b] ok")
    assert linearizable_stm(h).valid is True


def test_learn_alone_starts_a_new_epoch() -> None:
    h = build(
        "c1 observe s1 a len=1 ok; c1 read s1 [a] ok; c1 learn s1 P ok; c1 observe s1 b len=1 ok;"
        "c1 read s1 [b] ok"
    )
    assert linearizable_stm(h).valid is True
    h = build("c1 observe s1 a ok; c1 learn s1 P ok; c1 read s1 [a] ok")
    assert ops_of(nonlinearizable_cases(h)) == [3]  # the learn emptied the STM


@pytest.mark.parametrize(
    ("text", "reason", "ops"),
    [
        (
            "c1 observe s1 a ok @0-10; c2 learn s1 P ok @5-15; c3 read s1 [] ok @20-30",
            "learn concurrent with observe",
            [2, 1],
        ),
        (
            "c1 observe s1 a ok; c2 learn s1 P unknown; c3 read s1 [] ok",
            "learn of unknown outcome",
            [2],
        ),
        (
            "c1 observe s1 a ok; c2 observe s1 a ok; c3 read s1 [a a] ok",
            "event ['a'] sent twice",
            [1, 2],
        ),
    ],
)
def test_undecided_sessions_make_the_verdict_unknown(
    text: str, reason: str, ops: list[int]
) -> None:
    result = linearizable_stm(build(text))
    assert result.valid == "unknown"
    assert result.examples == [
        {"kind": "undecided", "session_id": "s1", "reason": reason, "ops": ops}
    ]


def test_positions_no_read_shows_are_filled_by_unknown_appends() -> None:
    h = build("c1 observe s1 a unknown @0-; c2 observe s1 b len=2 ok @5-10")
    assert linearizable_stm(h).valid is True  # a took position 1
    h = build("c1 observe s1 a unknown @20-; c2 observe s1 b len=2 ok @5-10")
    (case,) = nonlinearizable_cases(h)  # a was invoked too late to take position 1
    assert (case["kind"], case["op"], case["conflicts_with"]) == ("reordered", 2, 1)
    h = build("c2 observe s1 b len=2 ok @5-10")
    (case,) = nonlinearizable_cases(h)
    assert (case["kind"], case["op"], case["expected"], case["seen"]) == ("stm-length", 1, 1, 2)


# -- isolation ----------------------------------------------------------------------------------


def test_resurrection_valid_when_nothing_succeeds_after_the_delete() -> None:
    # the observe overlaps the delete (it may come first); the read after it is refused
    h = build(
        "c1 create s1 ok @0-5; c1 observe s1 a ok @10-40; c2 delete s1 ok @20-30;"
        "c2 read s1 [] fail @50-60; c3 delete s1 fail @70-80"
    )
    assert resurrection(h).valid is True


def test_resurrection_names_ops_that_succeed_after_a_completed_delete() -> None:
    h = build(
        "c1 create s1 ok @0-5; c1 observe s1 a ok @10-40; c2 delete s1 ok @20-30;"
        "c2 read s1 [a] ok @50-60; c3 delete s1 ok @70-80; c4 delete s2 unknown @0-5;"
        "c4 read s2 [] ok @10-20"
    )
    assert resurrection_cases(h) == [
        {
            "kind": "resurrected",
            "op": 4,
            "f": "read_stm",
            "session_id": "s1",
            "deleted_by": 3,
            "expected": "SESSION_NOT_FOUND",
            "seen": "ok, STM of 1 events",
        },
        {
            "kind": "resurrected",
            "op": 5,
            "f": "delete",
            "session_id": "s1",
            "deleted_by": 3,
            "expected": "SESSION_NOT_FOUND",
            "seen": "ok",
        },
    ]
    assert resurrection(h).counts == {"deleted": 1, "resurrected": 1}


def test_isolation_valid() -> None:
    h = build("c1 observe s1 a ok; c2 observe s2 b ok; c1 read s1 [a] ok; c2 read s2 [b] ok")
    assert isolation(h).valid is True


def test_isolation_breach_names_the_read_and_the_writer() -> None:
    h = build(
        "c1 observe s1 a ok; c2 observe s2 b ok; c2 read s2 [b] ok; c2 read s2 [a b] ok;"
        "c2 read s2 [a b] ok"
    )
    assert isolation_cases(h) == [
        {
            "kind": "foreign-symbol",
            "op": 4,
            "session_id": "s2",
            "expected": "only symbols sent to the session",
            "seen": "a",
            "sent_to": ["s1"],
            "writers": [1],
        }
    ]
    assert isolation(h).counts == {"reads": 3, "foreign": 1}


def test_a_symbol_sent_to_both_sessions_is_not_a_breach() -> None:
    h = build("c1 observe s1 a ok; c2 observe s2 a fail:INVALID; c2 read s2 [a] ok")
    assert isolation_cases(h) == []


# -- counts -------------------------------------------------------------------------------------


def test_counts_valid() -> None:
    h = build(
        "c1 create s1 ok; c2 create s2 ok; c3 count 2 ok; c1 delete s1 ok; c3 count 1 ok;"
        "c4 create s3 unknown; c3 count 2 ok; c3 count 1 ok"
    )
    result = counts(h)
    assert result.valid is True
    assert result.counts["counts"] == 4


def test_count_after_a_delete() -> None:
    h = build("c1 create s1 ok; c1 delete s1 ok; c2 count 1 ok")
    assert count_cases(h) == [{"kind": "count", "op": 3, "expected": [0, 0], "seen": 1}]


def test_count_bounds_during_a_create_and_a_delete() -> None:
    h = build(
        "c1 create s1 ok @0-10; c2 create s2 ok @20-40; c1 delete s1 unknown @25-35;"
        "c3 count 3 ok @30-32; c3 count 0 ok @30-32"
    )
    assert count_cases(h) == [
        {"kind": "count", "op": 4, "expected": [0, 2], "seen": 3},
    ]


def _with_baseline(text: str) -> list[Op]:
    """The history ``text`` whose first op (a count) is a url target's baseline count."""
    ops = list(build(text))
    ops[0].args["baseline"] = True
    return ops


def test_counts_on_a_store_holding_others_are_judged_from_the_baseline() -> None:
    ok = _with_baseline("c0 count 5 ok; c1 create s1 ok; c2 count 6 ok; c1 delete s1 ok")
    assert count_cases(ok) == []
    off = _with_baseline("c0 count 5 ok; c1 create s1 ok; c2 count 5 ok; c2 count 7 ok")
    assert [(c["expected"], c["seen"]) for c in count_cases(off)] == [([6, 6], 5), ([6, 6], 7)]
    # without the baseline op the same counts are judged from an empty store: anomalies
    assert len(count_cases(build("c1 create s1 ok; c2 count 6 ok"))) == 1


def test_a_baseline_count_that_failed_leaves_the_counts_undecided() -> None:
    result = counts(_with_baseline("c0 count 5 unknown; c1 create s1 ok; c2 count 6 ok"))
    assert result.valid == "unknown"
    assert [example["kind"] for example in result.examples] == ["count-baseline"]


def test_count_must_drop_expired_sessions() -> None:
    h = build("c1 create s1 ttl=1 ok @0-1ms; c2 count 1 ok @0.5s-0.501s; c2 count 1 ok @5s-5.001s")
    assert count_cases(h) == [{"kind": "count", "op": 3, "expected": [0, 0], "seen": 1}]


def test_frequency_counts_every_learn() -> None:
    h = build(
        "c1 learn s1 P node=n1 ok; c2 learn s2 P node=n1 ok; c3 get n1 P 2 ok; c3 get n1 P 1 ok"
    )
    assert frequency_cases(h) == [
        {
            "kind": "frequency",
            "op": 4,
            "node_id": "n1",
            "pattern_name": "P",
            "expected": [2, 2],
            "seen": 1,
            "learns": [1, 2],
        }
    ]
    assert counts(h).counts["frequency_out_of_bounds"] == 1


def test_frequency_node_from_the_session_and_unknown_learns() -> None:
    h = build(
        "c1 create s1 node=n1 ok; c1 learn s1 PTRN|P ok; c2 learn s2 X node=n1 unknown @0-;"
        "c3 get n1 P 2 ok; c3 get n2 P 1 ok"
    )
    # The unknown learn may have been of P; node n2 saw no learn at all.
    assert frequency_cases(h) == [
        {
            "kind": "frequency",
            "op": 5,
            "node_id": "n2",
            "pattern_name": "P",
            "expected": [0, 0],
            "seen": 1,
            "learns": [],
        }
    ]


# -- composition and the report -----------------------------------------------------------------


def test_merge_valid_ranks_false_over_unknown_over_true() -> None:
    assert merge_valid([]) is True
    assert merge_valid([True, "unknown"]) == "unknown"
    assert merge_valid(["unknown", False, True]) is False


def test_a_crashing_checker_is_unknown_and_the_others_still_report() -> None:
    def boom(history: object) -> Verdict:
        raise RuntimeError("checker bug")

    h = build("c1 observe s1 a ok; c1 read s1 [a] ok")
    result = compose({"boom": boom, "isolation": isolation})(h)
    assert result.valid == "unknown"
    assert result["boom"].valid == "unknown"
    assert result["boom"].error is not None and result["boom"].error.startswith(
        "RuntimeError: checker bug"
    )
    assert result["isolation"].valid is True


def test_a_malformed_op_makes_the_checkers_that_read_it_unknown() -> None:
    h = build("c1 create s1 ok; c1 read s1 [] ok; c2 count 1 ok")
    h[1].value = {}  # a read_stm without its STM
    report = check(h)
    by_name = {entry["name"]: entry for entry in report["checkers"]}
    assert by_name["linearizable_stm"]["valid"] == "unknown"
    assert "KeyError" in by_name["linearizable_stm"]["error"]
    assert by_name["counts"]["valid"] is True
    assert report["valid"] == "unknown"


def test_check_returns_the_verdicts_json_shape() -> None:
    h = build("c1 observe s1 a ok @0-10; c2 observe s1 b ok @5-15; c1 read s1 [b] ok @20-30")
    report = check(h)
    assert json.loads(json.dumps(report)) == report
    assert set(report) == {"valid", "checkers"}
    assert report["valid"] is False
    assert [entry["name"] for entry in report["checkers"]] == list(ALL)
    for entry in report["checkers"]:
        assert set(entry) == {"name", "valid", "anomalies", "examples", "counts"}
    lost = report["checkers"][1]
    assert (lost["name"], lost["valid"], lost["anomalies"]) == ("no_lost_updates", False, 1)
    assert lost["examples"][0]["op"] == 1


def test_examples_are_capped_per_kind_but_anomalies_are_not() -> None:
    text = ";".join(f"c1 observe s1 x{n} ok" for n in range(8)) + "; c2 read s1 [] ok"
    result = no_lost_updates(build(text))
    assert result.anomalies == 8
    assert [example["op"] for example in result.examples] == [1, 2, 3, 4, 5]


def test_checkers_take_any_iterable_of_ops() -> None:
    h = build("c1 observe s1 a ok; c1 read s1 [a] ok")
    for checker in ALL.values():
        assert checker(list(h)).valid is True
        assert checker(iter(h)).valid is True


@pytest.mark.parametrize("name", list(ALL))
def test_every_checker_passes_an_empty_history(name: str) -> None:
    assert ALL[name](History()).valid is True


# -- ltm effects --------------------------------------------------------------------------------

AB = pattern_name([["a"], ["b"]]).removeprefix("PTRN|")


def test_ltm_effects_counts_acknowledged_learns_exactly() -> None:
    h = build(
        "c1 create s1 ok; c2 create s2 ok; c1 learn s1 P ok; c2 learn s2 P ok; c9 get n1 P 2 ok"
    )
    assert ltm_effects(h).valid is True
    lost = build("c1 create s1 ok; c1 learn s1 P ok; c1 learn s1 P ok; c9 get n1 P 1 ok")
    [case] = ltm_effects_cases(lost)
    assert case | {"learns": None} == {
        "kind": "lost",
        "op": 4,
        "node_id": "n1",
        "pattern_name": "P",
        "expected": [2, 2],
        "seen": 1,
        "learns": None,
        "inferred": [],
    }
    twice = build("c1 create s1 ok; c1 learn s1 P ok; c9 get n1 P 2 ok")
    assert [c["kind"] for c in ltm_effects_cases(twice)] == ["counted_twice"]


def test_ltm_effects_an_unknown_learn_its_session_shows_happened_must_count() -> None:
    shown = "c1 create s1 ok; c1 observe s1 a ok; c1 observe s1 b ok; c1 learn s1 X unknown;"
    # the read after the learn shows the STM it emptied: the learn of [a][b] happened
    lost = build(shown + f"c1 read s1 [] ok; c9 get n1 {AB} 0 ok")
    [case] = ltm_effects_cases(lost)
    assert (case["kind"], case["expected"], case["inferred"]) == ("lost", [1, 1], [4])
    assert ltm_effects(build(shown + f"c1 read s1 [] ok; c9 get n1 {AB} 1 ok")).valid is True
    # the read still shows [a][b]: the learn certainly did not happen
    kept = build(shown + f"c1 read s1 [a b] ok; c9 get n1 {AB} 1 ok")
    assert [c["kind"] for c in ltm_effects_cases(kept)] == ["counted_twice"]
    # no read after it: the learn may or may not have happened
    assert ltm_effects(build(shown + f"c9 get n1 {AB} 1 ok")).valid is True
    assert ltm_effects(build(shown + f"c9 get n1 {AB} 0 ok")).valid is True
    # a pattern never written is NOT_FOUND: its frequency is 0
    missing = build(shown + f"c1 read s1 [] ok; c9 get n1 {AB} 0 fail:NOT_FOUND")
    assert [c["kind"] for c in ltm_effects_cases(missing)] == ["lost"]


# -- faults: unavailability and lost acknowledged observes per window ----------------------------


def _window(history: History, start_ms: int, stop_ms: int) -> History:
    """``history`` with a ``redis-failover`` window from ``start_ms`` to ``stop_ms``."""
    ops = list(history)
    for phase, at in (("start", start_ms), ("stop", stop_ms)):
        op = Op(
            len(ops) + 1, "nemesis", "fault", invoke_ns=_ns(f"{at}ms"), complete_ns=_ns(f"{at}ms")
        )
        op.outcome, op.args = "ok", {"name": "redis-failover", "phase": phase}
        ops.append(op)
    return History(ops)


def test_faults_reports_the_unavailable_stretch_and_the_lost_observes() -> None:
    h = _window(
        build(
            "c1 create s1 ok @0ms-1ms; c1 observe s1 a ok @2ms-3ms; c2 observe s1 b ok @12ms-30ms; "
            "c1 observe s1 c fail:STORE_UNAVAILABLE @14ms-40ms; c1 observe s1 d ok @45ms-46ms; "
            "c1 read s1 [b d] ok @60ms-61ms"
        ),
        10,
        50,
    )
    verdict = faults(h)
    [window] = [e for e in verdict.examples if e["kind"] == "window"]
    # served at 30 ms, then nothing until the window closed at 50 ms: the longest gap is 20 ms
    assert window["unavailable_ms"] == pytest.approx(20.0)
    # "a" (acknowledged before the window) is missing from the final read: lost to this window
    assert (window["lost"], window["lost_count"]) == ([2], 1)
    assert verdict.counts["lost"] == 1 and verdict.counts["max_unavailable_ms"] == 20
