"""The fast path (:mod:`kato.service.fastpath`) answers exactly as the FastAPI routes do.

Its decoders never take a body their pydantic model refuses, and take the rest as the model dumps
it (generated bodies, compared value and type); every operation gives the same status, headers
and body on both paths; what it is unsure of goes to FastAPI with the body it already read; and
the layers around it (request ids, metrics labels, the rate limit) see it as they see a route.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any, get_args

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel, TypeAdapter
from pydantic import ValidationError as PydanticError

from kato.api import ENDPOINTS, Shape, shapes
from kato.service import create_app
from kato.service.fastpath import FastPath
from kato.settings import Settings

MODELS: dict[str, Any] = {name: getattr(shapes, name) for name in get_args(Shape)}


def typed(value: Any) -> Any:
    """``value`` with every type spelled out (``1``, ``1.0`` and ``True`` are equal in Python)."""
    if isinstance(value, dict):
        return ("dict", tuple((typed(k), typed(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return ("list", tuple(typed(v) for v in value))
    if isinstance(value, float):
        return ("float", repr(value))
    return (type(value).__name__, value)


def model_dump(shape: str, body: bytes) -> Any:
    """What the FastAPI route hands the core for ``body``, or ``None`` if it refuses it (as
    Starlette reads a JSON body, then the route's model in Python mode)."""
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return None
    model = MODELS[shape]
    try:
        if isinstance(model, type) and issubclass(model, BaseModel):
            return model.model_validate(value).model_dump(exclude_none=True)
        return TypeAdapter(model).validate_python(value)
    except (PydanticError, RecursionError):
        return None


# -- generated bodies -------------------------------------------------------------------------
texts = st.text(st.characters(), max_size=12)
numbers = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
)
json_values = st.recursive(
    st.none() | st.booleans() | numbers | texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)
node_ids = st.one_of(st.from_regex(r"[A-Za-z0-9_.\-]{0,130}\n?", fullmatch=True), texts)
FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "strings": st.one_of(st.lists(texts, max_size=4), json_values),
    "vectors": st.one_of(st.lists(st.lists(numbers, max_size=3), max_size=3), json_values),
    "emotives": st.one_of(st.dictionaries(texts, numbers, max_size=3), json_values),
    "metadata": json_values,
    "unique_id": st.one_of(st.text(max_size=130), st.just("😀" * 128), json_values),
    "learn_after_each": st.one_of(st.booleans(), json_values),
    "learn_at_end": st.one_of(st.booleans(), json_values),
    "clear_stm_between": st.one_of(st.booleans(), json_values),
    "node_id": st.one_of(node_ids, json_values),
    "ttl_seconds": st.one_of(st.integers(), json_values),
    "config": json_values,
    "max_pattern_length": json_values,
    "extra": json_values,
}
members = st.tuples(st.sampled_from(sorted(FIELDS)), st.data())


@st.composite
def documents(draw: st.DrawFn) -> bytes:
    """A JSON object of the shapes' fields (repeated keys allowed), nested observations, or any
    JSON value, as text; sometimes with a byte changed."""
    pairs = []
    for _ in range(draw(st.integers(0, 6))):
        key = draw(st.sampled_from(sorted(FIELDS)))
        pairs.append((key, draw(FIELDS[key])))
    if draw(st.booleans()):
        inner = [
            "{" + ",".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in obs.items()) + "}"
            for obs in draw(
                st.lists(st.dictionaries(st.sampled_from(sorted(FIELDS)), json_values), max_size=3)
            )
        ]
        text = '{"observations":[' + ",".join(inner) + "]}"
    elif draw(st.integers(0, 9)) == 0:
        text = json.dumps(draw(json_values))
    else:
        text = "{" + ",".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in pairs) + "}"
    body = text.encode("utf-8", "surrogatepass")
    if body and draw(st.integers(0, 4)) == 0:
        at = draw(st.integers(0, len(body) - 1))
        body = body[:at] + bytes([draw(st.integers(0, 255))]) + body[at + 1 :]
    return body


def in_steps(shape: Shape, body: bytes, step: int) -> Any:
    """The stepwise decoder, on a body of any size, in steps of ``step`` bytes."""
    steps = shapes.decode_steps(shape, body, stepwise_above=0, step=step)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


