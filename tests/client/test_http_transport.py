"""The HTTP transports over ``httpx.MockTransport`` (no server): requests, errors, retries."""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

import kato
from kato.api import Operation, operation
from kato.client import _http
from kato.client._http import AsyncHTTPTransport, HTTPTransport
from kato.exceptions import (
    EmptySTMError,
    InvalidConfigError,
    InvalidRequest,
    KatoError,
    MethodNotAllowedError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitedError,
    SessionLimitError,
    SessionNotFoundError,
    StoreUnavailableError,
    TransportError,
    ValidationError,
    VectorDimensionError,
    from_error_body,
)

BASE = "http://kato.test"
SID = "session-" + "ab" * 16 + "-1700000000000"
Handler = Callable[[httpx.Request], httpx.Response]
REAL_BACKOFF = _http._backoff


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_http, "_backoff", lambda attempt: 0.0)


@pytest.fixture(params=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def send(kind: str, handler: Handler, op: Operation, **options: Any) -> dict[str, Any]:
    """Send ``op`` through a fresh sync or async transport over ``handler``."""
    mock = httpx.MockTransport(handler)
    if kind == "sync":
        transport = HTTPTransport(BASE, transport=mock, **options)
        try:
            return transport.send(op)
        finally:
            transport.close()

    async def run() -> dict[str, Any]:
        transport = AsyncHTTPTransport(BASE, transport=mock, **options)
        try:
            return await transport.send(op)
        finally:
            await transport.aclose()

    return asyncio.run(run())


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    session_id: str | None = None,
    details: dict[str, Any] | None = None,
    layer: str = "session",
) -> httpx.Response:
    error: dict[str, Any] = {
        "code": code,
        "message": message,
        "session_id": session_id,
        "layer": layer,
        "request_id": "req-from-body",
    }
    if details is not None:
        error["details"] = details
    return httpx.Response(status, json={"detail": message, "error": error})


class Recorder:
    """A handler that answers from a script of responses/exceptions and records each request."""

    def __init__(self, *script: httpx.Response | Exception) -> None:
        self.script: Iterator[httpx.Response | Exception] = iter(script)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = next(self.script)
        if isinstance(step, Exception):
            if isinstance(step, httpx.RequestError):
                step.request = request
            raise step
        return step

    def request_ids(self) -> list[str]:
        return [r.headers["X-Request-ID"] for r in self.requests]


def ok() -> httpx.Response:
    return httpx.Response(200, json={"status": "okay"})


# --- requests ---------------------------------------------------------------------------------


def test_request_carries_method_path_body_params_and_headers(kind: str) -> None:
    seen = Recorder(ok(), ok())
    op = operation("observe", session_id=SID, body={"strings": ["a"], "unique_id": "u-1"})
    assert send(kind, seen, op, headers={"X-Node-ID": "n"}) == {"status": "okay"}
    send(kind, seen, operation("extend_session", session_id=SID, ttl_seconds=60))
    observe, extend = seen.requests
    assert observe.method == "POST"
    assert str(observe.url) == f"{BASE}/sessions/{SID}/observe"
    assert json.loads(observe.content) == {"strings": ["a"], "unique_id": "u-1"}
    assert observe.headers["User-Agent"] == f"kato-client/{kato.__version__}"
    assert observe.headers["X-Node-ID"] == "n"
    assert extend.url.params["ttl_seconds"] == "60"
    assert extend.content == b""
    ids = seen.request_ids()
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert ids[0] != ids[1]


def test_non_object_success_body_is_an_error(kind: str) -> None:
    seen = Recorder(httpx.Response(200, text="<html>proxy</html>"))
    with pytest.raises(KatoError, match="expected a JSON object"):
        send(kind, seen, operation("count_sessions"))


# --- error mapping ----------------------------------------------------------------------------

