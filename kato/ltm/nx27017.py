"""A real MongoDB-protocol server for tests and benchmarks: ``nx-27017``, started and stopped.

    with running_nx27017(Path(tmp)) as url:      # "mongodb://127.0.0.1:<free port>"
        nodes = MongoNodes(url)

``nx-27017`` is a pure-Python server speaking MongoDB's wire protocol on SQLite (a ``dev``
dependency). Real pymongo talks to it, so the MongoDB adapter is tested against a server, not a
mock. It is not MongoDB: it has no transactions, and its known gaps (``$addToSet`` on a missing
field does nothing, ``find_one_and_update(upsert=True)`` ignores ``$setOnInsert``, update
operators round doubles to 15 significant digits) are ones :mod:`kato.ltm.mongo` does not rely
on. Never a production store.
"""

from __future__ import annotations

import contextlib
import importlib.util
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from kato.processes import free_port, stop

__all__ = ["running_nx27017"]


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


@contextlib.contextmanager
def running_nx27017(data_dir: Path, *, timeout: float = 30.0) -> Iterator[str]:
    """Run ``nx-27017`` on a free loopback port with its files in ``data_dir``; yield its URL.

    Waits until pymongo's ``ping`` succeeds; stops the server (SIGTERM, then SIGKILL) however
    the block ends. Raises ``RuntimeError`` with the server's output if it does not come up.
    """
    if importlib.util.find_spec("nx_27017") is None:
        raise RuntimeError("nx-27017 is not installed: pip install -e '.[dev]'")
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    output = data_dir / "nx-27017.out"
    command = [
        sys.executable,
        "-m",
        "nx_27017.nx_27017",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir / "data"),
        "--log-file",
        str(data_dir / "nx-27017.log"),
        "--pid-file",
        str(data_dir / "nx-27017.pid"),
    ]
    with output.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    url = f"mongodb://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while not _answers(url):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = output.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"nx-27017 did not come up ({' '.join(command)}):\n{tail}")
            time.sleep(0.05)
        yield url
    finally:
        stop(process)
