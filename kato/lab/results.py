"""Results as tidy pandas DataFrames: one row per operation, per run × checker, per trial, per cell.

These frames are what plots, tables, notebooks and reports read; they are derived from a run's
history and verdicts only, so any saved run can be turned into them again.

A *cell* is the runs that differ only in ``seed`` and ``trial`` (the trials of one grid cell).
:func:`with_cells` turns one row per trial (``kind="trial"``) into the results table: those rows
and one ``kind="cell"`` row per cell, with 95 % intervals as ``<figure>_lo`` / ``<figure>_hi``:

======================  ==========================================================================
figure                  value, and its interval
======================  ==========================================================================
``anomaly_rate``        checker anomalies per operation, pooled over the trials; Wilson score
``error_rate``          operations not ``ok`` per operation, pooled; Wilson score
``anomalous_trials``    fraction of the trials with at least one anomaly; Wilson score (cells only)
``throughput_ops_s``    mean over the trials; Student t (cells of 2 trials or more)
``p50_ms``, ``p99_ms``  mean over the trials; Student t (cells of 2 trials or more)
``workers_answered``    worker processes that answered (:func:`workers_answered`); a cell's is the
                        fewest any of its trials reached, no interval
======================  ==========================================================================

A trial row's rate intervals are Wilson over its own operations. Intervals come from scipy
(``binomtest(...).proportion_ci(method="wilson")``, ``t.interval``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from kato.lab.history import History

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "MEANS",
    "RATES",
    "faults_frame",
    "halfwidth",
    "mean_interval",
    "ops_frame",
    "run_row",
    "summary_frame",
    "wilson",
    "with_cells",
    "workers_answered",
]

#: Per-operation rates, with Wilson intervals (a cell's pooled over its trials).
RATES = ("anomaly_rate", "error_rate")
#: Figures whose cell value is the mean over its trials, with a t interval.
MEANS = ("throughput_ops_s", "p50_ms", "p99_ms")
#: Parameters that tell the trials of one cell apart.
_TRIAL_KEYS = ("seed", "trial")
CONFIDENCE = 0.95


def ops_frame(history: History) -> pd.DataFrame:
    """One row per client operation: ``t_s`` (invocation since the first op), ``done_s``,
    ``latency_ms``, ``f``, ``outcome``, ``error_code``, ``http_status``, ``worker_pid``, ..."""
    import pandas as pd

    ops = [op for op in history if op.f != "fault"]
    start = min((op.intended_ns or op.invoke_ns for op in ops), default=0)
    rows = [
        {
            "op_id": op.op_id,
            "client": op.client,
            "f": op.f,
            "session_id": op.session_id,
            "t_s": ((op.intended_ns or op.invoke_ns) - start) / 1e9,
            "done_s": None if op.complete_ns is None else (op.complete_ns - start) / 1e9,
            "latency_ms": None if op.latency_ns is None else op.latency_ns / 1e6,
            "outcome": op.outcome,
            "error_code": op.error_code,
            "http_status": op.http_status,
            "worker_pid": op.worker_pid,
        }
        for op in ops
    ]
    columns = ["op_id", "client", "f", "session_id", "t_s", "done_s", "latency_ms", "outcome"]
    return pd.DataFrame(rows, columns=[*columns, "error_code", "http_status", "worker_pid"])


def faults_frame(history: History) -> pd.DataFrame:
    """One row per fault window: ``name``, ``start_s``, ``end_s`` (relative like ``ops_frame``)."""
    import pandas as pd

    ops = list(history)
    start = min((op.intended_ns or op.invoke_ns for op in ops if op.f != "fault"), default=0)
    windows: list[dict[str, Any]] = []
    open_: dict[str, float] = {}
    for op in sorted((o for o in ops if o.f == "fault"), key=lambda o: o.invoke_ns):
        at = (op.invoke_ns - start) / 1e9
        if op.args.get("phase") == "start":
            open_[op.args["name"]] = at
        elif op.args["name"] in open_:
            windows.append(
                {"name": op.args["name"], "start_s": open_.pop(op.args["name"]), "end_s": at}
            )
    windows += [{"name": name, "start_s": at, "end_s": None} for name, at in open_.items()]
    return pd.DataFrame(windows, columns=["name", "start_s", "end_s"])


def workers_answered(history: History) -> int | None:
    """How many worker processes answered the run's requests, read from each operation's
    ``worker_pid``; ``None`` when the target names none (the engine target, a deployment that
    sends no ``X-Kato-Worker``). The kernel hands connections to a server's workers, and may
    hand all of a run's to fewer than it has: a race between processes needs two to answer."""
    pids = {op.worker_pid for op in history if op.worker_pid is not None}
    return len(pids) or None


