"""A real MongoDB-protocol server for tests, benchmarks and the workbench: ``nx-27017``.

    with running_nx27017(Path(tmp)) as url:      # "mongodb://127.0.0.1:<free port>"
        nodes = MongoNodes(url)

``nx-27017`` is a pure-Python server speaking MongoDB's wire protocol on SQLite (a ``dev``
dependency). Real pymongo talks to it, so the MongoDB adapter is tested against a server, not a
mock. It is not MongoDB: it has no transactions, and its known gaps (``$addToSet`` on a missing
field does nothing, ``find_one_and_update(upsert=True)`` ignores ``$setOnInsert``, update
operators round doubles to 15 significant digits, ``update_one`` with ``$or`` beside other
conditions changes the first document the ``$or`` alone matches, ``$ne`` on an array field
compares the whole array) are ones :mod:`kato.ltm.mongo` does not rely on. Never a production
store.

:class:`NX27017` is one server process that can be killed, paused and started again on the same
port and data folder (the workbench's ``ltm-pause`` and ``ltm-kill`` faults). It keeps every
database as a SQLite file in ``data_dir/data``, so what it acknowledged survives a SIGKILL.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Self

from kato.processes import die_with_parent, free_port, stop

__all__ = ["NX27017", "running_nx27017"]


def _answers(url: str) -> bool:
    import pymongo
    import pymongo.errors

    client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
        url, serverSelectionTimeoutMS=200, connectTimeoutMS=200
    )
    try:
        client.admin.command("ping")
        return True
    except pymongo.errors.ConnectionFailure:
        return False
    finally:
        client.close()


class NX27017:
    """One ``nx-27017`` process on loopback, its files in ``data_dir`` (kept on :meth:`stop`).

    The first :meth:`start` picks a free port; later starts reuse it, so clients (and the
    ``KATO_MONGO_URL`` a service was given) find the server again after :meth:`kill`.
    """

    def __init__(self, data_dir: Path) -> None:
        if importlib.util.find_spec("nx_27017") is None:
            raise RuntimeError("nx-27017 is not installed: pip install -e '.[dev]'")
        self.data_dir = data_dir
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}"

    def _command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "nx_27017.nx_27017",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir / "data"),
            "--log-file",
            str(self.data_dir / "nx-27017.log"),
            "--pid-file",
            str(self.data_dir / "nx-27017.pid"),
        ]

    def start(self, *, timeout: float = 30.0) -> Self:
        """Start the server and wait until pymongo's ``ping`` succeeds; raise ``RuntimeError``
        with its output if it exits or does not answer within ``timeout``."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        command = self._command()
        output = self.data_dir / "nx-27017.out"
        with output.open("ab") as out:
            self.process = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent,
            )
        deadline = time.monotonic() + timeout
        while not _answers(self.url):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = output.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"nx-27017 did not come up ({' '.join(command)}):\n{tail}")
            time.sleep(0.05)
        return self

    def running(self) -> subprocess.Popen[bytes]:
        """The live server process; ``RuntimeError`` if there is none."""
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError("the workbench's nx-27017 is not running")
        return self.process

    def stop(self) -> None:
        """SIGTERM (SIGKILL after 10 s), also when paused; reaped."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            stop(process)

    def kill(self) -> None:
        """SIGKILL: no shutdown; :meth:`start` brings it back on the same port and files."""
        process, self.process = self.running(), None
        process.kill()
        process.wait()

    def pause(self) -> None:
        """SIGSTOP: the server keeps its connections but answers nothing."""
        os.kill(self.running().pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        os.kill(self.running().pid, signal.SIGCONT)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@contextlib.contextmanager
def running_nx27017(data_dir: Path, *, timeout: float = 30.0) -> Iterator[str]:
    """Run ``nx-27017`` on a free loopback port with its files in ``data_dir``; yield its URL.

    Waits until pymongo's ``ping`` succeeds; stops the server (SIGTERM, then SIGKILL) however
    the block ends. Raises ``RuntimeError`` with the server's output if it does not come up.
    """
    server = NX27017(data_dir).start(timeout=timeout)
    try:
        yield server.url
    finally:
        server.stop()
