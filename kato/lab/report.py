"""Reports over several runs, and sweeps that make those runs.

``sweep(specs, root)`` runs every experiment into ``root/<sweep-id>/runs/`` and writes the report
beside them; ``report(folders, root)`` does the report alone for runs saved earlier. A report is
``runs.csv`` and ``runs.parquet`` (one row per run), ``checkers.csv`` (one row per run ×
checker), the figures as PNG, ``report.md`` and ``report.html`` (figures embedded).
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kato.lab.folders import new_folder
from kato.lab.spec import Experiment

__all__ = ["SUMMARY_COLUMNS", "html_figures", "report", "sweep"]


def sweep(specs: Sequence[Experiment], root: Path, *, progress: bool = True) -> Path:
    """Run each spec, save it, and write one report over all of them; return the folder."""
    from kato.lab.run import run, save

    folder = new_folder(root, "sweep")
    runs_dir = folder / "runs"
    runs_dir.mkdir()
    saved = []
    iterator: Any = specs
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(specs, desc="sweep", unit="run")
    for spec in iterator:
        saved.append(save(run(spec), runs_dir))
    return report(saved, folder, into=folder)


def report(folders: Sequence[Path], root: Path, *, into: Path | None = None) -> Path:
    """Tables and figures over the runs saved in ``folders``; return the report's folder."""
    import pandas as pd

    from kato.lab import plots
    from kato.lab.results import run_row, summary_frame
    from kato.lab.run import load

    folder = into or new_folder(root, "report")
    folder.mkdir(parents=True, exist_ok=True)
    loaded = [load(f) for f in folders]
    params = [json.loads(r.spec.to_json()) | {"run_id": r.run_id} for r in loaded]
    runs = pd.DataFrame(
        [run_row(p, r.history, r.verdicts) for p, r in zip(params, loaded, strict=True)]
    )
    runs.to_csv(folder / "runs.csv", index=False)
    runs.to_parquet(folder / "runs.parquet", index=False)
    checkers = summary_frame((p, r.verdicts) for p, r in zip(params, loaded, strict=True))
    checkers.to_csv(folder / "checkers.csv", index=False)

    figures: list[tuple[str, Path]] = []
    group = "variant" if runs["variant"].nunique() > 1 else "store"
    for rate in ("anomaly_rate", "error_rate"):
        path = folder / f"{rate}.png"
        plots.failure_rate_vs_concurrency(runs, by=group, rate=rate, path=path)
        figures.append((f"{rate.replace('_', ' ')} vs concurrency", path))
    path = folder / "latency.png"
    plots.latency_vs_concurrency(runs, path=path)
    figures.append(("latency percentiles vs concurrency", path))
    for result in loaded:
        if any(op.f == "fault" for op in result.history):
            from kato.lab.results import faults_frame, ops_frame

            path = folder / f"throughput-{result.run_id}.png"
            plots.throughput_over_time(
                ops_frame(result.history), faults_frame(result.history), path=path
            )
            figures.append((f"throughput over time, {result.spec.fault} ({result.run_id})", path))
    _write_markdown(folder, runs, figures)
    _write_html(folder, runs, figures)
    return folder


#: The columns a report's run table shows (what exists of them).
SUMMARY_COLUMNS = [
    "scenario",
    "target",
    "store",
    "variant",
    "workers",
    "concurrency",
    "fault",
    "ops",
    "error_rate",
    "anomalies",
    "valid",
    "throughput_ops_s",
    "p50_ms",
    "p99_ms",
]


def _table(runs: Any) -> Any:
    columns = [c for c in SUMMARY_COLUMNS if c in runs.columns]
    return runs[columns].round(3)


def _write_markdown(folder: Path, runs: Any, figures: list[tuple[str, Path]]) -> None:
    lines = [
        "# KATO workbench report",
        "",
        f"{len(runs)} runs; {int((runs['valid'] == True).sum())} valid.",  # noqa: E712
        "",
        _table(runs).to_markdown(index=False),
        "",
    ]
    lines += [f"![{title}]({path.name})" for title, path in figures]
    (folder / "report.md").write_text("\n".join(lines) + "\n")


def html_figures(figures: Sequence[tuple[str, Path]]) -> str:
    """``<figure>`` elements with each PNG embedded (the page needs no files beside it)."""
    return "\n".join(
        f"<figure><img alt='{html.escape(title)}' src='data:image/png;base64,"
        f"{base64.b64encode(path.read_bytes()).decode()}'><figcaption>{html.escape(title)}"
        "</figcaption></figure>"
        for title, path in figures
        if path.exists()
    )


def _write_html(folder: Path, runs: Any, figures: list[tuple[str, Path]]) -> None:
    images = html_figures(figures)
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>KATO workbench report</title>"
        "<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px}"
        "img{max-width:100%}</style></head><body><h1>KATO workbench report</h1>"
        f"{_table(runs).to_html(index=False)}{images}</body></html>"
    )
    (folder / "report.html").write_text(page)