def run_row(
    params: Mapping[str, Any], history: History, verdicts: Mapping[str, Any]
) -> dict[str, Any]:
    """The figures of one run: parameters, operation counts, error and anomaly rates, latency."""
    import numpy as np

    ops = [op for op in history if op.f != "fault"]
    latencies = np.array([op.latency_ns / 1e6 for op in ops if op.latency_ns is not None])
    ends = [op.complete_ns for op in ops if op.complete_ns is not None]
    starts = [op.invoke_ns for op in ops if op.complete_ns is not None]
    span_s = (max(ends) - min(starts)) / 1e9 if ends else 0.0
    anomalies = sum(int(c["anomalies"]) for c in verdicts.get("checkers", []))
    not_ok = sum(op.outcome != "ok" for op in ops)
    row = dict(params)
    row.update(
        {
            "ops": len(ops),
            "ok": sum(op.outcome == "ok" for op in ops),
            "fail": sum(op.outcome == "fail" for op in ops),
            "unknown": sum(op.outcome == "unknown" for op in ops),
            "error_rate": not_ok / len(ops) if ops else 0.0,
            "anomalies": anomalies,
            "anomaly_rate": anomalies / len(ops) if ops else 0.0,
            "valid": verdicts.get("valid"),
            "throughput_ops_s": len(ends) / span_s if span_s > 0 else 0.0,
            "workers_answered": workers_answered(history),
        }
    )
    for q in (50, 90, 99):
        row[f"p{q}_ms"] = float(np.percentile(latencies, q)) if len(latencies) else None
    row["max_ms"] = float(latencies.max()) if len(latencies) else None
    return row


def summary_frame(runs: Iterable[tuple[Mapping[str, Any], Mapping[str, Any]]]) -> pd.DataFrame:
    """One row per run × checker from ``(params, verdicts)`` pairs."""
    import pandas as pd

    rows = []
    for params, verdicts in runs:
        for checker in verdicts.get("checkers", []):
            rows.append(
                {
                    **params,
                    "checker": checker["name"],
                    "valid": checker["valid"],
                    "anomalies": checker["anomalies"],
                }
            )
    return pd.DataFrame(rows)


def wilson(successes: int, trials: int) -> tuple[float, float]:
    """The 95 % Wilson score interval of ``successes / trials`` (NaN for no trials)."""
    from scipy.stats import binomtest

    if trials <= 0:
        return math.nan, math.nan
    interval = binomtest(min(successes, trials), trials).proportion_ci(
        confidence_level=CONFIDENCE, method="wilson"
    )
    return float(interval.low), float(interval.high)


def mean_interval(values: Sequence[float]) -> tuple[float, float, float]:
    """The mean of ``values`` and its 95 % Student t interval (NaN bounds under 2 values)."""
    import numpy as np
    from scipy import stats

    data = np.array([v for v in values if v is not None and v == v], dtype=float)
    if len(data) == 0:
        return math.nan, math.nan, math.nan
    mean = float(data.mean())
    if len(data) < 2:
        return mean, math.nan, math.nan
    if float(data.std()) == 0.0:
        return mean, mean, mean
    low, high = stats.t.interval(CONFIDENCE, len(data) - 1, loc=mean, scale=stats.sem(data))
    return mean, float(low), float(high)


def halfwidth(row: Mapping[str, Any], figure: str = "anomaly_rate") -> float:
    """Half the width of ``figure``'s interval in a results row."""
    return float(row[f"{figure}_hi"] - row[f"{figure}_lo"]) / 2


