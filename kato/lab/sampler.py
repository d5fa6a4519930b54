"""Resource samples of what a run started, taken every few seconds while it runs.

A soak asks whether anything grows while the load stays the same, so the :class:`Sampler`
records, from a thread of its own: the resident set size (RSS) and open TCP connections (any
state but LISTEN) of every process of the ``kato serve`` tree the workbench started — its master,
every uvicorn worker, multiprocessing's resource tracker — and of the embedded redis-server; and
Redis's own ``INFO`` (``used_memory``, ``connected_clients``, its own connection included). Like
the nemesis it looks only at the processes the deployment holds, never at one found by name.

Rows are long-format, one per sample × process: ``t_s`` (since the sampler started, i.e. about
when the clients started), ``phase`` (``load`` while the run goes on, ``idle`` for the one sample
taken after every client closed), ``process`` (``master``, ``worker-1``…, in order of first
sight, ``resource-tracker``, ``redis-server``), ``pid``, ``rss_bytes``, ``connections``, and on
redis-server rows ``used_memory`` and ``connected_clients``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import psutil
import redis

if TYPE_CHECKING:
    from kato.lab.targets import Deployment

__all__ = ["Sampler"]

REDIS = "redis-server"


class Sampler:
    """Samples ``deployment``'s processes every ``interval_s`` seconds between enter and exit.

    On exit it takes one last ``idle`` sample, ``settle_s`` after the clients closed (the time
    the service needs to see their connections end).
    """

    def __init__(
        self, deployment: Deployment, *, interval_s: float = 2.0, settle_s: float = 1.0
    ) -> None:
        if deployment.server is None or deployment.redis is None:
            raise ValueError("the sampler needs the http target on the embedded Redis")
        self.server = deployment.server
        self.redis = deployment.redis
        self.interval_s = interval_s
        self.settle_s = settle_s
        self.rows: list[dict[str, Any]] = []
        self._labels: dict[int, str] = {}
        self._workers = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = 0.0
        # one connection for the whole run: a steady +1 in what it counts, not a new one each time
        self._client = redis.Redis.from_url(self.redis.url, socket_timeout=1.0)

    def __enter__(self) -> Self:
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name="kato-lab-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if exc_type is None:
            time.sleep(self.settle_s)
            self.sample("idle")
        self._client.close()

    def _loop(self) -> None:
        while True:
            self.sample("load")
            if self._stop.wait(self.interval_s):
                return

    def sample(self, phase: str) -> None:
        """Record one row per live process now."""
        t_s = time.monotonic() - self._started
        info = self._redis_info()
        for pid, label in self._processes():
            with contextlib.suppress(psutil.Error):  # gone between listing and reading
                process = psutil.Process(pid)
                row: dict[str, Any] = {
                    "t_s": t_s,
                    "phase": phase,
                    "process": label,
                    "pid": pid,
                    "rss_bytes": process.memory_info().rss,
                    "connections": sum(
                        c.status != psutil.CONN_LISTEN for c in process.net_connections("tcp")
                    ),
                }
                if label == REDIS:
                    row.update(info)
                self.rows.append(row)

    def _processes(self) -> list[tuple[int, str]]:
        found = [(self.server.pid, "master")]
        with contextlib.suppress(psutil.Error):
            tree = psutil.Process(self.server.pid).children(recursive=True)
            found += [
                (child.pid, self._label(child)) for child in sorted(tree, key=lambda c: c.pid)
            ]
        if self.redis.process is not None:
            found.append((self.redis.process.pid, REDIS))
        return found

    def _label(self, child: psutil.Process) -> str:
        if child.pid not in self._labels:
            with contextlib.suppress(psutil.Error):
                if any("resource_tracker" in part for part in child.cmdline()):
                    self._labels[child.pid] = "resource-tracker"
                    return "resource-tracker"
            self._workers += 1
            self._labels[child.pid] = f"worker-{self._workers}"
        return self._labels[child.pid]

    def _redis_info(self) -> dict[str, Any]:
        with contextlib.suppress(redis.RedisError, OSError):
            return {
                "used_memory": self._client.info("memory")["used_memory"],
                "connected_clients": self._client.info("clients")["connected_clients"],
            }
        return {"used_memory": None, "connected_clients": None}