CODES = [
    ("SESSION_NOT_FOUND", 404, SessionNotFoundError),
    ("NOT_FOUND", 404, NotFoundError),
    ("METHOD_NOT_ALLOWED", 405, MethodNotAllowedError),
    ("VALIDATION_ERROR", 422, ValidationError),
    ("EMPTY_STM", 400, EmptySTMError),
    ("INVALID_CONFIG", 400, InvalidConfigError),
    ("VECTOR_DIMENSION", 400, VectorDimensionError),
    ("PAYLOAD_TOO_LARGE", 413, PayloadTooLargeError),
    ("STORE_UNAVAILABLE", 503, StoreUnavailableError),
    ("INTERNAL", 500, KatoError),
]


@pytest.mark.parametrize(("code", "status", "cls"), CODES)
def test_every_error_code_maps_to_its_class(
    kind: str, code: str, status: int, cls: type[KatoError]
) -> None:
    seen = Recorder(error_response(status, code, f"the {code} text", session_id=SID))
    with pytest.raises(KatoError) as info:
        send(kind, seen, operation("learn", session_id=SID), retries=0)
    exc = info.value
    assert type(exc) is cls
    assert (exc.code, exc.status) == (code, status)
    assert exc.session_id == SID
    assert exc.request_id == "req-from-body"
    assert exc.message == str(exc) == f"the {code} text"


def test_invalid_config_keeps_its_field_errors(kind: str) -> None:
    fields = {"recall_threshold": "must be in [0.0, 1.0]", "persistence": "must be >= 1"}
    response = error_response(
        400, "INVALID_CONFIG", "Invalid configuration: ...", details={"fields": fields}
    )
    with pytest.raises(InvalidConfigError) as info:
        send(kind, Recorder(response), operation("update_session_config", session_id=SID))
    assert info.value.field_errors == fields
    assert info.value.details == {"fields": fields}
    assert info.value.session_id is None


def test_empty_stm_keeps_the_text_clients_match(kind: str) -> None:
    response = error_response(400, "EMPTY_STM", "Cannot learn from empty STM", layer="engine")
    with pytest.raises(EmptySTMError, match=r"^Cannot learn from empty STM$"):
        send(kind, Recorder(response), operation("learn", session_id=SID))


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (404, NotFoundError),
        (405, MethodNotAllowedError),
        (413, PayloadTooLargeError),
        (422, ValidationError),
        (503, StoreUnavailableError),
        (400, InvalidRequest),
        (418, InvalidRequest),
        (500, KatoError),
        (502, KatoError),
    ],
)
def test_non_json_error_bodies_map_by_status(kind: str, status: int, cls: type[KatoError]) -> None:
    page = "<html>" + "x" * 1000 + "</html>"
    response = httpx.Response(status, text=page, headers={"X-Request-ID": "req-from-header"})
    with pytest.raises(KatoError) as info:
        send(kind, Recorder(response), operation("learn", session_id=SID))
    exc = info.value
    assert type(exc) is cls
    assert exc.status == status
    assert exc.message == page[:500]
    assert exc.request_id == "req-from-header"


def test_json_error_without_error_object_uses_detail(kind: str) -> None:
    response = httpx.Response(404, json={"detail": "Not Found"})
    with pytest.raises(NotFoundError) as info:
        send(kind, Recorder(response), operation("count_sessions"))
    assert info.value.message == "Not Found"
    assert info.value.code == "NOT_FOUND"
    assert re.fullmatch(r"[0-9a-f]{32}", info.value.request_id or "")  # the id we sent


def test_unknown_code_keeps_the_service_code_and_status() -> None:
    body = {"detail": "slow down", "error": {"code": "SLOW_DOWN", "message": "slow down"}}
    exc = from_error_body(429, body, request_id="r")
    assert type(exc) is InvalidRequest
    assert (exc.code, exc.status, exc.message) == ("SLOW_DOWN", 429, "slow down")
    assert exc.request_id == "r"


