"""Notebooks: run experiment notebooks headlessly (papermill), sweep them, and help them record.

An *experiment notebook* (``experiments/*.ipynb``) follows papermill's contract: one cell tagged
``parameters`` with small defaults, one of which is ``output_dir``; thin cells that call
:mod:`kato.lab`; and a last call to :func:`record`, which writes into ``output_dir``::

    output_dir/
        results.json    {"notebook": str, "rows": [run row, ...], "figures": ["x.png", ...]}
        rows.csv        the same rows (one per run: parameters, rates, latency percentiles)
        x.png ...       the notebook's key figures
        runs/<run-id>/  each run as :func:`kato.lab.run.save` writes it (history, verdicts, ...)

and glues the rows into the notebook itself as an output of MIME type :data:`RESULTS_MIME`.

:func:`execute` runs one notebook with parameters into a folder (never over its source);
:func:`sweep_notebook` runs it over a grid into ``results/<sweep-id>/`` and gathers every cell's
rows into ``results.csv``/``results.parquet``, ``report.html`` (figures embedded) and
``report.md``. :func:`run_grid` and :class:`Explorer` are what the notebooks call.
"""

from __future__ import annotations

import datetime as dt
import html
import itertools
import json
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kato.lab.history import Op
from kato.lab.report import SUMMARY_COLUMNS, html_figures
from kato.lab.spec import Experiment

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = [
    "RESULTS_MIME",
    "Explorer",
    "NotebookError",
    "SweepError",
    "execute",
    "gather",
    "output_folder",
    "record",
    "run_grid",
    "sweep_notebook",
    "variant_names",
    "visibility_delays",
]

#: The MIME type under which :func:`record` glues a notebook's rows into its outputs.
RESULTS_MIME = "application/vnd.kato.results+json"


def _missing(package: str) -> ImportError:
    return ImportError(
        f"kato.lab.notebooks needs {package}, part of the 'lab' extra: pip install 'kato[lab]'"
    )


# --- executing notebooks -------------------------------------------------------------------


class NotebookError(RuntimeError):
    """A notebook failed while executing. The executed notebook is kept at ``path``; ``cell``
    is the index of the failing cell in it and ``source`` that cell's first line."""

    def __init__(self, message: str, *, path: Path, cell: int | None, source: str) -> None:
        super().__init__(message)
        self.path = path
        self.cell = cell
        self.source = source


class SweepError(RuntimeError):
    """Some cells of a sweep failed; the report (``folder``) was still written."""

    def __init__(self, folder: Path, failures: Sequence[NotebookError]) -> None:
        listed = "; ".join(str(f) for f in failures)
        super().__init__(f"{len(failures)} notebook(s) of the sweep failed: {listed}")
        self.folder = folder
        self.failures = list(failures)


def notebook_parameters(notebook: Path) -> dict[str, Any]:
    """The parameters a notebook declares (its ``parameters`` cell), by name, with defaults."""
    try:
        import papermill
    except ImportError:
        raise _missing("papermill") from None
    found = papermill.inspect_notebook(str(notebook))
    return {name: info.get("default") for name, info in found.items()}


def _failing_cell(path: Path) -> tuple[int | None, str]:
    import nbformat

    nb = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                first = next((line for line in cell.source.splitlines() if line.strip()), "")
                return index, first
    return None, ""


