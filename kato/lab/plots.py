"""The standard plots, drawn with matplotlib from the frames of :mod:`kato.lab.results`.

Every function takes frames, returns the ``Figure`` (so a notebook shows it) and, given ``path``,
saves it as PNG. Nothing here computes a verdict: plots only read.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = [
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
    """One line per ``by`` group: ``rate`` (anomalies or errors per operation) vs concurrency."""
    figure, axes = _figure(f"{rate.replace('_', ' ')} vs concurrency")
    groups = list(runs.groupby(by, sort=True))
    for colour, (name, group) in zip(palette(len(groups)), groups, strict=True):
        data = group.groupby("concurrency", as_index=False)[rate].mean()
        axes.plot(data["concurrency"], data[rate], marker="o", color=colour, label=str(name))
    axes.set_xscale("log", base=2)
    axes.set_xlabel("concurrent clients")
    axes.set_ylabel(f"{rate.replace('_', ' ')} (per operation)")
    _rate_scale(axes, runs[rate])
    _legend_outside(axes, by)
    return _save(figure, path)


def latency_vs_concurrency(
    runs: pd.DataFrame, *, path: Path | None = None, title: str = "latency vs concurrency"
) -> Figure:
    """p50 / p90 / p99 / max latency (ms) per concurrency level."""
    figure, axes = _figure(title)
    data = runs.groupby("concurrency", as_index=False)[
        ["p50_ms", "p90_ms", "p99_ms", "max_ms"]
    ].mean()
    for column, style in (("p50_ms", "-o"), ("p90_ms", "-s"), ("p99_ms", "-^"), ("max_ms", ":x")):
        axes.plot(data["concurrency"], data[column], style, label=column.removesuffix("_ms"))
    axes.set_xscale("log", base=2)
    axes.set_yscale("log")
    axes.set_xlabel("concurrent clients")
    axes.set_ylabel("latency (ms)")
    axes.legend(fontsize="small")
    return _save(figure, path)


def throughput_over_time(
    ops: pd.DataFrame,
    faults: pd.DataFrame | None = None,
    *,
    bucket_s: float = 0.25,
    path: Path | None = None,
    title: str = "throughput over time",
) -> Figure:
    """Completed operations per second over the run, ok and not ok, fault windows shaded."""
    import numpy as np

    figure, axes = _figure(title)
    done = ops.dropna(subset=["done_s"])
    end = float(done["done_s"].max()) if len(done) else 1.0
    edges = np.arange(0.0, end + bucket_s, bucket_s)
    for outcome, color in (("ok", "tab:blue"), ("fail", "tab:orange"), ("unknown", "tab:red")):
        times = done.loc[done["outcome"] == outcome, "done_s"]
        if len(times):
            counts, _ = np.histogram(times, bins=edges)
            axes.plot(edges[:-1], counts / bucket_s, color=color, label=outcome)
    if faults is not None:
        for _, window in faults.iterrows():
            stop = window["end_s"] if window["end_s"] == window["end_s"] else end  # NaN: open
            axes.axvspan(window["start_s"], stop, color="grey", alpha=0.25)
            axes.text(window["start_s"], axes.get_ylim()[1] * 0.95, str(window["name"]), fontsize=8)
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
    groups = list(runs.groupby(by, sort=True))
    colours = palette(len(groups))
    for axes, rate in zip(panels, ("anomaly_rate", "error_rate"), strict=True):
        for colour, (name, group) in zip(colours, groups, strict=True):
            data = group.groupby("concurrency", as_index=False)[rate].mean()
            axes.plot(data["concurrency"], data[rate], marker="o", color=colour, label=str(name))
        axes.set_xscale("log", base=2)
        axes.set_xlabel("concurrent clients")
        axes.set_ylabel(f"{rate.replace('_', ' ')} (per operation)")
        axes.set_title(f"{rate.replace('_', ' ')} vs concurrency")
        axes.grid(alpha=0.3)
        _rate_scale(axes, runs[rate])
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
    """p50 (solid) and p99 (dashed) latency per concurrency, one colour per ``by`` group (a
    variant, a fault…), so cells that differ are never averaged together; legend outside."""
    figure, axes = _figure(title)
    groups = list(runs.groupby(by, sort=True))
    for colour, (name, group) in zip(palette(len(groups)), groups, strict=True):
        data = group.groupby("concurrency", as_index=False)[["p50_ms", "p99_ms"]].mean()
        for column, style in (("p50_ms", "-o"), ("p99_ms", "--^")):
            label = f"{name} {column.removesuffix('_ms')}"
            axes.plot(data["concurrency"], data[column], style, color=colour, label=label)
    axes.set_xscale("log", base=2)
    axes.set_yscale("log")
    axes.set_xlabel("concurrent clients")
    axes.set_ylabel("latency (ms)")
    _legend_outside(axes, by)
    return _save(figure, path)
