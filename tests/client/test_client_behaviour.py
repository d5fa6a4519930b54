"""The client's behaviour, run once in-process and once against a real ``kato serve``.

Session lifecycle, errors and their codes, idempotency, isolation. Every test that takes
``make_client`` runs in both modes (``client_mode``) with identical assertions; raw requests
(bad payloads, other sessions' ids, session counts) go through the client's transport as
:class:`~kato.api.Operation` objects, so they too take the mode's path. The few
tests that are about one mode only say why.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

import kato
from kato.api import Operation, operation
from kato.exceptions import (
    EmptySTMError,
    InvalidConfigError,
    NotFoundError,
    SessionNotFoundError,
    TransportError,
    ValidationError,
    VectorDimensionError,
)

MakeClient = Callable[..., kato.KatoClient]


@pytest.fixture
def client(make_client: MakeClient, node_id: str) -> kato.KatoClient:
    return make_client(node_id)


def send(k: kato.KatoClient, op: Operation) -> dict[str, Any]:
    """Send a raw operation through ``k``'s transport (in-process or HTTP)."""
    return k._transport.send(op)


def count_sessions(k: kato.KatoClient) -> int:
    return int(send(k, operation("count_sessions"))["active_session_count"])


def session_exists(k: kato.KatoClient, session_id: str) -> dict[str, Any]:
    return send(k, operation("session_exists", session_id=session_id))


def learn_sequence(k: kato.KatoClient, *events: list[str]) -> str:
    for event in events:
        k.observe(strings=event)
    return str(k.learn()["pattern_name"])


# -- session info and configuration -------------------------------------------------------------
def test_session_info_shape(client: kato.KatoClient, node_id: str) -> None:
    info = client.get_session_info()
    assert set(info) == {
        "session_id",
        "node_id",
        "created_at",
        "expires_at",
        "ttl_seconds",
        "metadata",
        "session_config",
    }
    assert re.fullmatch(r"session-[0-9a-f]{32}-[0-9]+", info["session_id"])
    assert info["session_id"] == client.session_id
    assert info["node_id"] == node_id
    assert info["ttl_seconds"] == 3600
    assert info["metadata"] == {}
    created = datetime.fromisoformat(info["created_at"])
    expires = datetime.fromisoformat(info["expires_at"])
    assert 3590 < (expires - created).total_seconds() <= 3601
    assert info["session_config"]["max_pattern_length"] == 0
    assert info["session_config"]["stm_mode"] == "CLEAR"
    assert info["session_config"] == client.get_session_config()["config"]


def test_session_info_reflects_the_creation_arguments(
    make_client: MakeClient, node_id: str
) -> None:
    k = make_client(node_id, ttl_seconds=600, metadata={"owner": "tests"}, max_pattern_length=3)
    info = k.get_session_info()
    assert info["ttl_seconds"] == 600
    assert info["metadata"] == {"owner": "tests"}
    assert info["session_config"]["max_pattern_length"] == 3
    created = datetime.fromisoformat(info["created_at"])
    expires = datetime.fromisoformat(info["expires_at"])
    assert 590 < (expires - created).total_seconds() <= 601
    assert abs((created - datetime.now(UTC)).total_seconds()) < 60


def test_constructor_config_is_validated_and_effective(
    make_client: MakeClient, node_id: str
) -> None:
    k = make_client(node_id, max_pattern_length=2, stm_mode="bogus")
    config = k.get_session_config()["config"]
    assert config["max_pattern_length"] == 2
    assert config["stm_mode"] == "CLEAR"
    with pytest.raises(InvalidConfigError) as info:
        make_client(node_id, recall_threshold=1.5, persistence=0)
    assert set(info.value.field_errors) == {"recall_threshold", "persistence"}
    assert info.value.code == "INVALID_CONFIG" and info.value.status == 400
    assert "[0.0, 1.0]" in info.value.field_errors["recall_threshold"]


def test_invalid_config_update_applies_nothing(client: kato.KatoClient) -> None:
    before = client.get_session_config()["config"]
    with pytest.raises(InvalidConfigError) as info:
        client.update_session_config({"max_pattern_length": 5, "max_predictions": 0})
    assert set(info.value.field_errors) == {"max_predictions"}
    assert info.value.session_id == client.session_id
    assert client.get_session_config()["config"] == before
    client.update_session_config(max_pattern_length=5, sort=False, unknown_key=1)
    after = client.get_session_config()["config"]
    assert after["max_pattern_length"] == 5 and after["sort_symbols"] is False


# -- isolation ----------------------------------------------------------------------------------
def test_config_of_one_session_never_reaches_another(make_client: MakeClient, node_id: str) -> None:
    a, b = make_client(node_id), make_client(node_id)
    a.update_session_config(max_pattern_length=2)
    for symbol in "xyz":
        b.observe(strings=[symbol])
    assert b.get_stm()["length"] == 3
    a.observe(strings=["x"])
    assert a.observe(strings=["y"])["auto_learned_pattern"] is not None


