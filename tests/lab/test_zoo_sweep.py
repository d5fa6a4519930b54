"""``kato lab zoo``: variants beside production over a grid; zoo.csv, zoo.png, folder last."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd


def test_zoo_writes_the_table_and_the_figure(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "kato", "lab", "zoo", "--variants", "r7-shared-processor",
         "r10-path-middleware", "--concurrency", "2", "--out", str(tmp_path), "--quiet"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    folder = Path(done.stdout.strip().splitlines()[-1])
    assert folder.parent == tmp_path
    table = pd.read_csv(folder / "zoo.csv")
    assert {"variant", "scenario", "concurrency", "operations", "anomalies", "valid"} <= set(table)
    by_variant = dict(zip(table["variant"], table["anomalies"], strict=False))
    assert by_variant["r7-shared-processor"] > 0 and by_variant["r10-path-middleware"] > 0
    assert (table.loc[table["variant"] == "production", "anomalies"] == 0).all()
    assert (folder / "zoo.png").stat().st_size > 0


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
