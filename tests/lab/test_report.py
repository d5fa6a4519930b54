"""Reports and sweeps: tables, figures, the HTML page and the CLI's output contract."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

from kato.lab import plots
from kato.lab.checkers import ALL
from kato.lab.report import report, sweep
from kato.lab.run import run, save
from kato.lab.spec import NOOP


def test_report_over_saved_runs(tmp_path: Path) -> None:
    folders = [
        save(run(NOOP.with_(scenario="many-sessions", concurrency=c, operations=60)), tmp_path)
        for c in (1, 2, 4)
    ]
    folder = report(folders, tmp_path)
    table = pd.read_csv(folder / "results.csv")
    runs = table[table["kind"] == "trial"]
    assert list(runs["concurrency"]) == [1, 2, 4]
    assert list(table[table["kind"] == "cell"]["concurrency"]) == [1, 2, 4]
    assert (runs["valid"] == True).all()  # noqa: E712
    assert {"error_rate", "anomaly_rate", "p50_ms", "p99_ms", "throughput_ops_s"} <= set(runs)
    checkers = pd.read_csv(folder / "checkers.csv")
    assert len(checkers) == 3 * len(ALL)
    figures = ("anomaly_rate.png", "anomalous_trials.png", "error_rate.png", "latency.png")
    for name in (*figures, "report.md", "report.html"):
        assert (folder / name).stat().st_size > 0, name
    page = (folder / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 5  # three rates, latency, the latency CDF
    assert (folder / "latency-cdf.png").stat().st_size > 0
    assert page.index("<img") < page.index("<table"), "the figures lead, then the tables"
    assert "production: 0 anomalies in 3 runs" in page  # the headline per cell
    assert "Anomalies by checker" in page and "no_lost_updates" in page
    assert "git_revision" in page and "seeds" in page  # the environment
    # the engine target names no worker: the table of cells leaves that empty column out
    assert "workers_answered" not in (folder / "report.md").read_text()


def test_cli_sweep_runs_the_grid_and_prints_the_report_folder(tmp_path: Path) -> None:
    grid = tmp_path / "grid.yaml"
    grid.write_text(
        "base: {scenario: lifecycle, target: engine, operations: 40}\n"
        "grid: {concurrency: [1, 3], seed: [0, 1]}\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "kato",
            "lab",
            "sweep",
            str(grid),
            "--out",
            str(tmp_path),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    folder = Path(done.stdout.strip().splitlines()[-1])
    assert len(list((folder / "runs").iterdir())) == 4
    table = pd.read_csv(folder / "results.csv")
    assert (table["kind"] == "trial").sum() == 4
    assert (table["kind"] == "cell").sum() == 2, "seeds 0 and 1 are two trials of one cell"
    assert (folder / "report.html").exists()


def test_cli_sweep_refuses_a_bad_grid(tmp_path: Path) -> None:
    grid = tmp_path / "grid.yaml"
    grid.write_text("grid: {colour: [red]}\n")
    done = subprocess.run(
        [sys.executable, "-m", "kato", "lab", "sweep", str(grid)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "colour" in done.stderr


def test_sweep_function_returns_its_folder(tmp_path: Path) -> None:
    folder = sweep([NOOP, NOOP.with_(seed=3)], tmp_path, progress=False)
    assert folder.parent == tmp_path and (folder / "results.parquet").exists()


def test_trials_give_per_trial_rows_and_cells_with_intervals(tmp_path: Path) -> None:
    spec = NOOP.with_(scenario="shared-session", concurrency=4, operations=80)
    folder = sweep([spec, spec.with_(concurrency=8)], tmp_path, trials=3, progress=False)
    table = pd.read_parquet(folder / "results.parquet")
    trials = table[table["kind"] == "trial"]
    assert sorted(trials["trial"]) == [0, 0, 1, 1, 2, 2]
    assert len(set(trials["seed"])) == 3, "each trial of a cell has its own seed"
    cells = table[table["kind"] == "cell"].set_index("concurrency")
    assert list(cells["trials"]) == [3, 3]
    assert list(cells["ops"]) == [trials[trials["concurrency"] == c]["ops"].sum() for c in (4, 8)]
    for figure in ("anomaly_rate", "error_rate", "anomalous_trials"):
        # no anomaly in 3 trials: 0, and a Wilson interval that still admits some
        assert (cells[figure] == 0).all() and (cells[f"{figure}_lo"] == 0).all()
        assert (cells[f"{figure}_hi"] > 0).all()
    assert 0.3 < cells.loc[4, "anomalous_trials_hi"] < 0.8  # 0 of 3 trials
    for figure in ("throughput_ops_s", "p50_ms", "p99_ms"):
        assert (cells[f"{figure}_lo"] <= cells[figure]).all(), figure
        assert (cells[figure] <= cells[f"{figure}_hi"]).all(), figure


def test_until_halfwidth_stops_adding_trials_once_the_interval_is_narrow(tmp_path: Path) -> None:
    spec = NOOP.with_(scenario="many-sessions", concurrency=2, operations=200)
    folder = sweep([spec], tmp_path, trials=6, until_halfwidth=0.05, progress=False)
    table = pd.read_csv(folder / "results.csv")
    # 0 anomalies in 2 × ~200 ops: Wilson half-width ~0.005 < 0.05, so two trials suffice
    assert (table["kind"] == "trial").sum() == 2


def test_a_sweep_file_takes_trials_and_a_list_of_grids(tmp_path: Path) -> None:
    grid = tmp_path / "grid.yaml"
    grid.write_text(
        "base: {scenario: lifecycle, target: engine, operations: 40}\n"
        "trials: 2\n"
        "grid:\n  - {concurrency: [1, 2]}\n  - {concurrency: [3], scenario: [mixed]}\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "kato", "lab", "sweep", str(grid), "--quiet", f"--out={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(Path(done.stdout.strip().splitlines()[-1]) / "results.csv")
    assert (table["kind"] == "trial").sum() == 6
    cells = table[table["kind"] == "cell"]
    assert list(zip(cells["scenario"], cells["concurrency"], strict=True)) == [
        ("lifecycle", 1), ("lifecycle", 2), ("mixed", 3)
    ]  # fmt: skip


def test_the_over_time_plot_has_forty_bins_and_marks_the_fault_and_recovery() -> None:
    ops = pd.DataFrame(
        {
            "done_s": [i / 100 for i in range(300)],
            "outcome": ["ok"] * 300,
        }
    )
    ops = ops[(ops["done_s"] < 1.0) | (ops["done_s"] >= 2.0)]  # nothing completes in the window
    faults = pd.DataFrame([{"name": "redis-pause", "start_s": 1.0, "end_s": 2.0}])
    figure = plots.throughput_over_time(ops, faults)
    axes = figure.axes[0]
    (stairs,) = [p for p in axes.patches if type(p).__name__ == "StepPatch"]
    assert len(stairs.get_data().values) == plots.OVER_TIME_BINS >= 20
    shaded = [p for p in axes.patches if type(p).__name__ == "Rectangle" and p.get_alpha() == 0.25]
    assert len(shaded) == 1
    texts = [t.get_text() for t in axes.texts]
    assert any("recovered +0 ms" in t for t in texts), texts


def test_trials_of_a_url_target_gather_into_one_partial_cell() -> None:
    """A url target's rows carry lists and mappings (urls, fault_hooks) as parameters: they still
    group into one cell, and trials that skipped checks make a partial cell, never plain valid."""
    import pandas as pd

    from kato.lab.results import with_cells

    trial = {
        "target": "url", "urls": ["http://127.0.0.1:1", "http://127.0.0.1:2"],
        "fault_hooks": {}, "concurrency": 4, "ops": 100, "ok": 100, "anomalies": 0,
        "anomaly_rate": 0.0, "error_rate": 0.0, "valid": "partial",
    }  # fmt: skip
    table = with_cells(pd.DataFrame([trial | {"seed": 0}, trial | {"seed": 1, "valid": "True"}]))
    [cell] = table[table["kind"] == "cell"].to_dict("records")
    assert cell["trials"] == 2 and cell["ops"] == 200
    assert cell["urls"] == trial["urls"] and cell["valid"] == "partial"


def test_a_cell_names_the_fewest_workers_any_of_its_trials_reached() -> None:
    """A trial answered by one of two workers cannot show a race between them: its cell says so
    whatever the others reached; a target that names no worker leaves the figure out."""
    from kato.lab.results import with_cells

    trial = {"concurrency": 4, "ops": 100, "ok": 100, "anomalies": 0, "valid": "True"}
    trial |= {"anomaly_rate": 0.0, "error_rate": 0.0}
    reached = [trial | {"seed": seed, "workers_answered": n} for seed, n in enumerate((2, 1, 2))]
    [cell] = with_cells(pd.DataFrame(reached)).query("kind == 'cell'").to_dict("records")
    assert cell["workers_answered"] == 1
    unnamed = [trial | {"seed": seed, "workers_answered": None} for seed in range(2)]
    [cell] = with_cells(pd.DataFrame(unnamed)).query("kind == 'cell'").to_dict("records")
    assert pd.isna(cell["workers_answered"])


def test_the_table_of_cells_shows_the_workers_that_answered(tmp_path: Path) -> None:
    from kato.lab.report import _write_pages
    from kato.lab.results import with_cells

    trial = {"workers": 2, "concurrency": 4, "ops": 100, "ok": 100, "anomalies": 0}
    trial |= {"anomaly_rate": 0.0, "error_rate": 0.0, "valid": "True"}
    rows = [trial | {"seed": seed, "workers_answered": n} for seed, n in enumerate((2, 1))]
    _write_pages(tmp_path, "t", "h", with_cells(pd.DataFrame(rows)), [])
    header, _, cell = (tmp_path / "report.md").read_text().split("## Cells")[1].splitlines()[2:5]
    columns = [c.strip() for c in header.strip("|").split("|")]
    values = [v.strip() for v in cell.strip("|").split("|")]
    assert dict(zip(columns, values, strict=True))["workers_answered"] == "1"
