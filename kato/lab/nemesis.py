"""The nemesis: faults are clients for the environment, each with ``start`` and ``stop``.

A :class:`Fault` acts only on what the workbench itself started for the run — the embedded
``redis-server`` (:class:`~kato.stores.redis_server.RedisServer`), the latency proxy between the
service and Redis (:class:`~kato.lab.proxy.LatencyProxy`), the ``kato serve`` process tree
(:class:`~kato.lab.targets.ServerProcess`) and the MongoDB LTM's ``nx-27017`` server
(:class:`~kato.ltm.nx27017.NX27017`) — never on a process found by name or port. The
embedded Redis that ``kato serve`` supervises itself is never the nemesis's: a deployment with a
Redis fault starts its own and hands it to the service as ``KATO_REDIS_URL``. The
runner (:func:`kato.lab.runner.execute`) plays the schedule: it calls ``start`` at
``fault_start_s()`` after the clients start (or once a third of the operations have completed)
and ``stop`` ``fault_length_s()`` later, in a thread, and
records both calls as ``f="fault"`` ops of client ``"nemesis"`` (``args {name, phase}``, real
invocation and completion times, ``value`` what the call did), so checkers and plots see the
window. ``stop`` is called even if the run fails in between.

==================  =====================================================  ===================
fault               start → stop                                           window means
==================  =====================================================  ===================
``redis-restart``   SIGTERM redis-server (clean shutdown, AOF flushed) →   Redis down
                    start it again on the same port and data directory
``redis-kill``      SIGKILL redis-server (no shutdown, no last fsync) →    Redis down
                    start it again (the AOF, if any, reloads)
``redis-pause``     SIGSTOP → SIGCONT                                      Redis frozen
``redis-latency``   the proxy holds each request ``latency ± jitter`` →    Redis slow
                    plain relay again
``worker-kill``     SIGKILL one uvicorn worker → wait until uvicorn's      one worker gone
                    supervisor has replaced it (``value.replacement``)
``service-restart`` SIGTERM ``kato serve`` (it stops its own embedded      service down
                    Redis) → start the same command again (same port,
                    ``--data-dir``, AOF) and wait until it answers
``ltm-lock``        another process takes the SQLite LTM's write lock     LTM not writable
                    (:class:`~kato.lab.ltm_lock.LTMLock`) → releases it
``redis-failover``  (cluster) SIGKILL a master, wait until its replica     a slot range without
                    serves its slots (forced by ``CLUSTER FAILOVER         a master
                    TAKEOVER`` if slow) → start the killed node again
                    (it rejoins as a replica) and wait until healthy
``redis-master-     (cluster) SIGSTOP a master → SIGCONT (a pause longer   a master frozen
pause``             than the node timeout fails it over; it rejoins as
                    a replica)
``ltm-pause``       SIGSTOP the MongoDB LTM's ``nx-27017`` → SIGCONT       LTM frozen
``ltm-kill``        SIGKILL ``nx-27017`` → start it again on the same      LTM down
                    port and data folder (its SQLite files: what it
                    acknowledged survives)
==================  =====================================================  ===================

A deployment the workbench did not start (the ``url`` target) is reached only through commands
its operator gives (``fault_hooks``, from a target file): :class:`CommandHook` runs the hook's
``start`` command when the window opens and its ``stop`` command when it closes, the way Jepsen
drives its nemesis through commands on real nodes. A url spec with a fault but no hook for it is
refused when the spec is made.

The LTM faults need the LTM they act on: ``ltm-lock`` the SQLite LTM (``ltm="sqlite"``, the
default), ``ltm-pause`` and ``ltm-kill`` the MongoDB one (``ltm="mongo"``: the ``nx-27017``
server :func:`~kato.lab.targets.deploy` starts, :class:`~kato.ltm.nx27017.NX27017`).

Which scenarios suit: the run must still be issuing operations when the fault starts and after it
ends. By default the window is placed inside the run: the middle third of a time-based run
(``duration_s``), 30 % into an open-loop run's schedule (``operations / rate`` seconds), or, in
a closed-loop run, once a third of its operations have completed. ``many-sessions`` (every
session is read at the end, so lost observations are decided) and ``shared-session`` suit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from kato.lab.ltm_lock import LTMLock
from kato.lab.proxy import LatencyProxy
from kato.ltm.nx27017 import NX27017
from kato.stores.redis_cluster import EmbeddedCluster
from kato.stores.redis_server import RedisServer

if TYPE_CHECKING:
    from kato.lab.spec import Experiment
    from kato.lab.targets import Deployment, ServerProcess

__all__ = [
    "CommandHook",
    "Fault",
    "LTMKill",
    "LTMLockFault",
    "LTMPause",
    "Nemesis",
    "RedisFailover",
    "RedisKill",
    "RedisLatency",
    "RedisMasterPause",
    "RedisPause",
    "RedisRestart",
    "ServiceRestart",
    "WorkerKill",
    "nemesis_for",
]


class Fault(Protocol):
    """A fault: ``start`` begins it, ``stop`` ends it; each returns what it did (JSON-able).

    Both are blocking calls (the runner runs them in a thread); an exception is recorded as the
    op's ``unknown`` outcome with the error, never swallowed.
    """

    name: str

    def start(self) -> dict[str, Any]: ...

    def stop(self) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class Nemesis:
    """One fault window: ``fault`` starts ``at_s`` after the clients start (``None``: once a
    third of their operations have completed, so it falls inside the run), lasts ``for_s``."""

    fault: Fault
    at_s: float | None
    for_s: float


T = TypeVar("T")


def _started(redis: RedisServer) -> subprocess.Popen[bytes]:
    if redis.process is None or redis.process.poll() is not None:
        raise RuntimeError("the workbench's redis-server is not running")
    return redis.process


#: Starts processes for the faults. The embedded Redis and ``kato serve`` are started with
#: ``PR_SET_PDEATHSIG``, which fires when the *thread* that started them ends, so a process
#: restarted from the runner's short-lived worker threads would be killed as soon as the run's
#: event loop closed. This one thread lives as long as the interpreter.
_SPAWNER: ThreadPoolExecutor | None = None
_SPAWNER_LOCK = threading.Lock()


def _spawn(start: Callable[[], T]) -> T:
    """``start()`` on the spawner thread (for anything that starts a child process)."""
    global _SPAWNER
    with _SPAWNER_LOCK:
        if _SPAWNER is None:
            _SPAWNER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kato-lab-spawner")
    return _SPAWNER.submit(start).result()



def _restart(redis: RedisServer) -> dict[str, Any]:
    _spawn(redis.start)  # on the same port (RedisServer.start raises if it cannot have it back)
    return {"pid": _started(redis).pid, "port": redis.port}


class RedisRestart:
    """Stop the workbench's redis-server cleanly (SIGTERM), then start it again."""

    name = "redis-restart"

    def __init__(self, redis: RedisServer) -> None:
        self.redis = redis

    def start(self) -> dict[str, Any]:
        process = _started(self.redis)
        process.terminate()
        process.wait(timeout=30)
        return {"pid": process.pid, "port": self.redis.port, "signal": "SIGTERM"}

    def stop(self) -> dict[str, Any]:
        return _restart(self.redis)


