"""Generated malformed and hostile requests: never a 5xx, always the error shape, nothing changed.

Hypothesis draws methods, paths (real routes with hostile segments) and bodies (arbitrary JSON,
wrong types, non-finite numbers, raw bytes that are not JSON or not UTF-8). Every answer must be
below 500; every error must carry a stable code; and the session the requests aim at must hold
exactly what was acknowledged.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kato.service import create_app

CODES = {
    "SESSION_NOT_FOUND",
    "NOT_FOUND",
    "PATTERN_NOT_FOUND",
    "METHOD_NOT_ALLOWED",
    "VALIDATION_ERROR",
    "EMPTY_STM",
    "INVALID_CONFIG",
    "VECTOR_DIMENSION",
    "PAYLOAD_TOO_LARGE",
}
SUFFIXES = [
    "",
    "/observe",
    "/observe-sequence",
    "/stm",
    "/learn",
    "/predictions",
    "/config",
    "/extend",
    "/clear-stm",
    "/percept-data",
    "/cognition-data",
    "/exists",
]
NODE_PATHS = ["/pattern/x", "/patterns", "/symbols/stats", "/percept-data", "/cognition-data"]
HOSTILE_SEGMENTS = st.one_of(
    st.sampled_from(
        ["count", "*", "{x}", "a:b", "..", "%2e%2e", "%0a", "session-" + "f" * 32 + "-1", " "]
    ),
    st.text(alphabet=st.characters(codec="ascii", exclude_characters="/?#"), max_size=40),
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=20,
)
observation_like = st.fixed_dictionaries(
    {},
    optional={
        "strings": json_values,
        "vectors": json_values,
        "emotives": json_values,
        "metadata": json_values,
        "unique_id": json_values,
        "observations": json_values,
        "config": json_values,
        "node_id": json_values,
        "ttl_seconds": json_values,
    },
)
raw_bodies = st.one_of(
    st.binary(max_size=200),
    st.sampled_from(
        [
            b'{"strings": [NaN]}',
            b'{"vectors": [[Infinity]]}',
            b"\xff\xfe\x00{",
            b'{"strings": ["\xc3\x28"]}',
            b"[" * 5000 + b"]" * 5000,
            b'{"a":' * 2000 + b"1" + b"}" * 2000,
        ]
    ),
)


def adds_event(content: str | bytes) -> bool:
    """Whether an accepted observe body carries strings or vectors (so it adds an STM event)."""
    try:
        body = json.loads(content)
    except RecursionError:  # the deeply nested samples carry neither
        return False
    return isinstance(body, dict) and bool(body.get("strings") or body.get("vectors"))


def check(response: Any) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.status_code >= 400:
        body = response.json()
        assert body["error"]["code"] in CODES, body
        assert body["detail"]


def test_generated_hostile_requests_never_reach_5xx(node_id: str) -> None:
    with TestClient(create_app()) as http:
        session_id = http.post("/sessions", json={"node_id": node_id}).json()["session_id"]
        acknowledged = 0  # observations answered 200 that add an event
        sent = 0

        @settings(
            max_examples=1100,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(
            method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]),
            target=st.one_of(
                st.tuples(st.just("own"), st.sampled_from(SUFFIXES)),
                st.tuples(HOSTILE_SEGMENTS, st.sampled_from(SUFFIXES)),
                st.tuples(st.just("node"), st.sampled_from(NODE_PATHS)),
            ),
            body=st.one_of(observation_like, json_values, raw_bodies),
        )
        def hostile(method: str, target: tuple[str, str], body: Any) -> None:
            nonlocal sent, acknowledged
            segment, suffix = target
            if segment == "node":
                path = suffix
            else:
                sid = session_id if segment == "own" else quote(segment, safe="%*{}:")
                path = f"/sessions/{sid}{suffix}"
            if segment == "own" and suffix != "/observe":
                method = "GET"  # only observe may change the session under test: exact ledger
            kwargs: dict[str, Any] = {}
            if isinstance(body, bytes):
                kwargs = {"content": body, "headers": {"content-type": "application/json"}}
            else:
                kwargs = {
                    "content": json.dumps(body),
                    "headers": {"content-type": "application/json"},
                }
            response = http.request(method, path, **kwargs)
            sent += 1
            check(response)
            if segment == "own" and method == "POST" and response.status_code == 200:
                if adds_event(kwargs["content"]):
                    acknowledged += 1
                assert response.json()["stm_length"] == acknowledged

        hostile()
        assert sent >= 1000
        assert http.get(f"/sessions/{session_id}/stm").json()["length"] == acknowledged
