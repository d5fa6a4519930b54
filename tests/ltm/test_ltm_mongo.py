"""What only the MongoDB store promises: database names, version-checked snapshots, errors,
effects counted once when a frozen server runs a write its writer gave up on."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from pymongo import monitoring

from kato.engine import (
    ClearNode,
    Effect,
    EngineConfig,
    LTMStore,
    SessionState,
    SnapshotChanged,
    learn,
)
from kato.exceptions import StoreUnavailableError
from kato.ltm.mongo import MongoLTM, MongoNodes, database_name

if TYPE_CHECKING:
    from conftest import Backend

# What MongoDB allows in a database name, narrowed to what nx-27017 accepts.
DATABASE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")


def learn_hello(ltm: LTMStore) -> None:
    step = learn(SessionState(stm=(("hello",), ("world",))), EngineConfig())
    ltm.apply(step.effects)


def test_database_names_are_valid_and_one_to_one() -> None:
    node_ids = [
        "demo",
        "Demo",
        "DEMO",
        "node.v2",
        "node_v2",
        "node-v2",
        "a--b",
        "a-",
        "-a",
        "x" * 128,
        "x" * 127,
        "test-0123456789abcdef0123456789abcdef",
        "café",
        "",
    ]
    names = [database_name("kato_", node_id) for node_id in node_ids]
    assert len(set(names)) == len(names)
    assert len({name.lower() for name in names}) == len(names)  # never only a case apart
    for name in names:
        assert DATABASE_NAME.fullmatch(name), name
    assert database_name("kato_", "demo") == "kato_demo"
    assert database_name("kato_", "test-0123456789abcdef0123456789abcdef").endswith("cdef")


def test_a_bad_prefix_is_refused() -> None:
    for prefix in ("", "_x", "a.b", "a-b", "x" * 21):
        with pytest.raises(ValueError, match="database_prefix"):
            MongoNodes("mongodb://127.0.0.1:1", database_prefix=prefix)


def test_an_unreachable_server_is_store_unavailable() -> None:
    from pymongo.errors import ServerSelectionTimeoutError

    with socket.socket() as sock:  # a port nothing listens on once it is closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    nodes = MongoNodes(f"mongodb://127.0.0.1:{port}", timeout_ms=100, connectTimeoutMS=100)
    ltm = nodes.ltm("n")
    try:
        for call in (
            lambda: ltm.totals(),
            lambda: ltm.candidates({"a"}),
            lambda: learn_hello(ltm),
            lambda: ltm.snapshot().__enter__(),
            nodes.ping,
        ):
            with pytest.raises(StoreUnavailableError, match="unavailable") as caught:
                call()
            assert isinstance(caught.value.__cause__, ServerSelectionTimeoutError)
    finally:
        nodes.close()


def test_a_snapshot_raises_snapshot_changed_when_a_learn_lands_inside_it(
    mongo_backend: Backend,
) -> None:
    reader, writer = mongo_backend.make().ltm("n"), mongo_backend.make().ltm("n")
    learn_hello(writer)
    with reader.snapshot() as view:  # nothing changed: no error
        assert view.totals().total_pattern_frequencies == 1
    with pytest.raises(SnapshotChanged), reader.snapshot() as view:
        view.totals()
        learn_hello(writer)
    with pytest.raises(SnapshotChanged), reader.snapshot():
        writer.apply([])  # nothing applied: the version does not move ...
        writer.apply([ClearNode()])  # ... but a clear does, and never goes back
    with pytest.raises(KeyError), reader.snapshot():  # the body's own error is not masked
        learn_hello(writer)
        raise KeyError("mine")


def test_the_test_server_has_no_transactions(mongo_backend: Backend) -> None:
    """nx-27017 is a standalone server: learns take the ordered-writes path."""
    nodes = mongo_backend.make()
    assert isinstance(nodes, MongoNodes)
    assert nodes.uses_transactions() is False
    store = nodes.ltm("plain-name")
    assert isinstance(store, MongoLTM)
    assert store.database == mongo_backend.prefix + "plain-name"


def test_an_effect_claim_left_behind_is_taken_over_and_a_live_one_is_waited_for(
    mongo_backend: Backend,
) -> None:
    """Without transactions an effect id is claimed before its writes. A claim a writer left
    (the server ran it after the writer gave up) must not keep the effects out for ever; a
    claim younger than the lease is another writer's, and the effects stay pending."""
    nodes = mongo_backend.make()
    assert isinstance(nodes, MongoNodes)
    ltm = nodes.ltm("n")
    assert isinstance(ltm, MongoLTM)
    applied = nodes.client()[ltm.database].applied
    effects = learn(SessionState(stm=(("a",), ("b",))), EngineConfig()).effects

    applied.insert_one({"_id": "s:1", "done": False, "owner": "ghost", "at": 0.0})
    assert ltm.apply(effects, effect_id="s:1") is True  # stale: taken over, applied once
    assert ltm.apply(effects, effect_id="s:1") is False  # done: never again
    assert ltm.applied(["s:1"]) == {"s:1"}

    applied.insert_one({"_id": "s:2", "done": False, "owner": "busy", "at": time.time()})
    with pytest.raises(StoreUnavailableError, match="another writer"):
        ltm.apply(effects, effect_id="s:2")
    assert ltm.applied(["s:2"]) == set()
    [pattern] = ltm.patterns()
    assert pattern.frequency == 1


