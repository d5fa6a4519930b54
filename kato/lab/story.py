"""The parts of a report that tell the story: headlines, checkers, witnesses, timelines, setup.

:mod:`kato.lab.report` writes the tables and curves; this module adds, for the same runs, what
a reader looks at first — a headline per cell (``production / none: 0 anomalies in 3 runs``),
the anomalies per checker with expected (bug-zoo) failures marked, one counter-example per
failing checker of each run — then a timeline and a latency-over-time figure for every run with
a fault (titled by variant, fault and concurrency), a latency CDF per variant, and the
environment the runs ran in (versions, git revision, seeds, machine).
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kato.lab import findings

if TYPE_CHECKING:
    import pandas as pd

    from kato.lab.run import Run

__all__ = ["Section", "environment", "figures", "run_label", "sections"]


@dataclass(frozen=True, slots=True)
class Section:
    """One part of the report page, in Markdown and in HTML."""

    title: str
    markdown: str
    html: str


def run_label(result: Run) -> str:
    """What distinguishes a run in a figure: variant, fault and concurrency."""
    spec = result.spec
    return f"{spec.variant} · {spec.fault} · ×{spec.concurrency}"


def _table(frame: pd.DataFrame) -> tuple[str, str]:
    if frame.empty:
        return "(none)", "<p>(none)</p>"
    return frame.to_markdown(index=False), frame.to_html(index=False, escape=True)


def sections(rows: pd.DataFrame, runs: Sequence[Run], by: list[str]) -> list[Section]:
    """Headlines per cell (``by``: the columns that vary), anomalies per checker, a witness per
    failing checker of each run, and the environment."""
    found: list[Section] = []
    if "anomalies" in rows.columns and by:
        heads = findings.headline_table(rows, by)
        md, page = _table(heads[["headline", "runs", "anomalies_min", "anomalies_max"]])
        found.append(Section("Headlines (anomalies per run, per cell)", md, page))
    checkers = [c for c in rows.columns if c.endswith("_anomalies")]
    if checkers:
        shown = rows[[c for c in [*by, "concurrency"] if c in rows.columns] + checkers].copy()
        if "variant" in rows.columns:
            shown["expected_failure"] = rows["variant"].map(findings.expected_failure)
        shown.columns = [c.removesuffix("_anomalies") for c in shown.columns]
        md, page = _table(shown)
        found.append(Section("Anomalies by checker (rows of a zoo variant expect them)", md, page))
    witnessed = [(r, findings.counter_examples(r.verdicts)) for r in runs]
    witnessed = [(r, e) for r, e in witnessed if e]
    if witnessed:
        md_lines, html_parts = [], []
        for result, examples in witnessed:
            label = f"{run_label(result)} ({result.run_id})"
            md_lines.append(f"- **{label}**: " + "; ".join(
                f"{e['checker']} ({e['anomalies']}): ops {e['ops']}, expected "
                f"`{_short(e['expected'])}`, seen `{_short(e['seen'])}`" for e in examples
            ))  # fmt: skip
            html_parts.append(f"<h3>{html.escape(label)}</h3>{findings.examples_html(examples)}")
        title = "Counter-examples (one per failing checker)"
        found.append(Section(title, "\n".join(md_lines), "".join(html_parts)))
    if runs:
        setup = environment(runs)
        found.append(
            Section(
                "Environment",
                "\n".join(f"- {k}: `{v}`" for k, v in setup.items()),
                "<ul>"
                + "".join(
                    f"<li>{html.escape(k)}: <code>{html.escape(str(v))}</code></li>"
                    for k, v in setup.items()
                )
                + "</ul>",
            )
        )
    return found


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:79] + "…"


def environment(runs: Sequence[Run]) -> dict[str, Any]:
    """Versions, git revision, machine and the seeds of ``runs`` (from their metadata)."""
    first = runs[0].metadata
    keys = ("kato", "python", "numpy", "platform", "cpus", "git_revision",
            "generator_ceiling_ops_s")  # fmt: skip
    setup = {k: first.get(k) for k in keys if k in first}
    setup["seeds"] = sorted({r.spec.seed for r in runs})
    revisions = sorted({str(r.metadata.get("git_revision")) for r in runs})
    if len(revisions) > 1:
        setup["git_revision"] = ", ".join(revisions)
    return setup


def figures(folder: Path, runs: Sequence[Run]) -> list[tuple[str, Path]]:
    """A timeline and latency over time for every run with a fault, titled by variant, fault
    and concurrency; a latency CDF per variant over all ``runs``. PNGs into ``folder``."""
    from kato.lab import plots
    from kato.lab.results import faults_frame, ops_frame

    drawn: list[tuple[str, Path]] = []
    for result in runs:
        if not any(op.f == "fault" for op in result.history):
            continue
        ops, faults = ops_frame(result.history), faults_frame(result.history)
        label = run_label(result)
        path = folder / f"timeline-{result.run_id}.png"
        plots.timeline(
            ops,
            faults,
            anomalous=findings.anomalous_ops(result.verdicts),
            title=f"timeline: {label}",
            path=path,
        ).clear()
        drawn.append((f"timeline (one lane per client, fault shaded): {label}", path))
        path = folder / f"latency-over-time-{result.run_id}.png"
        plots.latency_over_time_by({label: (ops, faults)}, title=f"latency: {label}", path=path)
        drawn.append((f"latency over time: {label}", path))
    by_variant: dict[str, list[float]] = {}
    for result in runs:
        by_variant.setdefault(result.spec.variant, []).extend(
            op.latency_ns / 1e6
            for op in result.history
            if op.f != "fault" and op.latency_ns is not None
        )
    if by_variant:
        path = folder / "latency-cdf.png"
        plots.latency_cdf(by_variant, title="latency CDF by variant", path=path).clear()
        drawn.append(("latency CDF, by variant (all runs)", path))
    return drawn
