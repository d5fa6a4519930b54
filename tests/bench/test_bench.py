"""``kato bench``: its rows, its reading of wrk, and its output contract (figures never checked)."""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from kato.bench.http import PATTERNS, _prepare, engine_bound
from kato.bench.load import parse_wrk
from kato.bench.rows import COLUMNS, Goal, Row, format_table, write_csv
from kato.bench.suite import SECTIONS

WRK_REPORT = """\
Running 2s test @ http://127.0.0.1:40000
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.10ms  500.00us  20.00ms   90.00%
    Req/Sec    10.00k     1.00k   12.00k    70.00%
  Latency Distribution
     50%  850.00us
     75%    1.20ms
     90%    1.90ms
     99%    1.02s<space>
  40000 requests in 2.00s, 5.00MB read
  Socket errors: connect 0, read 1, write 0, timeout 2
  Non-2xx or 3xx responses: 3
Requests/sec:  20000.50
Transfer/sec:      2.50MB
""".replace("<space>", " ")  # wrk pads some figures with a space


def test_wrk_report_gives_rate_percentiles_and_every_failure() -> None:
    load = parse_wrk(WRK_REPORT)
    assert load.requests_per_s == 20000.5
    assert load.p50_ms == pytest.approx(0.85)
    assert load.p99_ms == pytest.approx(1020.0)
    assert load.requests == 40000
    assert load.errors == 6  # 3 non-2xx + 1 read error + 2 timeouts
    assert load.connections == 64 and not load.understated
    slow = parse_wrk(WRK_REPORT.replace("  40000 requests in", "  600 requests in"))
    assert slow.understated  # < 10 answers per connection: the rate says little of the server


def test_a_report_without_figures_is_an_error_not_a_zero() -> None:
    with pytest.raises(RuntimeError, match="cannot read wrk"):
        parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")


def row(ours: float, reference: float, goal: Goal | None = None) -> Row:
    return Row("s", "x", ours, reference, "u", "ref", goal)


def test_ratio_and_goals() -> None:
    assert row(50, 100).ratio == 0.5
    assert row(50, 100, Goal("ratio", ">=", 0.5)).met is True
    assert row(49, 100, Goal("ratio", ">=", 0.5)).met is False
    assert row(2.0, 2.0, Goal("ours", "<=", 2.0)).met is True
    assert row(2.01, 2.0, Goal("ours", "<=", 2.0)).met is False
    assert math.isnan(row(1, 0).ratio)
    assert row(1, math.nan, Goal("ratio", ">=", 2)).met is None  # not measured is not missed
    assert row(1, 2, None).met is None


def test_a_row_that_is_not_comparable_misses_its_goal_whatever_its_figures() -> None:
    reached = Row("s", "x", 90, 100, "u", "ref", Goal("ratio", ">=", 0.3), not_comparable="why")
    assert reached.ratio == 0.9 and reached.met is False
    assert Row("s", "y", 1, 2, "u", "ref", not_comparable="why").met is None  # no goal to miss


def test_csv_has_the_contract_columns_first_and_the_table_a_line_per_row(tmp_path: Path) -> None:
    rows = [row(1, 2, Goal("ratio", ">=", 0.5)), Row("s", "y", 3, 4, "u", "r", extra={"p50": 1})]
    write_csv(rows, tmp_path / "bench.csv")
    frame = pd.read_csv(tmp_path / "bench.csv")
    assert list(frame.columns[: len(COLUMNS)]) == list(COLUMNS)
    assert list(frame.columns[:6]) == ["name", "ours", "reference", "ratio", "goal", "met"]
    assert frame.loc[0, "goal"] == "ratio >= 0.5" and bool(frame.loc[0, "met"]) is True
    table = format_table(rows).splitlines()
    assert len(table) == 2 + len(rows) and table[2].startswith("x ")


