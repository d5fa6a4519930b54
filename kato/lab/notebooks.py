"""What the notebooks call: an output folder, a grid of runs, what they record.

An experiment notebook (``experiments/*.ipynb``) ends with :func:`record`, which writes into
its ``output_dir``::

    output_dir/
        results.json    {"notebook": str, "rows": [run row, ...], "figures": ["x.png", ...]}
        rows.csv        the same rows (one per run: parameters, rates, latency percentiles)
        x.png ...       the notebook's key figures
        runs/<run-id>/  each run as :func:`kato.lab.run.save` writes it (history, verdicts, ...)

and glues the rows into the notebook itself as an output of MIME type
:data:`kato.lab.executor.RESULTS_MIME`. Executing notebooks lives in :mod:`kato.lab.executor`,
sweeping them in :func:`kato.lab.report.sweep_notebook`, the interactive explorer in
:mod:`kato.lab.explorer`.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kato.lab.executor import RESULTS_MIME
from kato.lab.spec import Experiment

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = ["output_folder", "record", "run_grid", "visibility_delays"]


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
    trials: int = 1,
    progress: bool = False,
    **axes: Sequence[Any],
) -> pd.DataFrame:
    """Run ``base`` ``trials`` times per combination of ``axes`` (``concurrency=[1, 4]``…), save
    each run into ``output_dir/runs/``, and return the grid's table (:func:`kato.lab.grid.row`
    per run; the plots and reports draw each cell's intervals from it)."""
    from kato.lab import grid

    saved = grid.run_experiments(
        grid.experiments(base, axes),
        Path(output_dir) / "runs",
        trials=trials,
        progress=progress,
        desc="grid",
    )
    return grid.table(s.run for s in saved)


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
