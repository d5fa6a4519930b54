"""KATO's monitoring surface: the JSON form of ``/metrics``, ``/stats`` and ``/metrics/{name}``.

Every count is read from the Prometheus metrics the service keeps anyway
(:meth:`~kato.observability.Metrics.families`), aggregated over all worker processes exactly as
the text exposition is, so whichever worker answers, the totals agree. Host resources (CPU,
memory, disk, each 0-100) come from psutil.

Time series are cheap and bounded: each worker samples those aggregated figures on wall-clock
ticks every ``sample_seconds`` (the same instants in every worker, so their series agree) into a
ring of :data:`RING_SIZE` samples; a read only walks the ring.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psutil
from prometheus_client.metrics_core import Metric

from kato.observability import Metrics, multiprocess_dir

__all__ = ["RING_SIZE", "SERIES", "Monitor", "Resources", "Sample", "Totals", "statistics"]

log = logging.getLogger("kato.monitoring")
Body = dict[str, Any]
#: Samples each worker keeps (an hour at the default 10 s).
RING_SIZE = 360
_WORKER_FILE = re.compile(r"_(\d+)\.db$")
#: The store-call outcomes that are the store failing (not "ok", "not_found", a limit...).
_STORE_FAILURES = ("store_unavailable", "exception")


@dataclass(frozen=True, slots=True)
class StoreTotals:
    """One session store's calls since the workers started, all workers together."""

    operations: float = 0.0
    errors: float = 0.0
    seconds: float = 0.0
    timed: float = 0.0


@dataclass(frozen=True, slots=True)
class Totals:
    """The service's counters since the workers started, all workers together."""

    requests: float = 0.0
    server_errors: float = 0.0
    duration_sum: float = 0.0
    duration_count: float = 0.0
    created: float = 0.0
    deleted: float = 0.0
    session_operations: float = 0.0
    stores: dict[str, StoreTotals] = field(default_factory=dict)

    @classmethod
    def of(cls, families: Iterable[Metric]) -> Totals:
        """The totals in Prometheus metric families (requests, latency, store calls)."""
        counts: dict[str, float] = dict.fromkeys(
            ("requests", "server_errors", "created", "deleted", "session_operations"), 0.0
        )
        latency = {"sum": 0.0, "count": 0.0}
        by_store: defaultdict[str, dict[str, float]] = defaultdict(
            lambda: dict.fromkeys(("operations", "errors", "seconds", "timed"), 0.0)
        )
        for family in families:
            for sample in family.samples:
                labels, value = sample.labels, sample.value
                base, _, part = sample.name.rpartition("_")
                if sample.name == "kato_http_requests_total":
                    _count_request(counts, labels, value)
                elif base == "kato_http_request_duration_seconds" and part in latency:
                    latency[part] += value
                elif sample.name == "kato_store_calls_total":
                    by_store[labels["store"]]["operations"] += value
                    if labels["outcome"] in _STORE_FAILURES:
                        by_store[labels["store"]]["errors"] += value
                elif base == "kato_store_call_duration_seconds" and part in latency:
                    by_store[labels["store"]]["seconds" if part == "sum" else "timed"] += value
        return cls(
            **counts,
            duration_sum=latency["sum"],
            duration_count=latency["count"],
            stores={name: StoreTotals(**figures) for name, figures in by_store.items()},
        )

    def performance(self) -> Body:
        requests = self.requests
        return {
            "total_requests": int(requests),
            "total_errors": int(self.server_errors),
            "error_rate": self.server_errors / requests if requests else 0.0,
            "average_response_time": _mean(self.duration_sum, self.duration_count),
        }

    def sessions(self, active: int | None) -> Body:
        return {
            "total_created": int(self.created),
            "total_deleted": int(self.deleted),
            "active": active,
            "operations_total": int(self.session_operations),
        }

    def databases(self) -> Body:
        return {
            name: {
                "operations": int(store.operations),
                "errors": int(store.errors),
                "avg_response_time": _mean(store.seconds, store.timed),
            }
            for name, store in sorted(self.stores.items())
        }


def _count_request(counts: dict[str, float], labels: dict[str, str], value: float) -> None:
    """Add one ``kato_http_requests_total`` sample to the request counts."""
    counts["requests"] += value
    if labels["status"].startswith("5"):
        counts["server_errors"] += value
    route, method, ok = labels["route"], labels["method"], labels["status"] == "200"
    if route.startswith("/sessions/{session_id}"):
        counts["session_operations"] += value
        if ok and method == "DELETE" and route == "/sessions/{session_id}":
            counts["deleted"] += value
    elif ok and method == "POST" and route == "/sessions":
        counts["created"] += value


