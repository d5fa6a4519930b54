"""Soak: minutes of steady load, to see whether anything grows that should not.

``soak(spec, limits, root)`` runs one open-loop experiment (by default :func:`soak_spec`: the
``mixed`` scenario at 50 ops/s for 10 minutes, 8 clients, ``kato serve --workers 4`` on the
embedded Redis) while a :class:`~kato.lab.sampler.Sampler` records RSS and TCP connections of
every process the run started and Redis's ``INFO``. Growth is judged *after warm-up* (by default
the first quarter of the run, at most 60 s: pools fill, caches and allocators settle), so a
steady workload should show none. Verdicts, each with its figures:

- ``rss`` — per process, RSS at the end of the load minus RSS at the end of warm-up is at most
  ``limits.rss_growth_mib`` (and the least-squares slope after warm-up is reported, MiB/min);
- ``redis_memory`` — Redis's ``used_memory`` grows by at most the same bound. It holds the live
  sessions, and ``mixed`` creates a little more than it deletes, so a share of that growth is
  data; the bound is far above it;
- ``connections`` — for the service (all its processes), the redis-server process and Redis's
  ``connected_clients``: the most seen in the last three samples under load, and the count once
  every client has closed, are at most the most seen during warm-up plus
  ``limits.connection_slack``;
- ``processes`` — every process alive at the end of warm-up is alive at the end, none new (a
  crashed and replaced worker would reset its RSS and hide a leak);
- ``acknowledged_writes`` — every checker of :mod:`kato.lab.checkers` passes on the history:
  every acknowledged observation since its session's last ``learn`` is in the final read of its
  session (every session not deleted on purpose is read at the end), no session vanished.

The folder ``root/soak-<stamp>/`` holds ``samples.csv`` and ``samples.parquet`` (the sampler's
rows), ``soak.png``, ``soak.json`` (spec, limits, verdicts) and the run's own folder.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kato.lab.folders import new_folder
from kato.lab.spec import Experiment

if TYPE_CHECKING:
    import pandas as pd

    from kato.lab.sampler import Sampler
    from kato.lab.targets import Deployment

__all__ = ["SoakLimits", "judge", "soak", "soak_spec", "summary", "warmup_for"]

MIB = 2**20


@dataclass(frozen=True, slots=True)
class SoakLimits:
    """What counts as growth after warm-up."""

    warmup_s: float
    #: RSS (per process) and Redis ``used_memory`` may grow by this much after warm-up.
    rss_growth_mib: float = 10.0
    #: Connections at the end may exceed the warm-up's most by this many.
    connection_slack: int = 4


def soak_spec(
    *, minutes: float = 10.0, rate: float = 50.0, workers: int = 4, concurrency: int = 8
) -> Experiment:
    """The default soak: ``mixed`` at ``rate`` ops/s for ``minutes`` on Redis, over HTTP."""
    return Experiment(
        scenario="mixed",
        target="http",
        store="redis",
        workers=workers,
        concurrency=concurrency,
        operations=max(1, round(minutes * 60 * rate)),
        rate=rate,
    )


def warmup_for(spec: Experiment) -> float:
    """A quarter of the load's schedule, at most 60 s."""
    assert spec.rate is not None
    return min(60.0, 0.25 * spec.plan_operations / spec.rate)