def _cell_keys(trials: pd.DataFrame) -> list[str]:
    from dataclasses import fields

    from kato.lab.spec import Experiment

    names = [f.name for f in fields(Experiment) if f.name not in _TRIAL_KEYS]
    return [name for name in names if name in trials.columns]


def _groupable(value: Any) -> Any:
    """``value`` as a grouping key: a list or mapping (``urls``, ``fault_hooks``; arrays once
    read back from Parquet) as its JSON, anything else as it is."""
    if hasattr(value, "tolist") and not isinstance(value, str):
        value = value.tolist()
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, sort_keys=True, default=str)
    return value


def _cell(rows: pd.DataFrame) -> dict[str, Any]:
    """The figures of one cell from its trial rows."""
    ops = int(rows["ops"].sum())
    errors = int((rows["ops"] - rows["ok"]).sum()) if "ok" in rows.columns else 0  # zoo.csv
    anomalies = int(rows["anomalies"].sum())
    anomalous = int((rows["anomalies"] > 0).sum())
    valid = rows["valid"].astype(str)
    figures: dict[str, Any] = {
        "kind": "cell",
        "trials": len(rows),
        "ops": ops,
        "anomalies": anomalies,
        "anomaly_rate": anomalies / ops if ops else 0.0,
        "error_rate": errors / ops if ops else 0.0,
        "anomalous_trials": anomalous / len(rows),
        "valid": "True" if (valid == "True").all() else "False" if (valid == "False").any()
        else "partial" if valid.isin(["True", "partial"]).all() else "unknown",
    }  # fmt: skip
    for column, count in (("anomaly_rate", anomalies), ("error_rate", errors)):
        figures[f"{column}_lo"], figures[f"{column}_hi"] = wilson(count, ops)
    figures["anomalous_trials_lo"], figures["anomalous_trials_hi"] = wilson(anomalous, len(rows))
    for column in MEANS:
        if column in rows.columns:
            figures[column], figures[f"{column}_lo"], figures[f"{column}_hi"] = mean_interval(
                list(rows[column])
            )
    for column in ("p90_ms", "max_ms"):
        if column in rows.columns:
            figures[column] = float(rows[column].astype(float).mean())
    if "workers_answered" in rows.columns and rows["workers_answered"].notna().any():
        figures["workers_answered"] = int(rows["workers_answered"].min())  # the fewest any trial
    for column in ("ok", "fail", "unknown", *(c for c in rows.columns if c.endswith("_anomalies"))):
        if column in rows.columns:  # counts (each checker's anomalies too), summed over trials
            figures[column] = int(rows[column].sum())
    return figures


def with_cells(trials: pd.DataFrame) -> pd.DataFrame:
    """The results table: ``trials`` (one row per run, ``kind="trial"``, with Wilson intervals of
    its own rates) followed by one ``kind="cell"`` row per cell (see the module docstring)."""
    import pandas as pd

    if "kind" in trials.columns:
        trials = trials[trials["kind"] != "cell"].drop(columns="kind")
    if trials.empty:
        return trials
    rows = trials.copy()
    rows.insert(0, "kind", "trial")
    rows["trials"] = 1
    for column in RATES:
        bounds = [
            wilson(round(rate * ops), ops)
            for rate, ops in zip(rows[column], rows["ops"], strict=True)
        ]
        rows[f"{column}_lo"] = [low for low, _ in bounds]
        rows[f"{column}_hi"] = [high for _, high in bounds]
    keys = _cell_keys(rows)
    by = [rows[key].map(_groupable) for key in keys]
    cells = [
        {**{key: group.iloc[0][key] for key in keys}, **_cell(group)}
        for _, group in rows.groupby(by, dropna=False, sort=False)
    ]
    table = pd.concat([rows, pd.DataFrame(cells)], ignore_index=True)
    for column in rows.columns:  # integers stay integers beside the cells' missing values
        if pd.api.types.is_integer_dtype(rows[column]):
            table[column] = table[column].astype("Int64")
    return table