@settings(max_examples=3000, deadline=None, suppress_health_check=list(HealthCheck))
@given(shape=st.sampled_from(sorted(MODELS)), body=documents(), step=st.integers(0, 40))
def test_a_fast_decoder_takes_only_what_its_model_takes_and_dumps_it_alike(
    shape: Shape, body: bytes, step: int
) -> None:
    slow = model_dump(shape, body)
    for fast in (shapes.decode(shape, body), in_steps(shape, body, step)):
        if fast is not None:
            assert slow is not None, (shape, body)
            assert typed(fast) == typed(slow), (shape, body)


def test_a_large_observation_decodes_in_steps_to_the_same_strings() -> None:
    strings = [f"s{i:06d}" for i in range(60_000)]
    body = json.dumps({"strings": strings, "unique_id": "u"}, indent=1).encode()
    steps = shapes.decode_steps("ObservationIn", body)
    taken = 0
    while True:
        try:
            next(steps)
            taken += 1
        except StopIteration as done:
            assert done.value == {**model_dump("ObservationIn", body), "unique_id": "u"}
            break
    assert taken >= len(body) // (64 * 1024) - 1


@pytest.mark.parametrize(
    ("shape", "body"),
    [
        ("ObservationIn", b'{"strings":["a"],"unique_id":"u"}'),
        ("ObservationIn", b'{"vectors":[[1,2.5]],"emotives":{"j":1},"metadata":{"x":null}}'),
        ("ObservationIn", b'{"strings":["a"],"strings":["b"],"unique_id":null,"other":[1]}'),
        ("ObserveSequenceIn", b'{"observations":[{"strings":["a"]},{}],"learn_at_end":true}'),
        ("SessionCreateIn", b'{"node_id":"n-1.x_y","ttl_seconds":60,"config":{"a":null}}'),
        ("ConfigUpdateIn", b'{"config":{"max_pattern_length":3}}'),
    ],
)
def test_common_bodies_take_the_fast_decoder(shape: Shape, body: bytes) -> None:
    assert shapes.decode(shape, body) is not None
    assert typed(shapes.decode(shape, body)) == typed(model_dump(shape, body))


@pytest.mark.parametrize(
    ("shape", "body"),
    [
        ("ObservationIn", b'{"strings":[1]}'),
        ("ObservationIn", b'{"vectors":[[true]]}'),
        ("ObservationIn", b'{"emotives":{"a":NaN}}'),
        ("ObservationIn", b'{"vectors":[[1e400]]}'),
        ("ObservationIn", b'{"unique_id":""}'),
        ("ObservationIn", b'{"strings":null}'),
        ("ObservationIn", b'{"strings":["\\ud800"]}'),
        ("ObservationIn", b'\xef\xbb\xbf{"strings":["a"]}'),
        ("ObservationIn", b'{"metadata":{"a":' + b"[" * 70 + b"]" * 70 + b"}}"),
        ("ObservationIn", b"[]"),
        ("ObserveSequenceIn", b'{"learn_at_end":1}'),
        ("SessionCreateIn", b'{"node_id":"a\\n"}'),
        ("SessionCreateIn", b'{"node_id":"a","ttl_seconds":5.0}'),
        ("SessionCreateIn", b"{}"),
        ("ConfigUpdateIn", b"null"),
    ],
)
def test_bodies_the_fast_decoder_leaves_to_the_model(shape: Shape, body: bytes) -> None:
    assert shapes.decode(shape, body) is None


# -- both paths, one answer -------------------------------------------------------------------
def fast_path_of(app: Any) -> FastPath:
    layer = app.middleware_stack
    while not isinstance(layer, FastPath):
        layer = layer.app
    return layer


@pytest.fixture
def both(node_id: str) -> Iterator[tuple[TestClient, FastPath]]:
    with TestClient(create_app()) as http:
        http.get("/health")  # builds the middleware stack
        yield http, fast_path_of(http.app)


_VOLATILE = re.compile(
    r"session-[0-9a-f]{32}-[0-9]+|(obs|seq-obs)-[0-9a-f]{24,32}(-[0-9]+)?"
    r"|\d{4}-\d\d-\d\dT[0-9:.+]+|\"(created_at|expires_at|last_accessed|ttl_remaining)\":[0-9.e+-]+"
    r"|[0-9a-f]{32}"
)


JSON = {"content-type": "application/json"}


def normal(text: str, node: str) -> str:
    return _VOLATILE.sub("<volatile>", text.replace(node, "<node>"))