def soak(
    spec: Experiment,
    limits: SoakLimits,
    root: Path,
    *,
    interval_s: float = 2.0,
    progress: bool = True,
) -> tuple[Path, dict[str, Any]]:
    """Run the soak, write its folder (see the module docstring); return it and the verdicts."""
    import pandas as pd

    from kato.lab.plots import resources_over_time
    from kato.lab.run import run, save
    from kato.lab.sampler import Sampler

    if spec.rate is None:
        raise ValueError("a soak runs open loop: give the spec a rate")
    if not 0 < limits.warmup_s < spec.plan_operations / spec.rate - interval_s:
        raise ValueError(
            f"warm-up ({limits.warmup_s} s) must leave samples of the load "
            f"({spec.plan_operations / spec.rate:.0f} s, one every {interval_s} s) after it"
        )
    samplers: list[Sampler] = []

    def watch(deployment: Deployment) -> Sampler:
        samplers.append(Sampler(deployment, interval_s=interval_s))
        return samplers[-1]

    result = run(spec, progress=progress, monitor=watch)
    folder = new_folder(root, "soak")
    run_folder = save(result, folder)
    samples = pd.DataFrame(samplers[0].rows)
    samples.to_csv(folder / "samples.csv", index=False)
    samples.to_parquet(folder / "samples.parquet", index=False)
    load_s = spec.plan_operations / spec.rate
    verdicts = judge(samples, limits, load_s=load_s, checkers=result.verdicts)
    document = {
        "valid": verdicts["valid"],
        "spec": json.loads(spec.to_json()),
        "limits": asdict(limits),
        "interval_s": interval_s,
        "run": run_folder.name,
        **verdicts,
    }
    (folder / "soak.json").write_text(json.dumps(document, indent=2, default=str) + "\n")
    resources_over_time(
        samples,
        warmup_s=limits.warmup_s,
        load_s=load_s,
        rss_bound_mib=limits.rss_growth_mib,
        path=folder / "soak.png",
    )
    return folder, document


def judge(
    samples: pd.DataFrame, limits: SoakLimits, *, load_s: float, checkers: dict[str, Any]
) -> dict[str, Any]:
    """The soak's verdicts from the sampler's rows and the run's checker verdicts."""
    load = samples[samples["phase"] == "load"]
    warm = load[load["t_s"] <= limits.warmup_s]
    after = load[load["t_s"] >= limits.warmup_s]
    if warm.empty or after["t_s"].nunique() < 2:
        raise ValueError("too few samples after warm-up: run longer or sample more often")
    verdicts: dict[str, Any] = {
        "rss": _rss(warm, after, limits),
        "redis_memory": _redis_memory(warm, after, limits),
        "connections": _connections(samples, warm, load, limits),
        "processes": _processes(warm, after),
        "acknowledged_writes": _acknowledged(checkers),
    }
    valid = all(
        all(v["valid"] for v in verdict) if isinstance(verdict, list) else verdict["valid"]
        for verdict in verdicts.values()
    )
    return {"valid": valid, "load_s": load_s, **verdicts}


