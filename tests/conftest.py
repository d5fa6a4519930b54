"""Shared test fixtures: unique node ids, a real ``kato serve`` process, the rule that
benchmarks (``@pytest.mark.perf``) run only with ``-m perf``, and the one that a test marked
``alone`` runs while no other worker of the run runs a test."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import uuid
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

import kato
from kato.lab.targets import serve
from kato.stores.redis_cluster import EmbeddedCluster
from kato.stores.redis_server import RedisServer

# CI runs every property test on the same examples, so a red build is always reproducible;
# locally hypothesis keeps exploring new ones.
settings.register_profile("ci", derandomize=True, database=None, deadline=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "perf" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="benchmark: run with -m perf")
    for item in items:
        if "perf" in item.keywords:
            item.add_marker(skip)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    """Under pytest-xdist, a test marked ``alone`` (one that compares latencies it measures)
    waits for the other workers' current tests and holds them off until it is done, fixtures
    included; every other test shares the run's lock. The turnstile keeps a waiting ``alone``
    test from being starved by tests that keep sharing."""
    locks = _run_locks()
    if not locks:
        return (yield)
    alone = item.get_closest_marker("alone") is not None
    with locks[0].open("a") as turnstile, locks[1].open("a") as lock:
        fcntl.flock(turnstile, fcntl.LOCK_EX)
        fcntl.flock(lock, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        if not alone:
            fcntl.flock(turnstile, fcntl.LOCK_UN)
        try:
            return (yield)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            fcntl.flock(turnstile, fcntl.LOCK_UN)


def _run_locks() -> tuple[Path, ...]:
    """The turnstile and the lock the workers of this xdist run share (none without xdist)."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run is None:
        return ()
    return tuple(Path(tempfile.gettempdir(), f"kato-tests-{run}.{n}") for n in ("turn", "lock"))


def pytest_sessionfinish() -> None:
    """A worker that is done runs no more tests: whichever finishes removes the files (the other
    one, alone from then on, makes its own)."""
    for path in _run_locks():
        path.unlink(missing_ok=True)


@pytest.fixture
def node_id() -> str:
    """A node id no other test uses (nodes of one process share their learned patterns)."""
    return f"test-{uuid.uuid4().hex}"


#: The servers ``running_server`` has up, by ``id``: a failing test's report carries the tail of
#: each one's log, which its folder takes with it when the server stops.
_SERVERS: dict[int, Any] = {}
LOG_TAIL_CHARS = 4_000
#: What each request's log line has: a failure's report leaves those out (there are thousands).
_ACCESS = '"logger": "kato.access", "msg": "request"'


@contextlib.contextmanager
def running_server(*args: str, env: dict[str, str] | None = None) -> Iterator[Any]:
    """``with running_server(*serve_args) as server:`` a real ``kato serve`` on a free port
    (the workbench's own launcher: ``server.url``, ``server.pid``, ``server.log_path``)."""
    with serve(*args, env=env) as server:
        _SERVERS[id(server)] = server
        try:
            yield server
        finally:
            del _SERVERS[id(server)]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failed test's report ends with the log tail of every server up at the time, so a rare
    failure (a connection closed without an answer, say) can be read after the run."""
    report = yield
    if report.failed:
        for server in list(_SERVERS.values()):
            with contextlib.suppress(OSError):
                lines = server.log_path.read_text(errors="replace").splitlines(keepends=True)
                kept = "".join(line for line in lines if _ACCESS not in line)
                report.sections.append(
                    (
                        f"kato serve log, {server.url} (request lines left out)",
                        kept[-LOG_TAIL_CHARS:],
                    )
                )
    return report


@pytest.fixture(scope="session")
def start_server() -> Any:
    """``with start_server(*serve_args) as server:`` runs a ``kato serve`` of the test's own."""
    return running_server


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """A real ``kato serve`` process (memory store, one worker) shared by the whole run."""
    with running_server("--store", "memory", "--ltm", "memory") as server:
        yield server.url


@pytest.fixture(params=["local", "http"])
def client_mode(request: pytest.FixtureRequest) -> str:
    """Behavioural suites run once in-process and once against a real ``kato serve``."""
    return str(request.param)


@pytest.fixture
def make_client(client_mode: str, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A factory ``make_client(node_id=None, **config)`` of ``KatoClient`` in the current mode.

    In-process clients of one test share a fresh ``LocalBackend`` (so their nodes share LTM, as
    clients of one server do); every client is closed when the test ends.
    """
    backend = kato.LocalBackend() if client_mode == "local" else None
    base_url = request.getfixturevalue("server_url") if client_mode == "http" else None
    made: list[kato.KatoClient] = []

    def make(node_id: str | None = None, **config: Any) -> kato.KatoClient:
        node = node_id or f"test-{uuid.uuid4().hex}"
        client = kato.KatoClient(node, base_url, backend=backend, **config)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One embedded Redis (a real redis-server 6.2) for the whole run."""
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[EmbeddedCluster]:
    """One embedded Redis Cluster (3 masters, 3 replicas) for the whole run; tests keep apart
    by their ``key_prefix``."""
    with EmbeddedCluster(3) as cluster:
        yield cluster


@pytest.fixture
def key_prefix() -> str:
    """A Redis key namespace no other test uses."""
    return f"test{uuid.uuid4().hex[:12]}"