class RedisKill:
    """SIGKILL the workbench's redis-server (no shutdown, no final fsync), then start it again."""

    name = "redis-kill"

    def __init__(self, redis: RedisServer) -> None:
        self.redis = redis

    def start(self) -> dict[str, Any]:
        pid = _started(self.redis).pid
        self.redis.kill()
        return {"pid": pid, "port": self.redis.port, "signal": "SIGKILL"}

    def stop(self) -> dict[str, Any]:
        return _restart(self.redis)


class RedisPause:
    """SIGSTOP the workbench's redis-server, then SIGCONT: it keeps its connections, but answers
    nothing meanwhile (the service's Redis socket timeout decides when requests give up)."""

    name = "redis-pause"

    def __init__(self, redis: RedisServer) -> None:
        self.redis = redis

    def start(self) -> dict[str, Any]:
        pid = _started(self.redis).pid
        self.redis.pause()
        return {"pid": pid, "signal": "SIGSTOP"}

    def stop(self) -> dict[str, Any]:
        pid = _started(self.redis).pid
        self.redis.resume()
        return {"pid": pid, "signal": "SIGCONT"}


def _rejoin(cluster: EmbeddedCluster) -> dict[str, Any]:
    """Start the cluster's stopped nodes again (from the spawner thread) and wait until healed."""
    healed: dict[str, Any] = {}
    _spawn(lambda: healed.update(cluster.rejoin()))
    return healed


class RedisFailover:
    """SIGKILL a master of the workbench's cluster and wait until its replica took over; then
    start the killed node again (it rejoins as a replica). Writes the master acknowledged but
    had not yet sent to its replica are lost: ``redis_wait_replicas`` is what prevents that."""

    name = "redis-failover"

    def __init__(self, cluster: EmbeddedCluster) -> None:
        self.cluster = cluster

    def start(self) -> dict[str, Any]:
        return {**self.cluster.fail_over(), "signal": "SIGKILL"}

    def stop(self) -> dict[str, Any]:
        return _rejoin(self.cluster)


