"""Targets: what the clients talk to, started and torn down by the workbench (or found running).

``engine`` is a deployment inside this process (memory store, memory LTM); ``http`` is a real
``kato serve`` child process on a free loopback port with ``workers`` uvicorn workers, backed by
the memory store (one worker) or by Redis — an embedded redis-server the workbench starts itself,
so faults can be injected into it. Both are context managers yielding a :class:`Deployment`;
everything they start is stopped on exit, also on Ctrl-C or a failed run.

``url`` is a deployment already running (:mod:`kato.lab.remote`): nothing is started or stopped;
its capabilities are probed first (a ``ValueError`` if it does not speak the session API, or
cannot give what the spec asks: retries without ``unique_id`` replay), its clients spread their
requests over its ``urls`` round robin, and the sessions the run created are deleted at the end.

Redis runs with the spec's ``redis_persistence``. For the ``redis-latency`` fault the workbench
also runs a :class:`~kato.lab.proxy.LatencyProxy` between the service and Redis, and the service
is given the proxy's address as ``KATO_REDIS_URL``. For the ``service-restart`` fault the
workbench starts no Redis: ``kato serve`` runs its own embedded one (``--redis-persistence``, the
AOF in its ``--data-dir``), which a restart of the service must find again. Behind Redis the
service's LTM is SQLite, in a data directory the workbench makes (``Deployment.ltm_path``), or
with ``ltm="mongo"`` MongoDB: an ``nx-27017`` server the workbench starts on a free port, its
files in that data directory (``Deployment.mongo``), given to the service as ``KATO_MONGO_URL``.
Under an LTM fault (``ltm-lock``, ``ltm-pause``, ``ltm-kill``) the service waits at most
``LTM_FAULT_TIMEOUT_S`` for its LTM (SQLite's write lock; MongoDB's server selection, connect and
each answer), so a fault window of a second outlasts it.

With ``redis_cluster`` the workbench starts an embedded Redis Cluster
(:class:`~kato.stores.redis_cluster.EmbeddedCluster`) instead, for the ``redis-failover`` and
``redis-master-pause`` faults, and the service waits for ``redis_wait_replicas`` replicas after
each write. With ``hosts`` > 1 it starts that many ``kato serve`` processes (each with its own
port and ``workers``) on the same Redis and one MongoDB LTM (``nx-27017``), and the clients
spread their requests over them round robin, like the ``url`` target's; a fault on the service
(``worker-kill``) acts on the first host.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kato.core import Kato
from kato.lab.clients import EngineClient, HttpClient, LabClient
from kato.lab.proxy import LatencyProxy
from kato.lab.remote import FULL, Capabilities, delete_sessions, probe
from kato.lab.spec import Experiment
from kato.ltm.nx27017 import NX27017
from kato.nodes import MemoryNodes
from kato.processes import die_with_parent, free_port
from kato.sessions import MemorySessionStore
from kato.settings import Settings
from kato.stores.redis_cluster import EmbeddedCluster
from kato.stores.redis_server import RedisServer

__all__ = ["LTM_FAULT_TIMEOUT_S", "Deployment", "ServerProcess", "deploy", "serve"]

#: ``KATO_LTM_TIMEOUT`` of the service under an LTM fault (seconds).
LTM_FAULT_TIMEOUT_S = 0.2


@dataclass
class Deployment:
    """A running target: how to make clients, and handles on what was started (for faults)."""

    make_client: Callable[[], LabClient]
    info: dict[str, Any]
    server: ServerProcess | None = None
    redis: RedisServer | None = None
    #: The embedded Redis Cluster (``redis_cluster`` runs), for its faults.
    cluster: EmbeddedCluster | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: The latency proxy between the service and Redis (``redis-latency`` runs only).
    proxy: LatencyProxy | None = None
    #: What the target serves beyond the session API (all of it, unless a url target lacks it).
    capabilities: Capabilities = FULL
    #: The service's SQLite LTM file (``store="redis"``, ``ltm="sqlite"`` runs only).
    ltm_path: Path | None = None
    #: The service's MongoDB LTM server (``ltm="mongo"`` runs only).
    mongo: NX27017 | None = None


@dataclass
class ServerProcess:
    """A ``kato serve`` child process: ``command`` run with ``env``, its output in ``log_path``.

    ``stop`` then ``start`` is the ``service-restart`` fault: the same command again, so the same
    port and data directory.
    """

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    command: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    workers: int = 1

    @property
    def pid(self) -> int:
        return self.process.pid

    def start(self, *, timeout: float = 60.0) -> None:
        """Run the command again (after :meth:`stop`) and wait until it is ready."""
        self.process = _launch(self.command, self.env, self.log_path)
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float) -> None:
        """Wait until every worker answers ``/health``: the first one alone would take all the
        early connections, and a run meant for several workers would quietly test one. If the
        server exits or the ``timeout`` passes first, stop it and raise with its log's tail."""
        deadline = time.monotonic() + timeout
        answered: set[str] = set()
        while len(answered) < self.workers:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = self.log_path.read_text(errors="replace")[-3000:]
                command = " ".join(self.command)
                raise RuntimeError(f"kato serve did not come up ({command}):\n{tail}")
            worker = _healthy_worker(self.url)
            if worker is None:
                time.sleep(0.05)
            else:
                answered.add(worker)

    def stop(self) -> None:
        """SIGTERM the server and its workers (SIGKILL after 10 s); reaped."""
        process = self.process
        if process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)  # the server and its workers
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def worker_pids(self) -> list[int]:
        """The uvicorn worker processes (children of the server), or the server itself.

        Workers are the server's python children other than multiprocessing's resource tracker
        (which uvicorn's supervisor also starts, and which serves no request).
        """
        children = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        with contextlib.suppress(OSError, ValueError):
            pids = [int(p) for p in children.read_text().split()]
            workers = [p for p in pids if _is_worker(p)]
            if workers:
                return workers
        return [self.pid]


