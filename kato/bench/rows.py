"""A benchmark row: our figure beside a reference measured in the same run, and their ratio.

Absolute numbers on a shared 2-core machine are noise; a ratio between two figures measured one
after the other, in one process tree, is not. Every row of ``kato bench`` is one such pair. A
row may carry a goal (on our figure or on the ratio); ``met`` says whether this run reached it.
A row whose two figures cannot be compared (both bound by a slow load client, say) says why in
``not_comparable``: its goal counts as missed, whatever the figures.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = ["COLUMNS", "Goal", "Row", "format_table", "plot_rows", "size_label", "write_csv"]

#: The columns of ``bench.csv``, in order (the output contract starts with the first six).
COLUMNS = (
    "name",
    "ours",
    "reference",
    "ratio",
    "goal",
    "met",
    "unit",
    "reference_is",
    "section",
    "note",
)

_OPS: dict[str, Callable[[float, float], bool]] = {"<=": operator.le, ">=": operator.ge}


@dataclass(frozen=True, slots=True)
class Goal:
    """``ours <= 10`` or ``ratio >= 0.5``: what a row should reach."""

    on: Literal["ours", "ratio"]
    op: Literal["<=", ">="]
    value: float

    def met(self, ours: float, ratio: float) -> bool | None:
        """Whether the figure reaches the goal; ``None`` when it was not measured."""
        figure = ours if self.on == "ours" else ratio
        return None if math.isnan(figure) else _OPS[self.op](figure, self.value)

    def __str__(self) -> str:
        return f"{self.on} {self.op} {self.value:g}"


@dataclass(frozen=True, slots=True)
class Row:
    """One comparison. ``ratio`` is ``ours / reference``; ``not_comparable`` (why the ratio
    means nothing) makes a goal missed rather than judged on figures that do not measure it."""

    section: str
    name: str
    ours: float
    reference: float
    unit: str
    reference_is: str
    goal: Goal | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    not_comparable: str = ""

    @property
    def ratio(self) -> float:
        if self.reference == 0 or math.isnan(self.reference) or math.isnan(self.ours):
            return math.nan
        return self.ours / self.reference

    @property
    def met(self) -> bool | None:
        if self.goal is None:
            return None
        return False if self.not_comparable else self.goal.met(self.ours, self.ratio)

    def record(self) -> dict[str, Any]:
        record = {key: value for key, value in asdict(self).items() if key != "extra"}
        record.update(ratio=self.ratio, met=self.met, goal=str(self.goal or ""))
        return {**{column: record[column] for column in COLUMNS}, **self.extra}


def size_label(count: int) -> str:
    """``10k`` for 10,000: how row names say a size."""
    return f"{count // 1000}k" if count >= 1000 else str(count)


def write_csv(rows: Sequence[Row], path: Path) -> None:
    import pandas as pd

    frame = pd.DataFrame([row.record() for row in rows])
    frame.to_csv(path, index=False)


def _figure(value: float) -> str:
    if math.isnan(value):
        return "—"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if value == 0 or abs(value) >= 0.01:
        return f"{value:.3g}" if value != round(value) else f"{value:.0f}"
    return f"{value:.2g}"


def _latency(extra: dict[str, Any]) -> str:
    """``ours (reference)`` p50/p99, for rows that measured latency."""
    if "p50_ms" not in extra or "p99_ms" not in extra:
        return ""
    text = f"{extra['p50_ms']:.3g}/{extra['p99_ms']:.3g}"
    if "reference_p50_ms" in extra:
        text += f" ({extra['reference_p50_ms']:.3g}/{extra['reference_p99_ms']:.3g})"
    return text


def format_table(rows: Iterable[Row]) -> str:
    """The printed table: one line a row, our figure, the reference, the ratio, the goal."""
    header = (
        "name",
        "ours",
        "reference",
        "ratio",
        "unit",
        "p50/p99 ms",
        "reference is",
        "goal",
        "met",
    )
    lines = [
        (
            row.name,
            _figure(row.ours),
            _figure(row.reference),
            _figure(row.ratio),
            row.unit,
            _latency(row.extra),
            row.reference_is,
            str(row.goal or ""),
            {None: "", True: "yes", False: "NO"}[row.met],
        )
        for row in rows
    ]
    widths = [
        max(len(str(cell)) for cell in column) for column in zip(header, *lines, strict=False)
    ]
    numeric = {1, 2, 3}

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.rjust(width) if i in numeric else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(header), rule, *(line(cells) for cells in lines)])


def plot_rows(rows: Sequence[Row], path: Path) -> None:
    """``bench.png``: each row's ratio as a bar (log scale), its goal as a tick, misses in red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [row for row in rows if row.ratio > 0 and not math.isnan(row.ratio)]
    fig, ax = plt.subplots(figsize=(9, 0.32 * len(shown) + 1.2))
    names = [row.name for row in shown][::-1]
    ratios = [row.ratio for row in shown][::-1]
    colours = [{None: "tab:blue", True: "tab:green", False: "tab:red"}[r.met] for r in shown][::-1]
    ax.barh(names, ratios, color=colours)
    for y, row in enumerate(shown[::-1]):
        if row.goal is not None and row.goal.on == "ratio":
            ax.plot([row.goal.value] * 2, [y - 0.4, y + 0.4], color="black", linewidth=2)
    ax.axvline(1.0, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xscale("log")
    ax.set_xlabel(
        "ours / reference (log scale). Green: goal met, red: missed, blue: no goal;\n"
        "black tick: a goal on the ratio"
    )
    ax.set_title("kato bench: each figure beside its reference, measured in the same run")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