def test_a_paused_server_fails_calls_after_the_timeout_not_never(tmp_path: Path) -> None:
    """SIGSTOP keeps the connection open: only a socket timeout ends a call (``timeout_ms``)."""
    from kato.ltm.nx27017 import NX27017

    with NX27017(tmp_path) as server:
        nodes = MongoNodes(server.url, timeout_ms=300)
        ltm = nodes.ltm("n")
        try:
            learn_hello(ltm)
            server.pause()
            started = time.monotonic()
            try:
                with pytest.raises(StoreUnavailableError):
                    ltm.totals()
            finally:
                server.resume()
            assert time.monotonic() - started < 3.0
            assert ltm.totals().total_pattern_frequencies == 1
            server.kill()
            with pytest.raises(StoreUnavailableError):
                ltm.totals()
            server.start()  # same port, same files: what it acknowledged is back
            assert ltm.totals().total_pattern_frequencies == 1
        finally:
            nodes.close()


class _Freeze(monitoring.CommandListener):
    """Runs ``action`` just before the ``nth`` ``command`` on ``collection`` is sent, and
    ``after`` once it failed (each once)."""

    def __init__(
        self,
        command: str,
        collection: str,
        nth: int,
        action: Callable[[], None],
        after: Callable[[], None] = lambda: None,
    ) -> None:
        self.target = (command, collection)
        self.left = nth
        self.action = action
        self.after = after
        self.armed = False
        self.request_id: int | None = None

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        sent = (event.command_name, event.command.get(event.command_name))
        if self.armed and sent == self.target:
            self.left -= 1
            if self.left == 0:
                self.armed = False
                self.request_id = event.request_id
                self.action()

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        if event.request_id == self.request_id:
            self.after()


def _rich_effects() -> tuple[Effect, ...]:
    """A learn that touches every collection: totals, symbols, emotives, the pattern."""
    state = SessionState(
        stm=(("a", "b"), ("c",)),
        emotives_accumulator=({"joy": 0.5},),
        metadata_accumulator=({"source": "x"},),
    )
    return learn(state, EngineConfig()).effects


def _drain(ltm: LTMStore, effects: tuple[Effect, ...], effect_id: str) -> bool:
    """What the outbox does: ask again until the store answers (a live claim makes it wait
    for the lease)."""
    deadline = time.monotonic() + 20
    while True:
        try:
            return ltm.apply(effects, effect_id=effect_id)
        except StoreUnavailableError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _same_memory(ltm: LTMStore, clean: LTMStore) -> None:
    assert ltm.totals() == clean.totals()
    assert ltm.patterns() == clean.patterns()
    assert ltm.all_symbol_stats() == clean.all_symbol_stats()