def _last(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of the last sample in ``frame``."""
    return frame[frame["t_s"] == frame["t_s"].max()]


def _rss(warm: pd.DataFrame, after: pd.DataFrame, limits: SoakLimits) -> list[dict[str, Any]]:
    import numpy as np

    start = _last(warm).set_index("process")["rss_bytes"] / MIB
    rows = []
    for process, series in after.groupby("process", sort=True):
        if process not in start.index:
            continue  # appeared after warm-up: the processes verdict reports it
        mib = series["rss_bytes"] / MIB
        growth = float(mib.iloc[-1] - start[process])
        slope = float(np.polyfit(series["t_s"], mib, 1)[0] * 60) if len(series) > 1 else 0.0
        rows.append(
            {
                "process": process,
                "at_warmup_mib": round(float(start[process]), 2),
                "at_end_mib": round(float(mib.iloc[-1]), 2),
                "growth_mib": round(growth, 2),
                "slope_mib_per_min": round(slope, 3),
                "valid": growth <= limits.rss_growth_mib,
            }
        )
    return rows


def _redis_memory(warm: pd.DataFrame, after: pd.DataFrame, limits: SoakLimits) -> dict[str, Any]:
    memory = after["used_memory"].dropna() / MIB
    start = warm["used_memory"].dropna() / MIB
    if memory.empty or start.empty:
        return {"valid": False, "why": "Redis INFO never answered"}
    growth = float(memory.iloc[-1] - start.iloc[-1])
    return {
        "at_warmup_mib": round(float(start.iloc[-1]), 3),
        "at_end_mib": round(float(memory.iloc[-1]), 3),
        "growth_mib": round(growth, 3),
        "valid": growth <= limits.rss_growth_mib,
    }


def _series(frame: pd.DataFrame) -> dict[str, pd.Series]:
    """Connection counts per sample time: the service's, redis-server's, Redis's clients."""
    redis = frame["process"] == "redis-server"
    return {
        "service": frame[~redis].groupby("t_s")["connections"].sum(),
        "redis-server": frame[redis].groupby("t_s")["connections"].sum(),
        "redis connected_clients": frame[redis].groupby("t_s")["connected_clients"].max(),
    }


def _connections(
    samples: pd.DataFrame, warm: pd.DataFrame, load: pd.DataFrame, limits: SoakLimits
) -> list[dict[str, Any]]:
    idle = _series(samples[samples["phase"] == "idle"])
    ends = _series(load)
    rows = []
    for name, series in _series(warm).items():
        most = float(series.max())
        end = float(ends[name].tail(3).max())
        at_idle = float(idle[name].max()) if len(idle[name]) else None
        allowed = most + limits.connection_slack
        rows.append(
            {
                "series": name,
                "warmup_max": most,
                "end_max": end,
                "idle": at_idle,
                "valid": end <= allowed and (at_idle is None or at_idle <= allowed),
            }
        )
    return rows


def _processes(warm: pd.DataFrame, after: pd.DataFrame) -> dict[str, Any]:
    def alive(frame: pd.DataFrame) -> set[tuple[str, int]]:
        return {(str(p), int(pid)) for p, pid in zip(frame["process"], frame["pid"], strict=True)}

    before, end = alive(_last(warm)), alive(_last(after))
    return {
        "at_warmup": sorted(name for name, _ in before),
        "gone": sorted(f"{name} ({pid})" for name, pid in before - end),
        "new": sorted(f"{name} ({pid})" for name, pid in end - before),
        "valid": before == end,
    }


def _acknowledged(checkers: dict[str, Any]) -> dict[str, Any]:
    by_name = {c["name"]: c for c in checkers["checkers"]}
    counts = by_name["no_lost_updates"]["counts"]
    return {
        "acknowledged": counts["acknowledged"],
        "lost": counts["lost"],
        "never_read_sessions": counts["never_read_sessions"],
        "checkers": {name: c["valid"] for name, c in by_name.items()},
        "valid": checkers["valid"] is True,
    }


def summary(document: dict[str, Any]) -> str:
    """A few lines for people: each verdict with its figures, then PASS or FAIL."""
    spec, limits = document["spec"], document["limits"]
    lines = [
        f"soak: {spec['scenario']} at {spec['rate']:g} ops/s for {document['load_s']:.0f} s, "
        f"{spec['workers']} workers, {spec['concurrency']} clients; warm-up "
        f"{limits['warmup_s']:g} s; bounds: +{limits['rss_growth_mib']:g} MiB, "
        f"+{limits['connection_slack']} connections",
        f"{'RSS (MiB)':<24} {'warm-up':>8} {'end':>8} {'growth':>8} {'per min':>8}  ok",
    ]
    for row in document["rss"]:
        lines.append(
            f"{row['process']:<24} {row['at_warmup_mib']:>8.1f} {row['at_end_mib']:>8.1f} "
            f"{row['growth_mib']:>+8.2f} {row['slope_mib_per_min']:>+8.3f}  {row['valid']}"
        )
    memory = document["redis_memory"]
    if "growth_mib" in memory:
        lines.append(
            f"{'redis used_memory':<24} {memory['at_warmup_mib']:>8.2f} "
            f"{memory['at_end_mib']:>8.2f} {memory['growth_mib']:>+8.2f} {'':>8}  {memory['valid']}"
        )
    lines.append(f"{'connections':<24} {'warm-up':>8} {'end':>8} {'idle':>8}")
    for row in document["connections"]:
        idle = "-" if row["idle"] is None else f"{row['idle']:.0f}"
        lines.append(
            f"{row['series']:<24} {row['warmup_max']:>8.0f} {row['end_max']:>8.0f} "
            f"{idle:>8}  {row['valid']}"
        )
    processes = document["processes"]
    lines.append(
        f"processes: {len(processes['at_warmup'])} at warm-up; gone {processes['gone'] or 'none'}"
        f", new {processes['new'] or 'none'}  {processes['valid']}"
    )
    writes = document["acknowledged_writes"]
    failed = [name for name, valid in writes["checkers"].items() if valid is not True]
    lines.append(
        f"acknowledged writes: {writes['acknowledged']} observes judged, {writes['lost']} lost, "
        f"{writes['never_read_sessions']} sessions never read; checkers not valid: "
        f"{failed or 'none'}  {writes['valid']}"
    )
    lines.append(f"verdict: {'PASS' if document['valid'] else 'FAIL'}")
    return "\n".join(lines)
