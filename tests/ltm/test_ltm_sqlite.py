"""What only the SQLite store promises: transactions, threads, snapshots and its errors."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from kato.engine import ClearNode, EngineConfig, LearnPattern, SessionState, learn
from kato.exceptions import StoreUnavailableError
from kato.ltm.sqlite import SQLiteNodes


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "ltm.sqlite3"


@pytest.fixture
def nodes(path: Path) -> Iterator[SQLiteNodes]:
    made = SQLiteNodes(path)
    yield made
    made.close()


def hello_world() -> list[LearnPattern]:
    step = learn(SessionState(stm=(("hello",), ("world",))), EngineConfig())
    return [effect for effect in step.effects if isinstance(effect, LearnPattern)]


def test_a_file_is_required() -> None:
    with pytest.raises(ValueError, match="memory"):
        SQLiteNodes(":memory:")
    with pytest.raises(ValueError, match="synchronous"):
        SQLiteNodes("x.sqlite3", synchronous="OFF")


def test_the_file_and_its_directory_are_created_on_first_use(path: Path) -> None:
    nodes = SQLiteNodes(path)
    assert not path.parent.exists()  # nothing happens before the first operation
    nodes.ping()
    assert path.exists()
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    nodes.close()


def test_a_lock_held_past_the_timeout_is_store_unavailable(path: Path) -> None:
    nodes = SQLiteNodes(path, timeout=0.2)
    ltm = nodes.ltm("n")
    ltm.apply(hello_world())
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreUnavailableError, match="apply") as caught:
            ltm.apply(hello_world())
        assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
        assert ltm.totals().total_pattern_frequencies == 1  # readers are not blocked (WAL)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    ltm.apply(hello_world())
    assert ltm.totals().total_pattern_frequencies == 2
    nodes.close()


def test_a_path_that_cannot_be_created_is_store_unavailable(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    nodes = SQLiteNodes(tmp_path / "file" / "ltm.sqlite3")
    with pytest.raises(StoreUnavailableError):
        nodes.ltm("n").totals()
    with pytest.raises(StoreUnavailableError):
        nodes.ping()


def test_a_failing_step_applies_nothing(nodes: SQLiteNodes) -> None:
    ltm = nodes.ltm("n")
    broken = [*hello_world(), ClearNode(), *hello_world(), object()]
    with pytest.raises(TypeError):
        ltm.apply(broken)  # type: ignore[list-item]
    assert ltm.patterns() == [] and ltm.totals().total_pattern_frequencies == 0
    ltm.apply(hello_world())  # the connection is usable again
    assert ltm.totals().total_pattern_frequencies == 1


def test_a_snapshot_does_not_see_a_learn_committed_after_it_began(path: Path) -> None:
    reader, writer = SQLiteNodes(path), SQLiteNodes(path)
    reader.ltm("n").apply(hello_world())
    with reader.ltm("n").snapshot() as view:
        assert view.totals().total_pattern_frequencies == 1
        writer.ltm("n").apply([*hello_world(), *hello_world()])
        assert view.totals().total_pattern_frequencies == 1
        assert [p.frequency for p in view.candidates({"hello"})] == [1]
        with reader.ltm("n").snapshot() as inner:  # nested: the same read transaction
            assert inner.totals().total_pattern_frequencies == 1
    assert reader.ltm("n").totals().total_pattern_frequencies == 3
    reader.close()
    writer.close()


def test_apply_inside_a_snapshot_of_the_same_thread_is_refused(nodes: SQLiteNodes) -> None:
    ltm = nodes.ltm("n")
    with ltm.snapshot() as view, pytest.raises(RuntimeError, match="inside a snapshot"):
        ltm.apply(hello_world())
    assert view is not None and ltm.totals().total_pattern_frequencies == 0


def test_threads_each_use_their_own_connection(nodes: SQLiteNodes) -> None:
    """The service calls stores from worker threads: each gets its own connection, and
    learns from all of them count exactly."""
    ltm = nodes.ltm("n")
    connections: set[int] = set()
    lock = threading.Lock()

    def work(_: int) -> None:
        for _ in range(25):
            ltm.apply(hello_world())
            with ltm.snapshot() as view:
                view.totals()
        with lock:
            connections.add(id(nodes._connections.get()))

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(work, range(8)))
    assert ltm.totals().total_pattern_frequencies == 200
    assert len(connections) >= 2
    nodes.close()  # closes the worker threads' connections too
    assert ltm.totals().total_pattern_frequencies == 200  # and the next use reopens
