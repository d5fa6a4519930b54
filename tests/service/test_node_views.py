"""KATO's remaining node-level routes: ``GET /percept-data`` and ``GET /cognition-data`` (the node
from ``?node_id=``, ``X-Node-ID`` or ``x-test-id``), and ``GET /pattern/{name}`` answering a
malformed name 404 ``PATTERN_NOT_FOUND`` without asking the store."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from kato.engine import pattern_name

EMPTY_COGNITION = {
    "predictions": [],
    "emotives": {},
    "symbols": [],
    "command": "",
    "metadata": {},
    "path": [],
    "strings": [],
    "vectors": [],
    "short_term_memory": [],
}


def node_from(how: str, node_id: str) -> dict[str, Any]:
    if how == "query":
        return {"params": {"node_id": node_id}}
    header = "X-Node-ID" if how == "header" else "x-test-id"
    return {"headers": {header: node_id}}


@pytest.mark.parametrize("how", ["query", "header", "x-test-id"])
def test_node_percept_and_cognition_data(http: TestClient, node_id: str, how: str) -> None:
    percept = http.get("/percept-data", **node_from(how, node_id))
    assert percept.status_code == 200
    assert percept.json() == {"percept_data": {}, "processor_id": node_id, "node_id": node_id}
    cognition = http.get("/cognition-data", **node_from(how, node_id))
    assert cognition.json() == {
        "cognition_data": EMPTY_COGNITION,
        "processor_id": node_id,
        "node_id": node_id,
    }


def test_a_nodes_view_never_shows_a_sessions_data(
    http: TestClient, session_id: str, node_id: str
) -> None:
    """STM and percepts are the session's (engine.md §9 A1): the node's view stays empty."""
    http.post(f"/sessions/{session_id}/observe", json={"strings": ["private"]})
    assert http.get(f"/sessions/{session_id}/percept-data").json()["percept_data"] != {}
    node = {"node_id": node_id}
    assert http.get("/percept-data", params=node).json()["percept_data"] == {}
    assert http.get("/cognition-data", params=node).json()["cognition_data"] == EMPTY_COGNITION


@pytest.mark.parametrize("path", ["/percept-data", "/cognition-data"])
def test_no_node_or_a_bad_node_is_422(http: TestClient, path: str) -> None:
    for request in ({}, {"params": {"node_id": "a b"}}):
        response = http.get(path, **request)
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "VALIDATION_ERROR"


@pytest.mark.parametrize("name", ["x", "not-a-pattern", "PTRN|xyz", "PTRN|", "a b", "..%2e"])
def test_a_malformed_pattern_name_is_404_pattern_not_found(
    http: TestClient, node_id: str, name: str
) -> None:
    response = http.get(f"/pattern/{name}", headers={"x-test-id": node_id})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "PATTERN_NOT_FOUND"
    assert "not found" in response.json()["detail"]


def test_a_well_formed_pattern_name_is_looked_up(
    http: TestClient, session_id: str, node_id: str
) -> None:
    missing = http.get("/pattern/PTRN|" + "0" * 40, params={"node_id": node_id})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "NOT_FOUND"
    for symbol in ("a", "b"):
        http.post(f"/sessions/{session_id}/observe", json={"strings": [symbol]})
    name = http.post(f"/sessions/{session_id}/learn").json()["pattern_name"]
    assert name == pattern_name([["a"], ["b"]])
    for form in (name, name.removeprefix("PTRN|")):
        found = http.get(f"/pattern/{form}", params={"node_id": node_id})
        assert found.json()["pattern"]["pattern"]["name"] == name


def test_node_views_on_a_real_server(server_url: str, node_id: str) -> None:
    percept = httpx.get(server_url + "/percept-data", headers={"x-test-id": node_id})
    assert percept.json()["processor_id"] == node_id
    cognition = httpx.get(server_url + "/cognition-data", params={"node_id": node_id})
    assert cognition.json()["cognition_data"] == EMPTY_COGNITION
    pattern = httpx.get(server_url + "/pattern/nonsense", params={"node_id": node_id})
    assert (pattern.status_code, pattern.json()["error"]["code"]) == (404, "PATTERN_NOT_FOUND")
