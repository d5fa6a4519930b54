"""Reports over several runs, and the sweeps that make those runs (through :mod:`kato.lab.grid`).

``report(folders, root)`` reports on runs saved earlier: ``results.csv`` and ``results.parquet``
(one ``kind="trial"`` row per run, :func:`kato.lab.grid.row`, and one ``kind="cell"`` row per
cell with 95 % intervals, :func:`kato.lab.results.with_cells`), ``checkers.csv`` (one row per
run × checker), the figures as PNG (intervals drawn; a timeline and latency over time for every
fault run, a latency CDF by variant), ``report.md`` and ``report.html`` (the figures first,
embedded, then the story of :mod:`kato.lab.story` — headlines, anomalies by checker,
counter-examples, environment — then the cells' table). ``sweep(specs, root, trials=N)`` runs every
experiment N times into ``root/<sweep-id>/runs/`` and writes that report beside them.
``sweep_notebook(notebook, grid, root)`` runs a notebook once per grid cell into
``root/<sweep-id>/NN-<notebook>/`` (each executed notebook also rendered as HTML) and writes
the same results table over every row the notebooks recorded, the figures, ``report.md`` and
``report.html``.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kato.lab import grid, story
from kato.lab.folders import new_folder
from kato.lab.spec import Experiment

if TYPE_CHECKING:
    import pandas as pd

    from kato.lab.executor import NotebookError
    from kato.lab.run import Run

__all__ = ["SUMMARY_COLUMNS", "SweepError", "report", "sweep", "sweep_notebook"]

#: The columns a report's table of cells shows (those with a value in some cell).
SUMMARY_COLUMNS = [
    "scenario",
    "target",
    "store",
    "variant",
    "workers",
    "workers_answered",
    "concurrency",
    "fault",
    "duration_s",
    "trials",
    "ops",
    "anomaly_rate",
    "anomaly_rate_lo",
    "anomaly_rate_hi",
    "anomalous_trials",
    "anomalous_trials_lo",
    "anomalous_trials_hi",
    "error_rate",
    "valid",
    "throughput_ops_s",
    "throughput_ops_s_lo",
    "throughput_ops_s_hi",
    "p50_ms",
    "p99_ms",
    "p99_ms_lo",
    "p99_ms_hi",
]


class SweepError(RuntimeError):
    """Some cells of a notebook sweep failed; the report (``folder``) was still written."""

    def __init__(self, folder: Path, failures: Sequence[NotebookError]) -> None:
        listed = "; ".join(str(f) for f in failures)
        super().__init__(f"{len(failures)} notebook(s) of the sweep failed: {listed}")
        self.folder = folder
        self.failures = list(failures)


def sweep(
    specs: Sequence[Experiment],
    root: Path,
    *,
    trials: int = 1,
    until_halfwidth: float | None = None,
    progress: bool = True,
) -> Path:
    """Run each spec ``trials`` times (see :func:`kato.lab.grid.run_experiments`), save every
    run, and write one report over all of them; return the folder."""
    folder = new_folder(root, "sweep")
    saved = grid.run_experiments(
        specs, folder / "runs", trials=trials, until_halfwidth=until_halfwidth, progress=progress
    )
    return report([s.folder for s in saved], folder, into=folder)


def report(folders: Sequence[Path], root: Path, *, into: Path | None = None) -> Path:
    """Tables and figures over the runs saved in ``folders``; return the report's folder."""
    from kato.lab.results import summary_frame
    from kato.lab.run import load

    folder = into or new_folder(root, "report")
    loaded = [load(f) for f in folders]
    rows = grid.table(loaded)
    runs = _write_results(folder, rows)
    params = [json.loads(r.spec.to_json()) | {"run_id": r.run_id} for r in loaded]
    checkers = summary_frame((p, r.verdicts) for p, r in zip(params, loaded, strict=True))
    checkers.to_csv(folder / "checkers.csv", index=False)
    figures = _figures(folder, rows, loaded) + story.figures(folder, loaded)
    headline = f"{len(loaded)} runs; {sum(r.valid is True for r in loaded)} valid."
    told = story.sections(rows, loaded, _label_columns(rows))
    _write_pages(folder, "KATO workbench report", headline, runs, figures, sections=told)
    return folder