def requests_for(node: str) -> list[tuple[str, str, dict[str, Any]]]:
    """A request of every operation of the table (``{sid}`` is the session's id; the session
    itself is created first, and deleted last), and some the fast path leaves to FastAPI."""
    q = {"params": {"node_id": node}}
    obs = {"strings": ["b", "a"], "emotives": {"joy": 1}, "metadata": {"m": [1]}}
    observe = {"json": obs}
    return [
        ("GET", "/sessions/count", {}),
        ("GET", "/sessions/{sid}", {}),
        ("GET", "/sessions/{sid}/exists", {}),
        ("POST", "/sessions/{sid}/extend", {"params": {"ttl_seconds": 600}}),
        ("POST", "/sessions/{sid}/extend", {"params": {"ttl_seconds": 1}}),
        ("POST", "/sessions/{sid}/extend", {"params": {"ttl_seconds": "+600"}}),
        ("GET", "/sessions/{sid}/config", {}),
        ("POST", "/sessions/{sid}/config", {"json": {"config": {"recall_threshold": 0.2}}}),
        ("POST", "/sessions/{sid}/config", {"json": {"recall_threshold": 7}}),
        ("POST", "/sessions/{sid}/observe", observe),
        ("POST", "/sessions/{sid}/observe/", {"json": {"strings": ["c"], "unique_id": "u1"}}),
        ("POST", "/sessions/{sid}/observe", {"json": {"strings": ["c"], "unique_id": "u1"}}),
        ("POST", "/sessions/{sid}/observe", {"json": {"vectors": [[1, 2], [3]]}}),
        ("POST", "/sessions/{sid}/observe", {"json": {"strings": [1]}}),
        ("POST", "/sessions/{sid}/observe", {"content": b'{"strings":["d"]}'}),
        ("POST", "/sessions/{sid}/observe", {"content": b"{", "headers": JSON}),
        ("POST", "/sessions/{sid}/observe", {"content": b'{"strings":["g"]}', "headers": JSON}),
        ("POST", "/sessions/{sid}/observe-sequence", {"json": {"observations": [{}, obs]}}),
        ("GET", "/sessions/{sid}/stm", {}),
        ("GET", "/sessions/{sid}/stm/", {}),
        ("POST", "/sessions/{sid}/learn", {}),
        ("POST", "/sessions/{sid}/learn", {}),
        ("POST", "/sessions/{sid}/observe", {"json": {"strings": ["b"]}}),
        ("POST", "/sessions/{sid}/observe", {"json": {"strings": ["a"]}}),
        ("GET", "/sessions/{sid}/predictions", {}),
        ("GET", "/sessions/{sid}/percept-data", {}),
        ("GET", "/sessions/{sid}/cognition-data", {}),
        ("GET", "/patterns", {"params": {"node_id": node, "limit": 2}}),
        ("GET", "/patterns", {"params": {"node_id": node, "limit": 0}}),
        ("GET", "/patterns", {"params": {"node_id": node, "offset": "x"}}),
        ("GET", "/patterns", {}),
        ("GET", "/patterns", {"params": {"node_id": "bad node"}}),
        ("GET", "/pattern/PTRN|0", q),
        ("GET", "/pattern/nope", {"headers": {"X-Node-ID": node}}),
        ("GET", "/symbols/stats", {"headers": {"X-Test-ID": node}}),
        ("GET", "/percept-data", q),
        ("GET", "/cognition-data", q),
        ("POST", "/sessions/{sid}/clear-stm", {}),
        ("POST", "/sessions/{sid}/clear-all", {}),
        ("GET", "/sessions/session-00000000000000000000000000000000-1/stm", {}),
        ("GET", "/sessions/not-a-session/predictions", {}),
        ("PUT", "/sessions/{sid}/stm", {}),
        ("DELETE", "/sessions/{sid}", {}),
        ("GET", "/sessions/{sid}/exists", {}),
    ]  # fmt: skip


def template_of(ep: Any) -> re.Pattern[str]:
    return re.compile(re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(ep.path)) + "/?")