class RedisMasterPause:
    """SIGSTOP a master of the workbench's cluster, then SIGCONT and wait until the cluster is
    healthy (a pause longer than the node timeout has failed it over meanwhile)."""

    name = "redis-master-pause"

    def __init__(self, cluster: EmbeddedCluster) -> None:
        self.cluster = cluster
        self._paused: RedisServer | None = None

    def start(self) -> dict[str, Any]:
        self._paused, _ = self.cluster.master_of(0)
        self._paused.pause()
        return {"port": self._paused.port, "signal": "SIGSTOP"}

    def stop(self) -> dict[str, Any]:
        if self._paused is not None:
            self._paused.resume()
        return {"signal": "SIGCONT", **_rejoin(self.cluster)}


class RedisLatency:
    """Delay every request from the service to Redis by ``latency_s ± jitter_s`` (the proxy)."""

    name = "redis-latency"

    def __init__(self, proxy: LatencyProxy, *, latency_s: float, jitter_s: float) -> None:
        self.proxy = proxy
        self.latency_s = latency_s
        self.jitter_s = jitter_s

    def start(self) -> dict[str, Any]:
        self.proxy.set_delay(self.latency_s, self.jitter_s)
        return {"latency_ms": self.latency_s * 1e3, "jitter_ms": self.jitter_s * 1e3}

    def stop(self) -> dict[str, Any]:
        self.proxy.set_delay(0.0, 0.0)
        return {"latency_ms": 0.0, "jitter_ms": 0.0}


class CommandHook:
    """A fault made of two shell commands (a target file's hook): ``start`` and ``stop`` each run
    one to completion; a non-zero exit or a timeout raises (recorded with the fault op)."""

    def __init__(self, name: str, start: str, stop: str, *, timeout_s: float = 60.0) -> None:
        self.name = name
        self.commands = {"start": start, "stop": stop}
        self.timeout_s = timeout_s

    def _run(self, phase: str) -> dict[str, Any]:
        command = self.commands[phase]
        done = subprocess.run(
            command, shell=True, capture_output=True, text=True, timeout=self.timeout_s
        )
        output = (done.stdout + done.stderr).strip()[-500:]
        if done.returncode != 0:
            raise RuntimeError(f"{phase} hook {command!r} exited {done.returncode}: {output}")
        return {"command": command, "returncode": done.returncode, "output": output}

    def start(self) -> dict[str, Any]:
        return self._run("start")

    def stop(self) -> dict[str, Any]:
        return self._run("stop")


class LTMLockFault:
    """Another process holds the SQLite LTM's write lock for the window: reads go on, every
    write of the service waits for the lock up to its LTM timeout, then fails."""

    name = "ltm-lock"

    def __init__(self, path: Path) -> None:
        self.lock = LTMLock(path)

    def start(self) -> dict[str, Any]:
        return _spawn(self.lock.start)  # the holder must outlive the runner's thread

    def stop(self) -> dict[str, Any]:
        return self.lock.stop()


class LTMPause:
    """SIGSTOP the MongoDB LTM's ``nx-27017``, then SIGCONT: connections stay open but nothing
    answers, so each LTM call of the service fails after its socket timeout."""

    name = "ltm-pause"

    def __init__(self, mongo: NX27017) -> None:
        self.mongo = mongo

    def start(self) -> dict[str, Any]:
        self.mongo.pause()
        return {"pid": self.mongo.running().pid, "signal": "SIGSTOP"}

    def stop(self) -> dict[str, Any]:
        self.mongo.resume()
        return {"pid": self.mongo.running().pid, "signal": "SIGCONT"}


class LTMKill:
    """SIGKILL the MongoDB LTM's ``nx-27017``, then start it again on the same port and data
    folder: its databases are SQLite files there, so every write it acknowledged is back."""

    name = "ltm-kill"

    def __init__(self, mongo: NX27017) -> None:
        self.mongo = mongo

    def start(self) -> dict[str, Any]:
        pid = self.mongo.running().pid
        self.mongo.kill()
        return {"pid": pid, "port": self.mongo.port, "signal": "SIGKILL"}

    def stop(self) -> dict[str, Any]:
        _spawn(self.mongo.start)  # the new server must outlive the runner's thread
        return {"pid": self.mongo.running().pid, "port": self.mongo.port}


def children(pid: int) -> list[int]:
    """The child processes of ``pid`` (from ``/proc``), or ``[]``."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    with contextlib.suppress(OSError, ValueError):
        return [int(p) for p in path.read_text().split()]
    return []


def parent_of(pid: int) -> int | None:
    """The parent pid of ``pid`` (from ``/proc/<pid>/stat``), or ``None`` if it is gone."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[1])  # the field after "(comm) state"
    return None