def test_stm_and_accumulators_are_per_session(make_client: MakeClient, node_id: str) -> None:
    a, b = make_client(node_id), make_client(node_id)
    a.observe(strings=["secret"], emotives={"joy": 1.0}, metadata={"k": "v"})
    b.observe(strings=["other"])
    assert b.get_stm()["stm"] == [["other"]]
    assert b.get_cognition_data()["cognition_data"]["emotives"] == {}
    b.observe(strings=["more"])
    name = b.learn()["pattern_name"]
    pattern = b.get_pattern(name)["pattern"]["pattern"]
    assert pattern["emotives"] == [] and pattern["metadata"] == {}


def test_nodes_share_ltm_only_within_a_node(make_client: MakeClient, node_id: str) -> None:
    a = make_client(node_id)
    name = learn_sequence(a, ["a"], ["b"], ["c"])
    same = make_client(node_id)
    assert same.get_pattern(name)["pattern"]["status"] == "okay"
    same.observe(strings=["a"])
    same.observe(strings=["b"])
    assert same.get_predictions()["count"] == 1
    same.close()
    elsewhere = make_client(node_id + "-other")
    with pytest.raises(NotFoundError) as info:
        elsewhere.get_pattern(name)
    assert info.value.code == "NOT_FOUND" and info.value.status == 404
    elsewhere.observe(strings=["a"])
    elsewhere.observe(strings=["b"])
    assert elsewhere.get_predictions()["predictions"] == []
    learn_sequence(elsewhere, ["q"], ["r"])
    elsewhere.clear_all()
    elsewhere.close()
    assert a.get_pattern(name)["pattern"]["pattern"]["frequency"] == 1


def test_clear_all_empties_the_node_for_every_session(
    make_client: MakeClient, node_id: str
) -> None:
    a, b = make_client(node_id), make_client(node_id)
    name = learn_sequence(a, ["a"], ["b"])
    b.observe(strings=["kept"])
    assert a.clear_all() == {"status": "cleared", "session_id": a.session_id, "scope": "all"}
    with pytest.raises(NotFoundError):
        b.get_pattern(name)
    assert b.get_stm()["stm"] == [["kept"]]
    stats = b.get_symbol_stats()
    assert stats["symbols"] == [] and stats["totals"]["total_pattern_frequencies"] == 0


# -- learning and observing ---------------------------------------------------------------------
def test_learn_on_empty_stm_raises_and_changes_nothing(client: kato.KatoClient) -> None:
    client.observe(emotives={"joy": 0.5})
    with pytest.raises(EmptySTMError) as info:
        client.learn()
    assert info.value.code == "EMPTY_STM" and info.value.status == 400
    assert info.value.message == "Cannot learn from empty STM"
    assert info.value.session_id == client.session_id
    assert client.get_cognition_data()["cognition_data"]["emotives"] == {"joy": 0.5}


@pytest.mark.parametrize(
    "payload",
    [
        {"strings": "abc"},
        {"strings": [1]},
        {"strings": [None]},
        {"vectors": [["x"]]},
        {"vectors": [[math.nan]]},
        {"emotives": {"joy": "high"}},
        {"emotives": {"joy": math.inf}},
        {"emotives": {"joy": True}},
    ],
    ids=repr,
)
def test_bad_observations_are_rejected_before_anything_changes(
    client: kato.KatoClient, payload: dict[str, Any]
) -> None:
    client.observe(strings=["a"])
    with pytest.raises(ValidationError) as info:
        send(client, operation("observe", session_id=client.session_id, body=payload))
    assert info.value.code == "VALIDATION_ERROR" and info.value.status == 422
    with pytest.raises(VectorDimensionError):
        client.observe(vectors=[[1.0, 2.0], [1.0]])
    stm = client.get_stm()
    assert stm["stm"] == [["a"]]
    assert client.get_predictions()["time"] == 1


def test_empty_string_is_a_valid_symbol(client: kato.KatoClient) -> None:
    client.observe(strings=["", "a"])
    assert client.get_stm()["stm"] == [["", "a"]]


def test_unique_id_makes_observe_idempotent(client: kato.KatoClient) -> None:
    first = client.observe(strings=["a"], unique_id="retry-1")
    again = client.observe(strings=["a"], unique_id="retry-1")
    assert again == first
    assert client.get_stm()["stm"] == [["a"]]
    assert client.observe(strings=["b"])["unique_id"].startswith("obs-")
    assert client.get_stm()["length"] == 2