def _mean(total: float, count: float) -> float:
    return total / count if count else 0.0


@dataclass(frozen=True, slots=True)
class Resources:
    """Host resource use in percent (0-100)."""

    cpu_percent: float = 0.0
    memory_percent: float = 0.0
    disk_percent: float = 0.0

    def to_dict(self) -> Body:
        return {
            "cpu_percent": self.cpu_percent,
            "memory_percent": self.memory_percent,
            "disk_percent": self.disk_percent,
        }

    def issues(self, limit: float) -> list[str]:
        """Memory or disk use above ``limit`` percent, in words. CPU is not an issue: a busy
        CPU is load, not ill health (it is in ``resources`` and the time series)."""
        figures = {"memory": self.memory_percent, "disk": self.disk_percent}
        return [
            f"High {name} usage: {value:.1f}% > {limit:g}%"
            for name, value in figures.items()
            if value > limit
        ]


class ResourceMeter:
    """Reads host CPU (busy share since the previous reading), memory and disk use."""

    def __init__(self, disk_path: str) -> None:
        self.disk_path = disk_path
        self._last = psutil.cpu_times()

    def read(self) -> Resources:
        now = psutil.cpu_times()
        total = sum(now) - sum(self._last)
        idle = (now.idle + getattr(now, "iowait", 0.0)) - (
            self._last.idle + getattr(self._last, "iowait", 0.0)
        )
        self._last = now
        cpu = 100.0 * (1.0 - idle / total) if total > 0 else 0.0
        return Resources(
            cpu_percent=_percent(cpu),
            memory_percent=_percent(psutil.virtual_memory().percent),
            disk_percent=_percent(psutil.disk_usage(_existing(self.disk_path)).percent),
        )


def _existing(path: str) -> str:
    """``path``, or its nearest ancestor that exists (the data folder may not exist yet)."""
    path = os.path.abspath(path)
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


def _percent(value: float) -> float:
    return round(min(100.0, max(0.0, float(value))), 2)


@dataclass(frozen=True, slots=True)
class Sample:
    """One tick: when, the aggregated totals, the host's resources."""

    timestamp: float
    totals: Totals
    resources: Resources


def _duration(previous: Sample | None, sample: Sample) -> float | None:
    """Mean request latency between two samples (``None`` when no request ended between)."""
    if previous is None:
        return None
    now, before = sample.totals, previous.totals
    count = now.duration_count - before.duration_count
    return (now.duration_sum - before.duration_sum) / count if count > 0 else None


#: How a series reads its value from a sample and the one before (``None``: no point).
SeriesRead = Callable[[Sample | None, Sample], float | None]
#: The time series the samples give, by name (KATO's names).
SERIES: dict[str, SeriesRead] = {
    "kato_cpu_usage_percent": lambda p, s: s.resources.cpu_percent,
    "kato_memory_usage_percent": lambda p, s: s.resources.memory_percent,
    "kato_disk_usage_percent": lambda p, s: s.resources.disk_percent,
    "kato_requests_total": lambda p, s: s.totals.requests,
    "kato_errors_total": lambda p, s: s.totals.server_errors,
    "kato_request_duration_seconds": _duration,
    "sessions_created": lambda p, s: s.totals.created,
    "sessions_deleted": lambda p, s: s.totals.deleted,
    "session_operations": lambda p, s: s.totals.session_operations,
}
#: The shorter names some KATO clients read the same series by.
ALIASES = {
    "cpu_percent": "kato_cpu_usage_percent",
    "memory_percent": "kato_memory_usage_percent",
    "disk_percent": "kato_disk_usage_percent",
    "requests_total": "kato_requests_total",
    "errors_total": "kato_errors_total",
    "response_time": "kato_request_duration_seconds",
}


def statistics(points: list[Body]) -> Body:
    """``count``, ``min``, ``max`` and ``avg`` of some (at least one) points' values."""
    values = [point["value"] for point in points]
    return {
        "count": len(values),
        "min": min(values),
        "max": max(values),
        "avg": sum(values) / len(values),
    }