def test_limit_codes_become_their_own_errors() -> None:
    for code, cls in (("RATE_LIMITED", RateLimitedError), ("SESSION_LIMIT", SessionLimitError)):
        body = {"detail": "no", "error": {"code": code, "message": "no"}}
        exc = from_error_body(429, body)
        assert type(exc) is cls and exc.status == 429


def test_empty_error_body_still_says_what_happened() -> None:
    exc = from_error_body(502, "")
    assert type(exc) is KatoError and exc.status == 502
    assert "502" in exc.message


# --- retries ----------------------------------------------------------------------------------


def test_get_is_retried_after_a_connect_error(kind: str) -> None:
    seen = Recorder(httpx.ConnectError("refused"), httpx.Response(200, json={"stm": []}))
    assert send(kind, seen, operation("get_stm", session_id=SID)) == {"stm": []}
    assert len(seen.requests) == 2
    assert len(set(seen.request_ids())) == 1


def test_observe_with_unique_id_is_retried_after_a_read_timeout(kind: str) -> None:
    seen = Recorder(httpx.ReadTimeout("slow"), ok())
    op = operation("observe", session_id=SID, body={"strings": ["a"], "unique_id": "obs-1"})
    assert send(kind, seen, op) == {"status": "okay"}
    assert len(seen.requests) == 2
    assert len(set(seen.request_ids())) == 1
    assert [json.loads(r.content)["unique_id"] for r in seen.requests] == ["obs-1", "obs-1"]


@pytest.mark.parametrize(
    "op",
    [
        operation("learn", session_id=SID),
        operation("observe", session_id=SID, body={"strings": ["a"]}),
    ],
    ids=["learn", "observe-without-unique-id"],
)
@pytest.mark.parametrize("failure_cls", [httpx.ReadTimeout, httpx.ConnectError])
def test_unsafe_operations_are_never_retried(
    kind: str, op: Operation, failure_cls: type[httpx.TransportError]
) -> None:
    failure = failure_cls("no answer")
    seen = Recorder(failure, ok())
    with pytest.raises(TransportError) as info:
        send(kind, seen, op, retries=5)
    assert len(seen.requests) == 1
    assert info.value.__cause__ is failure
    assert "outcome is unknown" in info.value.message


def test_unsafe_operation_is_not_retried_on_503(kind: str) -> None:
    seen = Recorder(error_response(503, "STORE_UNAVAILABLE", "store down"), ok())
    with pytest.raises(StoreUnavailableError):
        send(kind, seen, operation("learn", session_id=SID))
    assert len(seen.requests) == 1


def test_503_is_retried_for_gets(kind: str) -> None:
    down = error_response(503, "STORE_UNAVAILABLE", "store down")
    seen = Recorder(down, httpx.Response(503, text="busy"), httpx.Response(200, json={"n": 1}))
    assert send(kind, seen, operation("count_sessions"), retries=2) == {"n": 1}
    assert len(seen.requests) == 3
    assert len(set(seen.request_ids())) == 1


def test_other_errors_are_not_retried(kind: str) -> None:
    seen = Recorder(error_response(500, "INTERNAL", "boom"), ok())
    with pytest.raises(KatoError):
        send(kind, seen, operation("count_sessions"))
    assert len(seen.requests) == 1


def test_transport_error_after_retries_are_exhausted(kind: str) -> None:
    failures = [httpx.ConnectError(f"refused {n}") for n in range(3)]
    seen = Recorder(*failures)
    op = operation("get_stm", session_id=SID)
    with pytest.raises(TransportError) as info:
        send(kind, seen, op, retries=2)
    exc = info.value
    assert len(seen.requests) == 3
    assert exc.__cause__ is failures[-1]
    assert (exc.code, exc.status, exc.layer) == ("TRANSPORT_ERROR", 503, "client")
    assert exc.session_id == SID
    assert exc.request_id == seen.request_ids()[0]
    assert f"GET /sessions/{SID}/stm" in exc.message
    assert "ConnectError: refused 2" in exc.message
    assert exc.details["attempts"] == 3


