"""The standard plots, drawn with matplotlib from the frames of :mod:`kato.lab.results`.

Every function takes frames, returns the ``Figure`` (so a notebook shows it) and, given ``path``,
saves it as PNG. Nothing here computes a verdict: plots only read. Plots over a grid take its
trial rows (one per run) and draw each cell's 95 % interval
(:func:`kato.lab.results.with_cells`) as error bars.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = [
    "OVER_TIME_BINS",
    "RATE_LABELS",
    "failure_rate_vs_concurrency",
    "latency_by_operation",
    "latency_vs_concurrency",
    "resources_over_time",
    "throughput_over_time",
    "visibility_delay",
]


#: Bins of an over-time plot across the run.
OVER_TIME_BINS = 40

#: What each rate of :func:`failure_rate_vs_concurrency` is, for titles and axes.
RATE_LABELS = {
    "anomaly_rate": "anomalies per operation",
    "error_rate": "errors per operation",
    "anomalous_trials": "trials with an anomaly",
}


def _cells(runs: pd.DataFrame, column: str) -> pd.DataFrame:
    """The cell rows of ``runs`` with ``column``'s interval, sorted by concurrency. A table
    without operation counts (``ops``) gives plain means per concurrency, no interval."""
    import math

    from kato.lab.results import with_cells

    if "ops" in runs.columns:
        table = with_cells(runs)
        return table[table["kind"] == "cell"].sort_values("concurrency")
    means = runs.groupby("concurrency", as_index=False)[column].mean()
    counts = runs.groupby("concurrency").size()
    return means.assign(
        **{f"{column}_lo": math.nan, f"{column}_hi": math.nan, "trials": list(counts)}
    )


def _errorbar(
    axes: Any, cells: pd.DataFrame, column: str, fmt: str, label: str, shift: float = 0.0
) -> None:
    """``column`` vs concurrency with its ``_lo`` / ``_hi`` interval as error bars, ``shift``ed
    by that many octaves (so the bars of several lines at one level do not hide each other)."""
    import numpy as np

    values = cells[column].astype(float).to_numpy()
    low = np.nan_to_num(values - cells[f"{column}_lo"].astype(float).to_numpy())
    high = np.nan_to_num(cells[f"{column}_hi"].astype(float).to_numpy() - values)
    x = cells["concurrency"].astype(float).to_numpy() * 2**shift
    axes.errorbar(x, values, yerr=[low, high], fmt=fmt, capsize=3, label=label)


def _concurrency_axis(axes: Any, runs: pd.DataFrame) -> None:
    """A log₂ x axis of concurrent clients, ticked at the levels that ran (1, 4, 16, 64)."""
    from matplotlib.ticker import NullFormatter

    levels = sorted({int(c) for c in runs["concurrency"]})
    axes.set_xscale("log", base=2)
    axes.set_xticks(levels, [str(c) for c in levels])
    axes.xaxis.set_minor_formatter(NullFormatter())
    axes.set_xlabel("concurrent clients")


def _figure(title: str) -> tuple[Figure, Any]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.5, 4.2), layout="constrained")
    axes = figure.subplots()
    axes.set_title(title)
    axes.grid(alpha=0.3)
    return figure, axes


def _save(figure: Figure, path: Path | None) -> Figure:
    if path is not None:
        figure.savefig(path, dpi=110)
    return figure


def failure_rate_vs_concurrency(
    runs: pd.DataFrame, *, by: str = "variant", rate: str = "anomaly_rate", path: Path | None = None
) -> Figure:
    """One line per ``by`` group: ``rate`` (a column of :data:`RATE_LABELS`) vs concurrency,
    each cell's 95 % Wilson interval as error bars; the title says how many trials."""
    figure, axes = _figure(f"{RATE_LABELS[rate]} vs concurrency")
    counts = set()
    groups = list(runs.groupby(by, sort=True))
    for index, (name, group) in enumerate(groups):
        cells = _cells(group, rate)
        counts |= set(cells["trials"])
        _errorbar(axes, cells, rate, "-o", str(name), shift=0.06 * (index - (len(groups) - 1) / 2))
    trials = "–".join(str(n) for n in sorted({min(counts), max(counts)})) if counts else "0"
    axes.set_title(f"{RATE_LABELS[rate]} vs concurrency ({trials} trials per point, 95 % Wilson)")
    _concurrency_axis(axes, runs)
    axes.set_ylabel(RATE_LABELS[rate])
    axes.set_ylim(bottom=0)
    axes.legend(title=by, fontsize="small")
    return _save(figure, path)


