"""Every notebook runs headlessly (papermill, defaults and one other parameter set; nbval), is
committed without outputs, and records what a sweep gathers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest

from kato.lab.executor import RESULTS_MIME, execute, glued

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
EXPERIMENTS = sorted((ROOT / "experiments").glob("*.ipynb"))

#: For each notebook, a second parameter set besides its defaults (small, a few seconds).
OTHER: dict[str, dict[str, Any]] = {
    "01-quickstart": {"sequences": [["a", "b", "c"], ["a", "b", "d"]], "probe": ["a", "b"]},
    "02-concurrency-explorer": {"scenario": "many-sessions", "concurrency": 4, "operations": 60},
    "03-bug-zoo": {"variants": ["r10-path-middleware"], "concurrency": [2]},
    "failure-vs-concurrency": {
        "scenario": "lifecycle",
        "concurrencies": [2, 8],
        "operations": 80,
        "trials": 2,
    },
    "latency-vs-concurrency": {"scenario": "mixed", "concurrencies": [2, 32], "operations": 100},
    "lost-updates-vs-workers": {
        "target": "http",
        "store": "redis",
        "workers_list": [1, 2],
        "concurrency": 8,
        "operations": 120,
    },
    "visibility": {"concurrency": 3, "operations": 90, "seed": 7, "trials": 2},
}


def test_every_notebook_has_a_second_parameter_set() -> None:
    assert {p.stem for p in NOTEBOOKS + EXPERIMENTS} == set(OTHER)
    assert len(EXPERIMENTS) >= 4 and len(NOTEBOOKS) >= 3


@pytest.mark.parametrize("path", NOTEBOOKS + EXPERIMENTS, ids=lambda p: p.name)
def test_committed_notebooks_are_stripped_and_have_one_parameters_cell(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs for c in code), f"{path.name} is committed with outputs"
    assert all(c.execution_count is None for c in code), f"{path.name} has execution counts"
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name} needs exactly one cell tagged 'parameters'"
    assert nb.metadata["kernelspec"]["name"] == "python3"


def _run(path: Path, parameters: dict[str, Any], out: Path) -> Path:
    before = path.read_bytes()
    executed = execute(path, parameters, out)
    assert executed == out.resolve() / path.name and executed.exists()
    assert path.read_bytes() == before, "the source notebook was written to"
    return executed


def _check_recorded(executed: Path, out: Path) -> list[dict[str, Any]]:
    recorded = json.loads((out / "results.json").read_text())
    assert recorded["rows"], "an experiment records at least one run"
    assert (out / "rows.csv").exists()
    for figure in recorded["figures"]:
        assert (out / figure).stat().st_size > 0
    for row in recorded["rows"]:
        assert (out / "runs" / row["run_id"] / "history.parquet").exists()
    assert glued(executed) == recorded  # the same rows live in the notebook itself
    return list(recorded["rows"])


@pytest.mark.parametrize("which", ["defaults", "other"])
@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_experiment_runs_with_papermill(path: Path, which: str, tmp_path: Path) -> None:
    parameters = {} if which == "defaults" else OTHER[path.stem]
    executed = _run(path, parameters, tmp_path / "out")
    rows = _check_recorded(executed, tmp_path / "out")
    injected = nbformat.read(executed, as_version=4).metadata["papermill"]["parameters"]
    assert injected == {**parameters, "output_dir": str((tmp_path / "out").resolve())}
    trials = parameters.get("trials", 1)  # each point's trials, one row each, seeds 0, 1, …
    if "concurrencies" in parameters:
        assert [r["concurrency"] for r in rows] == [
            c for c in parameters["concurrencies"] for _ in range(trials)
        ]
    assert [r["trial"] for r in rows] == list(range(trials)) * (len(rows) // trials)
    assert [r["seed"] for r in rows] == [parameters.get("seed", 0) + r["trial"] for r in rows]
    if "workers_list" in parameters:
        assert [r["workers"] for r in rows] == parameters["workers_list"]
        assert all(r["target"] == "http" and r["no_lost_updates_anomalies"] == 0 for r in rows)


@pytest.mark.parametrize("which", ["defaults", "other"])
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_interactive_notebook_runs_with_papermill(path: Path, which: str, tmp_path: Path) -> None:
    parameters = {} if which == "defaults" else OTHER[path.stem]
    executed = _run(path, parameters, tmp_path)
    nb = nbformat.read(executed, as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("text/html" in o.get("data", {}) for o in outputs), "no table was shown"
    if path.stem == "02-concurrency-explorer":  # the widget is shown and autorun ran once
        widgets = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.data]
        assert widgets
        assert RESULTS_MIME not in str(outputs)


def test_notebooks_run_in_this_python(tmp_path: Path) -> None:
    """papermill's ``python3`` kernel is this interpreter (the venv's), with no kernel setup."""
    nb = nbformat.v4.new_notebook(
        metadata={"kernelspec": {"name": "python3", "language": "python", "display_name": "P"}}
    )
    nb.cells = [
        nbformat.v4.new_code_cell("output_dir = ''", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(
            "import sys, pathlib\npathlib.Path(output_dir, 'exe.txt').write_text(sys.prefix)"
        ),
    ]
    source = tmp_path / "which.ipynb"
    nbformat.write(nb, source)
    execute(source, {}, tmp_path / "out")
    assert Path((tmp_path / "out" / "exe.txt").read_text()).resolve() == Path(sys.prefix).resolve()


def test_nbval_lax_validates_every_notebook(tmp_path: Path) -> None:
    # Notebooks run as committed write into temporary folders: keep those under tmp_path.
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--nbval-lax",
            "notebooks",
            "experiments",
            "-p",
            "no:cacheprovider",
            "-n",
            "0",  # one process: this test is already one of the suite's workers
            "-q",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "failed" not in done.stdout
