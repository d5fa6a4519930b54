"""``kato lab zoo``: variants beside production over a grid; zoo.csv, zoo.png, folder last."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from kato.lab.grid import recheck


@pytest.fixture(scope="module")
def zoo_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small zoo grid through the CLI (R7 and R10 beside production, 2 clients)."""
    out = tmp_path_factory.mktemp("zoo")
    done = subprocess.run(
        [sys.executable, "-m", "kato", "lab", "zoo", "--variants", "r7-shared-processor",
         "r10-path-middleware", "--concurrency", "2", "--out", str(out), "--quiet"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    folder = Path(done.stdout.strip().splitlines()[-1])
    assert folder.parent == out
    return folder


def test_zoo_writes_the_table_and_the_figure(zoo_folder: Path) -> None:
    table = pd.read_csv(zoo_folder / "zoo.csv")
    assert {"variant", "scenario", "concurrency", "operations", "anomalies", "valid"} <= set(table)
    by_variant = dict(zip(table["variant"], table["anomalies"], strict=False))
    assert by_variant["r7-shared-processor"] > 0 and by_variant["r10-path-middleware"] > 0
    assert (table.loc[table["variant"] == "production", "anomalies"] == 0).all()
    assert (zoo_folder / "zoo.png").stat().st_size > 0
    for run in table["run"]:  # every run of the grid keeps its history
        assert (zoo_folder / run / "history.parquet").exists()


def test_an_anomaly_of_the_zoo_is_judged_the_same_again(zoo_folder: Path) -> None:
    """``kato lab check`` on the run folder of a row with anomalies gives the saved verdicts."""
    table = pd.read_csv(zoo_folder / "zoo.csv")
    row = table[(table["variant"] == "r7-shared-processor") & (table["anomalies"] > 0)].iloc[0]
    run = zoo_folder / row["run"]
    saved = json.loads((run / "verdicts.json").read_text())
    assert saved["valid"] is False

    _, verdicts = recheck(run)
    assert json.loads(json.dumps(verdicts, default=str)) == saved

    done = subprocess.run(
        [sys.executable, "-m", "kato", "lab", "check", str(run), "--fail-on-anomaly"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == str(run / "history.parquet")
    assert lines[-2].split() == ["overall", "False"]
    flagged = next(line.split() for line in lines if line.startswith(row["checker"]))
    assert flagged[1:3] == ["False", str(int(row["checker_anomalies"]))]


def test_zoo_refuses_an_unknown_variant(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "kato", "lab", "zoo", "--variants", "r99-nope",
         "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and "r99-nope" in done.stderr


def test_each_variant_keeps_its_own_production_comparison(tmp_path: Path) -> None:
    """R8 and R9 both expose on many-sessions, but R9's comparison runs behind the lossy layer
    with a retrying client: the table keeps both production runs."""
    from kato.lab.zoo.sweep import zoo

    folder = zoo(
        tmp_path,
        variants=["r8-swallowed-errors", "r9-retry-without-idempotency"],
        concurrency=[2],
        progress=False,
    )
    table = pd.read_csv(folder / "zoo.csv")
    production = table[table["variant"] == "production"]
    assert sorted(production["lost_responses"]) == [0.0, 0.2]
    assert production["idempotency"].all() and (production["anomalies"] == 0).all()
    assert len(table) == 4
    assert len(set(table["run"])) == 4
    assert all((folder / run / "params.json").exists() for run in table["run"])
