"""The service's HTTP surface: headers, route precedence, idempotency, metrics, logs, OpenAPI."""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from kato.service import create_app
from kato.settings import Settings

SPEC = Path(__file__).resolve().parents[3] / "shared" / "spec" / "api.md"


def test_every_response_has_request_id_and_worker(http: TestClient, session_id: str) -> None:
    for response in [
        http.get("/"),
        http.get("/health"),
        http.get("/nope"),
        http.get(f"/sessions/{session_id}/stm"),
        http.post(f"/sessions/{session_id}/learn"),
    ]:
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])
        assert response.headers["x-kato-worker"] == str(os.getpid())


def test_session_paths_carry_the_session_id(http: TestClient, node_id: str) -> None:
    created = http.post("/sessions", json={"node_id": node_id})
    session_id = created.json()["session_id"]
    assert created.headers["x-session-id"] == session_id
    for response in [
        http.get(f"/sessions/{session_id}"),
        http.post(f"/sessions/{session_id}/observe", json={"strings": ["a"]}),
        http.post(f"/sessions/{session_id}/learn"),  # 400: errors carry it too
        http.get(f"/sessions/{session_id}/exists"),
    ]:
        assert response.headers["x-session-id"] == session_id
    assert "x-session-id" not in http.get("/sessions/count").headers


def test_hostile_path_ids_never_reach_a_header(http: TestClient) -> None:
    """A decoded path segment is not echoed into X-Session-ID unless it is a session id (a
    newline there used to make the server drop the connection)."""
    for raw in ["/sessions/a%0Ab/stm", "/sessions/a%0D%0AX-Evil:%201/stm", "/sessions/%2A/stm"]:
        response = http.get(raw)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "SESSION_NOT_FOUND"
        assert "x-session-id" not in response.headers
        assert "x-evil" not in response.headers


def test_incoming_request_and_trace_ids_are_echoed(http: TestClient) -> None:
    assert http.get("/", headers={"X-Request-ID": "req-123"}).headers["x-request-id"] == "req-123"
    assert http.get("/", headers={"X-Trace-ID": "trace.9"}).headers["x-request-id"] == "trace.9"
    hostile = http.get("/", headers={"X-Request-ID": "bad id\twith tab"})
    assert hostile.headers["x-request-id"] != "bad id\twith tab"


@pytest.mark.parametrize("path", ["/sessions/count", "/sessions/count/"])
def test_count_is_never_read_as_a_session_id(http: TestClient, node_id: str, path: str) -> None:
    before = http.get(path).json()["active_session_count"]
    http.post("/sessions", json={"node_id": node_id})
    response = http.get(path)
    assert response.status_code == 200
    assert response.json() == {"active_session_count": before + 1}


def test_trailing_slashes_route_like_their_twins(http: TestClient, session_id: str) -> None:
    response = http.post(f"/sessions/{session_id}/observe/", json={"strings": ["a"]})
    assert response.status_code == 200
    assert http.get(f"/sessions/{session_id}/stm/").json()["stm"] == [["a"]]


def test_deleted_session_is_404_for_every_route(http: TestClient, session_id: str) -> None:
    assert http.delete(f"/sessions/{session_id}").json() == {
        "status": "deleted",
        "session_id": session_id,
    }
    assert http.get(f"/sessions/{session_id}/exists").json()["exists"] is False
    for method, suffix in [("GET", ""), ("POST", "/observe"), ("GET", "/stm"), ("POST", "/learn")]:
        kwargs = {"json": {"strings": ["x"]}} if suffix == "/observe" else {}
        response = http.request(method, f"/sessions/{session_id}{suffix}", **kwargs)
        assert response.json()["error"]["code"] == "SESSION_NOT_FOUND"


def test_unique_id_retry_is_applied_once(http: TestClient, session_id: str) -> None:
    body = {"strings": ["a"], "unique_id": "client-7"}
    first = http.post(f"/sessions/{session_id}/observe", json=body)
    second = http.post(f"/sessions/{session_id}/observe", json=body)
    assert first.json() == second.json()
    assert http.get(f"/sessions/{session_id}/stm").json()["length"] == 1