def _is_worker(pid: int) -> bool:
    with contextlib.suppress(OSError):
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
        program = Path(command.split(b"\0")[0].decode(errors="replace")).name
        # not the embedded redis-server kato serve may run (its path is in site-packages/)
        return program.startswith("python") and b"resource_tracker" not in command
    return False


def _launch(command: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start ``command`` in a session of its own, its output appended to ``log_path``."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
            preexec_fn=die_with_parent,  # a crashed workbench leaves no server behind
        )


def _healthy_worker(url: str) -> str | None:
    """The pid of the worker that answered ``/health`` with 200 (a new connection each call)."""
    try:
        with urllib.request.urlopen(url + "/health", timeout=1) as response:
            return str(response.headers.get("X-Kato-Worker")) if response.status == 200 else None
    except OSError:
        return None


def _workers(args: tuple[str, ...]) -> int:
    return int(args[args.index("--workers") + 1]) if "--workers" in args else 1


@contextlib.contextmanager
def serve(
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 60.0,
    program: tuple[str, ...] = ("kato", "serve"),
) -> Iterator[ServerProcess]:
    """Run ``python -m kato serve ARGS`` on a free port until the block ends; yield it healthy.

    ``program`` names another module to run the same way (the bug zoo's server:
    ``("kato.lab.zoo", "serve")``); it must take ``--port`` and ``--data-dir`` like kato serve.

    The server gets its own data directory unless ``--data-dir`` is given; its output goes to a
    log file whose tail is raised with the error if it does not come up. It is stopped with
    SIGTERM (SIGKILL after 10 s) however the block ends.
    """
    port = free_port()
    with contextlib.ExitStack() as stack:
        if "--data-dir" not in args:
            data_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="kato-data-"))
            args = (*args, "--data-dir", data_dir)
        log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kato-serve-")))
        command = [sys.executable, "-m", *program, "--port", str(port), *args]
        environment = {**os.environ, **(env or {})}
        log_path = log_dir / "serve.log"
        server = ServerProcess(
            f"http://127.0.0.1:{port}",
            _launch(command, environment, log_path),
            log_path,
            command,
            environment,
            workers=_workers(args),
        )
        stack.callback(server.stop)
        server.wait_ready(timeout)
        yield server


