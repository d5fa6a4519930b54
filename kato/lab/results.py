"""Results as tidy pandas DataFrames: one row per operation, one row per run × checker.

These frames are what plots, tables, notebooks and reports read; they are derived from a run's
history and verdicts only, so any saved run can be turned into them again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from kato.lab.history import History

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["faults_frame", "ops_frame", "run_row", "summary_frame"]


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
