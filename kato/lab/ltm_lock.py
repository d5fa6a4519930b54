"""Hold SQLite's write lock on an LTM file from another process, as a backup tool or a second
writer does.

:class:`LTMLock` runs :data:`HOLDER` (stdlib only, so it starts in milliseconds) as a child
process: it prints ``locked`` once it holds the lock and releases it when its standard input
closes. The nemesis's ``ltm-lock`` fault, the outbox tests and ``kato bench ltm-stall`` use it.
Reads of the file go on meanwhile (WAL mode); every write waits for the lock, up to the
service's LTM timeout.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from kato.processes import die_with_parent

__all__ = ["HOLDER", "LTMLock"]

#: The child's program (argument: the file): WAL mode as KATO opens it, so readers go on.
HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("PRAGMA journal_mode = WAL")
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.buffer.read()
conn.execute("ROLLBACK")
"""


class LTMLock:
    """Another process holding ``path``'s write lock between :meth:`start` and :meth:`stop`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> dict[str, Any]:
        """Return once the other process holds the lock: ``{"pid", "path", "waited_ms"}``."""
        started = time.monotonic()
        process = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(self.path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            preexec_fn=die_with_parent,  # a crashed caller leaves no lock behind
        )
        self._process = process
        assert process.stdout is not None
        line = process.stdout.readline()  # blocks until locked (or the child failed)
        if line.strip() != b"locked":
            self.stop()
            raise RuntimeError(f"could not lock {self.path} (exit {process.poll()})")
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"locking {self.path} took more than {timeout} s")
        waited = round((time.monotonic() - started) * 1e3, 1)
        return {"pid": process.pid, "path": str(self.path), "waited_ms": waited}

    def stop(self) -> dict[str, Any]:
        """Release the lock (the other process ends): ``{"pid", "released"}``."""
        process, self._process = self._process, None
        if process is None:
            return {"pid": None, "released": False}
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        finally:
            if process.stdout is not None:
                process.stdout.close()
        return {"pid": process.pid, "released": True}

    def __enter__(self) -> LTMLock:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
