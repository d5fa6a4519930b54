"""The in-process client: session lifecycle, errors and their codes, idempotency, isolation."""

from __future__ import annotations

import re
import threading
from datetime import datetime

import pytest

import kato
from kato.exceptions import (
    EmptySTMError,
    InvalidConfigError,
    NotFoundError,
    SessionNotFoundError,
    ValidationError,
    VectorDimensionError,
)


@pytest.fixture
def backend() -> kato.LocalBackend:
    return kato.LocalBackend()


@pytest.fixture
def client(node_id: str, backend: kato.LocalBackend) -> kato.KatoClient:
    with kato.KatoClient(node_id=node_id, backend=backend) as k:
        yield k


def learn_sequence(k: kato.KatoClient, *events: list[str]) -> str:
    for event in events:
        k.observe(strings=event)
    return str(k.learn()["pattern_name"])


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
    assert info["node_id"] == node_id
    assert info["ttl_seconds"] == 3600
    created = datetime.fromisoformat(info["created_at"])
    expires = datetime.fromisoformat(info["expires_at"])
    assert 3590 < (expires - created).total_seconds() <= 3601
    assert info["session_config"]["max_pattern_length"] == 0
    assert info["session_config"]["stm_mode"] == "CLEAR"


def test_constructor_config_is_validated_and_effective(
    node_id: str, backend: kato.LocalBackend
) -> None:
    with kato.KatoClient(node_id, backend=backend, max_pattern_length=2, stm_mode="bogus") as k:
        config = k.get_session_config()["config"]
        assert config["max_pattern_length"] == 2
        assert config["stm_mode"] == "CLEAR"
    with pytest.raises(InvalidConfigError) as info:
        kato.KatoClient(node_id, backend=backend, recall_threshold=1.5, persistence=0)
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


def test_config_of_one_session_never_reaches_another(
    node_id: str, backend: kato.LocalBackend
) -> None:
    with (
        kato.KatoClient(node_id, backend=backend) as a,
        kato.KatoClient(node_id, backend=backend) as b,
    ):
        a.update_session_config(max_pattern_length=2)
        for symbol in "xyz":
            b.observe(strings=[symbol])
        assert b.get_stm()["length"] == 3
        a.observe(strings=["x"])
        assert a.observe(strings=["y"])["auto_learned_pattern"] is not None


def test_stm_and_accumulators_are_per_session(node_id: str, backend: kato.LocalBackend) -> None:
    with (
        kato.KatoClient(node_id, backend=backend) as a,
        kato.KatoClient(node_id, backend=backend) as b,
    ):
        a.observe(strings=["secret"], emotives={"joy": 1.0}, metadata={"k": "v"})
        b.observe(strings=["other"])
        assert b.get_stm()["stm"] == [["other"]]
        assert b.get_cognition_data()["cognition_data"]["emotives"] == {}
        b.observe(strings=["more"])
        name = b.learn()["pattern_name"]
        pattern = b.get_pattern(name)["pattern"]["pattern"]
        assert pattern["emotives"] == [] and pattern["metadata"] == {}


def test_nodes_share_ltm_only_within_a_node(node_id: str, backend: kato.LocalBackend) -> None:
    other = node_id + "-other"
    with kato.KatoClient(node_id, backend=backend) as a:
        name = learn_sequence(a, ["a"], ["b"], ["c"])
        with kato.KatoClient(node_id, backend=backend) as same:
            assert same.get_pattern(name)["pattern"]["status"] == "okay"
            same.observe(strings=["a"])
            same.observe(strings=["b"])
            assert same.get_predictions()["count"] == 1
        with kato.KatoClient(other, backend=backend) as elsewhere:
            with pytest.raises(NotFoundError) as info:
                elsewhere.get_pattern(name)
            assert info.value.code == "NOT_FOUND" and info.value.status == 404
            elsewhere.observe(strings=["a"])
            elsewhere.observe(strings=["b"])
            assert elsewhere.get_predictions()["predictions"] == []
            learn_sequence(elsewhere, ["q"], ["r"])
            elsewhere.clear_all()
        assert a.get_pattern(name)["pattern"]["pattern"]["frequency"] == 1