def worker_pids() -> list[int]:
    """The live worker processes: those with metric files in the multi-process folder (all
    workers share it), else this process alone."""
    directory = multiprocess_dir()
    if directory is None:
        return [os.getpid()]
    pids = set()
    with contextlib.suppress(OSError):
        for name in os.listdir(directory):
            match = _WORKER_FILE.search(name)
            if match:
                pids.add(int(match.group(1)))
    return sorted(pid for pid in pids if _alive(pid))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Monitor:
    """A worker's monitoring: the aggregated figures now, and its ring of samples."""

    def __init__(
        self,
        metrics: Metrics,
        *,
        interval: float,
        disk_path: str,
        limit: float,
        size: int = RING_SIZE,
    ) -> None:
        self.metrics = metrics
        self.interval = interval
        self.limit = limit
        self.meter = ResourceMeter(disk_path)
        self.ring: deque[Sample] = deque(maxlen=size)

    # -- sampling ----------------------------------------------------------------------------
    def sample(self, tick: float | None = None) -> Sample:
        """Take one sample now, stamped ``tick`` (default: now), and keep it in the ring."""
        stamp = time.time() if tick is None else tick
        sample = Sample(stamp, self.totals(), self.meter.read())
        self.ring.append(sample)
        return sample

    async def run(self) -> None:
        """Sample on every wall-clock multiple of the interval, stamped with that tick (so
        every worker's points share their timestamps), until cancelled; a failed sample is
        logged and skipped, never the end of sampling."""
        while True:
            tick = (time.time() // self.interval + 1) * self.interval
            await asyncio.sleep(tick - time.time())
            try:
                await asyncio.to_thread(self.sample, tick)
            except Exception:
                log.exception("monitoring sample failed")

    def totals(self) -> Totals:
        return Totals.of(self.metrics.families())

    @property
    def latest(self) -> Sample | None:
        return self.ring[-1] if self.ring else None

    def issues(self) -> list[str]:
        """The latest sample's resource issues (see :meth:`Resources.issues`)."""
        latest = self.latest
        return latest.resources.issues(self.limit) if latest is not None else []

    def resources(self) -> Resources:
        """The latest sampled resource use (CPU is a share over time, so it is never read
        out of turn: that would shorten the sampler's interval)."""
        latest = self.latest
        return latest.resources if latest is not None else Resources()

    # -- reading -----------------------------------------------------------------------------
    def summary(self, totals: Totals, active: int | None) -> Body:
        """The sections ``/metrics`` and ``/stats`` share."""
        return {
            "sessions": totals.sessions(active),
            "performance": totals.performance(),
            "resources": self.resources().to_dict(),
            "databases": totals.databases(),
        }

    def current_status(self, now: Totals) -> Body:
        """``/stats``' ``current_status``: resource issues make it ``degraded``."""
        issues = self.issues()
        return {
            "status": "degraded" if issues else "healthy",
            "issues": issues,
            "metrics": {
                **self.resources().to_dict(),
                "error_rate_per_min": self.rates(now).get("errors_per_minute", 0.0),
            },
            "timestamp": datetime.now(UTC).isoformat(),
        }

    @staticmethod
    def processor_manager() -> Body:
        """The worker processes serving (KATO's ``processor_manager`` section)."""
        pids = worker_pids()
        return {"total_processors": len(pids), "processors": [{"pid": pid} for pid in pids]}

    def _window(self, minutes: int) -> Iterator[tuple[Sample | None, Sample]]:
        cutoff = time.time() - 60 * minutes
        previous: Sample | None = None
        for sample in list(self.ring):
            if sample.timestamp >= cutoff:
                yield previous, sample
            previous = sample

    def series(self, name: str, minutes: int) -> list[Body] | None:
        """The points of series ``name`` (or its alias) in the last ``minutes``; ``None`` if
        there is no such series."""
        read = SERIES.get(ALIASES.get(name, name))
        if read is None:
            return None
        points = []
        for previous, sample in self._window(minutes):
            value = read(previous, sample)
            if value is not None:
                points.append({"timestamp": sample.timestamp, "value": value, "labels": {}})
        return points

    def time_series(self, minutes: int) -> Body:
        """Every series (and alias) over the last ``minutes``."""
        found = {name: self.series(name, minutes) for name in SERIES}
        return {**found, **{alias: found[name] for alias, name in ALIASES.items()}}

    def rates(self, now: Totals) -> Body:
        """Per-second and per-minute rates over the last minute of samples."""
        window = [s for _, s in self._window(1)]
        if not window:
            return {}
        first = window[0]
        seconds = time.time() - first.timestamp
        if seconds <= 0:
            return {}

        def per_second(value: float, before: float) -> float:
            return (value - before) / seconds

        requests = per_second(now.requests, first.totals.requests)
        return {
            "requests_per_second": requests,
            "requests_per_minute": requests * 60,
            "errors_per_minute": per_second(now.server_errors, first.totals.server_errors) * 60,
            "sessions_per_minute": per_second(now.created, first.totals.created) * 60,
        }
