"""Targets: what the clients talk to, started and torn down by the workbench.

``engine`` is a deployment inside this process (memory store, memory LTM); ``http`` is a real
``kato serve`` child process on a free loopback port with ``workers`` uvicorn workers, backed by
the memory store (one worker) or by Redis — an embedded redis-server the workbench starts itself,
so faults can be injected into it. Both are context managers yielding a :class:`Deployment`;
everything they start is stopped on exit, also on Ctrl-C or a failed run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
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
from kato.lab.spec import Experiment
from kato.nodes import MemoryNodes
from kato.sessions import MemorySessionStore
from kato.settings import Settings
from kato.stores.redis_server import RedisServer, die_with_parent

__all__ = ["Deployment", "ServerProcess", "deploy", "serve"]


@dataclass
class Deployment:
    """A running target: how to make clients, and handles on what was started (for faults)."""

    make_client: Callable[[], LabClient]
    info: dict[str, Any]
    server: ServerProcess | None = None
    redis: RedisServer | None = None
    extra: dict[str, Any] = field(default_factory=dict)


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
        """The uvicorn worker processes (children of the server), or the server itself."""
        children = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        with contextlib.suppress(OSError):
            pids = [int(p) for p in children.read_text().split()]
            workers = [p for p in pids if _is_python(p)]
            if workers:
                return workers
        return [self.pid]


def _is_python(pid: int) -> bool:
    with contextlib.suppress(OSError):
        return b"python" in Path(f"/proc/{pid}/cmdline").read_bytes()
    return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


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
    port = _free_port()
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
        deadline = time.monotonic() + timeout
        while not _healthy(server.url):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"kato serve did not come up ({' '.join(command)}):\n{tail}")
            time.sleep(0.05)
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
def deploy(spec: Experiment, *, redis_persistence: str = "none") -> Iterator[Deployment]:
    """Start the target ``spec`` names; yield a :class:`Deployment`; stop it afterwards."""
    if spec.target == "engine":
        kato = Kato(Settings(), MemorySessionStore(), MemoryNodes())
        yield Deployment(lambda: EngineClient(kato), {"target": "engine", "workers": 1})
        return
    with contextlib.ExitStack() as stack:
        env: dict[str, str] = {}
        redis = None
        args = ["--workers", str(spec.workers), "--store", spec.store, "--log-level", "warning"]
        if spec.store == "redis":
            redis = stack.enter_context(RedisServer(persistence=redis_persistence))  # type: ignore[arg-type]
            env["KATO_REDIS_URL"] = redis.url
            args += ["--ltm", "sqlite"]
        else:
            args += ["--ltm", "memory"]
        program: tuple[str, ...] = ("kato", "serve")
        if spec.variant != "production":  # the bug zoo: never reachable from kato serve
            program = ("kato.lab.zoo", "serve")
            args += ["--variant", spec.variant]
        server = stack.enter_context(serve(*args, env=env, program=program))
        connections = max(2, 64 // max(spec.concurrency, 1))
        yield Deployment(
            lambda: HttpClient(server.url, timeout_s=spec.timeout_s, connections=connections),
            {"target": "http", "workers": spec.workers, "store": spec.store, "url": server.url},
            server=server,
            redis=redis,
        )
