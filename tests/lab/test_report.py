"""Reports and sweeps: tables, figures, the HTML page and the CLI's output contract."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

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
    runs = pd.read_csv(folder / "runs.csv")
    assert list(runs["concurrency"]) == [1, 2, 4]
    assert (runs["valid"] == True).all()  # noqa: E712
    assert {"error_rate", "anomaly_rate", "p50_ms", "p99_ms", "throughput_ops_s"} <= set(runs)
    checkers = pd.read_csv(folder / "checkers.csv")
    assert len(checkers) == 3 * len(ALL)
    for name in ("anomaly_rate.png", "error_rate.png", "latency.png", "report.md", "report.html"):
        assert (folder / name).stat().st_size > 0, name
    page = (folder / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 4  # the rates, latency, the latency CDF
    assert (folder / "latency-cdf.png").stat().st_size > 0
    assert "production: 0 anomalies in 3 runs" in page  # the headline per cell
    assert "Anomalies by checker" in page and "no_lost_updates" in page
    assert "git_revision" in page and "seeds" in page  # the environment


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
    assert len(pd.read_csv(folder / "runs.csv")) == 4
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
    assert folder.parent == tmp_path and (folder / "runs.parquet").exists()
