"""Every error code of api.md, with its status and the one error shape; nothing changes on error."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from kato.exceptions import StoreUnavailableError
from kato.service import create_app
from kato.sessions import MemorySessionStore


def assert_error(response: Any, status: int, code: str, session_id: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"detail", "error"}
    error = body["error"]
    assert {"code", "message", "session_id", "layer", "request_id"} <= set(error)
    assert error["code"] == code
    assert error["message"] == body["detail"] and body["detail"]
    assert error["request_id"] == response.headers["x-request-id"]
    assert error["layer"] in {"router", "validation", "session", "engine", "store"}
    if session_id is not None:
        assert error["session_id"] == session_id
    return dict(error)


def test_session_not_found(http: TestClient) -> None:
    missing = "session-" + "0" * 32 + "-1"
    for method, path in [
        ("GET", f"/sessions/{missing}"),
        ("POST", f"/sessions/{missing}/observe"),
        ("GET", f"/sessions/{missing}/stm"),
        ("DELETE", f"/sessions/{missing}"),
        ("GET", "/sessions/not-a-session-id/predictions"),
    ]:
        kwargs = {"json": {"strings": ["a"]}} if path.endswith("observe") else {}
        error = assert_error(http.request(method, path, **kwargs), 404, "SESSION_NOT_FOUND")
        assert error["layer"] == "session"


def test_not_found_for_unknown_route_and_pattern(http: TestClient, node_id: str) -> None:
    assert_error(http.get("/no/such/route"), 404, "NOT_FOUND")
    assert_error(http.get("/pattern/PTRN|abc", params={"node_id": node_id}), 404, "NOT_FOUND")


@pytest.mark.parametrize("path", ["/sessions/count", "/sessions/count/"])
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_count_route_with_wrong_method_is_405(http: TestClient, path: str, method: str) -> None:
    assert_error(http.request(method, path), 405, "METHOD_NOT_ALLOWED")


def test_wrong_method_on_a_session_route_is_405(http: TestClient, session_id: str) -> None:
    assert_error(http.put(f"/sessions/{session_id}/observe"), 405, "METHOD_NOT_ALLOWED")
    assert_error(http.get(f"/sessions/{session_id}/learn"), 405, "METHOD_NOT_ALLOWED")


def test_validation_errors(http: TestClient, session_id: str, node_id: str) -> None:
    observe = f"/sessions/{session_id}/observe"
    http.post(observe, json={"strings": ["kept"]})
    bad_bodies: list[Any] = [
        {"strings": "abc"},
        {"strings": [1, 2]},
        {"strings": [None]},
        {"vectors": [[1, "x"]]},
        {"vectors": "nope"},
        {"emotives": {"joy": "high"}},
        {"emotives": {"joy": True}},
        {"metadata": ["not", "a", "dict"]},
        {"unique_id": 12},
        [],
        "text",
    ]
    for body in bad_bodies:
        error = assert_error(http.post(observe, json=body), 422, "VALIDATION_ERROR", session_id)
        assert error["details"]["errors"]
    for raw in [b"{not json", b'{"strings": [NaN]}', b'{"emotives": {"a": Infinity}}']:
        response = http.post(observe, content=raw, headers={"content-type": "application/json"})
        assert_error(response, 422, "VALIDATION_ERROR")
    assert_error(http.post("/sessions", json={}), 422, "VALIDATION_ERROR")
    assert_error(http.post("/sessions", json={"node_id": "bad node"}), 422, "VALIDATION_ERROR")
    assert_error(http.post("/sessions", json={"node_id": "x" * 129}), 422, "VALIDATION_ERROR")
    assert_error(http.get("/symbols/stats"), 422, "VALIDATION_ERROR")
    assert_error(
        http.get("/patterns", params={"node_id": node_id, "limit": 0}), 422, "VALIDATION_ERROR"
    )
    stm = http.get(f"/sessions/{session_id}/stm").json()
    assert stm["stm"] == [["kept"]], "a rejected request changed the session"


def test_empty_stm_has_the_text_existing_clients_match(http: TestClient, session_id: str) -> None:
    error = assert_error(http.post(f"/sessions/{session_id}/learn"), 400, "EMPTY_STM", session_id)
    assert http.post(f"/sessions/{session_id}/learn").json()["detail"] == (
        "Cannot learn from empty STM"
    )
    assert error["layer"] == "engine"


def test_invalid_config(http: TestClient, session_id: str, node_id: str) -> None:
    error = assert_error(
        http.post("/sessions", json={"node_id": node_id, "config": {"max_pattern_length": -1}}),
        400,
        "INVALID_CONFIG",
    )
    assert "max_pattern_length" in error["details"]["fields"]
    response = http.post(
        f"/sessions/{session_id}/config",
        json={"config": {"recall_threshold": 2, "max_predictions": 5}},
    )
    error = assert_error(response, 400, "INVALID_CONFIG", session_id)
    assert set(error["details"]["fields"]) == {"recall_threshold"}
    config = http.get(f"/sessions/{session_id}/config").json()["config"]
    assert config["max_predictions"] == 100, "a rejected update was half-applied"
    assert_error(
        http.post("/sessions", json={"node_id": node_id, "ttl_seconds": 0}), 400, "INVALID_CONFIG"
    )


def test_vector_dimension(http: TestClient, session_id: str) -> None:
    response = http.post(f"/sessions/{session_id}/observe", json={"vectors": [[1.0, 2.0], [3.0]]})
    assert_error(response, 400, "VECTOR_DIMENSION", session_id)
    assert http.get(f"/sessions/{session_id}/stm").json()["length"] == 0


def test_payload_too_large_is_refused_before_parsing(http: TestClient, session_id: str) -> None:
    big = b'{"strings": ["' + b"x" * (4 * 1024 * 1024) + b'"]}'
    response = http.post(
        f"/sessions/{session_id}/observe",
        content=big,
        headers={"content-type": "application/json"},
    )
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")

    def chunks():  # no content-length: the limit is enforced while the body streams in
        for _ in range(5):
            yield b"x" * (1024 * 1024)

    response = http.post(
        f"/sessions/{session_id}/observe",
        content=chunks(),
        headers={"content-type": "application/json"},
    )
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")
    assert http.get(f"/sessions/{session_id}/stm").json()["length"] == 0


class UnreachableStore(MemorySessionStore):
    """A session store whose backend cannot be reached: each call fails as a real adapter
    reports an outage. (A real outage, a stopped Redis, is tested with the Redis store.)"""

    async def create(self, record):  # type: ignore[no-untyped-def]
        raise StoreUnavailableError("session store unreachable: connection refused")

    async def get(self, session_id, *, touch=True, predictions=True):  # type: ignore[no-untyped-def]
        raise StoreUnavailableError("session store unreachable: connection refused")

    async def count(self):  # type: ignore[no-untyped-def]
        raise StoreUnavailableError("session store unreachable: connection refused")


def test_store_unavailable_is_503_never_404(node_id: str) -> None:
    with TestClient(create_app(session_store=UnreachableStore())) as http:
        assert_error(http.post("/sessions", json={"node_id": node_id}), 503, "STORE_UNAVAILABLE")
        error = assert_error(
            http.get("/sessions/session-" + "1" * 32 + "-1/stm"), 503, "STORE_UNAVAILABLE"
        )
        assert error["layer"] == "store"
        health = http.get("/health")
        assert health.status_code == 503
        assert health.json()["status"] == "unhealthy"
        assert health.json()["checks"]["store"]["status"] == "down"


class BrokenStore(MemorySessionStore):
    """A store with a bug: it raises an exception nobody anticipated."""

    async def count(self):  # type: ignore[no-untyped-def]
        raise RuntimeError("bug in the store")


def test_unexpected_exception_is_a_logged_500(caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(session_store=BrokenStore())
    with (
        TestClient(app, raise_server_exceptions=False) as http,
        caplog.at_level("ERROR", logger="kato"),
    ):
        response = http.get("/sessions/count")
    error = assert_error(response, 500, "INTERNAL")
    assert any(
        record.exc_info and getattr(record, "fields", {}).get("request_id") == error["request_id"]
        for record in caplog.records
    ), "the 500 was not logged with its traceback and request id"
