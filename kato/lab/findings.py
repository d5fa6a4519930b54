"""What a researcher looks at first: anomalies per checker and one counter-example for each.

Explorer, notebooks and reports read a run's ``verdicts.json`` through these functions, so the
anomaly count, the checkers that flagged it and a witness (the op ids, what a correct store
would have shown, what was seen) are shown the same way everywhere. A row of a bug-zoo variant
is an *expected* failure: the variant exists to be caught (:func:`expected_failure`).
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "OP_KEYS",
    "anomalous_ops",
    "checker_counts",
    "counter_examples",
    "examples_html",
    "expected_failure",
    "headline_table",
    "saved_examples",
]

#: The keys of a checker's example that name an operation (``op`` and those it is compared to).
OP_KEYS = ("op", "final_read", "deleted_by", "conflicts_with", "start_op")


def checker_counts(verdicts: Mapping[str, Any]) -> dict[str, int]:
    """Anomalies per checker (every checker, zero included), in the verdicts' order."""
    return {str(c["name"]): int(c["anomalies"]) for c in verdicts.get("checkers", [])}


def _ops(example: Mapping[str, Any]) -> list[int]:
    return [int(example[k]) for k in OP_KEYS if isinstance(example.get(k), int)]


def counter_examples(verdicts: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The first example of each checker that found an anomaly: ``checker``, ``kind``, ``ops``
    (the op ids involved), ``expected``, ``seen`` and ``why`` (what is known of them)."""
    found = []
    for checker in verdicts.get("checkers", []):
        if not checker["anomalies"] or not checker.get("examples"):
            continue
        example = checker["examples"][0]
        found.append(
            {
                "checker": checker["name"],
                "anomalies": int(checker["anomalies"]),
                "kind": example.get("kind"),
                "ops": _ops(example),
                "expected": example.get("expected"),
                "seen": example.get("seen"),
                "why": example.get("why"),
            }
        )
    return found


def anomalous_ops(verdicts: Mapping[str, Any]) -> set[int]:
    """Every op id some kept example names (a timeline colours them as involved in an anomaly)."""
    return {
        op
        for checker in verdicts.get("checkers", [])
        for example in checker.get("examples", [])
        for op in _ops(example)
    }


def expected_failure(variant: object) -> bool:
    """Whether a row's anomalies are expected: it ran a bug-zoo variant, not ``production``."""
    return isinstance(variant, str) and variant not in ("production", "", "nan")


def _short(value: Any, limit: int = 120) -> str:
    if value is None:
        return ""  # not every kind of witness has a ``why``
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def examples_html(examples: Iterable[Mapping[str, Any]]) -> str:
    """:func:`counter_examples` as an HTML table (empty string when there are none)."""
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(_short(e.get(k)))}</td>"
            for k in ("checker", "anomalies", "kind", "ops", "expected", "seen", "why")
        )
        + "</tr>"
        for e in examples
    )
    if not rows:
        return ""
    head = "".join(
        f"<th>{h}</th>" for h in ("checker", "anomalies", "kind", "ops", "expected", "seen", "why")
    )
    return f"<table class='examples'><tr>{head}</tr>{rows}</table>"


def headline_table(rows: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """One line per cell (the distinct values of ``by``): runs, anomalies per run (min–max), and
    a sentence — ``"production: 0 anomalies in 4 runs"``, ``"r1-read-writeback: 12–96 per run
    (expected: a zoo variant)"``."""
    import pandas as pd

    lines = []
    for key, group in rows.groupby(by, sort=True, dropna=False):
        values = key if isinstance(key, tuple) else (key,)
        cell = " / ".join(str(v) for v in values)
        low, high = int(group["anomalies"].min()), int(group["anomalies"].max())
        expected = "variant" in group.columns and expected_failure(group["variant"].iloc[0])
        if high == 0:
            text = f"{cell}: 0 anomalies in {len(group)} runs"
        else:
            spread = f"{low}" if low == high else f"{low}–{high}"
            text = f"{cell}: {spread} anomalies per run in {len(group)} runs"
        if expected:
            text += " (expected: a bug-zoo variant)" if high else " (a bug-zoo variant ran clean!)"
        lines.append(
            {
                "cell": cell,
                "runs": len(group),
                "anomalies_min": low,
                "anomalies_max": high,
                "expected_failure": expected,
                "headline": text,
            }
        )
    return pd.DataFrame(lines)


def saved_examples(runs_dir: Path, run_ids: Iterable[str]) -> pd.DataFrame:
    """:func:`counter_examples` of saved runs (``runs_dir/<run-id>/verdicts.json``), one row per
    run × failing checker: what a notebook shows under its table of rates."""
    import pandas as pd

    columns = ["run_id", "checker", "anomalies", "kind", "ops", "expected", "seen", "why"]
    rows = [
        {"run_id": run_id, **example}
        for run_id in run_ids
        for example in counter_examples(
            json.loads((runs_dir / run_id / "verdicts.json").read_text())
        )
    ]
    return pd.DataFrame(rows, columns=columns)