def test_config_accepts_nested_or_flat_bodies(http: TestClient, session_id: str) -> None:
    url = f"/sessions/{session_id}/config"
    assert http.post(url, json={"config": {"max_pattern_length": 3}}).json()["status"] == "okay"
    assert http.post(url, json={"recall_threshold": 0.5}).status_code == 200
    config = http.get(url).json()["config"]
    assert config["max_pattern_length"] == 3 and config["recall_threshold"] == 0.5
    # changes beside "config" count too (its own win); "config": null is not given
    mixed = {"config": {"max_predictions": 7}, "max_predictions": 9, "persistence": 4}
    assert http.post(url, json=mixed).status_code == 200
    assert http.post(url, json={"config": None, "max_pattern_length": 6}).status_code == 200
    config = http.get(url).json()["config"]
    assert (config["max_predictions"], config["persistence"], config["max_pattern_length"]) == (
        7,
        4,
        6,
    )


def test_config_refuses_a_bad_field_beside_config_and_a_config_not_an_object(
    http: TestClient, session_id: str
) -> None:
    """What ``/openapi.json`` says of the body holds for every field of it (schemathesis found a
    bad value beside ``config`` accepted): refused, and nothing applied."""
    url = f"/sessions/{session_id}/config"
    bad = {"config": {"max_predictions": 7}, "rank_sort_algo": 25367882743110}
    response = http.post(url, json=bad)
    assert response.status_code == 400 and response.json()["error"]["code"] == "INVALID_CONFIG"
    assert set(response.json()["error"]["details"]["fields"]) == {"rank_sort_algo"}
    for config in ([1], "x", 3):
        response = http.post(url, json={"config": config})
        assert response.status_code == 400 and response.json()["error"]["code"] == "INVALID_CONFIG"
    assert http.get(url).json()["config"]["max_predictions"] == 100


def test_node_from_query_or_headers(http: TestClient, session_id: str, node_id: str) -> None:
    for event in (["a"], ["b"]):
        http.post(f"/sessions/{session_id}/observe", json={"strings": event})
    name = http.post(f"/sessions/{session_id}/learn").json()["pattern_name"]
    for kwargs in (
        {"params": {"node_id": node_id}},
        {"headers": {"X-Node-ID": node_id}},
        {"headers": {"x-test-id": node_id}},
    ):
        body = http.get(f"/pattern/{name}", **kwargs).json()
        assert body["pattern"]["status"] == "okay" and body["node_id"] == node_id
        assert body["pattern"]["pattern"]["name"] == name
    stats = http.get("/symbols/stats", params={"node_id": node_id}).json()
    assert stats["totals"]["total_pattern_frequencies"] == 1
    listing = http.get("/patterns", params={"node_id": node_id, "limit": 10}).json()
    assert listing["total"] == 1 and listing["patterns"][0]["name"] == name


def test_metrics_parse_and_count_requests_by_route_and_status(
    http: TestClient, session_id: str
) -> None:
    http.post(f"/sessions/{session_id}/observe", json={"strings": ["a"]})
    http.post(f"/sessions/{session_id}/learn")
    http.post(f"/sessions/{session_id}/learn")  # 400 EMPTY_STM
    text = http.get("/metrics", headers={"Accept": "text/plain"}).text
    families = {family.name: family for family in text_string_to_metric_families(text)}
    requests = {
        (s.labels["route"], s.labels["status"]): s.value
        for s in families["kato_http_requests"].samples
        if s.name == "kato_http_requests_total"
    }
    assert requests[("/sessions/{session_id}/observe", "200")] == 1
    assert requests[("/sessions/{session_id}/learn", "200")] == 1
    assert requests[("/sessions/{session_id}/learn", "400")] == 1
    assert "kato_http_request_duration_seconds" in families
    assert "kato_store_calls" in families
    active = families["kato_active_sessions"].samples[0].value
    assert active == 1


def test_one_json_log_line_per_request(
    http: TestClient, session_id: str, node_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="kato.access"):
        response = http.post(f"/sessions/{session_id}/observe", json={"strings": ["a"]})
    records = [r for r in caplog.records if r.name == "kato.access"]
    assert len(records) == 1
    fields = records[0].fields  # type: ignore[attr-defined]
    assert fields["request_id"] == response.headers["x-request-id"]
    assert fields["route"] == "/sessions/{session_id}/observe"
    assert fields["status"] == 200
    assert fields["node"] == node_id
    assert fields["store_calls"] == 1
    assert fields["worker"] == os.getpid()
    assert fields["duration_ms"] >= 0
    assert session_id not in json.dumps(fields), "the full session id must not reach the log"
    assert fields["session"].startswith(session_id[:16])


