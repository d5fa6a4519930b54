"""The routes, the clients' operations and the workbench's clients all come from one table,
:data:`kato.api.ENDPOINTS`: each entry is a route, a client method and a core call, and a new
entry is a new route with nothing else to write."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from typing import Any, get_args

import pytest
from fastapi.testclient import TestClient

import kato
import kato.service.routes
from kato.api import ENDPOINTS, Endpoint, Operation, Shape, endpoint, shapes
from kato.client._transports import LocalTransport
from kato.exceptions import KatoError
from kato.lab.clients import HttpClient, operation_of
from kato.lab.history import OPERATIONS
from kato.lab.scenarios import Step
from kato.service import create_app

SERVICE_ROUTES = {
    ("GET", "/"),
    ("GET", "/health"),
    ("GET", "/status"),
    ("GET", "/metrics"),
    ("GET", "/stats"),
    ("GET", "/metrics/{metric_name}"),
}

#: Each client method and the operation it sends (its session is opened and closed with
#: ``create_session`` and ``delete_session``; ``count_sessions`` is the service's, not a
#: session's). Calls whose arguments matter are given them.
CLIENT_METHODS: dict[str, tuple[str, dict[str, Any]]] = {
    "observe": ("observe", {"strings": ["a"]}),
    "observe_sequence": ("observe_sequence", {"observations": [{"strings": ["b"]}]}),
    "get_stm": ("get_stm", {}),
    "learn": ("learn", {}),
    "get_predictions": ("get_predictions", {}),
    "get_percept_data": ("get_percept_data", {}),
    "get_cognition_data": ("get_cognition_data", {}),
    "get_pattern": ("get_pattern", {"name": "PTRN|0"}),
    "list_patterns": ("list_patterns", {"offset": 0, "limit": 5}),
    "get_symbol_stats": ("symbol_stats", {}),
    "get_session_info": ("get_session", {}),
    "get_session_config": ("get_session_config", {}),
    "update_session_config": ("update_session_config", {"max_pattern_length": 3}),
    "extend_session": ("extend_session", {"ttl_seconds": 120}),
    "check_session_exists": ("session_exists", {}),
    "clear_stm": ("clear_stm", {}),
    "clear_all": ("clear_all", {}),
}
#: Not a session's: the service's count, and KATO's node-level percept and cognition.
NOT_CLIENT_METHODS = {
    "create_session",
    "delete_session",
    "count_sessions",
    "node_percept_data",
    "node_cognition_data",
}


def test_every_entry_is_a_documented_route_and_every_operation_route_an_entry() -> None:
    paths = create_app().openapi()["paths"]
    documented = {(m.upper(), p) for p, ops in paths.items() for m in ops} - SERVICE_ROUTES
    assert documented == {(e.method, e.path) for e in ENDPOINTS}
    for e in ENDPOINTS:
        route = paths[e.path][e.method.lower()]
        assert route["summary"] == e.summary and route["tags"] == [e.tag]
        assert route["operationId"].startswith(e.name + "_")
        assert ("requestBody" in route) == (e.body is not None), e.name
        query = {p["name"] for p in route.get("parameters", []) if p["in"] == "query"}
        assert query == {q.name for q in e.query} | ({"node_id"} if e.node else set()), e.name


def test_every_named_shape_is_a_model_of_the_shapes_module_with_a_fast_decoder() -> None:
    assert set(get_args(Shape)) == set(shapes.__all__) - {"decode", "decode_steps"}
    assert set(get_args(Shape)) == set(shapes._TWINS)


def test_the_clients_never_import_pydantic() -> None:
    code = "import sys, kato; assert 'pydantic' not in sys.modules, 'pydantic imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_client_has_a_method_for_every_entry() -> None:
    names = {name for name, _ in CLIENT_METHODS.values()}
    assert names | NOT_CLIENT_METHODS == {e.name for e in ENDPOINTS}
    assert not names & NOT_CLIENT_METHODS


class Recorder:
    """A transport that records the operations sent through the real in-process one."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.sent: list[Operation] = []

    def send(self, op: Operation) -> Any:
        self.sent.append(op)
        return self.inner.send(op)

    def close(self) -> None:
        self.inner.close()

    async def aclose(self) -> None:
        await self.inner.aclose()


def sent_by(client: Any, method: str, kwargs: dict[str, Any]) -> Operation:
    recorder = Recorder(client._transport)
    client._transport = recorder
    try:
        with contextlib.suppress(KatoError):  # e.g. no such pattern: the call was still sent
            result = getattr(client, method)(**kwargs)
            if asyncio.iscoroutine(result):
                asyncio.run(result)
    finally:
        client._transport = recorder.inner
    [op] = recorder.sent
    return op


@pytest.mark.parametrize("method", sorted(CLIENT_METHODS))
def test_each_client_method_sends_its_entry(method: str, node_id: str) -> None:
    name, kwargs = CLIENT_METHODS[method]
    backend = kato.LocalBackend()
    with kato.KatoClient(node_id, backend=backend) as k:
        assert sent_by(k, method, kwargs).endpoint is endpoint(name)

    async def open_async() -> kato.AsyncKatoClient:
        return await kato.AsyncKatoClient(node_id, backend=backend).open()

    a = asyncio.run(open_async())
    assert sent_by(a, method, kwargs).endpoint is endpoint(name)
    asyncio.run(a.close())


@pytest.mark.parametrize("f", sorted(set(OPERATIONS) - {"fault"}))
def test_the_workbench_issues_its_steps_as_entries(f: str) -> None:
    args = {"node_id": "n", "strings": ["a"], "sequence": ["a"], "trailing_slash": False}
    step = Step(f, "s", args)
    op = operation_of(step, "session-" + "ab" * 16 + "-1700000000000")
    assert op.endpoint in ENDPOINTS
    method, path, options = HttpClient._request(step, op)
    assert (method, path) == (op.method, op.path)
    assert options.get("json") == op.body and options.get("params", {}) == op.params


def test_a_new_entry_is_a_new_route(monkeypatch: pytest.MonkeyPatch, node_id: str) -> None:
    extra = Endpoint(
        "count_again",
        "GET",
        "/sessions-count",
        "Count live sessions again",
        "sessions",
        lambda k, op: k.count_sessions(),
        retry_safe=True,
    )
    monkeypatch.setattr(kato.service.routes, "ENDPOINTS", (*ENDPOINTS, extra))
    with TestClient(create_app()) as http:
        http.post("/sessions", json={"node_id": node_id})
        assert http.get("/sessions-count").json() == {"active_session_count": 1}
        assert http.get("/sessions-count/").status_code == 200
        assert "/sessions-count" in http.get("/openapi.json").json()["paths"]
    in_process = LocalTransport(kato.LocalBackend())
    assert in_process.send(Operation(extra)) == {"active_session_count": 0}
