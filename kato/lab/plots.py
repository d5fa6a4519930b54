"""The standard plots, drawn with matplotlib from the frames of :mod:`kato.lab.results`.

Every function takes frames, returns the ``Figure`` (so a notebook shows it) and, given ``path``,
saves it as PNG. Nothing here computes a verdict: plots only read. Plots over a grid take its
trial rows (one per run) and draw each cell's 95 % interval
(:func:`kato.lab.results.with_cells`) as error bars.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = [
    "OVER_TIME_BINS",
    "RATE_LABELS",
    "TIMELINE_COLOURS",
    "failure_rate_vs_concurrency",
    "latency_by_operation",
    "latency_cdf",
    "latency_over_time_by",
    "latency_vs_concurrency",
    "latency_vs_concurrency_by",
    "palette",
    "rates_vs_concurrency",
    "resources_over_time",
    "throughput_over_time",
    "timeline",
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
    axes: Any,
    cells: pd.DataFrame,
    column: str,
    fmt: str,
    label: str,
    shift: float = 0.0,
    color: Any = None,
) -> None:
    """``column`` vs concurrency with its ``_lo`` / ``_hi`` interval as error bars, ``shift``ed
    by that many octaves (so the bars of several lines at one level do not hide each other)."""
    import numpy as np

    values = cells[column].astype(float).to_numpy()
    low = np.nan_to_num(values - cells[f"{column}_lo"].astype(float).to_numpy())
    high = np.nan_to_num(cells[f"{column}_hi"].astype(float).to_numpy() - values)
    x = cells["concurrency"].astype(float).to_numpy() * 2**shift
    axes.errorbar(x, values, yerr=[low, high], fmt=fmt, capsize=3, label=label, color=color)


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


def _rate_lines(axes: Any, runs: pd.DataFrame, by: str, rate: str) -> str:
    """One line per ``by`` group of ``runs``' trials, in distinct colours: ``rate`` vs concurrency
    with each cell's 95 % interval as error bars, on a log₂ concurrency axis and a rate scale
    that keeps low rates apart from zero; returns the trials per point ("3" or "2–3")."""
    counts: set[int] = set()
    values: list[float] = []
    groups = list(runs.groupby(by, sort=True))
    colours = palette(len(groups))
    for index, (name, group) in enumerate(groups):
        cells = _cells(group, rate)
        counts |= {int(n) for n in cells["trials"]}
        values += [float(v) for v in cells[rate]]
        shift = 0.06 * (index - (len(groups) - 1) / 2)
        _errorbar(axes, cells, rate, "-o", str(name), shift=shift, color=colours[index])
    _concurrency_axis(axes, runs)
    _rate_scale(axes, values)
    return "–".join(str(n) for n in sorted({min(counts), max(counts)})) if counts else "0"


def failure_rate_vs_concurrency(
    runs: pd.DataFrame, *, by: str = "variant", rate: str = "anomaly_rate", path: Path | None = None
) -> Figure:
    """One line per ``by`` group, in distinct colours: ``rate`` (a column of
    :data:`RATE_LABELS`) vs concurrency, each cell's 95 % Wilson interval as error bars; the
    title says how many trials; symmetric-log where the rates span orders of magnitude."""
    figure, axes = _figure(f"{RATE_LABELS[rate]} vs concurrency")
    trials = _rate_lines(axes, runs, by, rate)
    axes.set_title(f"{RATE_LABELS[rate]} vs concurrency ({trials} trials per point, 95 % Wilson)")
    axes.set_ylabel(RATE_LABELS[rate])
    _legend_outside(axes, by)
    return _save(figure, path)


def _latency_cells(runs: pd.DataFrame) -> pd.DataFrame:
    """Per concurrency level of ``runs``: the mean p50 and p99 over the trials with their 95 %
    t intervals (``_lo`` / ``_hi``)."""
    from kato.lab.results import mean_interval

    groups = list(runs.groupby("concurrency"))
    cells = runs.iloc[:0][["concurrency"]].copy()
    cells["concurrency"] = [level for level, _ in groups]
    for column in ("p50_ms", "p99_ms"):
        bounds = [mean_interval(list(group[column])) for _, group in groups]
        cells[column], cells[f"{column}_lo"], cells[f"{column}_hi"] = zip(*bounds, strict=True)
    return cells


def latency_vs_concurrency(
    runs: pd.DataFrame, *, path: Path | None = None, title: str = "latency vs concurrency"
) -> Figure:
    """p50 / p90 / p99 / max latency (ms) per concurrency level: means over the trials, p50 and
    p99 with their 95 % t intervals as error bars."""
    figure, axes = _figure(title)
    data = runs.groupby("concurrency", as_index=False)[
        ["p50_ms", "p90_ms", "p99_ms", "max_ms"]
    ].mean()
    cells = _latency_cells(runs)
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
    title: str = "throughput over time",
) -> Figure:
    """Completed operations per second over the run in ``bins`` equal bins, ok and not ok; each
    fault window shaded, and its recovery (the first ok completion after the window ends)
    marked with a dashed line."""
    import numpy as np

    done = ops.dropna(subset=["done_s"])
    end = float(done["done_s"].max()) if len(done) else 1.0
    edges = np.linspace(0.0, end, bins + 1)
    width = edges[1] - edges[0]
    figure, axes = _figure(f"{title} ({bins} bins of {width * 1e3:.0f} ms)")
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


def palette(count: int) -> list[Any]:
    """``count`` distinct colours: tab10 up to 10 lines, tab20 up to 20, then a continuous map
    (the bug zoo draws 11 lines: no two may share a colour)."""
    from matplotlib import colormaps

    if count <= 10:
        return [colormaps["tab10"](i) for i in range(count)]
    if count <= 20:
        return [colormaps["tab20"](i) for i in range(count)]
    return [colormaps["turbo"](i / max(count - 1, 1)) for i in range(count)]


def _legend_outside(axes: Any, title: str | None = None) -> None:
    """The legend to the right of the axes, never over the data."""
    if axes.get_legend_handles_labels()[0]:
        axes.legend(title=title, fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))


def _rate_scale(axes: Any, values: Any) -> None:
    """Symmetric-log when the non-zero rates span more than a decade (low-rate lines stay
    distinguishable from zero), linear otherwise; zero stays at the bottom."""
    import numpy as np

    positive = np.asarray([v for v in values if v and v > 0], dtype=float)
    if len(positive) and positive.max() / positive.min() > 10:
        axes.set_yscale("symlog", linthresh=float(positive.min()))
    axes.set_ylim(bottom=0)


def rates_vs_concurrency(
    runs: pd.DataFrame, *, by: str = "variant", path: Path | None = None
) -> Figure:
    """Anomaly rate (left) beside error rate (right) vs concurrency, one line per ``by`` group,
    in distinct colours, legend outside; the anomaly axis symmetric-log where rates span
    orders of magnitude."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 3.8), layout="constrained")
    panels = figure.subplots(1, 2)
    for axes, rate in zip(panels, ("anomaly_rate", "error_rate"), strict=True):
        trials = _rate_lines(axes, runs, by, rate)
        axes.set_ylabel(RATE_LABELS[rate])
        axes.set_title(f"{RATE_LABELS[rate]} ({trials} trials per point, 95 % Wilson)")
        axes.grid(alpha=0.3)
    _legend_outside(panels[1], by)
    return _save(figure, path)


