"""Snapshots read at once (an event loop's): either exact and without waiting, or refused with
``WouldWait`` before anything is read, so the step goes to a worker thread instead."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from kato.engine import EngineConfig, LearnPattern, SessionState, WouldWait, learn
from kato.engine.ltm import AT_ONCE_SYMBOLS
from kato.lab.ltm_lock import LTMLock
from kato.ltm.sqlite import SQLiteNodes
from kato.nodes import MemoryNodes
from kato.sessions import Change, SessionRecord, new_session_id
from kato.sessions.store import AtOnce, compute


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "ltm.sqlite3"


def learned(*events: tuple[str, ...]) -> list[LearnPattern]:
    step = learn(SessionState(stm=events), EngineConfig())
    return [effect for effect in step.effects if isinstance(effect, LearnPattern)]


def at_once_sees(ltm: object) -> list[tuple[tuple[str, ...], ...]]:
    with ltm.snapshot(at_once=True) as view:  # type: ignore[attr-defined]
        return [pattern.events for pattern in view.candidates(["a", "b", "c"])]


def warmed(nodes: SQLiteNodes, node: str = "n") -> object:
    """The node's store, its cache loaded and the spare connection open (a worker thread's
    first snapshot does both)."""
    ltm = nodes.ltm(node)

    def read() -> None:
        with ltm.snapshot() as view:
            view.candidates(["a"])

    thread = threading.Thread(target=read)
    thread.start()
    thread.join()
    return ltm


@pytest.fixture
def nodes(path: Path) -> Iterator[SQLiteNodes]:
    made = SQLiteNodes(path)
    yield made
    made.close()


def test_sqlite_refuses_until_a_worker_thread_has_cached_the_node(nodes: SQLiteNodes) -> None:
    ltm = nodes.ltm("n")
    ltm.apply(learned(("a",), ("b",)))
    with pytest.raises(WouldWait):
        at_once_sees(nodes.ltm("fresh"))
    warmed(nodes)
    assert at_once_sees(ltm) == [(("a",), ("b",))]


def test_sqlite_refuses_when_another_process_changed_the_node_and_is_exact_after(
    path: Path, nodes: SQLiteNodes
) -> None:
    ltm = warmed(nodes)
    other = SQLiteNodes(path)  # another process's store of the same file
    try:
        other.ltm("n").apply(learned(("b",), ("c",)))
        with pytest.raises(WouldWait):  # this process's cache is behind: a worker catches up
            at_once_sees(ltm)
        warmed(nodes)
        assert at_once_sees(ltm) == [(("b",), ("c",))]
    finally:
        other.close()


def test_sqlite_refuses_a_large_node(nodes: SQLiteNodes) -> None:
    ltm = nodes.ltm("n")
    symbols = [f"s{i}" for i in range(AT_ONCE_SYMBOLS + 1)]
    ltm.apply(learned(("a", *symbols)))
    warmed(nodes)
    with pytest.raises(WouldWait):
        at_once_sees(ltm)


def test_sqlite_answers_at_once_while_another_process_holds_the_write_lock(
    path: Path, nodes: SQLiteNodes
) -> None:
    ltm = warmed(nodes)
    ltm.apply(learned(("a",), ("c",)))  # type: ignore[attr-defined]
    warmed(nodes)
    with LTMLock(path):
        assert at_once_sees(ltm) == [(("a",), ("c",))]


def test_memory_refuses_a_large_node_and_one_another_thread_holds() -> None:
    ltm = MemoryNodes().ltm("n")
    ltm.apply(learned(("a",), ("b",)))
    assert at_once_sees(ltm) == [(("a",), ("b",))]
    inside, leave = threading.Event(), threading.Event()

    def hold() -> None:
        with ltm.snapshot():
            inside.set()
            leave.wait()

    holder = threading.Thread(target=hold)
    holder.start()
    inside.wait()
    try:
        with pytest.raises(WouldWait):
            at_once_sees(ltm)
    finally:
        leave.set()
        holder.join()
    ltm.apply(learned(tuple(f"s{i}" for i in range(AT_ONCE_SYMBOLS + 1))))
    with pytest.raises(WouldWait):
        at_once_sees(ltm)


def test_compute_runs_an_at_once_change_on_the_loop_and_a_refused_one_in_a_thread() -> None:
    record = SessionRecord(new_session_id(0), "n", created_at=0.0, ttl_seconds=60)
    seen: list[tuple[bool, bool]] = []

    def step(refuse: bool) -> AtOnce[None]:
        def change(read: SessionRecord, at_once: bool) -> Change[None]:
            seen.append((at_once, threading.current_thread() is threading.main_thread()))
            if at_once and refuse:
                raise WouldWait("too large")
            return Change(read, None)

        return AtOnce(change)

    async def main() -> None:
        await compute(step(refuse=False), record)
        await compute(step(refuse=True), record)
        await compute(lambda read: Change(read, None), record)  # a plain change: a thread

    asyncio.run(main())
    assert seen == [(True, True), (True, True), (False, False)]