def test_openapi_lists_every_endpoint_of_the_spec(http: TestClient) -> None:
    document = http.get("/openapi.json").json()
    paths = document["paths"]
    expected = [
        ("post", "/sessions"),
        ("get", "/sessions/count"),
        ("get", "/sessions/{session_id}"),
        ("delete", "/sessions/{session_id}"),
        ("get", "/sessions/{session_id}/exists"),
        ("post", "/sessions/{session_id}/extend"),
        ("get", "/sessions/{session_id}/config"),
        ("post", "/sessions/{session_id}/config"),
        ("post", "/sessions/{session_id}/observe"),
        ("post", "/sessions/{session_id}/observe-sequence"),
        ("get", "/sessions/{session_id}/stm"),
        ("post", "/sessions/{session_id}/learn"),
        ("get", "/sessions/{session_id}/predictions"),
        ("post", "/sessions/{session_id}/clear-stm"),
        ("post", "/sessions/{session_id}/clear-all"),
        ("get", "/sessions/{session_id}/percept-data"),
        ("get", "/sessions/{session_id}/cognition-data"),
        ("get", "/pattern/{pattern_name}"),
        ("get", "/patterns"),
        ("get", "/symbols/stats"),
        ("get", "/"),
        ("get", "/health"),
        ("get", "/status"),
        ("get", "/metrics"),
    ]
    for method, path in expected:
        assert method in paths.get(path, {}), f"{method.upper()} {path} missing from OpenAPI"
    assert not [p for p in paths if p.endswith("/") and p != "/"], "slash twins are unlisted"
    observe = paths["/sessions/{session_id}/observe"]["post"]["requestBody"]
    schema_ref = observe["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    properties = document["components"]["schemas"][schema_ref]["properties"]
    assert {"strings", "vectors", "emotives", "metadata", "unique_id"} <= set(properties)
    if SPEC.exists():  # the spec's session table and the OpenAPI document name the same routes
        spec_paths = set(re.findall(r"`(?:GET|POST|DELETE) (/sessions[^`?]*)", SPEC.read_text()))
        spec_paths = {p.replace("{id}", "{session_id}") for p in spec_paths}
        assert spec_paths <= set(paths)


def test_service_endpoints(http: TestClient) -> None:
    root = http.get("/").json()
    assert root["session_support"] is True and root["service"] == "KATO"
    assert set(root) >= {"service", "version", "description", "docs", "health", "status"}
    health = http.get("/health").json()
    assert health["status"] == "healthy"
    assert set(health["checks"]) == {"store", "ltm"}  # what the service uses, nothing else
    status = http.get("/status").json()
    assert status["workers"] == 1 and status["store"] == "memory"


def test_health_reports_an_ltm_that_cannot_open_and_shutdown_closes_the_stores(
    tmp_path: Path,
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("")  # the LTM's folder would have to be inside a file
    app = create_app(Settings(ltm="sqlite", ltm_path=str(blocked / "ltm.sqlite3")))
    with TestClient(app) as http:
        health = http.get("/health")
        assert health.status_code == 503 and health.json()["status"] == "unhealthy"
        checks = health.json()["checks"]
        down = {"status": "down", "backend": "sqlite", "error": "STORE_UNAVAILABLE"}
        assert checks["ltm"] == down
        assert checks["store"] == {"status": "ok", "backend": "memory"}

    app = create_app(Settings(ltm="sqlite", ltm_path=str(tmp_path / "ltm.sqlite3")))
    kato = app.state.kato
    closed: list[str] = []
    nodes_close, sessions_close = kato.nodes.close, kato.sessions.close

    def close_nodes() -> None:
        closed.append("ltm")
        nodes_close()

    async def close_sessions() -> None:
        closed.append("sessions")
        await sessions_close()

    kato.nodes.close, kato.sessions.close = close_nodes, close_sessions  # the real ones, recorded
    with TestClient(app) as http:
        assert http.get("/health").json()["checks"]["ltm"] == {"status": "ok", "backend": "sqlite"}
        assert closed == []
    assert closed == ["sessions", "ltm"]