def test_503_after_retries_are_exhausted_is_the_services_error(kind: str) -> None:
    seen = Recorder(*(error_response(503, "STORE_UNAVAILABLE", "down") for _ in range(2)))
    with pytest.raises(StoreUnavailableError):
        send(kind, seen, operation("count_sessions"), retries=1)
    assert len(seen.requests) == 2


def test_unsupported_scheme_is_translated_but_not_retried(kind: str) -> None:
    seen = Recorder(httpx.UnsupportedProtocol("no"), ok())
    with pytest.raises(TransportError):
        send(kind, seen, operation("count_sessions"))
    assert len(seen.requests) == 1


def test_backoff_is_short_exponential_and_jittered() -> None:
    random.seed(7)
    for attempt in range(4):
        delays = {REAL_BACKOFF(attempt) for _ in range(20)}
        base = 0.05 * 2**attempt
        assert all(0.5 * base <= d <= 1.5 * base for d in delays)
        assert len(delays) > 1


def test_negative_retries_are_refused() -> None:
    with pytest.raises(ValueError, match="retries"):
        HTTPTransport(BASE, retries=-1)


# --- the clients over HTTP --------------------------------------------------------------------


class FakeService:
    """Just enough of the service for a session: create, observe, delete."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.stm: list[list[str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        route = (request.method, request.url.path)
        if route == ("POST", "/sessions"):
            body = json.loads(request.content)
            return httpx.Response(200, json={"session_id": SID, "node_id": body["node_id"]})
        if route == ("POST", f"/sessions/{SID}/observe"):
            body = json.loads(request.content)
            self.stm.append(body["strings"])
            payload = {"status": "okay", "stm_length": len(self.stm)}
            return httpx.Response(200, json={**payload, "unique_id": body["unique_id"]})
        if route == ("DELETE", f"/sessions/{SID}"):
            return httpx.Response(200, json={"status": "deleted", "session_id": SID})
        return error_response(404, "NOT_FOUND", "no route")

    def routes(self) -> list[tuple[str, str]]:
        return [(r.method, r.url.path) for r in self.requests]


EXPECTED_ROUTES = [
    ("POST", "/sessions"),
    ("POST", f"/sessions/{SID}/observe"),
    ("DELETE", f"/sessions/{SID}"),
]


def test_kato_client_over_http(node_id: str) -> None:
    service = FakeService()
    mock = httpx.MockTransport(service)
    with kato.KatoClient(node_id=node_id, base_url=BASE, transport=mock) as k:
        assert k.session_id == SID
        result = k.observe(strings=["hello"])
        assert result["stm_length"] == 1
        assert result["unique_id"].startswith("obs-")  # HTTP observes are made retry-safe
    assert service.routes() == EXPECTED_ROUTES
    assert json.loads(service.requests[0].content)["node_id"] == node_id


def test_async_kato_client_over_http(node_id: str) -> None:
    service = FakeService()

    async def run() -> None:
        mock = httpx.MockTransport(service)
        async with kato.AsyncKatoClient(node_id=node_id, base_url=BASE, transport=mock) as k:
            assert k.session_id == SID
            assert (await k.observe(strings=["hello"]))["stm_length"] == 1

    asyncio.run(run())
    assert service.routes() == EXPECTED_ROUTES


def test_client_raises_the_services_error(node_id: str) -> None:
    service = FakeService()
    with (
        kato.KatoClient(node_id, base_url=BASE, transport=httpx.MockTransport(service)) as k,
        pytest.raises(NotFoundError, match="no route"),
    ):
        k.learn()


def test_transport_needs_http_mode(node_id: str) -> None:
    with pytest.raises(ValueError, match="HTTP mode"):
        kato.KatoClient(node_id, transport=httpx.MockTransport(FakeService()))
