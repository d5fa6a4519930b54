"""Notebooks: execute (failures keep their notebook), sweeps, the CLI, the helpers, the explorer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from kato.lab.executor import NotebookError, execute, notebook_parameters
from kato.lab.explorer import Explorer, LivePlot
from kato.lab.grid import cells, names
from kato.lab.history import Op
from kato.lab.notebooks import output_folder, visibility_delays
from kato.lab.report import SweepError, sweep_notebook
from kato.lab.spec import NOOP, variant_names

ROOT = Path(__file__).resolve().parents[2]
FAILURE = ROOT / "experiments" / "failure-vs-concurrency.ipynb"


def _notebook(path: Path, *cells: str) -> Path:
    nb = nbformat.v4.new_notebook(
        metadata={"kernelspec": {"name": "python3", "language": "python", "display_name": "P"}}
    )
    nb.cells = [nbformat.v4.new_code_cell(cells[0], metadata={"tags": ["parameters"]})]
    nb.cells += [nbformat.v4.new_code_cell(c) for c in cells[1:]]
    nbformat.write(nb, path)
    return path


def test_a_failed_notebook_is_kept_and_the_error_names_the_cell(tmp_path: Path) -> None:
    source = _notebook(tmp_path / "broken.ipynb", "n = 1", "x = n + 1", "raise ValueError('boom')")
    with pytest.raises(NotebookError) as caught:
        execute(source, {"n": 2}, tmp_path / "out")
    error = caught.value
    assert error.path == (tmp_path / "out" / "broken.ipynb").resolve() and error.path.exists()
    assert error.source == "raise ValueError('boom')"
    assert "ValueError: boom" in str(error) and "raise ValueError('boom')" in str(error)
    executed = nbformat.read(error.path, as_version=4)
    assert error.cell is not None and "boom" in str(executed.cells[error.cell].outputs)


def test_unknown_parameters_are_refused_before_running(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="concurency"):
        execute(FAILURE, {"concurency": [1]}, tmp_path)
    assert not list(tmp_path.iterdir())


def test_sweep_gathers_one_table_and_one_report(tmp_path: Path) -> None:
    folder = sweep_notebook(
        FAILURE,
        {"scenario": ["lifecycle", "shared-session"]},
        tmp_path,
        parameters={"concurrencies": [1, 4], "operations": 60},
    )
    assert folder.parent == tmp_path and folder.name.startswith("sweep-")
    cells = sorted(p for p in folder.iterdir() if p.is_dir())
    assert [c.name for c in cells] == ["00-failure-vs-concurrency", "01-failure-vs-concurrency"]
    assert all((c / FAILURE.name).exists() for c in cells)
    table = pd.read_csv(folder / "results.csv")
    assert len(table) == 8 and len(pd.read_parquet(folder / "results.parquet")) == 8
    results = table[table["kind"] == "trial"]
    assert sorted(set(results["scenario"])) == ["lifecycle", "shared-session"]
    assert list(results["concurrency"]) == [1, 4, 1, 4]
    cells = table[table["kind"] == "cell"]
    assert list(zip(cells["scenario"], cells["concurrency"], strict=True)) == [
        ("lifecycle", 1), ("lifecycle", 4), ("shared-session", 1), ("shared-session", 4)
    ]  # fmt: skip
    assert cells["anomaly_rate_hi"].notna().all()
    page = (folder / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 4  # anomalies, anomalous trials, errors, latency
    assert "anomalies per operation vs concurrency, by scenario" in page
    summary = (folder / "report.md").read_text()
    assert "00-failure-vs-concurrency/failure-vs-concurrency.ipynb" in summary
    assert "00-failure-vs-concurrency/failure-vs-concurrency.html" in page  # rendered to read
    rendered = folder / "00-failure-vs-concurrency" / "failure-vs-concurrency.html"
    assert "<html" in rendered.read_text()[:200].lower()
    assert "lifecycle: 0 anomalies in 2 runs" in page  # the headline per cell


def test_a_sweep_with_a_failing_cell_still_reports(tmp_path: Path) -> None:
    source = _notebook(
        tmp_path / "flaky.ipynb",
        "fail = False\noutput_dir = ''",
        "assert not fail, 'asked to fail'",
    )
    with pytest.raises(SweepError) as caught:
        sweep_notebook(source, {"fail": [False, True]}, tmp_path / "results")
    error = caught.value
    assert len(error.failures) == 1 and "asked to fail" in str(error.failures[0])
    assert error.failures[0].path.exists()
    assert "FAILED" in (error.folder / "report.md").read_text()
    assert (error.folder / "report.html").exists()


def test_cli_sweep_runs_a_notebook_grid_and_prints_the_report_last(tmp_path: Path) -> None:
    grid = tmp_path / "grid.yaml"
    grid.write_text(
        f"notebook: {FAILURE}\n"
        "parameters: {scenario: many-sessions, operations: 40}\n"
        "grid: {concurrencies: [[1, 2], [3]]}\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "kato", "lab", "sweep", str(grid), "--quiet", "--out", tmp_path],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = Path(done.stdout.strip().splitlines()[-1])
    assert report.name == "report.html" and report.exists()
    table = pd.read_csv(report.parent / "results.csv")
    results = table[table["kind"] == "trial"]
    assert list(results["concurrency"]) == [1, 2, 3]
    assert list(results["concurrencies"]) == ["[1, 2]", "[1, 2]", "[3]"]


def test_cli_sweep_refuses_an_unknown_notebook_parameter(tmp_path: Path) -> None:
    grid = tmp_path / "grid.yaml"
    grid.write_text(f"notebook: {FAILURE}\ngrid: {{colour: [red]}}\n")
    done = subprocess.run(
        [sys.executable, "-m", "kato", "lab", "sweep", str(grid), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "colour" in done.stderr


def test_the_readme_grid_names_a_notebook_and_its_parameters() -> None:
    import yaml

    document = yaml.safe_load((ROOT / "experiments" / "GRID.yaml").read_text())
    notebook = ROOT / document["notebook"]
    declared = notebook_parameters(notebook)
    assert set(document["parameters"]) | names(document["grid"]) <= set(declared)
    assert document["parameters"]["target"] == "http" and document["parameters"]["workers"] == 2
    # the story: production beside R1 and R2 over 1…64 clients with >= 3 trials, and one run
    # with a Redis pause inside a time-based run
    every = [{**document["parameters"], **cell} for cell in cells(document["grid"])]
    calm = [cell for cell in every if cell.get("fault", "none") == "none"]
    assert {c["variant"] for c in calm} == {"production", "r1-read-writeback", "r2-process-lock"}
    assert all(c["trials"] >= 3 and min(c["concurrencies"]) == 1 for c in calm)
    assert all(max(c["concurrencies"]) == 64 for c in calm)
    paused = [cell for cell in every if cell.get("fault") == "redis-pause"]
    assert len(paused) == 1 and paused[0]["duration_s"] > 0


def test_grid_cells_are_every_combination_in_name_order() -> None:
    assert cells({"b": [1, 2], "a": ["x"]}) == [{"a": "x", "b": 1}, {"a": "x", "b": 2}]
    assert cells({}) == [{}]
    with pytest.raises(ValueError, match="list"):
        cells({"a": "xy"})


def test_output_folder_is_temporary_unless_given(tmp_path: Path) -> None:
    assert output_folder(tmp_path / "a" / "b", "x") == tmp_path / "a" / "b"
    temporary = output_folder("", "x")
    assert temporary.is_dir() and temporary.name.startswith("kato-x-")
    temporary.rmdir()


def test_live_plot_draws_operations_as_they_arrive() -> None:
    live = LivePlot()
    assert live.png().startswith(b"\x89PNG")
    for i, outcome in enumerate(["ok", "fail", "unknown", "ok"]):
        live.add(Op(i, "c0", "observe", invoke_ns=i * 1_000_000, complete_ns=i * 1_000_000 + 5e5,
                    outcome=outcome))  # type: ignore[arg-type]  # fmt: skip
    live.add(Op(9, "nemesis", "fault", invoke_ns=1, complete_ns=2))
    live.add(Op(10, "c1", "observe", invoke_ns=1))  # not completed yet
    assert len(live) == 4 and live.png("t").startswith(b"\x89PNG")


def test_visibility_delays_from_create_to_first_read() -> None:
    ops = pd.DataFrame(
        [
            {"f": "create", "outcome": "ok", "session_id": "s1", "done_s": 1.0},
            {"f": "read_session", "outcome": "ok", "session_id": "s1", "done_s": 1.004},
            {"f": "read_stm", "outcome": "ok", "session_id": "s1", "done_s": 1.5},
            {"f": "create", "outcome": "ok", "session_id": "s2", "done_s": 2.0},
            {"f": "read_session", "outcome": "fail", "session_id": "s2", "done_s": 2.1},
        ]
    )
    delays = visibility_delays(ops)
    assert list(delays.index) == ["s1"] and delays["s1"] == pytest.approx(4.0)


def test_variant_names_start_with_production() -> None:
    assert variant_names()[0] == "production"


def test_the_explorer_shows_why_it_refuses_an_experiment() -> None:
    """Contradictory parameters are a message in the status line, not a traceback."""
    explorer = Explorer(NOOP, target="engine", store="redis")
    assert "cannot run this experiment" in explorer.status.value
    assert "store=memory" in explorer.status.value
    assert explorer.run() is None  # refused again, nothing ran
    assert explorer.rows == [] and explorer.last is None
    explorer.store.value = "memory"
    assert explorer.checked() == NOOP.with_(target="engine", store="memory")


def test_the_explorer_refuses_a_zoo_variant_on_the_engine_target() -> None:
    """The engine target cannot run a zoo variant: refused with the reason, never run as
    production and reported valid."""
    explorer = Explorer(NOOP, target="engine", variant="r1-read-writeback")
    assert "cannot run this experiment" in explorer.status.value
    assert "variant=r1-read-writeback" in explorer.status.value
    assert "target=http" in explorer.status.value
    assert explorer.run() is None
    assert explorer.rows == [] and explorer.last is None


def test_each_explorer_run_adds_a_point_and_a_counted_row() -> None:
    """What tests/browser reads from the page: the plots appear once there is data, and the
    table under the curve counts the runs."""
    explorer = Explorer(NOOP, target="engine", store="memory", concurrency=2, operations=40)
    assert "no runs yet" in explorer.runs.value
    assert explorer.curve.layout.display == "none" and explorer.live.layout.display == "none"
    explorer.run()
    explorer.concurrency.value = 3
    assert explorer.run() is not None
    assert "2 run(s) on the curve" in explorer.runs.value
    assert explorer.runs.value.count("</tr>") == 3  # the header and one row per run
    assert explorer.curve.layout.display is None
    assert bytes(explorer.curve.value).startswith(b"\x89PNG")
    assert explorer.live.layout.display is None and "valid = <b>True</b>" in explorer.status.value
    assert [r["concurrency"] for r in explorer.rows] == [2, 3]
    assert not explorer.button.disabled and explorer.progress.value == explorer.progress.max


def test_a_list_of_grids_is_the_union_of_their_cells() -> None:
    grids = [{"a": [1, 2]}, {"a": [3], "b": ["x"]}]
    assert cells(grids) == [{"a": 1}, {"a": 2}, {"a": 3, "b": "x"}]
    assert names(grids) == {"a", "b"}
    with pytest.raises(ValueError, match="a grid is a mapping"):
        cells(["a"])  # type: ignore[list-item]