def test_every_operation_answers_alike_on_both_paths(
    both: tuple[TestClient, FastPath], node_id: str
) -> None:
    """Two sessions of two nodes go through the same requests, one through the fast path and
    one through FastAPI; the answers differ only in ids and times."""
    http, fast = both
    table, inner = fast.table, fast.app
    forwarded: list[str] = []

    async def fastapi(scope: Any, receive: Any, send: Any) -> None:
        forwarded.append(scope["method"] + " " + scope["path"])
        await inner(scope, receive, send)

    answers: dict[str, list[tuple[int, dict[str, str], str]]] = {}
    served: list[tuple[str, str, bool]] = []
    for path_name in ("fast", "fastapi"):
        node = f"{node_id}-{path_name}"
        fast.table, fast.app = (table, fastapi) if path_name == "fast" else ({}, inner)
        created = http.post(
            "/sessions", json={"node_id": node, "config": {"max_pattern_length": 0}}
        )
        sid = created.json()["session_id"]
        got = answers.setdefault(path_name, [])
        for method, path, kwargs in [("POST", "/sessions", {}), *requests_for(node)]:
            before = len(forwarded)
            if path == "/sessions":
                response = created
            else:
                response = http.request(method, path.format(sid=sid), **kwargs)
            headers = {
                k: normal(v, node)
                for k, v in response.headers.items()
                if k not in {"x-request-id", "x-kato-worker", "content-length"}
            }
            got.append((response.status_code, headers, normal(response.text, node)))
            if path_name == "fast":
                served.append((method, response.request.url.path, len(forwarded) == before))
    fast.table, fast.app = table, inner
    for (method, path, _), a, b in zip(
        [("POST", "/sessions", {}), *requests_for("")],
        answers["fast"],
        answers["fastapi"],
        strict=True,
    ):
        assert a == b, (method, path)
    for ep in ENDPOINTS:  # each operation answered (200 or its own error) by the fast path
        assert any(
            m == ep.method and template_of(ep).fullmatch(p) and fast_path
            for m, p, fast_path in served
        ), ep.name


def test_operations_take_the_fast_path_and_the_rest_goes_to_fastapi(
    both: tuple[TestClient, FastPath], node_id: str
) -> None:
    http, fast = both
    table = fast.table
    calls: list[str] = []
    inner = fast.app

    async def fastapi(scope: Any, receive: Any, send: Any) -> None:
        calls.append(scope["path"])
        await inner(scope, receive, send)

    fast.app = fastapi
    try:
        sid = http.post("/sessions", json={"node_id": node_id}).json()["session_id"]
        assert http.post(f"/sessions/{sid}/observe", json={"strings": ["a"]}).status_code == 200
        assert http.get(f"/sessions/{sid}/stm/").status_code == 200
        assert http.get(f"/sessions/{sid}/predictions").status_code == 200
        assert http.get("/patterns", params={"node_id": node_id}).status_code == 200
        assert calls == []
        refused = http.post(f"/sessions/{sid}/observe", json={"strings": [1]})
        assert refused.status_code == 422
        assert refused.json()["error"]["details"]["errors"][0]["field"] == "body.strings.0"
        assert http.get("/health").status_code == 200
        assert http.put(f"/sessions/{sid}/stm").status_code == 405
        assert calls == [f"/sessions/{sid}/observe", "/health", f"/sessions/{sid}/stm"]
    finally:
        fast.app = inner
        fast.table = table


def test_a_body_read_by_the_fast_path_reaches_fastapi_whole(
    both: tuple[TestClient, FastPath], node_id: str
) -> None:
    """A body sent in pieces, that the fast decoder leaves to the model: the route reads the
    same bytes (its error names the field of the last piece)."""
    http, _ = both
    sid = http.post("/sessions", json={"node_id": node_id}).json()["session_id"]

    def pieces() -> Iterator[bytes]:
        yield b'{"strings": ["a", "b"], '
        yield b'"vectors": [[1, "x"]]}'

    response = http.post(
        f"/sessions/{sid}/observe", content=pieces(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"]["errors"][0]["field"] == "body.vectors.0.1"


def test_metrics_label_a_fast_request_by_its_route_template(
    both: tuple[TestClient, FastPath], node_id: str
) -> None:
    http, _ = both
    sid = http.post("/sessions", json={"node_id": node_id}).json()["session_id"]
    http.get(f"/sessions/{sid}/stm/")
    http.get(f"/sessions/{sid}/stm")
    http.get("/sessions/session-00000000000000000000000000000000-1/stm")
    text = http.get("/metrics", headers={"Accept": "text/plain"}).text
    counts = {
        (s.labels["route"], s.labels["status"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "kato_http_requests_total" and s.labels["method"] == "GET"
    }
    assert counts[("/sessions/{session_id}/stm", "200")] == 2
    assert counts[("/sessions/{session_id}/stm", "404")] == 1


def test_the_rate_limit_applies_to_the_fast_path(node_id: str) -> None:
    with TestClient(create_app(Settings(rate_limit=0.01, rate_limit_burst=4))) as http:
        sid = http.post("/sessions", json={"node_id": node_id}).json()["session_id"]
        statuses = [http.get(f"/sessions/{sid}/stm").status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        assert http.get(f"/sessions/{sid}/stm").json()["error"]["code"] == "RATE_LIMITED"