def latency_vs_concurrency(
    runs: pd.DataFrame, *, path: Path | None = None, title: str = "latency vs concurrency"
) -> Figure:
    """p50 / p90 / p99 / max latency (ms) per concurrency level: means over the trials, p50 and
    p99 with their 95 % t intervals as error bars."""
    figure, axes = _figure(title)
    data = runs.groupby("concurrency", as_index=False)[
        ["p50_ms", "p90_ms", "p99_ms", "max_ms"]
    ].mean()
    from kato.lab.results import mean_interval

    cells = data[["concurrency"]].copy()
    for column in ("p50_ms", "p99_ms"):
        bounds = [mean_interval(list(group[column])) for _, group in runs.groupby("concurrency")]
        cells[column], cells[f"{column}_lo"], cells[f"{column}_hi"] = zip(*bounds, strict=True)
    _errorbar(axes, cells, "p50_ms", "-o", "p50")
    _errorbar(axes, cells, "p99_ms", "-^", "p99")
    for column, style in (("p90_ms", "-s"), ("max_ms", ":x")):
        axes.plot(data["concurrency"], data[column], style, label=column.removesuffix("_ms"))
    _concurrency_axis(axes, runs)
    axes.set_yscale("log")
    axes.set_ylabel("latency (ms)")
    axes.legend(fontsize="small")
    return _save(figure, path)


def throughput_over_time(
    ops: pd.DataFrame,
    faults: pd.DataFrame | None = None,
    *,
    bins: int = OVER_TIME_BINS,
    path: Path | None = None,
) -> Figure:
    """Completed operations per second over the run in ``bins`` equal bins, ok and not ok; each
    fault window shaded, and its recovery (the first ok completion after the window ends)
    marked with a dashed line."""
    import numpy as np

    done = ops.dropna(subset=["done_s"])
    end = float(done["done_s"].max()) if len(done) else 1.0
    edges = np.linspace(0.0, end, bins + 1)
    width = edges[1] - edges[0]
    figure, axes = _figure(f"throughput over time ({bins} bins of {width * 1e3:.0f} ms)")
    for outcome, color in (("ok", "tab:blue"), ("fail", "tab:orange"), ("unknown", "tab:red")):
        times = done.loc[done["outcome"] == outcome, "done_s"]
        if len(times):
            counts, _ = np.histogram(times, bins=edges)
            axes.stairs(counts / width, edges, color=color, label=outcome)
    top = axes.get_ylim()[1]
    for _, window in (faults if faults is not None else ops.iloc[:0]).iterrows():
        stop = window["end_s"] if window["end_s"] == window["end_s"] else end  # NaN: open
        axes.axvspan(window["start_s"], stop, color="grey", alpha=0.25)
        axes.text(window["start_s"], top * 0.95, f" {window['name']}", fontsize=8, va="top")
        after = done[(done["outcome"] == "ok") & (done["done_s"] >= stop)]["done_s"]
        if len(after):
            back = float(after.min())
            axes.axvline(back, color="tab:green", ls="--", lw=1)
            axes.text(back, top * 0.85, f" recovered +{(back - stop) * 1e3:.0f} ms", fontsize=8,
                      color="tab:green", va="top")  # fmt: skip
    axes.set_xlabel("time since start (s)")
    axes.set_ylabel("operations / s")
    axes.legend(fontsize="small")
    return _save(figure, path)


