"""Limits a deployment sets: sessions per node and in all, accumulator growth, and the
per-client rate limit; each refusal is a 429 with a stable code and the one error shape."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kato.engine import EngineConfig, MemoryLTM, Observation, SessionState, observe
from kato.exceptions import InvalidConfigError
from kato.service import create_app
from kato.service.ratelimit import TokenBuckets
from kato.settings import Settings


def _error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["code"] == code and body["detail"] == body["error"]["message"]
    assert body["error"]["request_id"] == response.headers["X-Request-ID"]
    return dict(body["error"])


def test_session_limits_answer_429_session_limit() -> None:
    settings = Settings(max_sessions=4, max_sessions_per_node=2)
    with TestClient(create_app(settings)) as http:
        ids = [http.post("/sessions", json={"node_id": "a"}).json()["session_id"] for _ in "ab"]
        error = _error(http.post("/sessions", json={"node_id": "a"}), 429, "SESSION_LIMIT")
        assert error["details"] == {"limit": "node", "max": 2} and error["layer"] == "session"
        assert http.post("/sessions", json={"node_id": "b"}).status_code == 200
        assert http.post("/sessions", json={"node_id": "c"}).status_code == 200
        error = _error(http.post("/sessions", json={"node_id": "d"}), 429, "SESSION_LIMIT")
        assert error["details"] == {"limit": "deployment", "max": 4}
        assert http.get("/sessions/count").json()["active_session_count"] == 4
        assert http.delete(f"/sessions/{ids[0]}").status_code == 200
        assert http.post("/sessions", json={"node_id": "a"}).status_code == 200


def test_rate_limit_answers_429_with_retry_after_and_spares_probes() -> None:
    with TestClient(create_app(Settings(rate_limit=0.5, rate_limit_burst=3))) as http:
        assert [http.get("/sessions/count").status_code for _ in range(3)] == [200] * 3
        response = http.get("/sessions/count")
        error = _error(response, 429, "RATE_LIMITED")
        assert error["layer"] == "router" and 1.0 < error["details"]["retry_after_s"] <= 2.0
        assert response.headers["Retry-After"] == "2"
        assert http.get("/health").status_code == 200  # probes are never limited
        assert http.get("/metrics").status_code == 200


def test_rate_limit_is_off_by_default() -> None:
    with TestClient(create_app()) as http:
        assert {http.get("/").status_code for _ in range(200)} == {200}


def test_token_buckets_refill_per_client_and_stay_bounded() -> None:
    now = [0.0]
    buckets = TokenBuckets(rate=2.0, burst=2, max_clients=3, clock=lambda: now[0])
    assert buckets.take("a") is None and buckets.take("a") is None
    assert buckets.take("a") == pytest.approx(0.5)
    assert buckets.take("b") is None  # another client has its own bucket
    now[0] = 0.5
    assert buckets.take("a") is None  # one token back after 1 / rate seconds
    for client in "cdef":
        buckets.take(client)
    assert len(buckets._buckets) == 3  # the least recently seen are forgotten


def test_accumulators_keep_the_newest_entries() -> None:
    config = EngineConfig(accumulator_max_entries=3)
    state = SessionState()
    for i in range(5):
        obs = Observation.parse({"emotives": {"e": float(i)}, "metadata": {"i": i}})
        state = observe(state, obs, config, MemoryLTM(), node_id="n", unique_id=f"u{i}").state
    assert [e["e"] for e in state.emotives_accumulator] == [2.0, 3.0, 4.0]
    assert [m["i"] for m in state.metadata_accumulator] == [2, 3, 4]
    assert state.current_emotives == {"e": 3.0}


def test_limits_come_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "KATO_MAX_SESSIONS": "100",
            "KATO_MAX_SESSIONS_PER_NODE": "10",
            "KATO_RATE_LIMIT": "5",
            "KATO_ACCUMULATOR_MAX_ENTRIES": "50",
            "STM_MAX_EVENTS": "20",
        }
    )
    assert (settings.max_sessions, settings.max_sessions_per_node) == (100, 10)
    assert (settings.rate_limit, settings.burst) == (5.0, 10)
    assert settings.engine.accumulator_max_entries == 50
    assert settings.engine.stm_max_events == 20
    defaults = Settings()
    assert (defaults.max_sessions, defaults.max_sessions_per_node, defaults.rate_limit) == (0, 0, 0)
    assert defaults.engine.accumulator_max_entries == defaults.engine.stm_max_events == 1000
    with pytest.raises(InvalidConfigError) as info:
        Settings.from_env({"KATO_MAX_SESSIONS": "-1", "KATO_RATE_LIMIT": "nan"})
    assert set(info.value.field_errors) == {"max_sessions", "rate_limit"}


def test_stm_is_capped_through_the_service() -> None:
    settings = Settings(engine=EngineConfig(stm_max_events=5))
    with TestClient(create_app(settings)) as http:
        sid = http.post("/sessions", json={"node_id": "cap"}).json()["session_id"]
        for i in range(8):
            http.post(f"/sessions/{sid}/observe", json={"strings": [f"s{i}"]})
        stm = http.get(f"/sessions/{sid}/stm").json()["stm"]
    assert stm == [[f"s{i}"] for i in range(3, 8)]


def test_deep_or_non_json_metadata_is_refused_before_it_is_stored() -> None:
    with TestClient(create_app()) as http:
        deep: Any = 1
        for _ in range(40):
            deep = [deep]
        for body in (
            {"node_id": "m", "metadata": {"k": deep}},
            {"node_id": "m", "metadata": {"k": ["\ud800"]}},
        ):
            content = json.dumps(body).encode()
            response = http.post(
                "/sessions", content=content, headers={"content-type": "application/json"}
            )
            _error(response, 422, "VALIDATION_ERROR")
        sid = http.post("/sessions", json={"node_id": "m"}).json()["session_id"]
        response = http.post(
            f"/sessions/{sid}/observe", json={"strings": ["a"], "metadata": {"k": deep}}
        )
        _error(response, 422, "VALIDATION_ERROR")
        assert http.get(f"/sessions/{sid}/stm").json()["length"] == 0