def test_retried_unique_id_returns_the_identical_first_body(client: kato.KatoClient) -> None:
    first = client.observe(strings=["a"], emotives={"joy": 1.0}, unique_id="retry-2")
    assert first["unique_id"] == "retry-2"
    assert first["stm_length"] == 1 and first["time"] == 1
    client.observe(strings=["b"])
    # A retry after later observations still answers with the first result and applies nothing.
    retried = client.observe(strings=["a"], emotives={"joy": 1.0}, unique_id="retry-2")
    assert retried == first
    payload = {"strings": ["a"], "unique_id": "retry-2"}
    raw = send(client, operation("observe", session_id=client.session_id, body=payload))
    assert raw == first
    assert client.get_stm()["stm"] == [["a"], ["b"]]
    assert client.get_predictions()["time"] == 2


def test_observe_sequence_learns_and_later_items_see_it(client: kato.KatoClient) -> None:
    result = client.observe_sequence(
        [{"strings": ["a"]}, {"strings": ["b"]}, {"strings": ["c"]}], learn_at_end=True
    )
    assert result["status"] == "completed"
    assert result["observations_processed"] == 3
    assert result["final_learned_pattern"] == "PTRN|b98534b32c1d7489d4ce1a48724aa65aeecbdba9"
    assert [r["sequence_position"] for r in result["results"]] == [0, 1, 2]
    assert result["final_stm_length"] == 0
    again = client.observe_sequence(
        [{"strings": ["a"]}, {"strings": ["b"]}], learn_after_each=True, clear_stm_between=True
    )
    assert again["auto_learned_patterns"] == ["", ""]
    client.observe_sequence([{"strings": ["a"]}, {"strings": ["b"]}])
    assert client.get_predictions()["predictions"][0]["future"] == [["c"]]
    empty = client.observe_sequence([], learn_at_end=True)
    assert empty["observations_processed"] == 0 and client.get_stm()["length"] == 2


def test_observe_sequence_within_one_call_predicts_from_its_own_learns(
    client: kato.KatoClient,
) -> None:
    client.observe_sequence(
        [{"strings": ["x"]}, {"strings": ["y"]}, {"strings": ["x"]}],
        learn_after_each=False,
    )
    client.clear_stm()
    result = client.observe_sequence(
        [{"strings": ["p"]}, {"strings": ["q"]}, {"strings": ["p"]}, {"strings": ["q"]}],
        learn_after_each=False,
    )
    assert result["final_stm_length"] == 4
    client.clear_stm()
    client.observe_sequence(
        [{"strings": ["m"]}, {"strings": ["n"]}, {"strings": ["m"]}, {"strings": ["n"]}],
        clear_stm_between=False,
        learn_at_end=False,
    )
    client.learn()
    client.clear_stm()
    client.observe_sequence([{"strings": ["m"]}, {"strings": ["n"]}])
    assert client.get_predictions()["count"] >= 1


# -- node-level reads ---------------------------------------------------------------------------
def test_list_patterns_shape_and_paging(client: kato.KatoClient, node_id: str) -> None:
    assert client.list_patterns() == {
        "node_id": node_id,
        "patterns": [],
        "offset": 0,
        "limit": 100,
        "total": 0,
    }
    names = {
        learn_sequence(client, ["a"], ["b"]),
        learn_sequence(client, ["c"], ["d"]),
        learn_sequence(client, ["e"], ["f"], ["g"]),
    }
    listed = client.list_patterns()
    assert set(listed) == {"node_id", "patterns", "offset", "limit", "total"}
    assert listed["node_id"] == node_id and listed["total"] == 3
    assert {p["name"] for p in listed["patterns"]} == names
    for pattern in listed["patterns"]:
        assert set(pattern) == {
            "name",
            "pattern_data",
            "length",
            "frequency",
            "emotives",
            "metadata",
        }
        assert pattern == client.get_pattern(pattern["name"])["pattern"]["pattern"]
    first = client.list_patterns(limit=2)
    rest = client.list_patterns(offset=2, limit=2)
    assert (first["offset"], first["limit"], first["total"]) == (0, 2, 3)
    assert (rest["offset"], rest["limit"], rest["total"]) == (2, 2, 3)
    assert len(first["patterns"]) == 2 and len(rest["patterns"]) == 1
    assert {p["name"] for p in first["patterns"] + rest["patterns"]} == names


# -- session lifecycle --------------------------------------------------------------------------
def test_deleted_session_is_gone_everywhere(make_client: MakeClient, node_id: str) -> None:
    k = make_client(node_id)
    session_id = k.session_id
    k.close()
    k.close()  # closing twice is harmless
    probe = make_client(node_id)
    assert session_exists(probe, session_id) == {
        "exists": False,
        "expired": False,
        "session_id": session_id,
    }
    with pytest.raises(SessionNotFoundError) as info:
        send(probe, operation("observe", session_id=session_id, body={"strings": ["x"]}))
    assert info.value.code == "SESSION_NOT_FOUND" and info.value.status == 404
    assert info.value.session_id == session_id


