"""The shared stores across processes (engine.md §7): exact counts, visibility, snapshots.

Workers are separate Python processes (``_ltm_worker.py``) on the same SQLite file or the
same MongoDB-protocol server; each prints ``ready`` once connected and starts on a stdin line,
so concurrent workers really overlap.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from kato.engine import ClearNode, EngineConfig, SessionState, SnapshotChanged, learn, pattern_hash

if TYPE_CHECKING:
    from conftest import Backend

WORKER = Path(__file__).with_name("_ltm_worker.py")
LEARNS = 200


class Worker:
    """One ``_ltm_worker.py`` process, driven line by line."""

    def __init__(self, command: str, location: str, prefix: str = "", **args: Any) -> None:
        payload = {"location": location, "prefix": prefix, **args}
        self.process = subprocess.Popen(
            [sys.executable, str(WORKER), command, json.dumps(payload)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def expect(self, line: str) -> None:
        assert self.read() == line

    def read(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise AssertionError(f"worker exited with {self.process.wait()}")
        return line.strip()

    def send(self, line: str = "go") -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


@contextlib.contextmanager
def workers(*made: Worker) -> Iterator[tuple[Worker, ...]]:
    try:
        for worker in made:
            worker.expect("ready")
        yield made
    finally:
        for worker in made:
            worker.stop()


def test_concurrent_learns_of_one_pattern_count_exactly(shared_backend: Backend) -> None:
    """2 processes x 200 learns of the same (new) pattern: every counter is exact."""
    node = f"mp-{uuid.uuid4().hex[:10]}"
    where, prefix = shared_backend.location, shared_backend.prefix
    events = [["hello", "x"], ["world", "x"]]
    with workers(
        *(
            Worker("learn", where, prefix, node=node, count=LEARNS, events=events, **args)
            for args in ({"joy": 1.0, "worker": "a"}, {"joy": 3.0, "worker": "b"})
        )
    ) as started:
        for worker in started:
            worker.send()
        for worker in started:
            worker.expect("done")
    ltm = shared_backend.make().ltm(node)
    total = 2 * LEARNS
    pattern = ltm.pattern(pattern_hash(events))
    assert pattern is not None
    assert pattern.frequency == total
    assert sorted(pattern.metadata["worker"]) == ["a", "b"]
    assert len(pattern.emotives) == 3  # persistence 3
    assert ltm.totals().to_dict() == {
        "total_pattern_frequencies": total,
        "total_symbol_frequencies": 4 * total,
        "total_symbols_in_patterns_frequencies": 3 * total,
        "K": 3,
    }
    records = ltm.symbol_stats(["hello", "world", "x"])
    assert {s: (r.frequency, r.pattern_member_frequency) for s, r in records.items()} == {
        "hello": (total, total),
        "world": (total, total),
        "x": (2 * total, total),
    }
    assert records["x"].emotives["joy"] == pytest.approx(LEARNS * 1.0 + LEARNS * 3.0, abs=1e-9)


def test_a_learn_is_seen_by_another_process_immediately(shared_backend: Backend) -> None:
    """§7.2: the next read of an already running process sees each acknowledged learn."""
    node = f"vis-{uuid.uuid4().hex[:10]}"
    ltm = shared_backend.make().ltm(node)
    with workers(
        Worker(
            "watch", shared_backend.location, shared_backend.prefix, node=node, symbols=["shared"]
        )
    ) as (watcher,):
        watcher.send()  # past the start line
        learned: list[str] = []
        for i in range(5):
            events = (("shared",), (f"other-{i}",))
            ltm.apply(learn(SessionState(stm=events), EngineConfig()).effects)
            learned.append(pattern_hash(events))
            watcher.send("read")
            assert json.loads(watcher.read()) == sorted(learned)


def test_a_clear_empties_the_view_of_another_process(shared_backend: Backend) -> None:
    """A process that has read the node (SQLite: its cache is loaded) sees a clear made by
    another process at its next read, and then only what is learned after the clear."""
    node = f"clr-{uuid.uuid4().hex[:10]}"
    ltm = shared_backend.make().ltm(node)
    before = (("shared",), ("before",))
    ltm.apply(learn(SessionState(stm=before), EngineConfig()).effects)
    with workers(
        Worker(
            "watch", shared_backend.location, shared_backend.prefix, node=node, symbols=["shared"]
        )
    ) as (watcher,):
        watcher.send()
        watcher.send("read")
        assert json.loads(watcher.read()) == [pattern_hash(before)]
        ltm.apply([ClearNode()])
        watcher.send("read")
        assert json.loads(watcher.read()) == []
        after = (("shared",), ("after",))
        ltm.apply(learn(SessionState(stm=after), EngineConfig()).effects)
        watcher.send("read")
        assert json.loads(watcher.read()) == [pattern_hash(after)]


def test_sqlite_snapshots_stay_consistent_while_another_process_learns(
    tmp_path: Path,
) -> None:
    """§7.3: inside every snapshot, Σ pattern_member_frequency = TSIP, and the candidates'
    frequencies and lengths add up to the totals, while a writer learns in a loop."""
    from kato.ltm.sqlite import SQLiteNodes

    path = tmp_path / "ltm.sqlite3"
    vocabulary = [f"v{i}" for i in range(12)]
    node = "snap"
    nodes = SQLiteNodes(path)
    ltm = nodes.ltm(node)
    seen: set[int] = set()
    with (
        contextlib.closing(nodes),
        workers(
            Worker("churn", f"sqlite:{path}", node=node, count=600, seed=3, vocabulary=vocabulary)
        ) as (writer,),
    ):
        writer.send()
        while writer.process.poll() is None:
            with ltm.snapshot() as view:
                totals = view.totals()
                records = view.symbol_stats(vocabulary)
                patterns = view.candidates(vocabulary)
            tsip = totals.total_symbols_in_patterns_frequencies
            assert sum(r.pattern_member_frequency for r in records.values()) == tsip
            assert sum(r.frequency for r in records.values()) == totals.total_symbol_frequencies
            assert sum(p.frequency for p in patterns) == totals.total_pattern_frequencies
            assert sum(p.frequency * p.length for p in patterns) == (
                totals.total_symbol_frequencies
            )
            assert len(records) == totals.symbol_count
            seen.add(totals.total_pattern_frequencies)
        assert ltm.totals().total_pattern_frequencies == 600
    assert len(seen) >= 3, f"the reader never overlapped the writer: {sorted(seen)}"


def test_mongo_snapshots_never_count_more_than_the_totals(mongo_backend: Backend) -> None:
    """Without transactions a snapshot is checked by the version (SnapshotChanged) and, for a
    learn spanning it, by the write order: probabilities never exceed 1."""
    vocabulary = [f"v{i}" for i in range(12)]
    ltm = mongo_backend.make().ltm("snap")
    changed = consistent = 0
    where, prefix = mongo_backend.location, mongo_backend.prefix
    with workers(
        Worker("churn", where, prefix, node="snap", count=150, seed=5, vocabulary=vocabulary)
    ) as (writer,):
        writer.send()
        while writer.process.poll() is None:
            try:
                with ltm.snapshot() as view:
                    patterns = view.candidates(vocabulary)
                    records = view.symbol_stats(vocabulary)
                    totals = view.totals()
            except SnapshotChanged:
                changed += 1
                continue
            consistent += 1
            tsip = totals.total_symbols_in_patterns_frequencies
            assert sum(r.pattern_member_frequency for r in records.values()) <= tsip
            assert sum(p.frequency for p in patterns) <= totals.total_pattern_frequencies
    assert changed + consistent > 0
    final = ltm.totals()
    records = ltm.symbol_stats(vocabulary)
    assert final.total_pattern_frequencies == 150
    assert sum(r.pattern_member_frequency for r in records.values()) == (
        final.total_symbols_in_patterns_frequencies
    )
