"""Scenarios are pure: the same spec and seed give the same operations, without any server."""

from __future__ import annotations

import random

import pytest

from kato.lab.scenarios import STM_BUDGET, plan
from kato.lab.spec import NOOP, SCENARIOS, Experiment


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_same_seed_same_operations(scenario: str) -> None:
    spec = Experiment(scenario=scenario, concurrency=6, operations=300, seed=7)
    assert plan(spec) == plan(spec)
    assert plan(spec) == plan(spec, random.Random(7))
    state = random.getstate()
    plan(spec)
    assert random.getstate() == state, "a scenario touched the module-level random"


def test_different_seeds_differ_where_the_scenario_is_random() -> None:
    mixed = Experiment(scenario="mixed", concurrency=4, operations=200)
    assert plan(mixed) != plan(mixed.with_(seed=1))


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_observed_symbol_is_unique(scenario: str) -> None:
    if scenario == "learn-race":
        pytest.skip("learn-race observes the same sequence in every session on purpose")
    steps = [
        s
        for p in plan(Experiment(scenario=scenario, concurrency=5, operations=400)).programs
        for s in p
    ]
    symbols = [s.args["strings"][0] for s in steps if s.f == "observe"]
    assert len(symbols) == len(set(symbols))


def test_budgets_follow_operations_and_concurrency() -> None:
    small = plan(Experiment(scenario="lifecycle", concurrency=4, operations=100))
    large = plan(Experiment(scenario="lifecycle", concurrency=4, operations=1000))
    assert large.size > 5 * small.size
    assert len(plan(Experiment(scenario="shared-session", concurrency=8)).programs) == 8


def test_whole_stm_reads_stay_under_the_stm_cap() -> None:
    shared = plan(Experiment(scenario="shared-session", concurrency=8, operations=10_000))
    assert sum(len(p) for p in shared.programs) <= STM_BUDGET


def test_bad_specs_are_refused_with_reasons() -> None:
    with pytest.raises(ValueError, match="scenario must be one of"):
        Experiment(scenario="nope")
    with pytest.raises(ValueError, match="store=redis for workers > 1"):
        Experiment(target="http", workers=4, store="memory")
    with pytest.raises(ValueError, match="concurrency must be >= 1"):
        NOOP.with_(concurrency=0)
    with pytest.raises(ValueError, match="unknown experiment parameters: colour"):
        Experiment.from_dict({"colour": "blue"})
    with pytest.raises(ValueError, match="lost_responses must be in"):
        Experiment(target="http", lost_responses=1.0)
    with pytest.raises(ValueError, match="lost_responses needs target=http"):
        NOOP.with_(lost_responses=0.1)
    with pytest.raises(ValueError, match="client_retries must be >= 0"):
        NOOP.with_(client_retries=-1)


def test_delete_race_deletes_each_session_mid_burst_and_reads_it_after() -> None:
    spec = NOOP.with_(scenario="delete-race", concurrency=3, operations=100)
    p = plan(spec)
    slots = [step.slot for step in p.setup]
    assert slots and all(step.f == "create" for step in p.setup)
    for slot in slots:
        deletes = [
            (c, i) for c, steps in enumerate(p.programs) for i, step in enumerate(steps)
            if step.f == "delete" and step.slot == slot
        ]  # fmt: skip
        assert len(deletes) == 1
        client, at = deletes[0]
        observers = [c for c, steps in enumerate(p.programs) if c != client]
        assert all(any(s.slot == slot for s in p.programs[c]) for c in observers)
        assert p.programs[client][at - 1].f == "observe"  # mid-burst
        assert {(s.f, s.slot) for s in p.final} >= {("read_stm", slot), ("read_session", slot)}