def test_session_closed_by_another_client_object_no_longer_exists(
    make_client: MakeClient, node_id: str
) -> None:
    owner, other = make_client(node_id), make_client(node_id)
    # Point ``other`` at ``owner``'s session (there is no public "attach"): two client objects,
    # one session id.
    send(other, operation("delete_session", session_id=other.session_id))
    other._session_id = owner.session_id
    owner.observe(strings=["shared"])
    assert other.get_stm()["stm"] == [["shared"]]
    assert other.check_session_exists()["exists"] is True
    owner.close()
    assert other.check_session_exists() == {
        "exists": False,
        "expired": False,
        "session_id": owner.session_id,
    }
    with pytest.raises(SessionNotFoundError):
        other.get_stm()
    other.close()  # the session is gone already: closing is still harmless


@pytest.mark.parametrize(
    "bad_id", ["", "count", "session-xyz", "../../etc", "session-*", "a\nb"], ids=repr
)
def test_malformed_session_ids_are_not_found(client: kato.KatoClient, bad_id: str) -> None:
    """Both clients answer a malformed id as the service does, without a store lookup (over
    HTTP without a request: some such ids, e.g. with ``/``, could not even be routed)."""
    with pytest.raises(SessionNotFoundError):
        send(client, operation("get_stm", session_id=bad_id))
    exists = session_exists(client, bad_id)
    assert exists["exists"] is False


@pytest.mark.parametrize("bad_node", ["", "a" * 129, "a b", "x:y", "{tag}", "*", "n\n"], ids=repr)
def test_bad_node_ids_are_rejected(client: kato.KatoClient, bad_node: str) -> None:
    # The client refuses the id itself, in either mode, before any request ...
    backend = getattr(client._transport, "backend", None)
    with pytest.raises(ValidationError):
        kato.KatoClient(bad_node, client._base_url, backend=backend)
    # ... and so does the service when a request carries it anyway.
    before = count_sessions(client)
    with pytest.raises(ValidationError) as info:
        send(client, operation("create_session", body={"node_id": bad_node, "metadata": {}}))
    assert info.value.code == "VALIDATION_ERROR" and info.value.status == 422
    assert count_sessions(client) == before


def test_extend_and_ttl_validation(client: kato.KatoClient) -> None:
    assert client.extend_session(120) == {
        "status": "extended",
        "session_id": client.session_id,
        "ttl_seconds": 120,
    }
    assert client.get_session_info()["ttl_seconds"] == 120
    with pytest.raises(InvalidConfigError):
        client.extend_session(0)
    assert client.check_session_exists()["exists"] is True


def test_extend_session_sets_the_ttl_seen_by_session_info(client: kato.KatoClient) -> None:
    assert client.extend_session(7200)["ttl_seconds"] == 7200
    info = client.get_session_info()
    assert info["ttl_seconds"] == 7200
    remaining = datetime.fromisoformat(info["expires_at"]) - datetime.now(UTC)
    assert 7100 < remaining.total_seconds() <= 7201
    client.extend_session(60)
    assert client.get_session_info()["ttl_seconds"] == 60


def test_count_sessions(make_client: MakeClient, node_id: str) -> None:
    """Counts are compared before and after: the HTTP server is shared by the whole run."""
    probe = make_client(node_id)
    before = count_sessions(probe)
    clients = [make_client(node_id) for _ in range(3)]
    assert count_sessions(probe) == before + 3
    clients[0].close()
    assert count_sessions(probe) == before + 2
    for k in clients:
        k.close()
    assert count_sessions(probe) == before


# -- one mode only ------------------------------------------------------------------------------
def test_threads_sharing_a_backend_lose_nothing(node_id: str) -> None:
    """In-process only: about the ``LocalBackend`` loop thread serialising the operations of
    many threads that share one client; over HTTP the server serialises them instead."""
    with kato.KatoClient(node_id, backend=kato.LocalBackend()) as k:

        def worker(n: int) -> None:
            for i in range(50):
                k.observe(strings=[f"t{n}-{i}"])

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stm = k.get_stm()["stm"]
        assert len(stm) == 200
        assert {event[0] for event in stm} == {f"t{n}-{i}" for n in range(4) for i in range(50)}


def test_unreachable_service_raises_transport_error_promptly(node_id: str) -> None:
    """HTTP only: an in-process client has no connection to lose. Needs no server."""
    started = time.monotonic()
    with pytest.raises(TransportError) as info:  # port 1 on loopback refuses connections
        kato.KatoClient(node_id, base_url="http://127.0.0.1:1", retries=0, timeout=0.5)
    assert time.monotonic() - started < 5
    assert info.value.__cause__ is not None
    assert "POST /sessions" in info.value.message