def sweep_notebook(
    notebook: Path | str,
    values: grid.Grid,
    root: Path | str = Path("results"),
    *,
    parameters: Mapping[str, Any] | None = None,
    progress: bool = False,
) -> Path:
    """Run ``notebook`` once per cell of the grid ``values`` (over base ``parameters``); return
    the folder (see the module docstring). A failed cell does not stop the others; after the
    report is written, :class:`SweepError` lists the failures."""
    from kato.lab.executor import check_parameters
    from kato.lab.run import load

    source = Path(notebook)
    base = dict(parameters or {})
    check_parameters(source, {*base, *grid.names(values)})
    grid.cells(values)  # a value that is not a list is refused before the folder is made
    folder = new_folder(Path(root), "sweep")
    document = {"notebook": str(source), "parameters": base, "grid": values}
    (folder / "sweep.json").write_text(json.dumps(document, indent=2, default=str) + "\n")
    done, failures = grid.run_notebooks(source, values, folder, parameters=base, progress=progress)
    rows = grid.notebook_table(done)
    runs = [load(path) for path in _run_folders(folder, rows)]
    figures = _figures(folder, rows, runs) + story.figures(folder, runs)
    for cell in done:
        for figure in (cell.recorded() or {}).get("figures", []):
            figures.append((f"{cell.name}: {Path(figure).stem}", cell.folder / figure))
    table = _write_results(folder, rows)
    trials = table[table["kind"] == "trial"] if "kind" in table.columns else table
    valid = int((trials["valid"] == "True").sum()) if "valid" in trials.columns else 0
    headline = (
        f"{source.name}: {len(done)} notebook(s), {len(failures)} failed; "
        f"{len(trials)} runs, {valid} valid."
    )
    for cell in done:
        _as_html(cell.folder / source.name)
    links = [(c.name, c.values, (c.folder / source.name).relative_to(folder)) for c in done]
    told = story.sections(rows, runs, _label_columns(rows)) if len(rows) else []
    _write_pages(
        folder, "KATO sweep report", headline, table, figures, links, failures, sections=told
    )
    if failures:
        raise SweepError(folder, failures)
    return folder


def _run_folders(folder: Path, rows: pd.DataFrame) -> list[Path]:
    """The run folder of every run the notebook cells recorded (each fault run gets its
    over-time figures; every run its counter-examples)."""
    if not {"sweep_cell", "run_id"} <= set(rows.columns):
        return []
    paths = [
        folder / str(cell) / "runs" / str(run_id)
        for cell, run_id in zip(rows["sweep_cell"], rows["run_id"], strict=True)
    ]
    return [path for path in paths if path.exists()]


def _write_results(folder: Path, rows: pd.DataFrame) -> pd.DataFrame:
    """``results.csv`` and ``results.parquet``: the trial rows and the cells' rows."""
    from kato.lab.results import with_cells

    table = _storable(with_cells(rows) if "ops" in rows.columns else rows)
    table.to_csv(folder / "results.csv", index=False)
    table.to_parquet(folder / "results.parquet", index=False)
    return table


def _as_html(notebook: Path) -> None:
    """The executed notebook rendered as HTML beside it (nbconvert), so the report links a
    page, not only raw JSON (nothing if the notebook is missing: it did not run)."""
    if not notebook.exists():
        return
    import warnings

    from nbconvert import HTMLExporter

    with warnings.catch_warnings():  # the recorded results' own MIME type has no HTML: skipped
        warnings.filterwarnings("ignore", "Your element with mimetype", UserWarning)
        page, _ = HTMLExporter().from_filename(str(notebook))  # type: ignore[no-untyped-call]
    notebook.with_suffix(".html").write_text(page)


def _storable(table: pd.DataFrame) -> pd.DataFrame:
    """Mixed columns as text (``valid`` is True, False or "unknown"): one type for Parquet. A
    missing value (a cell's, where only trials have one) stays missing, not the text "nan"."""
    import pandas as pd

    def text(value: Any) -> str | None:
        return (
            None
            if value is None or (pd.api.types.is_scalar(value) and pd.isna(value))
            else str(value)
        )

    stored = table.copy()
    for column in stored.columns:
        if stored[column].dtype == object or column == "valid":
            stored[column] = stored[column].map(text)
    return stored


def _label_columns(rows: pd.DataFrame) -> list[str]:
    wanted = ["scenario", "target", "store", "variant", "workers", "fault"]
    varying = [c for c in wanted if c in rows.columns and rows[c].astype(str).nunique() > 1]
    return varying or [c for c in ("variant",) if c in rows.columns]


