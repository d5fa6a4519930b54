"""Observability: one JSON log line per request, Prometheus metrics, and store-call tracing.

Every request gets a :class:`RequestTrace` in a context variable; the store wrapper
(:class:`ObservedSessionStore`) counts each store call into it and into the metrics, so the
request's log line says how many store calls it cost and which node it touched. All of this is
set up by the service's factory, never at import.

Metrics work in one process or across uvicorn worker processes: when ``PROMETHEUS_MULTIPROC_DIR``
is set (``kato serve`` sets it for several workers, see :func:`metrics_folder`), ``/metrics``
aggregates every worker's files.
"""

from __future__ import annotations

import contextlib
import gc
import glob
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

from kato.collector import PAUSES
from kato.exceptions import KatoError, SessionNotFoundError
from kato.sessions import ChangeFn, Lease, Outcome, SessionRecord, SessionStore

__all__ = [
    "MULTIPROC_ENV",
    "JsonFormatter",
    "Metrics",
    "ObservedSessionStore",
    "RequestTrace",
    "current_trace",
    "metrics_folder",
    "session_prefix",
]

T = TypeVar("T")
MetricT = TypeVar("MetricT", Counter, Histogram)

#: How many labelled children :meth:`Metrics.child` keeps (routes × statuses, store operations ×
#: outcomes: a few hundred; the bound keeps label values clients choose, such as request
#: methods, from growing it for ever).
CACHED_LABELS = 4096
log = logging.getLogger("kato")

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


@dataclass(slots=True)
class RequestTrace:
    """What one request did, gathered while it runs and logged when it ends."""

    request_id: str
    store_calls: int = 0
    store_seconds: float = 0.0
    node_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


_trace: ContextVar[RequestTrace | None] = ContextVar("kato_request_trace", default=None)


def current_trace() -> RequestTrace | None:
    """The trace of the request being served, if any."""
    return _trace.get()


def start_trace(request_id: str) -> RequestTrace:
    trace = RequestTrace(request_id)
    _trace.set(trace)
    return trace


