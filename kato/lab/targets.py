"""Targets: what the clients talk to, started and torn down by the workbench.

``engine`` is a deployment inside this process (memory store, memory LTM); ``http`` is a real
``kato serve`` child process on a free loopback port with ``workers`` uvicorn workers, backed by
the memory store (one worker) or by Redis — an embedded redis-server the workbench starts itself,
so faults can be injected into it. Both are context managers yielding a :class:`Deployment`;
everything they start is stopped on exit, also on Ctrl-C or a failed run.

Redis runs with the spec's ``redis_persistence``. For the ``redis-latency`` fault the workbench
also runs a :class:`~kato.lab.proxy.LatencyProxy` between the service and Redis, and the service
is given the proxy's address as ``KATO_REDIS_URL``. Behind Redis the service's LTM is SQLite, in
a data directory the workbench makes (``Deployment.ltm_path``); for the ``ltm-lock`` fault the
service waits at most ``LTM_FAULT_TIMEOUT_S`` for its write lock, so a fault window of a second
outlasts it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kato.core import Kato
from kato.lab.clients import EngineClient, HttpClient, LabClient
from kato.lab.proxy import LatencyProxy
from kato.lab.spec import Experiment
from kato.nodes import MemoryNodes
from kato.processes import die_with_parent, free_port
from kato.sessions import MemorySessionStore
from kato.settings import Settings
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
    extra: dict[str, Any] = field(default_factory=dict)
    #: The latency proxy between the service and Redis (``redis-latency`` runs only).
    proxy: LatencyProxy | None = None
    #: The service's SQLite LTM file (``store="redis"`` runs only).
    ltm_path: Path | None = None


@dataclass
class ServerProcess:
    """A ``kato serve`` child process."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

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
        return b"python" in command and b"resource_tracker" not in command
    return False


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
        log_path = log_dir / "serve.log"
        command = [sys.executable, "-m", *program, "--port", str(port), *args]
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
                start_new_session=True,
                preexec_fn=die_with_parent,  # a crashed workbench leaves no server behind
            )
        server = ServerProcess(f"http://127.0.0.1:{port}", process, log_path)
        stack.callback(_stop, process)
        # Ready means every worker answers: the first one alone would take all the early
        # connections, and a run meant for several workers would quietly test one.
        deadline = time.monotonic() + timeout
        answered: set[str] = set()
        while len(answered) < _workers(args):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"kato serve did not come up ({' '.join(command)}):\n{tail}")
            worker = _healthy_worker(server.url)
            if worker is None:
                time.sleep(0.05)
            else:
                answered.add(worker)
        yield server


def _stop(process: subprocess.Popen[bytes]) -> None:
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
    with contextlib.ExitStack() as stack:
        env: dict[str, str] = {}
        redis = None
        proxy = None
        ltm_path = None
        args = ["--workers", str(spec.workers), "--store", spec.store, "--log-level", "warning"]
        if spec.store == "redis":
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kato-data-")))
            ltm_path = data_dir / "ltm.sqlite3"
            args += ["--data-dir", str(data_dir)]
            if spec.fault.startswith("ltm-"):
                env["KATO_LTM_TIMEOUT"] = str(LTM_FAULT_TIMEOUT_S)
            redis = stack.enter_context(RedisServer(persistence=persistence))  # type: ignore[arg-type]
            env["KATO_REDIS_URL"] = redis.url
            if spec.fault == "redis-latency":
                proxy = stack.enter_context(LatencyProxy("127.0.0.1", redis.port, seed=spec.seed))
                env["KATO_REDIS_URL"] = proxy.url
            args += ["--ltm", "sqlite"]
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
        server = stack.enter_context(serve(*args, env=env, program=program))
        connections = max(2, 64 // max(spec.concurrency, 1))
        yield Deployment(
            lambda: HttpClient(
                server.url,
                timeout_s=spec.timeout_s,
                connections=connections,
                retries=spec.client_retries,
                idempotency=spec.idempotency,
            ),
            {
                "target": "http",
                "workers": spec.workers,
                "store": spec.store,
                "url": server.url,
                "redis_persistence": persistence if redis is not None else None,
            },
            server=server,
            redis=redis,
            proxy=proxy,
            ltm_path=ltm_path,
        )