def execute(
    notebook: Path | str,
    parameters: Mapping[str, Any],
    output_dir: Path | str,
    *,
    timeout_s: float = 600.0,
) -> Path:
    """Execute ``notebook`` with ``parameters`` into ``output_dir``; return the executed copy.

    The executed notebook is ``output_dir/<notebook name>`` (never the source). If the
    notebook declares ``output_dir`` and ``parameters`` does not set it, it is set to
    ``output_dir``. Runs with the working directory ``output_dir``.

    Raises
    ------
    ValueError
        A parameter the notebook's ``parameters`` cell does not declare.
    NotebookError
        A cell raised; the executed notebook, error included, is kept and named in the message.
    """
    try:
        import papermill
        from papermill.exceptions import PapermillExecutionError
    except ImportError:
        raise _missing("papermill") from None
    source = Path(notebook).resolve()
    folder = Path(output_dir).resolve()
    declared = notebook_parameters(source)
    unknown = sorted(set(parameters) - set(declared))
    if unknown:
        raise ValueError(
            f"{source.name} has no parameter(s) {', '.join(unknown)}; "
            f"it declares {', '.join(sorted(declared)) or 'none'}"
        )
    params = dict(parameters)
    if "output_dir" in declared and "output_dir" not in params:
        params["output_dir"] = str(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / source.name
    if target == source:
        raise ValueError(f"refusing to write the executed notebook over its source {source}")
    try:
        papermill.execute_notebook(
            str(source),
            str(target),
            parameters=params,
            cwd=str(folder),
            progress_bar=False,
            execution_timeout=timeout_s,
            # The kernel's own start-up warnings (plain TCP on loopback) are noise here.
            extra_arguments=["--IPKernelApp.log_level=ERROR"],
        )
    except PapermillExecutionError as exc:
        cell, first = _failing_cell(target)
        raise NotebookError(
            f"{source.name}: cell {cell} ({first!r}) raised {exc.ename}: {exc.evalue}; "
            f"executed notebook kept at {target}",
            path=target,
            cell=cell,
            source=first,
        ) from exc
    return target


# --- sweeps ----------------------------------------------------------------------------------


def grid_cells(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, in a stable order (names sorted)."""
    names = sorted(grid)
    for name in names:
        if isinstance(grid[name], str | bytes) or not isinstance(grid[name], Sequence):
            raise ValueError(f"grid value of {name!r} must be a list, got {grid[name]!r}")
    return [
        dict(zip(names, values, strict=True))
        for values in itertools.product(*(grid[n] for n in names))
    ]


def sweep_notebook(
    notebook: Path | str,
    grid: Mapping[str, Sequence[Any]],
    root: Path | str = Path("results"),
    *,
    parameters: Mapping[str, Any] | None = None,
    progress: bool = False,
) -> Path:
    """Run ``notebook`` once per cell of ``grid`` (over base ``parameters``); return the folder.

    The folder is ``root/<sweep-id>/``: one sub-folder per grid cell (``NN-<notebook>/``) holding
    the executed notebook and what it recorded, then ``results.csv``, ``results.parquet``,
    ``report.md``, ``report.html`` and the figures. A failed cell does not stop the others;
    after the report is written, :class:`SweepError` lists the failures.
    """
    source = Path(notebook)
    base = dict(parameters or {})
    cells = grid_cells(grid)
    declared = notebook_parameters(source)
    unknown = sorted({*base, *grid} - set(declared))
    if unknown:
        raise ValueError(f"{source.name} has no parameter(s) {', '.join(unknown)}")
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
    folder = Path(root) / f"sweep-{stamp}-{source.stem}"
    folder.mkdir(parents=True)
    (folder / "sweep.json").write_text(
        json.dumps(
            {"notebook": str(source), "parameters": base, "grid": dict(grid)}, indent=2, default=str
        )
        + "\n"
    )
    iterator: Any = enumerate(cells)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, total=len(cells), desc=f"sweep {source.stem}", unit="notebook")
    failures: list[NotebookError] = []
    done: list[tuple[str, dict[str, Any], Path]] = []
    for index, cell in iterator:
        name = f"{index:02d}-{source.stem}"
        try:
            execute(source, {**base, **cell}, folder / name)
        except NotebookError as exc:
            failures.append(exc)
        done.append((name, cell, folder / name))
    rows = gather(done)
    _write_report(folder, source, rows, done, failures)
    if failures:
        raise SweepError(folder, failures)
    return folder


def gather(cells: Sequence[tuple[str, Mapping[str, Any], Path]]) -> pd.DataFrame:
    """One table of every row the cells recorded: ``(name, grid values, folder)`` per cell.

    Each row gets ``sweep_cell`` and the cell's grid values (lists as JSON text) as columns,
    unless the row already holds that name (an experiment parameter it records itself)."""
    import pandas as pd

    rows = []
    for name, values, folder in cells:
        path = folder / "results.json"
        if not path.exists():
            continue
        recorded = json.loads(path.read_text())
        for row in recorded["rows"]:
            extra = {
                k: json.dumps(v) if isinstance(v, list | dict) else v
                for k, v in values.items()
                if k not in row
            }
            rows.append({"sweep_cell": name, **extra, **row})
    return pd.DataFrame(rows)


def _label_columns(rows: pd.DataFrame) -> list[str]:
    wanted = ["scenario", "target", "store", "variant", "workers", "fault"]
    varying = [c for c in wanted if c in rows.columns and rows[c].astype(str).nunique() > 1]
    return varying or [c for c in ("variant",) if c in rows.columns]


def _figures(folder: Path, rows: pd.DataFrame) -> list[tuple[str, Path]]:
    from kato.lab import plots
    from kato.lab.results import faults_frame, ops_frame
    from kato.lab.run import load

    figures: list[tuple[str, Path]] = []
    if rows.empty or "concurrency" not in rows.columns:
        return figures
    labels = _label_columns(rows)
    by = " / ".join(labels)
    data = rows.copy()
    data[by] = rows[labels].astype(str).agg(" / ".join, axis=1)
    for rate in ("anomaly_rate", "error_rate"):
        path = folder / f"{rate}.png"
        _close(plots.failure_rate_vs_concurrency(data, by=by, rate=rate, path=path))
        figures.append((f"{rate.replace('_', ' ')} vs concurrency, by {by}", path))
    if {"p50_ms", "p90_ms", "p99_ms", "max_ms"} <= set(rows.columns):
        path = folder / "latency.png"
        _close(plots.latency_vs_concurrency(rows, path=path))
        figures.append(("latency percentiles vs concurrency", path))
    if "fault" in rows.columns:
        faulted = rows[rows["fault"].astype(str) != "none"]
        for _, row in faulted.groupby("sweep_cell").tail(1).iterrows():  # one per cell
            run_folder = folder / str(row["sweep_cell"]) / "runs" / str(row["run_id"])
            if not run_folder.exists():
                continue
            result = load(run_folder)
            path = folder / f"throughput-{row['run_id']}.png"
            _close(plots.throughput_over_time(ops_frame(result.history),
                                              faults_frame(result.history), path=path))  # fmt: skip
            figures.append((f"throughput over time under {row['fault']} ({row['run_id']})", path))
    return figures


def _close(figure: Figure) -> None:
    figure.clear()


def _write_report(
    folder: Path,
    source: Path,
    rows: pd.DataFrame,
    cells: Sequence[tuple[str, Mapping[str, Any], Path]],
    failures: Sequence[NotebookError],
) -> None:
    table = rows.copy()
    if "valid" in table.columns:  # True, False or "unknown": one type for Parquet
        table["valid"] = table["valid"].astype(str)
    for column in table.columns:
        if table[column].dtype == object:
            table[column] = table[column].map(lambda v: v if v is None else str(v))
    table.to_csv(folder / "results.csv", index=False)
    table.to_parquet(folder / "results.parquet", index=False)
    figures = _figures(folder, rows)
    for name, _, cell_folder in cells:
        recorded = cell_folder / "results.json"
        if recorded.exists():
            for figure in json.loads(recorded.read_text()).get("figures", []):
                figures.append((f"{name}: {Path(figure).stem}", cell_folder / figure))
    columns = ["sweep_cell", *SUMMARY_COLUMNS]
    summary = table[[c for c in columns if c in table.columns]].round(3)
    notebooks = [
        (name, values, (cell_folder / source.name).relative_to(folder))
        for name, values, cell_folder in cells
    ]
    valid = int((table["valid"] == "True").sum()) if "valid" in table.columns else 0
    headline = (
        f"{source.name}: {len(cells)} notebook(s), {len(failures)} failed; "
        f"{len(table)} runs, {valid} valid."
    )
    lines = ["# KATO sweep report", "", headline, ""]
    lines += [summary.to_markdown(index=False) if len(summary) else "(no runs recorded)", ""]
    lines += ["## Notebooks", ""]
    lines += [f"- [{n}]({p}): `{json.dumps(v, default=str)}`" for n, v, p in notebooks]
    lines += ["", *(f"- FAILED {f}" for f in failures), ""]
    lines += [f"![{title}]({path.relative_to(folder)})" for title, path in figures]
    (folder / "report.md").write_text("\n".join(lines) + "\n")

    images = html_figures(figures)
    items = "".join(
        f"<li><a href='{html.escape(str(p))}'>{html.escape(n)}</a> "
        f"<code>{html.escape(json.dumps(v, default=str))}</code></li>"
        for n, v, p in notebooks
    )
    failed = "".join(f"<li class='failed'>{html.escape(str(f))}</li>" for f in failures)
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>KATO sweep report</title>"
        "<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px}"
        "img{max-width:100%}.failed{color:#b00}</style></head><body><h1>KATO sweep report</h1>"
        f"<p>{html.escape(headline)}</p>{summary.to_html(index=False)}"
        f"<h2>Figures</h2>{images}<h2>Notebooks</h2><ul>{items}{failed}</ul></body></html>"
    )
    (folder / "report.html").write_text(page)


# --- what the notebooks call -----------------------------------------------------------------


def output_folder(output_dir: str | Path | None, name: str) -> Path:
    """``output_dir`` as a folder that exists; ``None`` or ``""``: a new temporary folder (so a
    notebook run by hand or by nbval writes nothing into the source tree)."""
    if not output_dir:
        return Path(tempfile.mkdtemp(prefix=f"kato-{name}-"))
    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def run_grid(
    base: Experiment,
    output_dir: Path,
    *,
    progress: bool = False,
    **axes: Sequence[Any],
) -> pd.DataFrame:
    """Run ``base`` once per combination of ``axes`` (``concurrency=[1, 4]``…), save each run
    into ``output_dir/runs/``, and return one row per run (:func:`kato.lab.results.run_row`
    plus ``run_id`` and each checker's anomalies as ``<checker>_anomalies``)."""
    import pandas as pd

    from kato.lab.results import run_row
    from kato.lab.run import run, save

    rows = []
    for cell in grid_cells(axes):
        result = run(base.with_(**cell), progress=progress)
        save(result, output_dir / "runs")
        row = run_row(json.loads(result.spec.to_json()), result.history, result.verdicts)
        row["run_id"] = result.run_id
        for checker in result.verdicts["checkers"]:
            row[f"{checker['name']}_anomalies"] = checker["anomalies"]
        rows.append(row)
    return pd.DataFrame(rows)


def visibility_delays(ops: pd.DataFrame) -> pd.Series:
    """Per session, ms from its create's completion to the first ok read of it completing."""
    created = ops[(ops["f"] == "create") & (ops["outcome"] == "ok")].set_index("session_id")
    reads = ops[ops["f"].isin(["read_session", "read_stm"]) & (ops["outcome"] == "ok")]
    first = reads.groupby("session_id")["done_s"].min()
    return ((first - created["done_s"].reindex(first.index)) * 1000).dropna()


def record(
    output_dir: Path,
    rows: pd.DataFrame,
    *,
    notebook: str,
    figures: Mapping[str, Figure] | None = None,
) -> Path:
    """Write ``results.json``, ``rows.csv`` and the figures (PNG) into ``output_dir`` and glue
    the rows into the notebook's outputs (:data:`RESULTS_MIME`); return ``results.json``."""
    names = []
    for name, figure in (figures or {}).items():
        figure.savefig(output_dir / f"{name}.png", dpi=110)
        names.append(f"{name}.png")
    rows.to_csv(output_dir / "rows.csv", index=False)
    document = {
        "notebook": notebook,
        "rows": json.loads(rows.to_json(orient="records")),
        "figures": names,
    }
    path = output_dir / "results.json"
    path.write_text(json.dumps(document, indent=2) + "\n")
    _glue(document)
    return path


def _glue(document: Mapping[str, Any]) -> None:
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        return
    if get_ipython() is None:
        return
    display({RESULTS_MIME: dict(document)}, raw=True, metadata={"kato": "results"})  # type: ignore[no-untyped-call]


def glued(notebook: Path | str) -> dict[str, Any] | None:
    """What :func:`record` glued into an executed notebook, or ``None``."""
    import nbformat

    nb = nbformat.read(Path(notebook), as_version=4)  # type: ignore[no-untyped-call]
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if RESULTS_MIME in data:
                return dict(data[RESULTS_MIME])
    return None


# --- the interactive explorer ----------------------------------------------------------------


def variant_names() -> list[str]:
    """``production`` and the bug zoo's variants, when the zoo is installed."""
    import importlib

    try:
        zoo = importlib.import_module("kato.lab.zoo")
    except ImportError:
        return ["production"]
    return ["production", *getattr(zoo, "VARIANTS", {})]


class LivePlot:
    """Operations as they complete, drawn as PNG: latency over time and outcomes so far.

    :meth:`add` may be called from any thread (``run``'s ``on_op``); :meth:`png` draws."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._points: list[tuple[float, float, str]] = []
        self._start: int | None = None

    def add(self, op: Op) -> None:
        if op.f == "fault" or op.complete_ns is None or op.latency_ns is None:
            return
        with self._lock:
            if self._start is None:
                self._start = op.invoke_ns
            self._points.append(
                ((op.complete_ns - self._start) / 1e9, op.latency_ns / 1e6, op.outcome)
            )

    def __len__(self) -> int:
        return len(self._points)

    def png(self, title: str = "") -> bytes:
        import io

        from matplotlib.figure import Figure

        with self._lock:
            points = list(self._points)
        figure = Figure(figsize=(9, 3.2), layout="constrained")
        latency, counts = figure.subplots(1, 2)
        colours = {"ok": "tab:blue", "fail": "tab:orange", "unknown": "tab:red"}
        totals = dict.fromkeys(colours, 0)
        for outcome, colour in colours.items():
            mine = [(t, ms) for t, ms, o in points if o == outcome]
            totals[outcome] = len(mine)
            if mine:
                latency.scatter(*zip(*mine, strict=True), s=6, color=colour, label=outcome)
        latency.set_xlabel("completed at (s)")
        latency.set_ylabel("latency (ms)")
        latency.set_title(title or "operations as they complete")
        if points:
            latency.legend(fontsize="small")
        counts.bar(list(totals), list(totals.values()), color=list(colours.values()))
        counts.set_title(f"{len(points)} operations")
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=80)
        return buffer.getvalue()


class Explorer:
    """Controls for one experiment, a Run button, a progress bar and plots that update live.

    Each run adds a row to :attr:`rows`; the curve of error and anomaly rate vs concurrency
    over all runs so far is redrawn after each. Display it with ``display(explorer.widget)``;
    :meth:`run` does what the button does (headless notebooks call it directly)."""

    def __init__(self, spec: Experiment, *, refresh_s: float = 0.25) -> None:
        try:
            import ipywidgets as w
        except ImportError:
            raise _missing("ipywidgets") from None
        from kato.lab.spec import FAULTS, SCENARIOS, STORES, TARGETS

        self.base = spec
        self.refresh_s = refresh_s
        self.rows: list[dict[str, Any]] = []
        self.last: Any = None
        variants = variant_names()
        if spec.variant not in variants:
            variants.append(spec.variant)
        self.scenario = w.Dropdown(options=SCENARIOS, value=spec.scenario, description="scenario")
        self.target = w.Dropdown(options=TARGETS, value=spec.target, description="target")
        self.store = w.Dropdown(options=STORES, value=spec.store, description="store")
        self.variant = w.Dropdown(options=variants, value=spec.variant, description="variant")
        self.fault = w.Dropdown(options=FAULTS, value=spec.fault, description="fault")
        self.workers = w.BoundedIntText(value=spec.workers, min=1, max=16, description="workers")
        self.concurrency = w.IntSlider(value=spec.concurrency, min=1, max=256,
                                       description="concurrency")  # fmt: skip
        self.operations = w.BoundedIntText(value=spec.operations, min=1, max=100_000,
                                           description="operations")  # fmt: skip
        self.button = w.Button(description="Run", button_style="primary", icon="play")
        self.progress = w.IntProgress(value=0, min=0, max=1, description="0 ops")
        self.status = w.HTML("")
        self.live = w.Image(format="png")
        self.curve = w.Image(format="png")
        self.output = w.Output()
        self.button.on_click(lambda _: self.run())
        controls = w.VBox(
            [
                w.HBox([self.scenario, self.target, self.store]),
                w.HBox([self.variant, self.fault, self.workers]),
                w.HBox([self.concurrency, self.operations, self.button]),
            ]
        )
        self.widget = w.VBox(
            [controls, self.progress, self.status, self.live, self.curve, self.output]
        )

    def spec(self) -> Experiment:
        """The experiment the controls describe (``ValueError`` if they contradict)."""
        return self.base.with_(
            scenario=self.scenario.value,
            target=self.target.value,
            store=self.store.value,
            variant=self.variant.value,
            fault=self.fault.value,
            workers=int(self.workers.value),
            concurrency=int(self.concurrency.value),
            operations=int(self.operations.value),
        )

    def run(self) -> Any:
        """Run the controls' experiment with live updates; return the :class:`~kato.lab.run.Run`
        (``None`` if the controls are contradictory, with the reason shown)."""
        from kato.lab.scenarios import plan

        try:
            spec = self.spec()
        except ValueError as exc:
            self.status.value = f"<b style='color:#b00'>{html.escape(str(exc))}</b>"
            return None
        return self._run(spec, int(plan(spec).size))

    def _run(self, spec: Experiment, total: int) -> Any:
        import pandas as pd

        from kato.lab import plots
        from kato.lab.results import run_row
        from kato.lab.run import run

        live = LivePlot()
        title = f"{spec.scenario} ×{spec.concurrency} on {spec.target}/{spec.store}"
        self.progress.max, self.progress.value = max(total, 1), 0
        self.status.value = f"running {html.escape(title)}…"
        self.button.disabled = True
        drawn = [0.0]

        def on_op(op: Op) -> None:
            live.add(op)
            self.progress.value = min(len(live), self.progress.max)
            self.progress.description = f"{len(live)} ops"
            now = time.monotonic()
            if now - drawn[0] >= self.refresh_s:
                drawn[0] = now
                self.live.value = live.png(title)

        try:
            result = run(spec, on_op=on_op)
        finally:
            self.button.disabled = False
        self.live.value = live.png(title)
        self.progress.value = self.progress.max
        row = run_row(json.loads(spec.to_json()), result.history, result.verdicts)
        self.rows.append(row)
        self.last = result
        frame = pd.DataFrame(self.rows)
        frame["runs"] = frame[["store", "variant", "fault"]].astype(str).agg("/".join, axis=1)
        figure = plots.failure_rate_vs_concurrency(frame, by="runs", rate="error_rate")
        self.curve.value = _png(figure)
        self.status.value = (
            f"{html.escape(title)}: valid = <b>{result.valid}</b>, {row['ops']} ops, "
            f"error rate {row['error_rate']:.3f}, p99 {row['p99_ms'] or 0:.1f} ms"
        )
        return result


def _png(figure: Figure) -> bytes:
    import io

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    return buffer.getvalue()
