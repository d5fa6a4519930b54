"""Whole runs: every scenario against the engine and against ``kato serve --workers 4`` on Redis;
the production store passes every checker."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from kato.lab.results import run_row
from kato.lab.run import load, run, save
from kato.lab.spec import SCENARIOS, Experiment


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_engine_target_every_scenario_is_valid(scenario: str) -> None:
    result = run(Experiment(scenario=scenario, concurrency=8, operations=240, ttl_seconds=1))
    assert result.valid is True, json.dumps(result.verdicts, indent=1, default=str)
    assert len(result.history) > 0


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_production_store_with_four_workers_is_valid(scenario: str) -> None:
    spec = Experiment(
        scenario=scenario,
        target="http",
        store="redis",
        workers=4,
        concurrency=32,
        operations=320,
        ttl_seconds=1,
    )
    result = run(spec)
    assert result.valid is True, json.dumps(result.verdicts, indent=1, default=str)
    outcomes = {op.outcome for op in result.history}
    assert "ok" in outcomes
    assert all(op.worker_pid for op in result.history if op.outcome == "ok")


def test_a_run_answered_by_fewer_workers_than_it_started_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """One client and the run's control client keep a connection each, and the kernel hands
    each to one worker: of four started, one or two answer, and the run says so (its history
    cannot show a race between the others)."""
    spec = Experiment(
        scenario="lifecycle", target="http", store="redis", workers=4, concurrency=1, operations=20
    )
    with caplog.at_level(logging.WARNING, logger="kato.lab"):
        result = run(spec)
    answered = result.metadata["workers_answered"]
    assert answered in (1, 2)
    assert f"{answered} of the 4 workers answered" in caplog.text
    assert run_row({}, result.history, result.verdicts)["workers_answered"] == answered
    # a target that names no worker: nothing counted, nothing said
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="kato.lab"):
        engine = run(Experiment(operations=20))
    assert engine.metadata["workers_answered"] is None and "workers answered" not in caplog.text


def test_128_clients_on_one_session_lose_nothing() -> None:
    spec = Experiment(
        scenario="shared-session",
        target="http",
        store="redis",
        workers=4,
        concurrency=128,
        operations=256,
    )
    result = run(spec)
    assert result.valid is True, json.dumps(result.verdicts, indent=1, default=str)


def test_a_saved_run_loads_and_checks_the_same(tmp_path: Path) -> None:
    result = run(Experiment(scenario="many-sessions", concurrency=4, operations=80))
    folder = save(result, tmp_path)
    for name in (
        "history.parquet",
        "params.json",
        "verdicts.json",
        "summary.csv",
        "metadata.json",
        "throughput.png",
        "latency.png",
    ):
        assert (folder / name).exists(), name
    again = load(folder)
    assert list(again.history) == list(result.history)
    assert again.spec == result.spec
    assert again.metadata["generator_ceiling_ops_s"] > 0
    from kato.lab.checkers import check

    assert check(again.history) == json.loads(json.dumps(result.verdicts, default=str))


def test_cli_run_writes_the_contract_and_prints_the_folder_last(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "kato", "lab", "run", "shared-session", "--concurrency", "64",
         "--workers", "4", "--ops", "192", "--out", str(tmp_path), "--quiet"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    folder = Path(done.stdout.strip().splitlines()[-1])
    assert folder.parent == tmp_path
    assert not (folder / "history.jsonl").exists(), "the Parquet history replaced the journal"
    verdicts = json.loads((folder / "verdicts.json").read_text())
    assert verdicts["valid"] is True
    assert {c["name"] for c in verdicts["checkers"]} >= {"no_lost_updates", "linearizable_stm"}
    for checker in verdicts["checkers"]:
        assert set(checker) >= {"name", "valid", "anomalies", "examples"}
    assert "no_lost_updates" in done.stdout
    params = json.loads((folder / "params.json").read_text())
    assert params["workers"] == 4 and params["concurrency"] == 64


def test_cli_bad_arguments_exit_2() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "kato", "lab", "run", "shared-session",
         "--workers", "4", "--store", "memory"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "store=redis for workers > 1" in done.stderr


def test_open_loop_invokes_on_schedule_and_counts_latency_from_it() -> None:
    """At ``rate`` ops/s each op has an intended time on a fixed grid; latency starts there, so
    a server that queues cannot hide it (no coordinated omission)."""
    spec = Experiment(scenario="many-sessions", concurrency=4, operations=120, rate=400.0)
    result = run(spec)
    assert result.valid is True
    timed = sorted(
        (op for op in result.history if op.intended_ns is not None), key=lambda o: o.intended_ns
    )
    assert len(timed) >= 100
    slots = [(op.intended_ns - timed[0].intended_ns) / 2.5e6 for op in timed]
    assert all(abs(s - round(s)) < 1e-6 for s in slots), "intended times sit on the 1/rate grid"
    assert len({round(s) for s in slots}) == len(slots), "one op per slot"
    for op in timed:
        assert op.invoke_ns >= op.intended_ns - 1_000_000  # never early (1 ms scheduler slack)
        assert op.latency_ns == op.complete_ns - op.intended_ns
    span_s = (timed[-1].intended_ns - timed[0].intended_ns) / 1e9
    assert 0.2 < span_s < 0.35, "the schedule, not the server, sets the pace"


def test_cli_run_takes_the_r9_knobs() -> None:
    from kato.cli import parse_args
    from kato.lab.cli import _spec_from

    argv = ["lab", "run", "many-sessions", "--variant", "r9-retry-without-idempotency"]
    argv += ["--lose-responses", "0.2", "--client-retries", "2", "--no-idempotency"]
    spec = _spec_from(parse_args(argv))
    assert (spec.lost_responses, spec.client_retries, spec.idempotency) == (0.2, 2, False)
    default = _spec_from(parse_args(["lab", "run", "many-sessions"]))
    assert (default.lost_responses, default.client_retries, default.idempotency) == (0.0, 0, True)


@pytest.mark.alone  # rounds in a fixed time: the other worker's load would slow them
def test_a_time_based_run_plays_rounds_until_its_duration() -> None:
    # a round of shared-session takes 1.0-1.3 s in process here: 3 s leaves room for two
    spec = Experiment(scenario="shared-session", concurrency=4, operations=None, duration_s=3.0)
    result = run(spec)
    assert result.valid is True, json.dumps(result.verdicts, indent=1, default=str)
    ops = list(result.history)
    span_s = (max(op.complete_ns for op in ops) - min(op.invoke_ns for op in ops)) / 1e9
    assert 2.9 < span_s < 6.0
    creates = [op for op in ops if op.f == "create"]
    assert len(creates) >= 2, "the engine plays more than one round (fresh sessions) in 3 s"
    symbols = [s for op in ops if op.f == "observe" for s in op.args["strings"]]
    assert len(symbols) == len(set(symbols)), "every symbol stays unique across rounds"


@pytest.mark.parametrize(
    "changes", [{"operations": None, "duration_s": 3.0}, {"operations": 300, "concurrency": 4}]
)
def test_a_fault_falls_inside_the_run_with_operations_before_during_and_after(
    changes: dict[str, object],
) -> None:
    from kato.lab.results import faults_frame, ops_frame

    spec = Experiment(
        scenario="shared-session", target="http", store="redis", fault="redis-pause", **changes
    )
    result = run(spec)
    ops, (window,) = ops_frame(result.history), faults_frame(result.history).itertuples()
    assert 0 < window.start_s < window.end_s < ops["done_s"].max()
    before = ops[ops["done_s"] < window.start_s]
    spanning = ops[(ops["t_s"] < window.end_s) & (ops["done_s"] > window.start_s)]
    after = ops[ops["t_s"] > window.end_s]
    assert len(before) and len(spanning) and len(after), (len(before), len(spanning), len(after))
    if spec.duration_s is not None:
        assert abs(window.start_s - 1.0) < 0.5 and abs(window.end_s - 2.0) < 0.5


def test_cli_run_with_trials_writes_trial_and_cell_rows(tmp_path: Path) -> None:
    import pandas as pd

    done = subprocess.run(
        [sys.executable, "-m", "kato", "lab", "run", "shared-session", "--trials", "2",
         "--target", "engine", "--store", "memory", "--workers", "1", "--concurrency", "4",
         "--ops", "60", "--out", str(tmp_path), "--quiet"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "2 trials" in done.stdout and "anomaly_rate 0.0000 [0.0000, 0." in done.stdout
    table = pd.read_csv(Path(done.stdout.strip().splitlines()[-1]) / "results.csv")
    assert list(table["kind"]) == ["trial", "trial", "cell"]
    assert {"anomaly_rate_lo", "anomaly_rate_hi", "throughput_ops_s_lo", "p99_ms_hi"} <= set(table)


def test_cli_duration_makes_a_time_based_run() -> None:
    from kato.cli import parse_args
    from kato.lab.cli import _spec_from

    spec = _spec_from(parse_args(["lab", "run", "shared-session", "--duration", "6"]))
    assert (spec.operations, spec.duration_s) == (None, 6.0)
    assert _spec_from(parse_args(["lab", "run", "shared-session"])).operations == 500
    with pytest.raises(ValueError, match="exactly one of operations and duration_s"):
        _spec_from(parse_args(["lab", "run", "shared-session", "--duration", "6", "--ops", "9"]))