class ServiceRestart:
    """Stop the workbench's ``kato serve`` cleanly (SIGTERM to it and its workers), then start
    the same command again: same port, same ``--data-dir``, so its embedded Redis reloads the
    AOF it kept there."""

    name = "service-restart"

    def __init__(self, server: ServerProcess) -> None:
        self.server = server

    def start(self) -> dict[str, Any]:
        pid = self.server.pid
        self.server.stop()
        return {"pid": pid, "signal": "SIGTERM"}

    def stop(self) -> dict[str, Any]:
        _spawn(self.server.start)
        return {"pid": self.server.pid}


class WorkerKill:
    """SIGKILL one worker of the workbench's ``kato serve``; ``stop`` waits for its replacement.

    Only a live child of the server process the workbench started is ever signalled (checked
    just before the kill). ``stop`` returns ``replacement``: the new worker's pid, or ``None``
    if none appeared within ``replace_timeout_s``.
    """

    name = "worker-kill"

    def __init__(self, server: ServerProcess, *, replace_timeout_s: float = 15.0) -> None:
        self.server = server
        self.replace_timeout_s = replace_timeout_s
        self._before: list[int] = []
        self._killed: int | None = None

    def _workers(self) -> list[int]:
        return sorted(p for p in self.server.worker_pids() if p != self.server.pid)

    def start(self) -> dict[str, Any]:
        self._before = self._workers()
        if not self._before:
            raise RuntimeError("the server has no worker processes (workers=1 runs in-process)")
        victim = self._before[0]
        if parent_of(victim) != self.server.pid:
            raise RuntimeError(f"pid {victim} is not a worker of the workbench's server")
        os.kill(victim, signal.SIGKILL)
        self._killed = victim
        return {"pid": victim, "server_pid": self.server.pid, "workers": len(self._before)}

    def stop(self) -> dict[str, Any]:
        deadline = time.monotonic() + self.replace_timeout_s
        new: list[int] = []
        while time.monotonic() < deadline:
            now = self._workers()
            new = [p for p in now if p not in self._before]
            if new and len(now) >= len(self._before):
                break
            time.sleep(0.05)
        return {
            "pid": self._killed,
            "replacement": new[0] if new else None,
            "workers": len(self._workers()),
        }


def nemesis_for(spec: Experiment, deployment: Deployment) -> Nemesis | None:
    """The nemesis ``spec.fault`` names, bound to what ``deployment`` started (``None``: none)."""
    if spec.fault == "none":
        return None
    fault: Fault
    if spec.target == "url":  # the spec refuses a url fault without a hook
        hook = spec.fault_hooks[spec.fault]
        fault = CommandHook(spec.fault, hook["start"], hook["stop"])
    elif spec.fault in ("worker-kill", "service-restart"):
        if deployment.server is None:
            raise ValueError(f"{spec.fault} needs the http target")
        fault = (WorkerKill if spec.fault == "worker-kill" else ServiceRestart)(deployment.server)
    elif spec.fault == "ltm-lock":
        if deployment.ltm_path is None:
            raise ValueError("ltm-lock needs the SQLite LTM deploy() starts (store=redis)")
        fault = LTMLockFault(deployment.ltm_path)
    elif spec.fault in ("redis-failover", "redis-master-pause"):
        if deployment.cluster is None:
            raise ValueError(f"{spec.fault} needs the cluster deploy() starts (redis_cluster)")
        kind = RedisFailover if spec.fault == "redis-failover" else RedisMasterPause
        fault = kind(deployment.cluster)
    elif spec.fault in ("ltm-pause", "ltm-kill"):
        if deployment.mongo is None:
            raise ValueError(f"{spec.fault} needs the nx-27017 deploy() starts (ltm=mongo)")
        fault = (LTMPause if spec.fault == "ltm-pause" else LTMKill)(deployment.mongo)
    elif spec.fault == "redis-latency":
        if deployment.proxy is None:
            raise ValueError("redis-latency needs the latency proxy deploy() starts for it")
        fault = RedisLatency(
            deployment.proxy,
            latency_s=spec.fault_latency_ms / 1e3,
            jitter_s=spec.fault_jitter_ms / 1e3,
        )
    else:
        if deployment.redis is None:
            raise ValueError(f"{spec.fault} needs the Redis the workbench starts (store=redis)")
        kinds: dict[str, type[RedisRestart | RedisKill | RedisPause]] = {
            "redis-restart": RedisRestart,
            "redis-kill": RedisKill,
            "redis-pause": RedisPause,
        }
        fault = kinds[spec.fault](deployment.redis)
    return Nemesis(fault, spec.fault_start_s(), spec.fault_length_s())