@pytest.mark.parametrize(
    ("command", "collection", "nth"),
    [
        ("findAndModify", "meta", 1),  # the totals
        ("update", "symbols", 1),
        ("update", "symbol_emotives", 1),
        ("update", "patterns", 1),
        ("update", "meta", 1),  # the last write: version and symbol count
        ("findAndModify", "applied", 1),  # done
    ],
)
def test_a_write_a_frozen_server_runs_after_its_writer_gave_up_counts_once(
    tmp_path: Path, command: str, collection: str, nth: int
) -> None:
    """The ``ltm-pause`` race: the server is frozen (SIGSTOP) just before one write of a
    learn, the apply times out and the outbox applies the effects again; the frozen write
    runs when the server resumes. Every count ends as after one apply (a second node that
    learned the same without a fault)."""
    from kato.ltm.nx27017 import NX27017

    with NX27017(tmp_path) as server:
        freeze = _Freeze(command, collection, nth, server.pause)
        nodes = MongoNodes(server.url, timeout_ms=300, event_listeners=[freeze])
        ltm, clean = nodes.ltm("n"), nodes.ltm("clean")
        effects = _rich_effects()
        try:
            for store in (ltm, clean):  # the pattern exists: its first update counts
                assert store.apply(effects, effect_id="s:0") is True
            assert clean.apply(effects, effect_id="s:1") is True
            freeze.armed = True
            try:
                with pytest.raises(StoreUnavailableError):
                    ltm.apply(effects, effect_id="s:1")
                assert freeze.left == 0
            finally:
                server.resume()
            _drain(ltm, effects, "s:1")
            assert ltm.apply(effects, effect_id="s:1") is False
            assert ltm.applied(["s:1"]) == {"s:1"}
            _same_memory(ltm, clean)
            [pattern] = ltm.patterns()
            assert pattern.frequency == 2
        finally:
            nodes.close()


def test_a_write_held_past_a_takeover_counts_once(tmp_path: Path) -> None:
    """A write its writer gave up on reaches the server only after another writer took the
    claim over and applied the effects (a paused server, or a slow network, delivering it
    late): it must find that it was made and change nothing."""
    from kato.lab.proxy import LatencyProxy
    from kato.ltm.nx27017 import NX27017

    with NX27017(tmp_path) as server, LatencyProxy("127.0.0.1", server.port) as proxy:
        held = _Freeze(  # only that update: the next calls pass at once
            "update", "patterns", 1, lambda: proxy.set_delay(2.0), lambda: proxy.set_delay(0.0)
        )
        first = MongoNodes(
            f"mongodb://127.0.0.1:{proxy.port}", timeout_ms=300, event_listeners=[held]
        )
        second = MongoNodes(server.url, timeout_ms=300)
        ltm, clean = first.ltm("n"), second.ltm("clean")
        effects = _rich_effects()
        try:
            for store in (ltm, clean):
                assert store.apply(effects, effect_id="s:0") is True
            assert clean.apply(effects, effect_id="s:1") is True
            held.armed = True
            with pytest.raises(StoreUnavailableError):
                ltm.apply(effects, effect_id="s:1")  # its patterns update is held 2 s
            # the failure was marked on the claim: the other writer takes it over at once
            assert second.ltm("n").apply(effects, effect_id="s:1") is True
            time.sleep(2.5)  # the held update has reached the server by now
            assert held.left == 0 and proxy.delay == (0.0, 0.0)
            _same_memory(second.ltm("n"), clean)
        finally:
            first.close()
            second.close()


def test_markers_go_once_an_apply_no_other_writer_touched_is_done(
    mongo_backend: Backend,
) -> None:
    """The per-document markers only live while an effect is being applied (or for good
    where another writer may still have one of its writes in flight)."""
    nodes = mongo_backend.make()
    assert isinstance(nodes, MongoNodes)
    ltm = nodes.ltm("n")
    assert isinstance(ltm, MongoLTM)
    effects = _rich_effects()
    assert ltm.apply(effects, effect_id="s:1") is True
    assert ltm.apply(effects) is True  # no id: marked all the same
    db = nodes.client()[ltm.database]
    for collection in ("meta", "symbols", "symbol_emotives", "patterns"):
        docs = list(db[collection].find())
        assert docs
        assert not [doc for doc in docs if doc.get("_marks") or doc.get("_made")], collection
    [pattern] = ltm.patterns()
    assert pattern.frequency == 2