def session_prefix(session_id: str | None) -> str | None:
    """A session id shortened for logs: enough to correlate, too little to use."""
    if session_id is None:
        return None
    return session_id[:16] + "…" if len(session_id) > 16 else session_id


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object per line, with the record's ``fields`` merged in."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": record.process,
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str = "info") -> None:
    """Send the ``kato`` logger's records to stderr as JSON lines (called by the server)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("kato")
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False


#: Where prometheus_client's multi-process mode keeps each process's metric files.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


@contextlib.contextmanager
def metrics_folder(workers: int) -> Iterator[str | None]:
    """The folder the worker processes write their metrics to, for the block's duration.

    Several workers get a temporary folder (removed afterwards) unless ``PROMETHEUS_MULTIPROC_DIR``
    names one. Set but empty, the variable still turns prometheus_client's multi-process mode on
    and its files land in the working directory (six were once committed at the repository's
    root), so it gets a temporary folder too, whatever the worker count. The variable is put
    back as it was when the block ends.
    """
    named = os.environ.get(MULTIPROC_ENV)
    if named or (named is None and workers == 1):
        yield named
        return
    try:
        with tempfile.TemporaryDirectory(prefix="kato-metrics-") as folder:
            os.environ[MULTIPROC_ENV] = folder
            yield folder
    finally:
        if named is None:
            os.environ.pop(MULTIPROC_ENV, None)
        else:
            os.environ[MULTIPROC_ENV] = named


class _WorkerFiles(MultiProcessCollector):
    """Every worker's metric files merged, skipping a file that is being created this instant.

    prometheus_client creates a worker's file empty and sizes it a moment later; a reader that
    met it empty raised ``struct.error``, and when that reader was another worker's start-up
    sample, that worker failed to start and took ``kato serve`` down with it. A file shorter
    than its 8-byte header holds no value yet, and a file only grows, so skipping it loses
    nothing and cannot race."""

    def collect(self) -> Iterable[Metric]:
        files = glob.glob(os.path.join(self._path, "*.db"))
        merged: Iterable[Metric] = self.merge(  # type: ignore[no-untyped-call]
            [name for name in files if _sized(name)], accumulate=True
        )
        return merged


def _sized(name: str) -> bool:
    try:
        return os.path.getsize(name) >= 8
    except FileNotFoundError:  # a dead worker's file, removed meanwhile
        return False


class Metrics:
    """The service's Prometheus metrics, in a registry of their own (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        r = self.registry
        self.requests = Counter(
            "kato_http_requests_total",
            "HTTP requests served, by route template and status",
            ["method", "route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "kato_http_request_duration_seconds",
            "HTTP request latency, by route template",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.store_calls = Counter(
            "kato_store_calls_total",
            "Session-store calls, by operation and outcome",
            ["store", "op", "outcome"],
            registry=r,
        )
        self.store_latency = Histogram(
            "kato_store_call_duration_seconds",
            "Session-store call latency, by operation",
            ["store", "op"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.session_operations = Counter(
            "kato_session_operations_total",
            "Session operations, by operation and outcome (ok or error code)",
            ["op", "outcome"],
            registry=r,
        )
        self.round_trips = Counter(
            "kato_store_round_trips_total",
            "Round trips to the session store (Redis) made by requests",
            registry=r,
        )
        self.background_round_trips = Counter(
            "kato_store_background_round_trips_total",
            "Round trips to the session store made by the outbox drainers' polls (no request's)",
            registry=r,
        )
        self.store_bytes = Counter(
            "kato_store_bytes_total",
            "Bytes exchanged with the session store, by direction",
            ["direction"],
            registry=r,
        )
        self.conflicts = Counter(
            "kato_store_conflicts_total",
            "Optimistic compare-and-set attempts lost to a concurrent writer (then retried)",
            registry=r,
        )
        self.replica_waits = Counter(
            "kato_store_replica_waits_total",
            "Session writes that waited for replicas (KATO_REDIS_WAIT_REPLICAS), by whether as "
            "many as asked acknowledged in time (ok) or fewer (shortfall)",
            ["outcome"],
            registry=r,
        )
        self.active_sessions = Gauge(
            "kato_active_sessions",
            "Live sessions in the store (read when /metrics is scraped)",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.gc_collections = Counter(
            "kato_gc_collections_total",
            "Garbage collections of the worker processes, by generation",
            ["generation"],
            registry=r,
        )
        self.gc_seconds = Counter(
            "kato_gc_seconds_total",
            "Seconds the worker processes spent in garbage collections, by generation (each "
            "one stops the worker: its event loop and every thread)",
            ["generation"],
            registry=r,
        )
        self.gc_frozen = Gauge(
            "kato_gc_frozen_objects",
            "Objects a worker froze out of garbage collection once its app was built "
            "(kato.collector.settle), summed over the workers this server started",
            registry=r,
            multiprocess_mode="sum",
        )
        PAUSES.install()
        self._gc_lock = threading.Lock()
        self._gc_counted: tuple[tuple[int, ...], tuple[float, ...]] = PAUSES.read()

    def round_trip(self, sent: int, received: int, *, background: bool = False) -> None:
        (self.background_round_trips if background else self.round_trips).inc()
        self.child(self.store_bytes, "sent").inc(sent)
        self.child(self.store_bytes, "received").inc(received)

    def child(self, metric: MetricT, *labels: str) -> MetricT:
        """``metric.labels(*labels)``, kept (the first :data:`CACHED_LABELS` of them):
        prometheus' ``labels()`` takes a lock and builds its key on every call, which costs more
        than the ``inc()`` it serves."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = metric.labels(*labels)
            if len(self._children) < CACHED_LABELS:
                self._children[key] = found
        return found

    def conflict(self) -> None:
        self.conflicts.inc()

    def replicas(self, asked: int, acknowledged: int) -> None:
        self.replica_waits.labels("ok" if acknowledged >= asked else "shortfall").inc()

    def count_collections(self) -> None:
        """Add the collections since the last call to the ``kato_gc_*`` counters (they cannot
        be counted as they happen: see :class:`~kato.collector.Pauses`). Every read of the
        metrics does this, and so does the monitor's sampling, in every worker."""
        with self._gc_lock:  # the monitor samples in a thread while /metrics is read
            (collections, seconds), (counted, timed) = PAUSES.read(), self._gc_counted
            self._gc_counted = (collections, seconds)
        self.gc_frozen.set(gc.get_freeze_count())
        for generation in range(3):
            label = str(generation)
            if collections[generation] > counted[generation]:
                self.child(self.gc_collections, label).inc(
                    collections[generation] - counted[generation]
                )
                self.child(self.gc_seconds, label).inc(
                    max(seconds[generation] - timed[generation], 0.0)
                )

    def collected(self) -> CollectorRegistry:
        """The registry to read: this one, or every worker's files merged when there are
        several (so every reader, text or JSON, sees the same aggregated figures)."""
        self.count_collections()
        directory = multiprocess_dir()
        if directory is None:
            return self.registry
        merged = CollectorRegistry()
        _WorkerFiles(merged, path=directory)  # type: ignore[no-untyped-call]
        return merged

    def families(self) -> list[Metric]:
        """Every metric family, aggregated across worker processes (see :meth:`collected`)."""
        return list(self.collected().collect())

    def exposition(self) -> bytes:
        """The text exposition, aggregated across worker processes when there are several."""
        return generate_latest(self.collected())


class ObservedSessionStore:
    """A session store wrapper that times, counts and logs every call, and nothing else."""

    def __init__(self, inner: SessionStore, metrics: Metrics, name: str) -> None:
        self.inner = inner
        self.metrics = metrics
        self.name = name

    async def _observe(self, op: str, call: Callable[[], Awaitable[T]]) -> T:
        started = time.perf_counter()
        outcome = "ok"
        try:
            result = await call()
        except SessionNotFoundError:
            outcome = "not_found"
            raise
        except KatoError as exc:
            outcome = exc.code.lower()
            raise
        except Exception:
            outcome = "exception"
            raise
        finally:
            elapsed = time.perf_counter() - started
            metrics = self.metrics
            metrics.child(metrics.store_calls, self.name, op, outcome).inc()
            metrics.child(metrics.store_latency, self.name, op).observe(elapsed)
            trace = _trace.get()
            if trace is not None:
                trace.store_calls += 1
                trace.store_seconds += elapsed
        if isinstance(result, Lease):
            self._note_node(result.record)
        elif isinstance(result, Outcome):
            self._note_node(result.lease.record)
        return result

    @staticmethod
    def _note_node(record: SessionRecord) -> None:
        trace = _trace.get()
        if trace is not None:
            trace.node_id = record.node_id

    async def create(self, record: SessionRecord) -> Lease:
        return await self._observe("create", lambda: self.inner.create(record))

    async def get(self, session_id: str, *, touch: bool = True, predictions: bool = True) -> Lease:
        return await self._observe(
            "get", lambda: self.inner.get(session_id, touch=touch, predictions=predictions)
        )

    async def update(
        self, session_id: str, change: ChangeFn[T], *, unique_id: str | None = None
    ) -> Outcome[T]:
        return await self._observe(
            "update", lambda: self.inner.update(session_id, change, unique_id=unique_id)
        )

    async def delete(self, session_id: str) -> None:
        await self._observe("delete", lambda: self.inner.delete(session_id))

    async def exists(self, session_id: str) -> bool:
        return await self._observe("exists", lambda: self.inner.exists(session_id))

    async def extend(self, session_id: str, ttl_seconds: int) -> Lease:
        return await self._observe("extend", lambda: self.inner.extend(session_id, ttl_seconds))

    async def count(self) -> int:
        return await self._observe("count", self.inner.count)

    async def outbox(self, limit: int) -> list[tuple[str, float]]:
        return await self._observe("outbox", lambda: self.inner.outbox(limit))

    async def settled(self, session_id: str, mark: float) -> None:
        await self._observe("settled", lambda: self.inner.settled(session_id, mark))

    async def close(self) -> None:
        await self.inner.close()