def visibility_delay(ops: pd.DataFrame, *, path: Path | None = None) -> Figure:
    """Distribution of write→read delay: from a create's completion to the first ok read of
    that session (``read_session``/``read_stm``) completing, in ms."""
    figure, axes = _figure("write → read visibility delay")
    created = ops[(ops["f"] == "create") & (ops["outcome"] == "ok")].set_index("session_id")[
        "done_s"
    ]
    reads = ops[ops["f"].isin(["read_session", "read_stm"]) & (ops["outcome"] == "ok")]
    first = reads.groupby("session_id")["done_s"].min()
    delay = ((first - created.reindex(first.index)) * 1000).dropna()
    if len(delay):
        axes.hist(delay, bins=40, color="tab:blue")
    axes.set_xlabel("delay (ms)")
    axes.set_ylabel("sessions")
    misses = ops[(ops["f"] == "read_session") & (ops["error_code"] == "SESSION_NOT_FOUND")]
    axes.text(0.98, 0.95, f"not found after create: {len(misses)}", transform=axes.transAxes,
              ha="right", va="top")  # fmt: skip
    return _save(figure, path)


def latency_by_operation(ops: pd.DataFrame, *, path: Path | None = None) -> Figure:
    """Latency percentiles (p50, p90, p99, max) of each kind of operation in one run."""
    figure, axes = _figure("latency by operation")
    timed = ops.dropna(subset=["latency_ms"])
    table = timed.groupby("f")["latency_ms"].describe(percentiles=[0.5, 0.9, 0.99])
    positions = range(len(table))
    for offset, column in enumerate(("50%", "90%", "99%", "max")):
        axes.bar(
            [p + (offset - 1.5) * 0.2 for p in positions], table[column], width=0.2, label=column
        )
    axes.set_xticks(list(positions), list(table.index), rotation=20)
    axes.set_ylabel("latency (ms)")
    axes.set_yscale("log")
    axes.legend(fontsize="small")
    return _save(figure, path)


def resources_over_time(
    samples: pd.DataFrame,
    *,
    warmup_s: float,
    load_s: float,
    rss_bound_mib: float | None = None,
    path: Path | None = None,
) -> Figure:
    """A soak's samples (:mod:`kato.lab.sampler`) over time: each process's RSS change since the
    end of warm-up (absolute RSS in the legend; growth is what a leak shows), TCP connections
    per process and the service's total, Redis's ``used_memory`` and ``connected_clients``;
    warm-up shaded, the end of the load dashed, the RSS bound dotted."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 8.5), layout="constrained")
    rss, connections, redis = figure.subplots(3, 1, sharex=True)
    for process, rows in samples.groupby("process", sort=True):
        mib = rows["rss_bytes"] / 2**20
        before = mib[rows["t_s"] <= warmup_s]
        base = float(before.iloc[-1]) if len(before) else float(mib.iloc[0])
        label = f"{process} ({base:.0f} MiB)"
        rss.plot(rows["t_s"], mib - base, marker=".", label=label)
        connections.plot(rows["t_s"], rows["connections"], marker=".", label=str(process))
    service = samples[samples["process"] != "redis-server"].groupby("t_s")["connections"].sum()
    connections.plot(service.index, service.values, color="black", lw=1.5, label="service total")
    if rss_bound_mib is not None:
        rss.axhline(rss_bound_mib, color="tab:red", ls=":", lw=1, label="bound")
    server = samples[samples["process"] == "redis-server"]
    redis.plot(server["t_s"], server["used_memory"] / 2**20, color="tab:red", marker=".")
    clients = redis.twinx()
    clients.plot(server["t_s"], server["connected_clients"], color="tab:grey", ls=":", marker=".")
    clients.set_ylabel("Redis connected_clients")
    clients.set_ylim(bottom=0)
    for axes, title, unit in (
        (rss, "RSS change since the end of warm-up, per process", "MiB"),
        (connections, "open TCP connections (any state but LISTEN)", "connections"),
        (redis, "Redis used_memory (red) and connected_clients (dotted)", "used_memory (MiB)"),
    ):
        axes.set_title(title)
        axes.set_ylabel(unit)
        axes.grid(alpha=0.3)
        axes.axvspan(0, warmup_s, color="grey", alpha=0.15)
        axes.axvline(load_s, color="black", ls="--", lw=0.8)
    redis.text(warmup_s / 2, 0, "warm-up", ha="center", va="bottom", fontsize=8)
    rss.legend(fontsize="small", ncols=2)
    connections.legend(fontsize="small", ncols=2)
    redis.set_ylim(bottom=0)
    redis.set_xlabel("time since the clients started (s)")
    return _save(figure, path)