def _figures(folder: Path, rows: pd.DataFrame, faulted: Iterable[Run]) -> list[tuple[str, Path]]:
    """Rates and latency vs concurrency over ``rows``; throughput over time of each run of
    ``faulted`` that had a fault. Saved as PNG into ``folder``; returns ``(title, path)``."""
    from kato.lab import plots
    from kato.lab.results import faults_frame, ops_frame

    figures: list[tuple[str, Path]] = []
    if rows.empty or "concurrency" not in rows.columns:
        return figures
    labels = _label_columns(rows)
    by = " / ".join(labels)
    data = rows.copy()
    data[by] = rows[labels].astype(str).agg(" / ".join, axis=1)
    for rate in ("anomaly_rate", "anomalous_trials", "error_rate"):
        path = folder / f"{rate}.png"
        plots.failure_rate_vs_concurrency(data, by=by, rate=rate, path=path).clear()
        figures.append((f"{plots.RATE_LABELS[rate]} vs concurrency, by {by}", path))
    if {"p50_ms", "p90_ms", "p99_ms", "max_ms"} <= set(rows.columns):
        path = folder / "latency.png"
        calm = rows[rows["fault"].astype(str) == "none"] if "fault" in rows.columns else rows
        shown, title = (calm, "runs without a fault") if len(calm) else (rows, "every run")
        plots.latency_vs_concurrency_by(data.loc[shown.index], by=by, path=path).clear()
        figures.append((f"latency p50 / p99 vs concurrency, by {by} ({title})", path))
    for result in faulted:
        if any(op.f == "fault" for op in result.history):
            path = folder / f"throughput-{result.run_id}.png"
            ops, faults = ops_frame(result.history), faults_frame(result.history)
            title = f"throughput over time: {story.run_label(result)}"
            plots.throughput_over_time(ops, faults, path=path, title=title).clear()
            title += f" ({result.run_id})"
            figures.append((title, path))
    return figures


def _html_figures(figures: Sequence[tuple[str, Path]]) -> str:
    """``<figure>`` elements with each PNG embedded (the page needs no files beside it)."""
    return "\n".join(
        f"<figure><img alt='{html.escape(title)}' src='data:image/png;base64,"
        f"{base64.b64encode(path.read_bytes()).decode()}'><figcaption>{html.escape(title)}"
        "</figcaption></figure>"
        for title, path in figures
        if path.exists()
    )


def _write_pages(
    folder: Path,
    title: str,
    headline: str,
    table: pd.DataFrame,
    figures: Sequence[tuple[str, Path]],
    links: Sequence[tuple[str, Mapping[str, Any], Path]] = (),
    failures: Sequence[Exception] = (),
    *,
    sections: Sequence[story.Section] = (),
) -> None:
    """``report.md`` and ``report.html``: the headline, the figures, the story's ``sections``
    (:mod:`kato.lab.story`), the table of cells (95 % intervals as ``_lo`` / ``_hi``) and, for
    a notebook sweep, each cell's executed notebook (``links``, as HTML and ipynb) and the
    ``failures``."""
    cells = table[table["kind"] == "cell"] if "kind" in table.columns else table
    columns = [c for c in SUMMARY_COLUMNS if c in cells.columns and cells[c].notna().any()]
    summary = cells[columns].round(4)
    shown = summary.to_markdown(index=False) if len(summary) else "(no runs recorded)"
    lines = [f"# {title}", "", headline, ""]
    lines += [f"![{name}]({path.relative_to(folder)})" for name, path in figures]
    lines += ["", *(part for s in sections for part in (f"## {s.title}", "", s.markdown, ""))]
    lines += ["## Cells (95 % intervals: `_lo`, `_hi`)", "", shown, ""]
    if links or failures:
        lines += ["## Notebooks", ""]
        lines += [
            f"- [{n}]({p.with_suffix('.html')}) ([ipynb]({p})): `{json.dumps(v, default=str)}`"
            for n, v, p in links
        ]
        lines += ["", *(f"- FAILED {f}" for f in failures), ""]
    (folder / "report.md").write_text("\n".join(lines) + "\n")

    items = "".join(
        f"<li><a href='{html.escape(str(p.with_suffix('.html')))}'>{html.escape(n)}</a> "
        f"(<a href='{html.escape(str(p))}'>ipynb</a>) "
        f"<code>{html.escape(json.dumps(v, default=str))}</code></li>"
        for n, v, p in links
    )
    items += "".join(f"<li class='failed'>{html.escape(str(f))}</li>" for f in failures)
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px}"
        f"img{{max-width:100%}}.failed{{color:#b00}}</style></head><body><h1>{html.escape(title)}"
        f"</h1><p>{html.escape(headline)}</p>{_html_figures(figures)}"
        + "".join(f"<h2>{html.escape(s.title)}</h2>{s.html}" for s in sections)
        + "<h2>Cells (95 % intervals: <code>_lo</code>, <code>_hi</code>)</h2>"
        f"{summary.to_html(index=False)}"
        + (f"<h2>Notebooks</h2><ul>{items}</ul>" if items else "")
        + "</body></html>"
    )
    (folder / "report.html").write_text(page)
