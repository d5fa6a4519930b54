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


def learn_events(ltm: object, *events: tuple[str, ...], emotives: float | None = None) -> None:
    state = SessionState(
        stm=tuple(events),
        emotives_accumulator=({"joy": emotives},) if emotives is not None else (),
    )
    ltm.apply(learn(state, EngineConfig()).effects)  # type: ignore[attr-defined]


def view_of(ltm: object, symbols: list[str]) -> tuple[object, ...]:
    """Everything a prediction reads, from one snapshot."""
    with ltm.snapshot() as view:  # type: ignore[attr-defined]
        patterns = view.candidates(symbols)
        return (
            patterns,
            [view.pattern(p.name) for p in patterns],
            view.symbol_stats(symbols),
            view.totals(),
        )


def test_a_snapshot_older_than_the_cache_reads_what_it_saw(nodes: SQLiteNodes) -> None:
    """Another thread's snapshot may bring the cache past an open snapshot: that one still
    answers as of its own version (from SQL), and the cache answers the newer ones."""
    ltm = nodes.ltm("n")
    learn_events(ltm, ("a",), ("b",))
    before = view_of(ltm, ["a", "b", "c"])

    def newer() -> tuple[object, ...]:
        learn_events(ltm, ("a",), ("b",), emotives=2.0)
        learn_events(ltm, ("b",), ("c",))
        return view_of(ltm, ["a", "b", "c"])

    with ltm.snapshot() as view, ThreadPoolExecutor(1) as pool:
        assert view.totals().total_pattern_frequencies == 1
        after = pool.submit(newer).result()
        assert (
            view.candidates(["a", "b", "c"]),
            [view.pattern(p.name) for p in view.candidates(["a", "b", "c"])],
            view.symbol_stats(["a", "b", "c"]),
            view.totals(),
        ) == before
    assert after != before
    assert view_of(ltm, ["a", "b", "c"]) == after
    fresh = SQLiteNodes(nodes.path)  # another process's first read: a whole load
    assert view_of(fresh.ltm("n"), ["a", "b", "c"]) == after
    fresh.close()


def test_the_cache_follows_another_store_on_the_same_file(path: Path) -> None:
    """Two stores of one file stand for two processes: each one's cached view follows every
    learn and clear of the other, and equals a store that loads the node whole."""
    here, there = SQLiteNodes(path), SQLiteNodes(path)
    mine, theirs = here.ltm("n"), there.ltm("n")
    symbols = ["a", "b", "c", "d"]
    learn_events(mine, ("a",), ("b",))
    view_of(mine, symbols)  # this store's cache is loaded
    learn_events(theirs, ("a",), ("b",), emotives=1.5)  # an existing pattern again
    learn_events(theirs, ("c",), ("d", "a"), emotives=-1.0)
    seen = view_of(mine, symbols)
    assert seen == view_of(theirs, symbols)
    assert {p.events: p.frequency for p in mine.candidates(symbols)} == {
        (("a",), ("b",)): 2,
        (("c",), ("d", "a")): 1,
    }
    assert mine.symbol_stats(["a"])["a"].emotives == {"joy": 0.5}
    theirs.apply([ClearNode()])
    assert view_of(mine, symbols) == ([], [], {}, view_of(theirs, symbols)[3])
    assert mine.totals().total_pattern_frequencies == 0
    learn_events(theirs, ("d",), ("c",))
    learn_events(mine, ("b",), ("d",))
    assert {p.events for p in mine.candidates(symbols)} == {(("d",), ("c",)), (("b",), ("d",))}
    fresh = SQLiteNodes(path)
    assert view_of(mine, symbols) == view_of(fresh.ltm("n"), symbols) == view_of(theirs, symbols)
    for made in (here, there, fresh):
        made.close()


def test_a_version_2_file_is_migrated_on_open(path: Path) -> None:
    """A file written before the cache columns existed opens, reads and learns as before."""
    path.parent.mkdir(parents=True)
    old = sqlite3.connect(path, isolation_level=None)
    old.executescript(
        """
        CREATE TABLE nodes (node_id TEXT PRIMARY KEY, version INTEGER NOT NULL DEFAULT 0,
            total_pattern_frequencies INTEGER NOT NULL DEFAULT 0,
            total_symbol_frequencies INTEGER NOT NULL DEFAULT 0,
            total_symbols_in_patterns_frequencies INTEGER NOT NULL DEFAULT 0,
            symbol_count INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
        CREATE TABLE patterns (node_id TEXT NOT NULL, name TEXT NOT NULL, events TEXT NOT NULL,
            length INTEGER NOT NULL, frequency INTEGER NOT NULL, emotives TEXT NOT NULL,
            metadata TEXT NOT NULL, PRIMARY KEY (node_id, name));
        CREATE TABLE pattern_symbols (node_id TEXT NOT NULL, symbol TEXT NOT NULL,
            name TEXT NOT NULL, PRIMARY KEY (node_id, symbol, name)) WITHOUT ROWID;
        CREATE TABLE symbols (node_id TEXT NOT NULL, symbol TEXT NOT NULL,
            frequency INTEGER NOT NULL, pattern_member_frequency INTEGER NOT NULL,
            PRIMARY KEY (node_id, symbol)) WITHOUT ROWID;
        CREATE TABLE symbol_emotives (node_id TEXT NOT NULL, symbol TEXT NOT NULL,
            key TEXT NOT NULL, total REAL NOT NULL, UNIQUE (node_id, symbol, key));
        CREATE TABLE applied_effects (node_id TEXT NOT NULL, effect_id TEXT NOT NULL,
            PRIMARY KEY (node_id, effect_id)) WITHOUT ROWID;
        CREATE TABLE vectors (node_id TEXT NOT NULL, name TEXT NOT NULL, vector TEXT NOT NULL,
            PRIMARY KEY (node_id, name)) WITHOUT ROWID;
        INSERT INTO nodes VALUES ('n', 4, 1, 2, 2, 2);
        INSERT INTO patterns VALUES ('n', 'p1', '[["hello"], ["world"]]', 2, 1, '[]', '{}');
        INSERT INTO pattern_symbols VALUES ('n', 'hello', 'p1'), ('n', 'world', 'p1');
        INSERT INTO symbols VALUES ('n', 'hello', 1, 1), ('n', 'world', 1, 1);
        PRAGMA user_version = 2;
        """
    )
    old.close()
    nodes = SQLiteNodes(path)
    ltm = nodes.ltm("n")
    assert [p.name for p in ltm.candidates(["hello"])] == ["p1"]
    learn_events(ltm, ("hello",), ("again",))
    patterns, _, stats, totals = view_of(ltm, ["hello", "world", "again"])
    assert len(patterns) == 2  # type: ignore[arg-type]
    assert stats["hello"].frequency == 2  # type: ignore[index]
    assert totals.total_pattern_frequencies == 2  # type: ignore[attr-defined]
    nodes.close()
    check = sqlite3.connect(path)
    assert check.execute("PRAGMA user_version").fetchone()[0] == 3
    check.close()
