"""What only the MongoDB store promises: database names, version-checked snapshots, errors."""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from kato.engine import ClearNode, EngineConfig, LTMStore, SessionState, SnapshotChanged, learn
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
