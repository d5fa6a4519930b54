"""The one grid engine: expand a grid into cells, run every cell, keep every run, tabulate.

Every grid of the workbench — ``kato lab sweep`` (of experiments or of a notebook), ``kato lab
zoo``, ``kato lab durability``, the notebooks' :func:`kato.lab.notebooks.run_grid` — goes
through here. A cell runs either in-process (:func:`run_experiments`: the runner, then
:func:`kato.lab.run.save`) or as a papermill notebook (:func:`run_notebooks`), one after the
other under one progress bar. Every experiment cell leaves a normal run folder (``history.parquet``,
``params.json``, ``verdicts.json``, …), so ``kato lab check <folder>`` can judge any of them
again; :func:`row` and :func:`table` are the one results table over them.

Trials are one more dimension of the grid: ``trials=N`` runs every cell N times
(:func:`trials_of`: trial ``i`` with ``seed + i``, on a fresh deployment and fresh sessions), and
``until_halfwidth=H`` stops adding a cell's trials once its anomaly-rate interval is narrower
than ``± H`` (after at least two). A grid is a mapping of names to lists of values, or a list of
such mappings (the union of their cells).
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
    "Grid",
    "NotebookCell",
    "Saved",
    "cells",
    "experiments",
    "names",
    "notebook_table",
    "progress_over",
    "recheck",
    "row",
    "run_experiments",
    "run_notebooks",
    "table",
    "trials_of",
]

T = TypeVar("T")

#: Names to lists of values, or a list of those (the union of their cells).
Grid = Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Sequence[Any]]]


def _parts(grid: Grid) -> list[Mapping[str, Sequence[Any]]]:
    if isinstance(grid, Mapping):
        return [grid]
    if isinstance(grid, str | bytes) or not all(isinstance(part, Mapping) for part in grid):
        raise ValueError(f"a grid is a mapping of names to lists, or a list of them: {grid!r}")
    return list(grid)


def names(grid: Grid) -> set[str]:
    """Every name the grid sets."""
    return {name for part in _parts(grid) for name in part}


def cells(grid: Grid) -> list[dict[str, Any]]:
    """Every combination of the grid's values, in a stable order (names sorted; a list of grids:
    each one's cells in turn)."""
    every: list[dict[str, Any]] = []
    for part in _parts(grid):
        keys = sorted(part)
        for name in keys:
            if isinstance(part[name], str | bytes) or not isinstance(part[name], Sequence):
                raise ValueError(f"grid value of {name!r} must be a list, got {part[name]!r}")
        every += [
            dict(zip(keys, values, strict=True))
            for values in itertools.product(*(part[n] for n in keys))
        ]
    return every


def trials_of(spec: Experiment, count: int) -> list[Experiment]:
    """The ``count`` trials of a cell: trial ``i`` runs with ``seed + i``."""
    if count < 1:
        raise ValueError(f"trials must be >= 1, got {count}")
    return [spec.with_(seed=spec.seed + i, trial=i) for i in range(count)]


def experiments(base: Experiment | Mapping[str, Any], grid: Grid) -> list[Experiment]:
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
    trials: int = 1,
    until_halfwidth: float | None = None,
    progress: bool = False,
    desc: str = "sweep",
    unit: str = "run",
) -> list[Saved]:
    """Run each spec (a cell) ``trials`` times in this process — or until its anomaly-rate
    interval's half-width is below ``until_halfwidth`` — and save each run under ``runs_dir``."""
    from kato.lab.results import halfwidth, with_cells
    from kato.lab.run import run, save

    runs_dir.mkdir(parents=True, exist_ok=True)
    planned = [(cell, each) for cell, spec in enumerate(specs) for each in trials_of(spec, trials)]
    saved: list[Saved] = []
    by_cell: dict[int, list[Saved]] = {}
    settled: set[int] = set()
    for cell, spec in progress_over(planned, progress=progress, desc=desc, unit=unit):
        if cell in settled:
            continue
        result = run(spec, out=runs_dir)
        done = Saved(result, save(result, runs_dir))
        saved.append(done)
        by_cell.setdefault(cell, []).append(done)
        if until_halfwidth is not None and len(by_cell[cell]) >= 2:
            summary = with_cells(table(s.run for s in by_cell[cell])).iloc[-1]
            if halfwidth(summary) < until_halfwidth:
                settled.add(cell)
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
    grid: Grid,
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
    check_parameters(notebook, {*base, *names(grid)})
    labels = [f"{index:02d}-{notebook.stem}" for index in range(len(cells(grid)))]
    done = [
        NotebookCell(name, values, folder / name)
        for name, values in zip(labels, cells(grid), strict=True)
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
