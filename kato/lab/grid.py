"""The one grid engine: expand a grid into cells, run every cell, keep every run, tabulate.

Every grid of the workbench — ``kato lab sweep`` (of experiments or of a notebook), ``kato lab
zoo``, ``kato lab durability``, the notebooks' :func:`kato.lab.notebooks.run_grid` — goes
through here. A cell runs either in-process (:func:`run_experiments`: the runner, then
:func:`kato.lab.run.save`) or as a papermill notebook (:func:`run_notebooks`), one after the
other under one progress bar. Every experiment cell leaves a normal run folder (``history.parquet``,
``params.json``, ``verdicts.json``, …), so ``kato lab check <folder>`` can judge any of them
again; :func:`row` and :func:`table` are the one results table over them.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from kato.lab.spec import Experiment

if TYPE_CHECKING:
    import pandas as pd

    from kato.lab.executor import NotebookError
    from kato.lab.run import Run

__all__ = [
    "NotebookCell",
    "Saved",
    "cells",
    "experiments",
    "notebook_table",
    "progress_over",
    "recheck",
    "row",
    "run_experiments",
    "run_notebooks",
    "table",
]

T = TypeVar("T")


def cells(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, in a stable order (names sorted)."""
    names = sorted(grid)
    for name in names:
        if isinstance(grid[name], str | bytes) or not isinstance(grid[name], Sequence):
            raise ValueError(f"grid value of {name!r} must be a list, got {grid[name]!r}")
    return [
        dict(zip(names, values, strict=True))
        for values in itertools.product(*(grid[n] for n in names))
    ]


def experiments(
    base: Experiment | Mapping[str, Any], grid: Mapping[str, Sequence[Any]]
) -> list[Experiment]:
    """``base`` changed by each cell of ``grid``; all validated before anything runs."""
    if isinstance(base, Experiment):
        return [base.with_(**cell) for cell in cells(grid)]
    return [Experiment.from_dict({**base, **cell}) for cell in cells(grid)]


def progress_over(items: Sequence[T], *, progress: bool, desc: str, unit: str) -> Iterator[T]:
    """``items``, under a progress bar when ``progress`` (the bar every grid shows)."""
    if not progress:
        return iter(items)
    from tqdm.auto import tqdm

    return iter(tqdm(items, desc=desc, unit=unit))


@dataclass(frozen=True, slots=True)
class Saved:
    """One experiment cell, run and saved: the run and its folder."""

    run: Run
    folder: Path


def run_experiments(
    specs: Sequence[Experiment],
    runs_dir: Path,
    *,
    progress: bool = False,
    desc: str = "sweep",
    unit: str = "run",
) -> list[Saved]:
    """Run each spec in this process and save it as a run folder under ``runs_dir``."""
    from kato.lab.run import run, save

    runs_dir.mkdir(parents=True, exist_ok=True)
    saved = []
    for spec in progress_over(specs, progress=progress, desc=desc, unit=unit):
        result = run(spec, out=runs_dir)
        saved.append(Saved(result, save(result, runs_dir)))
    return saved


def row(result: Run) -> dict[str, Any]:
    """A run's row of the results table: its parameters, ``run_id``, the figures of
    :func:`kato.lab.results.run_row` and each checker's anomalies as ``<checker>_anomalies``."""
    from kato.lab.results import run_row

    params = json.loads(result.spec.to_json()) | {"run_id": result.run_id}
    figures = run_row(params, result.history, result.verdicts)
    for checker in result.verdicts["checkers"]:
        figures[f"{checker['name']}_anomalies"] = checker["anomalies"]
    return figures


def recheck(path: Path) -> tuple[Path, dict[str, Any]]:
    """Judge a saved history again (``kato lab check``): ``path`` is a run folder of any grid
    (its ``history.parquet``, or the journal of a run that did not finish) or a history file.
    Returns the path and the fresh verdicts."""
    from kato.lab.checkers import check
    from kato.lab.history import History, history_file
    from kato.lab.remote import skipped_checks

    path = history_file(path)
    history, metadata = History.read(path)
    return path, check(history, skipped=skipped_checks(metadata.get("target") or {}))


def table(results: Iterable[Run]) -> pd.DataFrame:
    """One :func:`row` per run."""
    import pandas as pd

    return pd.DataFrame([row(result) for result in results])


@dataclass(frozen=True, slots=True)
class NotebookCell:
    """One notebook cell of a grid: its name, its grid values and the folder it ran in."""

    name: str
    values: dict[str, Any]
    folder: Path

    def recorded(self) -> dict[str, Any] | None:
        """What the notebook recorded (``results.json``), or ``None`` if it recorded nothing."""
        path = self.folder / "results.json"
        return json.loads(path.read_text()) if path.exists() else None


def run_notebooks(
    notebook: Path,
    grid: Mapping[str, Sequence[Any]],
    folder: Path,
    *,
    parameters: Mapping[str, Any] | None = None,
    progress: bool = False,
) -> tuple[list[NotebookCell], list[NotebookError]]:
    """Execute ``notebook`` once per cell of ``grid`` (over ``parameters``) into
    ``folder/NN-<notebook>/``; a failed cell does not stop the others. Returns every cell and
    the failures (``ValueError`` before anything runs if the notebook lacks a parameter). Each
    notebook saves its runs as run folders under its cell's ``runs/``."""
    from kato.lab.executor import NotebookError, check_parameters, execute

    base = dict(parameters or {})
    check_parameters(notebook, {*base, *grid})
    names = [f"{index:02d}-{notebook.stem}" for index in range(len(cells(grid)))]
    done = [
        NotebookCell(name, values, folder / name)
        for name, values in zip(names, cells(grid), strict=True)
    ]
    failures: list[NotebookError] = []
    desc = f"sweep {notebook.stem}"
    for cell in progress_over(done, progress=progress, desc=desc, unit="notebook"):
        try:
            execute(notebook, {**base, **cell.values}, cell.folder)
        except NotebookError as exc:
            failures.append(exc)
    return done, failures


def notebook_table(done: Sequence[NotebookCell]) -> pd.DataFrame:
    """One table of every row the notebook cells recorded. Each row gets ``sweep_cell`` and the
    cell's grid values (lists as JSON text) as columns, unless the row already holds that name
    (an experiment parameter the notebook records itself)."""
    import pandas as pd

    rows = []
    for cell in done:
        recorded = cell.recorded()
        for figures in recorded["rows"] if recorded else []:
            extra = {
                k: json.dumps(v) if isinstance(v, list | dict) else v
                for k, v in cell.values.items()
                if k not in figures
            }
            rows.append({"sweep_cell": cell.name, **extra, **figures})
    return pd.DataFrame(rows)