def test_clear_all_empties_the_node_for_every_session(
    node_id: str, backend: kato.LocalBackend
) -> None:
    with (
        kato.KatoClient(node_id, backend=backend) as a,
        kato.KatoClient(node_id, backend=backend) as b,
    ):
        name = learn_sequence(a, ["a"], ["b"])
        b.observe(strings=["kept"])
        assert a.clear_all() == {"status": "cleared", "session_id": a.session_id, "scope": "all"}
        with pytest.raises(NotFoundError):
            b.get_pattern(name)
        assert b.get_stm()["stm"] == [["kept"]]
        stats = b.get_symbol_stats()
        assert stats["symbols"] == [] and stats["totals"]["total_pattern_frequencies"] == 0


def test_learn_on_empty_stm_raises_and_changes_nothing(client: kato.KatoClient) -> None:
    client.observe(emotives={"joy": 0.5})
    with pytest.raises(EmptySTMError) as info:
        client.learn()
    assert info.value.code == "EMPTY_STM" and info.value.status == 400
    assert info.value.message == "Cannot learn from empty STM"
    assert info.value.session_id == client.session_id
    assert client.get_cognition_data()["cognition_data"]["emotives"] == {"joy": 0.5}


def test_bad_observations_are_rejected_before_anything_changes(client: kato.KatoClient) -> None:
    client.observe(strings=["a"])
    bad = [
        {"strings": "abc"},
        {"strings": [1]},
        {"strings": [None]},
        {"vectors": [["x"]]},
        {"vectors": [[float("nan")]]},
        {"emotives": {"joy": "high"}},
        {"emotives": {"joy": float("inf")}},
        {"emotives": {"joy": True}},
    ]
    for payload in bad:
        with pytest.raises(ValidationError) as info:
            client._backend.run(client._kato.observe(client.session_id, payload))
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


def test_deleted_session_is_gone_everywhere(node_id: str, backend: kato.LocalBackend) -> None:
    k = kato.KatoClient(node_id, backend=backend)
    session_id = k.session_id
    k.close()
    k.close()  # closing twice is harmless
    assert backend.run(backend.kato.session_exists(session_id)) == {
        "exists": False,
        "expired": False,
        "session_id": session_id,
    }
    with pytest.raises(SessionNotFoundError) as info:
        backend.run(backend.kato.observe(session_id, {"strings": ["x"]}))
    assert info.value.code == "SESSION_NOT_FOUND" and info.value.status == 404
    assert info.value.session_id == session_id


@pytest.mark.parametrize("bad_id", ["", "count", "session-xyz", "../../etc", "session-*", "a\nb"])
def test_malformed_session_ids_are_not_found(backend: kato.LocalBackend, bad_id: str) -> None:
    with pytest.raises(SessionNotFoundError):
        backend.run(backend.kato.get_stm(bad_id))
    exists = backend.run(backend.kato.session_exists(bad_id))
    assert exists["exists"] is False


@pytest.mark.parametrize("bad_node", ["", "a" * 129, "a b", "x:y", "{tag}", "*", "n\n"])
def test_bad_node_ids_are_rejected(backend: kato.LocalBackend, bad_node: str) -> None:
    with pytest.raises(ValidationError):
        kato.KatoClient(bad_node, backend=backend)


def test_extend_and_ttl_validation(client: kato.KatoClient) -> None:
    assert client.extend_session(120) == {
        "status": "extended",
        "session_id": client.session_id,
        "ttl_seconds": 120,
    }
    assert client.get_session_info()["ttl_seconds"] == 120
    with pytest.raises(InvalidConfigError):
        client.extend_session(5)
    assert client.check_session_exists()["exists"] is True


def test_count_sessions(backend: kato.LocalBackend, node_id: str) -> None:
    count = lambda: backend.run(backend.kato.count_sessions())["active_session_count"]  # noqa: E731
    assert count() == 0
    clients = [kato.KatoClient(node_id, backend=backend) for _ in range(3)]
    assert count() == 3
    clients[0].close()
    assert count() == 2
    for k in clients:
        k.close()
    assert count() == 0


def test_threads_sharing_a_backend_lose_nothing(node_id: str, backend: kato.LocalBackend) -> None:
    with kato.KatoClient(node_id, backend=backend) as k:

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


def test_http_mode_is_refused_clearly(node_id: str) -> None:
    with pytest.raises(ValueError, match="in-process"):
        kato.KatoClient(node_id, base_url="http://127.0.0.1:8000")
