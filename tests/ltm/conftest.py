"""Fixtures of the LTM suites: a real MongoDB-protocol server, and node stores per backend.

``nx_url`` is a real ``nx-27017`` server (pure Python, MongoDB wire protocol, on SQLite)
started for the session on a free port with its own ``--data-dir``; ``KATO_MONGO_URL`` adds a
real MongoDB as a fourth backend. Every Mongo store gets a database prefix no other test uses,
and its databases are dropped afterwards.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kato.nodes import MemoryNodes, NodeStores

# "mongo" is nx-27017; "mongo-txn" the same server driven through the transaction code path
# (nx-27017 accepts the commands, though it has no real transactions); "mongo-real" is the
# MongoDB at KATO_MONGO_URL, when it is set.
_REAL_MONGO = ["mongo-real"] if os.environ.get("KATO_MONGO_URL") else []
BACKENDS = ["memory", "sqlite", "mongo", "mongo-txn", *_REAL_MONGO]
SHARED_BACKENDS = ["sqlite", "mongo", *_REAL_MONGO]


@pytest.fixture(scope="session")
def nx_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real nx-27017 server shared by the whole run."""
    from kato.ltm.nx27017 import running_nx27017

    with running_nx27017(tmp_path_factory.mktemp("nx27017")) as url:
        yield url


@dataclasses.dataclass(frozen=True)
class Backend:
    """How to reach one test's stores: in this process (``make``) or from another
    (``location`` and ``prefix``, read by ``_ltm_worker.py``)."""

    name: str
    make: Callable[[], NodeStores]
    location: str
    prefix: str


def _drop_databases(url: str, prefix: str) -> None:
    import pymongo

    client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
        url, serverSelectionTimeoutMS=2000
    )
    try:
        for name in client.list_database_names():
            if name.startswith(prefix):
                client.drop_database(name)
    finally:
        client.close()


def _backend(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if name == "memory":
        shared = MemoryNodes()
        yield Backend(name, lambda: shared, "memory", "")
        return
    if name == "sqlite":
        from kato.ltm.sqlite import SQLiteNodes

        path = tmp_path / "ltm.sqlite3"
        opened: list[SQLiteNodes] = []

        def make_sqlite() -> NodeStores:
            opened.append(SQLiteNodes(path))
            return opened[-1]

        yield Backend(name, make_sqlite, f"sqlite:{path}", "")
        for sqlite_nodes in opened:
            sqlite_nodes.close()
        return
    from kato.ltm.mongo import MongoNodes

    url = (
        os.environ["KATO_MONGO_URL"] if name == "mongo-real" else request.getfixturevalue("nx_url")
    )
    prefix = f"t{uuid.uuid4().hex[:10]}_"
    made: list[MongoNodes] = []

    transactions = True if name == "mongo-txn" else None

    def make() -> NodeStores:
        nodes = MongoNodes(url, database_prefix=prefix, timeout_ms=5000, transactions=transactions)
        made.append(nodes)
        return nodes

    yield Backend(name, make, url, prefix)
    for nodes in made:
        nodes.close()
    _drop_databases(url, prefix)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Each backend of the contract in turn (MemoryLTM is the reference)."""
    yield from _backend(str(request.param), request, tmp_path)


@pytest.fixture(params=SHARED_BACKENDS)
def shared_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """The backends that several processes can share."""
    yield from _backend(str(request.param), request, tmp_path)


@pytest.fixture
def mongo_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """MongoNodes on the test server (nx-27017), databases of this test's own."""
    yield from _backend("mongo", request, tmp_path)


@pytest.fixture
def nodes(backend: Backend) -> NodeStores:
    return backend.make()