#: A timeline bar's colour per outcome; ``anomaly`` wins over the outcome.
TIMELINE_COLOURS = {
    "ok": "tab:blue",
    "fail": "tab:orange",
    "unknown": "tab:grey",
    "anomaly": "tab:red",
}


def timeline(
    ops: pd.DataFrame,
    faults: pd.DataFrame,
    *,
    anomalous: Collection[int] = (),
    title: str = "timeline",
    path: Path | None = None,
) -> Figure:
    """Jepsen-style: one lane per client, a bar from each op's invocation to its completion
    (an op never completed runs to the end), coloured ok / fail / unknown, red when a
    checker's example names it (``anomalous`` op ids); fault windows shaded."""
    from matplotlib.patches import Patch

    clients = sorted(ops["client"].unique(), key=_lane_order)
    lane = {c: i for i, c in enumerate(clients)}
    height = min(max(2.5, 0.18 * len(clients) + 1.2), 12)
    figure, axes = _figure(title)
    figure.set_size_inches(9, height)
    end = float(ops["done_s"].max()) if len(ops) and ops["done_s"].notna().any() else 0.0
    for kind, colour in TIMELINE_COLOURS.items():
        if kind == "anomaly":
            mine = ops[ops["op_id"].isin(list(anomalous))]
        else:
            mine = ops[(ops["outcome"] == kind) & ~ops["op_id"].isin(list(anomalous))]
        if mine.empty:
            continue
        done = mine["done_s"].fillna(end)
        for y, rows in mine.assign(done=done).groupby(mine["client"].map(lane)):
            spans = [(s, max(d - s, end / 2000)) for s, d in zip(rows["t_s"], rows["done"],
                                                                 strict=True)]  # fmt: skip
            axes.broken_barh(
                spans, (y - 0.4, 0.8), facecolors=colour, edgecolors="white", linewidth=0.4
            )
    _shade_faults(axes, faults, end)
    axes.set_yticks(range(len(clients)), clients, fontsize=7 if len(clients) > 20 else 9)
    axes.set_ylim(-0.7, len(clients) - 0.3)
    axes.invert_yaxis()
    axes.set_xlabel("time since the first invocation (s)")
    axes.set_ylabel("client")
    handles = [Patch(color=c, label=k) for k, c in TIMELINE_COLOURS.items()]
    if len(faults):
        handles.append(Patch(color="tab:red", alpha=0.12, label="fault window"))
    axes.legend(handles=handles, fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(figure, path)


def _lane_order(client: str) -> tuple[int, int, str]:
    """setup first, then c0, c1, … numerically, then final."""
    if client == "setup":
        return (0, 0, client)
    if client.startswith("c") and client[1:].isdigit():
        return (1, int(client[1:]), client)
    return (2, 0, client)


def _shade_faults(axes: Any, faults: pd.DataFrame, end: float) -> None:
    for window in faults.itertuples():
        stop = end if window.end_s is None or window.end_s != window.end_s else window.end_s
        axes.axvspan(window.start_s, stop, color="tab:red", alpha=0.15, zorder=3)


def latency_over_time_by(
    frames: Mapping[str, tuple[pd.DataFrame, pd.DataFrame]],
    *,
    title: str = "latency over time",
    path: Path | None = None,
) -> Figure:
    """Each labelled run's op latencies (ms, log axis) against their completion time, one colour
    per label (variant, fault, concurrency), its fault windows shaded."""
    figure, axes = _figure(title)
    for colour, (label, (ops, faults)) in zip(palette(len(frames)), frames.items(), strict=True):
        timed = ops.dropna(subset=["latency_ms", "done_s"])
        axes.scatter(timed["done_s"], timed["latency_ms"], s=4, color=colour, label=label)
        _shade_faults(axes, faults, float(timed["done_s"].max()) if len(timed) else 0.0)
    axes.set_yscale("log")
    axes.set_xlabel("completed at (s since the first invocation)")
    axes.set_ylabel("latency (ms)")
    _legend_outside(axes)
    return _save(figure, path)


def latency_cdf(
    latencies: Mapping[str, Sequence[float]],
    *,
    title: str = "latency CDF",
    path: Path | None = None,
) -> Figure:
    """The empirical CDF of each labelled set of latencies (ms, log axis), one line each."""
    import numpy as np

    figure, axes = _figure(title)
    for colour, (label, values) in zip(palette(len(latencies)), latencies.items(), strict=True):
        ordered = np.sort(np.asarray([v for v in values if v == v], dtype=float))
        if len(ordered):
            fraction = np.arange(1, len(ordered) + 1) / len(ordered)
            axes.step(ordered, fraction, where="post", color=colour, label=label)
    axes.set_xscale("log")
    axes.set_xlabel("latency (ms)")
    axes.set_ylabel("fraction of operations ≤")
    axes.set_ylim(0, 1.01)
    _legend_outside(axes)
    return _save(figure, path)


def latency_vs_concurrency_by(
    runs: pd.DataFrame, *, by: str, path: Path | None = None, title: str = "latency vs concurrency"
) -> Figure:
    """p50 (solid) and p99 (dashed) latency per concurrency — means over the trials with their
    95 % t intervals as error bars — one colour per ``by`` group (a variant, a fault…), so
    cells that differ are never averaged together; legend outside."""
    figure, axes = _figure(title)
    groups = list(runs.groupby(by, sort=True))
    for colour, (name, group) in zip(palette(len(groups)), groups, strict=True):
        cells = _latency_cells(group)
        for column, style in (("p50_ms", "-o"), ("p99_ms", "--^")):
            label = f"{name} {column.removesuffix('_ms')}"
            _errorbar(axes, cells, column, style, label, color=colour)
    _concurrency_axis(axes, runs)
    axes.set_yscale("log")
    axes.set_ylabel("latency (ms)")
    _legend_outside(axes, by)
    return _save(figure, path)