@contextlib.contextmanager
def deploy(spec: Experiment, *, redis_persistence: str | None = None) -> Iterator[Deployment]:
    """Start the target ``spec`` names; yield a :class:`Deployment`; stop it afterwards.

    ``redis_persistence`` overrides ``spec.redis_persistence``.
    """
    persistence = redis_persistence or spec.redis_persistence
    if spec.target == "engine":
        kato = Kato(Settings(), MemorySessionStore(), MemoryNodes())
        yield Deployment(lambda: EngineClient(kato), {"target": "engine", "workers": 1})
        return
    if spec.target == "url":
        with _found(spec) as deployment:
            yield deployment
        return
    with contextlib.ExitStack() as stack:
        env: dict[str, str] = {"KATO_REDIS_WAIT_REPLICAS": str(spec.redis_wait_replicas)}
        redis = None
        cluster = None
        proxy = None
        ltm_path = None
        mongo = None
        args = ["--workers", str(spec.workers), "--store", spec.store, "--log-level", "warning"]
        if spec.store == "redis":
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kato-data-")))
            # several hosts share one LTM: a SQLite file would be one host's own
            ltm = "mongo" if spec.hosts > 1 else spec.ltm
            args += ["--data-dir", str(data_dir), "--ltm", ltm]
            if ltm == "mongo":
                mongo = stack.enter_context(NX27017(data_dir / "nx27017"))
                env["KATO_MONGO_URL"] = mongo.url
            else:
                ltm_path = data_dir / "ltm.sqlite3"
            if spec.fault.startswith("ltm-"):
                env["KATO_LTM_TIMEOUT"] = str(LTM_FAULT_TIMEOUT_S)
        if spec.store == "redis" and spec.fault == "service-restart":
            # kato serve runs (and supervises) its own Redis, its AOF in the data directory the
            # restarted server is given again; an empty KATO_REDIS_URL names none
            env["KATO_REDIS_URL"] = ""
            args += ["--redis-persistence", persistence]
        elif spec.store == "redis" and spec.redis_cluster:
            cluster = stack.enter_context(EmbeddedCluster(spec.redis_cluster))
            env["KATO_REDIS_URL"] = cluster.url
        elif spec.store == "redis":
            redis = stack.enter_context(RedisServer(persistence=persistence))  # type: ignore[arg-type]
            env["KATO_REDIS_URL"] = redis.url
            if spec.fault == "redis-latency":
                proxy = stack.enter_context(LatencyProxy("127.0.0.1", redis.port, seed=spec.seed))
                env["KATO_REDIS_URL"] = proxy.url
        else:
            args += ["--ltm", "memory"]
        program: tuple[str, ...] = ("kato", "serve")
        if spec.variant != "production" or spec.lost_responses > 0:
            # the bug zoo (never reachable from kato serve); it also serves production behind
            # its lossy layer
            program = ("kato.lab.zoo", "serve")
            args += ["--variant", spec.variant]
            if spec.lost_responses > 0:
                args += ["--lose-responses", str(spec.lost_responses)]
        servers = [
            stack.enter_context(serve(*args, env=env, program=program)) for _ in range(spec.hosts)
        ]
        server, rotation = servers[0], itertools.count()
        yield Deployment(
            lambda: _client(spec, [s.url for s in servers], rotation=rotation),
            {
                "target": "http",
                "workers": spec.workers,
                "store": spec.store,
                "url": server.url,
                "redis_persistence": persistence if spec.store == "redis" else None,
                "redis_cluster": spec.redis_cluster,
                "hosts": [s.url for s in servers],
                "redis_wait_replicas": spec.redis_wait_replicas,
                "ltm": spec.ltm if spec.store == "redis" else "memory",
            },
            server=server,
            redis=redis,
            proxy=proxy,
            ltm_path=ltm_path,
            cluster=cluster,
            mongo=mongo,
        )


def _client(spec: Experiment, urls: str | Sequence[str], **options: Any) -> HttpClient:
    """A client of ``spec``'s run: its timeout and retries, pools of about 64 connections in all."""
    return HttpClient(
        urls,
        timeout_s=spec.timeout_s,
        connections=max(2, 64 // max(spec.concurrency, 1)),
        retries=spec.client_retries,
        idempotency=spec.idempotency,
        **options,
    )


@contextlib.contextmanager
def _found(spec: Experiment) -> Iterator[Deployment]:
    """The url target: probe it, hand out clients over its urls, delete what the run created."""
    capabilities = probe(spec.urls, timeout=spec.timeout_s)
    if spec.client_retries > 0 and spec.idempotency and not capabilities.idempotency:
        raise ValueError(
            f"client_retries needs unique_id replay, which {spec.urls[0]} does not do (an "
            "observe sent twice with one unique_id was applied twice): retries would double "
            "observations"
        )
    rotation = itertools.count()
    created: set[str] = set()
    info = {"target": "url", "urls": list(spec.urls), "capabilities": capabilities.to_dict()}
    try:
        yield Deployment(
            lambda: _client(spec, spec.urls, rotation=rotation, created=created),
            info,
            capabilities=capabilities,
        )
    finally:
        delete_sessions(list(spec.urls), sorted(created), timeout=spec.timeout_s)
