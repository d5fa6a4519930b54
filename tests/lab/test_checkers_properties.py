"""Properties of the checkers over histories of a simulated correct store
(:func:`kato.bench.checkers.simulate`): every checker finds them valid, and a single planted
anomaly — an acknowledged event dropped from a final read, two appends swapped in a read — is
found by the checker responsible for it."""

from __future__ import annotations

import itertools
import time

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from kato.bench.checkers import simulate
from kato.lab.checkers import (
    ALL,
    canonical,
    check,
    linearizable_stm,
    lost_update_cases,
    nonlinearizable_cases,
)
from kato.lab.history import History, Op, Outcome

histories = st.builds(
    simulate,
    ops=st.integers(20, 300),
    seed=st.integers(0, 2**32),
    clients=st.integers(1, 8),
    unknown_rate=st.sampled_from([0.0, 0.0, 0.05]),
    events_per_session=st.integers(2, 20),
)


@settings(max_examples=60, deadline=None)
@given(histories)
def test_a_correct_store_passes_every_checker(history: History) -> None:
    certain = all(op.outcome != "unknown" for op in history)
    for name, checker in ALL.items():
        result = checker(history)
        assert result.valid is not False, (name, result.examples)
        if certain:
            assert result.valid is True, (name, result.examples)


def _final_reads(history: History) -> dict[str, Op]:
    """The last ok read of each shared session (the simulation reads each one at the end)."""
    finals: dict[str, Op] = {}
    for op in history:
        sid = op.session_id
        shared = sid is not None and sid.startswith("shared-")
        if op.f == "read_stm" and op.outcome == "ok" and shared:
            assert sid is not None
            if sid not in finals or op.invoke_ns > finals[sid].invoke_ns:
                finals[sid] = op
    return finals


def _writers(history: History) -> dict[tuple[str, ...], Op]:
    return {canonical(op.args["strings"]): op for op in history if op.f == "observe"}


@settings(max_examples=40, deadline=None)
@given(histories, st.data())
def test_an_event_dropped_from_the_final_read_is_a_lost_update(
    history: History, data: st.DataObject
) -> None:
    writers = _writers(history)
    candidates = [
        (read, position)
        for read in _final_reads(history).values()
        for position, event in enumerate(read.value["stm"])
        if writers[canonical(event)].outcome == "ok"
    ]
    assume(candidates)
    read, position = data.draw(st.sampled_from(candidates))
    dropped = writers[canonical(read.value["stm"][position])]
    del read.value["stm"][position]
    assert dropped.op_id in [case["op"] for case in lost_update_cases(history)]
    assert check(history)["valid"] is False


@settings(max_examples=40, deadline=None)
@given(histories, st.data())
def test_two_appends_swapped_in_a_read_are_not_linearizable(
    history: History, data: st.DataObject
) -> None:
    writers = _writers(history)
    pairs: list[tuple[Op, int, int]] = []
    for read in (op for op in history if op.f == "read_stm" and op.outcome == "ok"):
        stm = read.value["stm"]
        ops = [writers[canonical(event)] for event in stm]
        pairs.extend(
            (read, i, j)
            for i in range(len(ops))
            for j in range(i + 1, len(ops))
            # the earlier one must be acknowledged: an unknown append may take effect late
            if ops[i].outcome == "ok" and ops[i].precedes(ops[j])
        )
    assume(pairs)
    read, i, j = data.draw(st.sampled_from(pairs))
    stm = read.value["stm"]
    stm[i], stm[j] = stm[j], stm[i]
    assert linearizable_stm(history).valid is False
    assert read.session_id in [case["session_id"] for case in nonlinearizable_cases(history)]


@pytest.mark.perf
def test_check_judges_100k_ops_in_seconds() -> None:
    history = simulate(ops=100_000, seed=7)
    started = time.perf_counter()
    report = check(history)
    elapsed = time.perf_counter() - started
    print(f"check: {len(history):,} ops in {elapsed:.2f} s")
    assert report["valid"] is not False
    assert elapsed < 10


# -- the structural linearizability check agrees with a brute-force search on tiny histories ----


def _brute_force_linearizable(ops: list[Op], use_lengths: bool) -> bool:
    """Search every subset of unknown appends and every order of the ops (the definition)."""
    observes = [op for op in ops if op.f == "observe" and op.outcome != "fail"]
    reads = [op for op in ops if op.f == "read_stm"]
    optional = [op for op in observes if op.outcome == "unknown"]

    def end(op: Op) -> float:
        return float("inf") if op.outcome == "unknown" else float(op.complete_ns or 0)

    def explains(order: tuple[Op, ...]) -> bool:
        stm: list[tuple[str, ...]] = []
        for at, op in enumerate(order):
            if any(end(op) < earlier.invoke_ns for earlier in order[:at]):
                return False
            if op.f == "observe":
                stm.append(canonical(op.args["strings"]))
                if use_lengths and op.outcome == "ok" and op.value["stm_length"] != len(stm):
                    return False
            elif [canonical(event) for event in op.value["stm"]] != stm:
                return False
        return True

    for mask in range(1 << len(optional)):
        chosen = [op for n, op in enumerate(optional) if mask >> n & 1]
        included = [op for op in observes if op.outcome == "ok"] + chosen + reads
        if any(explains(order) for order in itertools.permutations(included)):
            return True
    return False


@st.composite
def tiny_histories(draw: st.DrawFn) -> tuple[list[Op], bool]:
    """One session: up to 4 appends (ok, unknown or failed) and up to 3 reads, with reads and
    reported lengths taken from one random order of the appends, sometimes perturbed."""
    times = st.tuples(st.integers(0, 12), st.integers(0, 8))
    n_observes = draw(st.integers(1, 4))
    ops: list[Op] = []
    for n in range(n_observes):
        start, length = draw(times)
        outcomes: list[Outcome] = ["ok", "ok", "ok", "unknown", "fail"]
        outcome = draw(st.sampled_from(outcomes))
        ops.append(
            Op(n, "c", "observe", "s1", {"strings": [f"e{n}"]}, start, start + length, outcome)
        )
    truth = draw(st.permutations([f"e{n}" for n in range(n_observes)]))
    use_lengths = draw(st.booleans())
    for op in ops:
        if op.outcome == "ok" and use_lengths:
            position = truth.index(op.args["strings"][0]) + 1
            op.value = {"stm_length": position + draw(st.sampled_from([0, 0, 0, 0, 1, -1]))}
    for n in range(draw(st.integers(0, 3))):
        start, length = draw(times)
        shown = truth[: draw(st.integers(0, n_observes))]
        if shown and draw(st.integers(0, 5)) == 0:
            shown = draw(st.permutations(shown))
        stm = [[symbol] for symbol in shown]
        ops.append(Op(10 + n, "c", "read_stm", "s1", {}, start, start + length, "ok", {"stm": stm}))
    return ops, use_lengths


@settings(max_examples=1500, deadline=None)
@given(tiny_histories())
def test_linearizability_agrees_with_brute_force(case: tuple[list[Op], bool]) -> None:
    ops, use_lengths = case
    expected = _brute_force_linearizable(ops, use_lengths)
    found = linearizable_stm(ops, use_stm_length=use_lengths).valid
    assert found == expected, nonlinearizable_cases(ops, use_stm_length=use_lengths)
