"""What a report and a notebook show first: findings, headlines, timelines, palettes."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from kato.lab import findings, plots
from kato.lab.results import ops_frame
from kato.lab.run import run, save
from kato.lab.spec import NOOP

#: A checker's verdicts as ``verdicts.json`` holds them (two checkers, one failing).
VERDICTS = {
    "valid": False,
    "checkers": [
        {"name": "read_your_writes", "valid": True, "anomalies": 0, "examples": []},
        {
            "name": "no_lost_updates",
            "valid": False,
            "anomalies": 3,
            "examples": [
                {"kind": "lost", "op": 7, "final_read": 40, "expected": ["c1-o0"], "seen": []},
                {"kind": "lost", "op": 9, "final_read": 40, "expected": ["c2-o0"], "seen": []},
            ],
        },
    ],
}


def test_one_counter_example_per_failing_checker_names_its_ops() -> None:
    assert findings.checker_counts(VERDICTS) == {"read_your_writes": 0, "no_lost_updates": 3}
    (example,) = findings.counter_examples(VERDICTS)
    assert example["checker"] == "no_lost_updates" and example["ops"] == [7, 40]
    assert example["expected"] == ["c1-o0"] and example["seen"] == []
    assert findings.anomalous_ops(VERDICTS) == {7, 9, 40}
    page = findings.examples_html([example])
    assert "no_lost_updates" in page and "c1-o0" in page


def test_headlines_count_anomalies_per_run_and_mark_zoo_variants() -> None:
    rows = pd.DataFrame(
        {
            "variant": ["production"] * 2 + ["r1-read-writeback"] * 2,
            "anomalies": [0, 0, 12, 96],
        }
    )
    heads = findings.headline_table(rows, ["variant"]).set_index("cell")
    assert heads.loc["production", "headline"] == "production: 0 anomalies in 2 runs"
    r1 = heads.loc["r1-read-writeback"]
    assert r1["headline"].startswith("r1-read-writeback: 12–96 anomalies per run in 2 runs")
    assert bool(r1["expected_failure"]) and not bool(heads.loc["production", "expected_failure"])


def test_saved_examples_read_the_verdicts_of_saved_runs(tmp_path: Path) -> None:
    folder = save(run(NOOP), tmp_path)
    (folder / "verdicts.json").write_text(json.dumps(VERDICTS))
    table = findings.saved_examples(tmp_path, [folder.name])
    assert list(table["checker"]) == ["no_lost_updates"] and table["ops"][0] == [7, 40]


def test_timeline_has_a_lane_per_client_and_shades_the_fault(tmp_path: Path) -> None:
    result = run(NOOP.with_(scenario="shared-session", concurrency=4, operations=40))
    ops = ops_frame(result.history)
    faults = pd.DataFrame([{"name": "redis-pause", "start_s": 0.0, "end_s": 0.001}])
    figure = plots.timeline(ops, faults, anomalous={0, 1}, path=tmp_path / "t.png")
    (axes,) = figure.axes
    lanes = [t.get_text() for t in axes.get_yticklabels()]
    assert lanes[:5] == ["setup", "c0", "c1", "c2", "c3"] and lanes[-1] == "final"
    labels = [t.get_text() for t in axes.get_legend().get_texts()]
    assert labels == ["ok", "fail", "unknown", "anomaly", "fault window"]
    assert (tmp_path / "t.png").stat().st_size > 0


def test_the_palette_has_a_distinct_colour_per_zoo_line() -> None:
    for count in (2, 11, 20, 30):
        assert len(set(plots.palette(count))) == count


def test_rates_span_orders_of_magnitude_on_a_symlog_axis_legend_outside() -> None:
    runs = pd.DataFrame(
        {
            "variant": ["production", "r1", "r6"] * 2,
            "concurrency": [2, 2, 2, 8, 8, 8],
            "anomaly_rate": [0.0, 0.5, 0.001, 0.0, 0.7, 0.002],
            "error_rate": [0.0] * 6,
        }
    )
    figure = plots.failure_rate_vs_concurrency(runs, by="variant")
    (axes,) = figure.axes
    assert axes.get_yscale() == "symlog"
    assert axes.get_legend().get_bbox_to_anchor().x0 > axes.bbox.x1 - 1  # right of the axes
    both = plots.rates_vs_concurrency(runs, by="variant")
    assert [a.get_yscale() for a in both.axes] == ["symlog", "linear"]