def test_quick_bench_writes_every_section_and_prints_its_folder_last(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "kato", "bench", "--quick", "--quiet", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    folder = Path(done.stdout.strip().splitlines()[-1])
    assert folder.parent == tmp_path and folder.name.startswith("bench-")
    frame = pd.read_csv(folder / "bench.csv")
    assert set(frame["section"]) == set(SECTIONS)
    assert frame["name"].is_unique
    frame = frame.set_index("name")
    # issue #17's rows, each with its goal
    goals = {
        "store.round_trips_per_observe": "ours <= 2",
        "contention.one_session.w2": "ratio >= 0.6",
        "contention.failed.w2": "ours <= 0",
    }
    for w in (1, 2):
        goals |= {
            f"http.observe_bare.w{w}": "ratio >= 0.3",
            f"http.observe.w{w}": "ratio >= 0.1",
            f"http.stm.w{w}": "ratio >= 0.3",
            f"http.predictions.w{w}": "ratio >= 0.3",
        }
    for name, goal in goals.items():
        assert frame.loc[name, "goal"] == goal, name
    for w in (1, 2):  # the learning node and the sessions read were built as the rows say
        assert frame.loc[f"http.observe.w{w}", "patterns"] == PATTERNS
        assert frame.loc[f"http.predictions.w{w}", "stored_predictions_min"] == 60
    # the learning observe's bound: beside the same reference, no goal of its own
    bound = frame.loc["http.observe.engine_bound.w1"]
    assert bound["reference"] == frame.loc["http.observe.w1", "reference"]
    assert pd.isna(bound["goal"]) and bound["learned"] > 0
    assert (folder / "bench.png").stat().st_size > 0
    # every row's ratio is ours / reference, as printed
    measured = frame.dropna(subset=["ratio"])
    assert (measured["ratio"] - measured["ours"] / measured["reference"]).abs().max() < 1e-9
    assert "name" in done.stdout and "ratio" in done.stdout


def test_an_unknown_section_is_refused_with_the_known_ones() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "kato", "bench", "--only", "nope"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "engine" in done.stderr


def test_a_worker_count_below_one_is_refused(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "kato", "bench", "--only", "http", "--out", str(tmp_path)]
    done = subprocess.run(
        [*command, "--workers", "1", "0"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and "at least 1" in done.stderr
    assert not list(tmp_path.iterdir())  # refused before anything ran


def test_without_wrk_every_http_ratio_is_not_comparable_and_its_goal_missed(
    tmp_path: Path,
) -> None:
    """The HTTP sections with the aiohttp load (what a machine without wrk gets): real servers,
    short loads. Every ratio row of a rate says it is not comparable and misses its goal; the
    rows that are not two rates (round trips, failures) are judged as usual."""
    done = subprocess.run(
        [
            *(sys.executable, "-m", "kato", "bench", "--quick", "--quiet", "--out", str(tmp_path)),
            *("--only", "http", "contention", "--load-tool", "aiohttp"),
            *("--workers", "1", "--contention-workers", "1"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    frame = pd.read_csv(Path(done.stdout.strip().splitlines()[-1]) / "bench.csv")
    rates = frame[frame["unit"] == "req/s"]
    judged = rates.dropna(subset=["goal"])
    assert set(judged["name"]) == {
        "http.observe_bare.w1",
        "http.observe.w1",
        "http.stm.w1",
        "http.predictions.w1",
        "contention.one_session.w1",
    }
    assert (judged["met"] == False).all()  # noqa: E712 (a column of booleans)
    # the engine's bound has no goal, but its reference is a rate the client bounded too
    assert set(rates["name"]) == {*judged["name"], "http.observe.engine_bound.w1"}
    assert rates["note"].str.startswith("not comparable: load by aiohttp").all()
    others = frame[frame["unit"] != "req/s"]
    assert not others["note"].str.contains("not comparable").any()
    assert "not comparable: load by aiohttp" in done.stdout  # said under the table too


def test_bounds_curve_rows_are_one_prediction_per_size() -> None:
    from kato.bench.bounds import curve

    rows = curve([500, 1000])
    assert [n for n, _ in rows] == [500, 1000] and all(s > 0 for _, s in rows)


def test_slow_bodies_hold_at_most_the_body_budget_and_are_answered() -> None:
    """A small run of ``python -m kato.bench.slowbodies``: 12 slow 4 MB uploads against the
    default 32 MiB budget: 8 are received (and timed out, 408), 4 refused at once (503)."""
    from kato.bench.slowbodies import run

    result = run(12, body_timeout=1.5, interval=0.02)
    assert result.answers == {"408": 8, "503": 4}
    assert result.peak_rss - result.baseline_rss < 300 * 2**20
    assert len(result.lines()) == 6


def test_learning_sessions_start_at_every_stm_length(start_server: Any) -> None:
    """The learning rows' sessions are observed 0–4 times before the load, so one observe in
    five learns from the first measured request (all empty, a 6 s load at one worker learned
    almost nothing)."""
    with start_server("--store", "memory", "--ltm", "memory") as server:
        setup = asyncio.run(_prepare(server.url, 10, every_kind=False))
        lengths = [
            len(httpx.get(f"{server.url}/sessions/{session}/stm").json()["stm"])
            for session in setup.learning
        ]
    assert lengths == [0, 1, 2, 3, 4] * 2


def test_the_engine_bound_times_learning_observes_that_predict() -> None:
    """What ``http.observe.engine_bound.w1`` times is ``http.observe``'s work: every session
    learns at its fifth event, and each observe ranks its predictions (100, the default cap:
    the node is taught enough patterns that share the observed symbols)."""
    bound = engine_bound(PATTERNS, seconds=0.5, sessions=10)
    assert bound.observes >= 10 and bound.cpu_seconds > 0
    assert bound.rate == bound.observes / bound.cpu_seconds
    # one observe in five learns; sessions start at every STM length, so from the first one
    assert abs(bound.learned - bound.observes / 5) <= 2
    assert bound.predictions == 100 * bound.observes
