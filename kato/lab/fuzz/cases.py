"""Bad requests, generated from the service's own ``/openapi.json`` and written by hand.

:class:`CaseGenerator` reads every operation the OpenAPI document describes (path, method, path
and query parameters, body schema), builds a valid request for it, and then breaks it in one of
the ways :data:`MUTATIONS` lists: hostile or forged ids, wrong types, missing and extra fields,
NaN/Infinity literals, huge numbers, deep nesting, bodies over the limit, bytes that are not
UTF-8, wrong content types, 100k-symbol observations, unknown methods, trailing slashes, bad
query values, hostile headers and raw request targets. :func:`nasty_cases` are the hand-written
ones every campaign starts with. The stream is a pure function of the seed and of the session
ids it aims at (``Targets``), so a campaign can be replayed.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

__all__ = [
    "MUTATIONS",
    "Case",
    "CaseGenerator",
    "Operation",
    "Targets",
    "nasty_cases",
    "operations",
]

JSON = "application/json"


@dataclass(frozen=True, slots=True)
class Case:
    """One request: ``target`` is sent exactly as written (path and query, already encoded);
    with ``raw`` set, those bytes are the whole request, sent over a plain socket."""

    kind: str
    method: str
    target: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    raw: bytes | None = None

    def describe(self) -> dict[str, Any]:
        """A short, JSON-ready account of the request (for reports)."""
        body = self.raw if self.raw is not None else self.body
        return {
            "kind": self.kind,
            "method": self.method,
            "target": self.target[:200],
            "body": None if body is None else repr(body[:200]),
            "body_bytes": None if body is None else len(body),
        }


@dataclass(frozen=True, slots=True)
class Operation:
    """One operation of the OpenAPI document."""

    method: str
    path: str
    path_params: tuple[str, ...]
    query: tuple[tuple[str, Mapping[str, Any], bool], ...]  # name, schema, required
    body: Mapping[str, Any] | None  # the resolved JSON schema of the body


@dataclass
class Targets:
    """What valid requests aim at: live session ids, their node, a learned pattern."""

    session_ids: list[str]
    node_id: str
    pattern_name: str
    max_body_bytes: int
    other_nodes: Sequence[str] = field(default=("fuzz-a", "fuzz-b"))


def operations(openapi: Mapping[str, Any]) -> list[Operation]:
    """Every operation ``openapi`` describes, with ``$ref`` body schemas resolved."""
    schemas = openapi.get("components", {}).get("schemas", {})

    def resolve(schema: Mapping[str, Any]) -> Mapping[str, Any]:
        ref = schema.get("$ref")
        return resolve(schemas[ref.rsplit("/", 1)[-1]]) if isinstance(ref, str) else schema

    found = []
    for path, methods in sorted(openapi["paths"].items()):
        for method, op in sorted(methods.items()):
            params = op.get("parameters", [])
            body = op.get("requestBody", {}).get("content", {}).get(JSON, {}).get("schema")
            found.append(
                Operation(
                    method=method.upper(),
                    path=path,
                    path_params=tuple(p["name"] for p in params if p["in"] == "path"),
                    query=tuple(
                        (p["name"], resolve(p.get("schema", {})), bool(p.get("required")))
                        for p in params
                        if p["in"] == "query"
                    ),
                    body=None if body is None else _resolve_all(body, resolve),
                )
            )
    return found


def _resolve_all(
    schema: Mapping[str, Any], resolve: Callable[[Mapping[str, Any]], Mapping[str, Any]]
) -> Mapping[str, Any]:
    schema = resolve(schema)
    out = dict(schema)
    if "properties" in schema:
        out["properties"] = {k: _resolve_all(v, resolve) for k, v in schema["properties"].items()}
    if "items" in schema:
        out["items"] = _resolve_all(schema["items"], resolve)
    if "anyOf" in schema:
        out["anyOf"] = [_resolve_all(s, resolve) for s in schema["anyOf"]]
    return out


# -- hostile values ----------------------------------------------------------------------------
HOSTILE_IDS = (
    "*",
    "{",
    "}",
    ":",
    "{x}",
    "a:b",
    "kato:sessions",
    "{kato:sessions}",
    "session-*",
    "*session*",
    "..",
    "../",
    "../../etc/passwd",
    "..%2f..%2fhealth",
    "%2e%2e",
    "%2e%2e%2f%2e%2e%2fcount",
    "%0a",
    "%0d%0aFLUSHALL%0d%0a",
    "a%0aKEYS%20*",
    "%00",
    "%ff%fe",
    "%c0%af",
    "%25",
    "%7B%7D",
    "%2A",
    "%3A",
    " ",
    "count",
    "COUNT",
    "sessions",
    "null",
    "undefined",
    "[]",
    "\u00e9t\u00e9",
    "\U0001f600",
    "x" * 300,
)
WRONG_TYPES: tuple[Any, ...] = (
    None,
    True,
    0,
    -1,
    1.5,
    "x",
    "",
    [],
    [[]],
    {},
    {"a": 1},
    [None],
    [1, "a"],
    "1" * 200,
)
NUMBER_LITERALS = (
    "NaN",
    "Infinity",
    "-Infinity",
    "1e999",
    "-1e999",
    "1e308",
    "-1e308",
    "4" * 400,
    "-0",
    "0.1e-400",
    "1" * 5000,
)
BAD_BODIES = (
    b"",
    b"{",
    b'{"strings": ["a"',
    b"null",
    b"[]",
    b'"text"',
    b"1",
    b"true",
    b"{}" * 3,
    b'{"a":1,}',
    b"{'a': 1}",
    b"\xff\xfe\xfd",
    b'{"strings": ["\xff"]}',
    b'{"strings": ["\xc0\xaf"]}',
    b'{"strings": ["\\ud800"]}',
    b'{"node_id": "n", "metadata": {"\\udfff": 1}}',
    b'{"metadata": {"k": ["\\ud800"]}, "strings": ["a"]}',
    b"\x00" * 64,
    b"\xef\xbb\xbf{}",
    b'{"strings": ["a"], "strings": 5}',
)
CONTENT_TYPES = (
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xyz",
    "application/json; charset=latin-1",
    "application/xml",
    "",
    "application/json\r\nX-Injected: 1",
)
METHODS = ("PUT", "PATCH", "OPTIONS", "TRACE", "FOO", "PROPFIND", "DELETE", "POST", "GET")


def _forged_id(rng: random.Random) -> str:
    return f"session-{rng.getrandbits(128):032x}-{rng.randrange(10**12, 10**13)}"


class CaseGenerator:
    """An endless, seeded stream of mutated requests over ``ops`` (see the module docstring)."""

    def __init__(self, ops: Sequence[Operation], targets: Targets, seed: int = 0) -> None:
        self.ops = list(ops)
        self.targets = targets
        self.rng = random.Random(seed)
        names = [name for name, _ in MUTATIONS]
        weights = [weight for _, weight in MUTATIONS]
        self._pick: Callable[[], str] = lambda: self.rng.choices(names, weights)[0]

    def __iter__(self) -> Iterator[Case]:
        return self

    def __next__(self) -> Case:
        kind = self._pick()
        op = self.rng.choice(self.ops)
        mutate: Callable[[Operation], Case] = getattr(self, "_" + kind.replace("-", "_"))
        return mutate(op)

    # -- valid parts ---------------------------------------------------------------------------
    def _session(self) -> str:
        return self.rng.choice(self.targets.session_ids)

    def _path(self, op: Operation, override: Mapping[str, str] | None = None) -> str:
        path = op.path
        for name in op.path_params:
            value = (override or {}).get(name)
            if value is None:
                value = self._session() if name == "session_id" else self.targets.pattern_name
                value = quote(value, safe="")
            path = path.replace("{" + name + "}", value)
        return path

    def _query(self, op: Operation, override: Mapping[str, str] | None = None) -> str:
        parts = []
        for name, schema, required in op.query:
            if override is not None and name in override:
                parts.append(f"{name}={override[name]}")
            elif required or name == "node_id":
                parts.append(f"{name}={self._valid_query(name, schema)}")
        return "?" + "&".join(parts) if parts else ""

    def _valid_query(self, name: str, schema: Mapping[str, Any]) -> str:
        if name == "node_id":
            return self.targets.node_id
        if name == "ttl_seconds":
            return "3600"
        return str(schema.get("minimum", 1)) if schema.get("type") == "integer" else "x"

    def _valid_body(self, op: Operation) -> dict[str, Any] | None:
        if op.body is None:
            return None
        body = self._sample(op.body, "")
        return body if isinstance(body, dict) else {}

    def _sample(self, schema: Mapping[str, Any], name: str) -> Any:
        if name == "node_id":
            return self.rng.choice([self.targets.node_id, *self.targets.other_nodes])
        if "anyOf" in schema:
            options = [s for s in schema["anyOf"] if s.get("type") != "null"]
            return self._sample(options[0], name) if options else None
        kind = schema.get("type")
        if kind == "object":
            props = schema.get("properties", {})
            return {key: self._sample(sub, key) for key, sub in props.items() if key != "config"}
        if kind == "array":
            return [self._sample(schema.get("items", {}), "") for _ in range(2)]
        if kind == "integer":
            return 60
        if kind == "number":
            return 0.5
        if kind == "boolean":
            return False
        if kind == "string":
            return f"fuzz-{self.rng.randrange(1000)}"
        return {}

    def _case(
        self,
        kind: str,
        op: Operation,
        *,
        method: str | None = None,
        path: str | None = None,
        query: str | None = None,
        body: bytes | None = None,
        content_type: str | None = JSON,
        headers: Sequence[tuple[str, str]] = (),
    ) -> Case:
        if body is None and op.body is not None:
            body = json.dumps(self._valid_body(op)).encode()
        all_headers = list(headers)
        if body is not None and content_type is not None:
            all_headers.append(("Content-Type", content_type))
        target = (path if path is not None else self._path(op)) + (
            query if query is not None else self._query(op)
        )
        return Case(kind, method or op.method, target, tuple(all_headers), body)

    # -- mutations (one method per entry of MUTATIONS) -----------------------------------------
    def _hostile_id(self, op: Operation) -> Case:
        value = self.rng.choice(HOSTILE_IDS)
        encoded = value if "%" in value else quote(value, safe="*{}:")
        if not op.path_params:
            return self._case("hostile-id", op, path=f"/sessions/{encoded}/observe", method="POST")
        name = self.rng.choice(op.path_params)
        return self._case("hostile-id", op, path=self._path(op, {name: encoded}))

    def _forged_id(self, op: Operation) -> Case:
        real = self._session()
        forged = self.rng.choice(
            [
                _forged_id(self.rng),
                _forged_id(self.rng),
                real.upper(),
                real[:-1],
                real + "0",
                real.replace("-", "_"),
                real[:8] + "g" + real[9:],
                real + "-" + real,
                real + "\n",
                "session-" + "0" * 32 + "-" + "9" * 17,
                real.split("-")[1],
            ]
        )
        session_op = op if "session_id" in op.path_params else self._session_op()
        path = self._path(session_op, {"session_id": quote(forged, safe="")})
        return self._case("forged-id", session_op, path=path)

    def _session_op(self) -> Operation:
        return self.rng.choice([op for op in self.ops if "session_id" in op.path_params])

    def _body_op(self) -> Operation:
        return self.rng.choice([op for op in self.ops if op.body is not None])

    def _fields(self, op: Operation) -> list[str]:
        props = (op.body or {}).get("properties", {})
        return sorted(props) or ["strings", "node_id", "config"]

    def _wrong_type(self, op: Operation) -> Case:
        op = op if op.body is not None else self._body_op()
        body = self._valid_body(op) or {}
        name = self.rng.choice(self._fields(op))
        value = self.rng.choice(WRONG_TYPES)
        if self.rng.random() < 0.5 and isinstance(body.get(name), list):
            body[name] = [value]  # a wrong type one level down
        else:
            body[name] = value
        return self._case("wrong-type", op, body=json.dumps(body).encode())

    def _missing_field(self, op: Operation) -> Case:
        op = op if op.body is not None else self._body_op()
        body = self._valid_body(op) or {}
        body.pop(self.rng.choice(self._fields(op)), None)
        if self.rng.random() < 0.5:
            body = {}
        return self._case("missing-field", op, body=json.dumps(body).encode())

    def _extra_field(self, op: Operation) -> Case:
        op = op if op.body is not None else self._body_op()
        body = self._valid_body(op) or {}
        extra = self.rng.choice(
            [
                ("__proto__", {"admin": True}),
                ("$where", "1 == 1"),
                ("session_id", _forged_id(self.rng)),
                ("node_id", "../../other"),
                ("unique_id", ""),
                ("unique_id", "u" * 129),
                ("ttl_seconds", 0),
                ("ttl_seconds", 10**9),
                ("config", {"max_pattern_length": -1}),
                ("config", {"recall_threshold": 2}),
                ("config", "yes"),
                ("observations", [{"strings": 5}]),
                ("learn_at_end", "true"),
                ("emotives", {"": float("1e300")}),
            ]
        )
        body[extra[0]] = extra[1]
        return self._case("extra-field", op, body=json.dumps(body).encode())

    def _non_finite(self, op: Operation) -> Case:
        literal = self.rng.choice(NUMBER_LITERALS[:5])
        return self._number_case("non-finite", literal)

    def _huge_number(self, op: Operation) -> Case:
        return self._number_case("huge-number", self.rng.choice(NUMBER_LITERALS[4:]))

    def _number_case(self, kind: str, literal: str) -> Case:
        templates = [
            ("observe", '{"strings": ["a"], "emotives": {"joy": @}}'),
            ("observe", '{"vectors": [[@, 1.0]]}'),
            ("observe", '{"strings": ["a"], "metadata": {"m": @}}'),
            ("observe-sequence", '{"observations": [{"strings": ["a"], "emotives": {"e": @}}]}'),
            ("config", '{"recall_threshold": @}'),
            ("config", '{"config": {"max_predictions": @}}'),
            ("", '{"node_id": "fuzz-a", "ttl_seconds": @}'),
            ("", '{"node_id": "fuzz-a", "metadata": {"n": @}}'),
        ]
        suffix, template = self.rng.choice(templates)
        path = f"/sessions/{self._session()}/{suffix}" if suffix else "/sessions"
        body = template.replace("@", literal).encode()
        return Case(kind, "POST", path, (("Content-Type", JSON),), body)

    def _deep_nesting(self, op: Operation) -> Case:
        depth = self.rng.choice([33, 100, 1000, 100_000])
        template, suffix = self.rng.choice(
            [
                ('{"strings": ["a"], "metadata": {"k": @}}', "observe"),
                ('{"strings": @}', "observe"),
                ('{"config": {"x": @}}', "config"),
                ('{"observations": @}', "observe-sequence"),
                ('{"a":' * depth + "1" + "}" * depth, "observe"),
            ]
        )
        body = template.replace("@", "[" * depth + "]" * depth)
        path = f"/sessions/{self._session()}/{suffix}"
        return Case("deep-nesting", "POST", path, (("Content-Type", JSON),), body.encode())

    def _huge_body(self, op: Operation) -> Case:
        op = op if op.body is not None else self._body_op()
        limit = self.targets.max_body_bytes
        if self.rng.random() < 0.8:  # a declared length over the limit, refused before reading
            head = (
                f"{op.method} {self._path(op)}{self._query(op)} HTTP/1.1\r\n"
                f"Host: fuzz\r\nContent-Type: {JSON}\r\nContent-Length: {limit + 1}\r\n"
                "Connection: close\r\n\r\n"
            )
            return Case("huge-body", op.method, self._path(op), raw=head.encode() + b"{" * 1024)
        padding = json.dumps({"strings": ["x" * (limit + 16)]}).encode()
        return self._case("huge-body", op, body=padding)

    def _non_utf8(self, op: Operation) -> Case:
        op = op if op.body is not None else self._body_op()
        chunk = self.rng.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"])
        body = json.dumps(self._valid_body(op)).encode()
        at = self.rng.randrange(len(body) + 1)
        return self._case("non-utf8", op, body=body[:at] + chunk + body[at:])

    def _bad_content_type(self, op: Operation) -> Case:
        op = op if op.body is not None else self._body_op()
        content_type = self.rng.choice(CONTENT_TYPES)
        if "\r\n" in content_type:
            return self._raw_case("bad-content-type", op, [("Content-Type", content_type)])
        return self._case(
            "bad-content-type", op, content_type=content_type if content_type else None
        )

    def _not_json(self, op: Operation) -> Case:
        op = op if op.body is not None else self._body_op()
        body = self.rng.choice(BAD_BODIES)
        if self.rng.random() < 0.3:
            body = bytes(self.rng.randrange(256) for _ in range(self.rng.randrange(1, 64)))
        return self._case("not-json", op, body=body)

    def _big_observation(self, op: Operation) -> Case:
        count = self.rng.choice([100_000, 100_001])
        payload: dict[str, Any] = {"strings": [f"s{i}" for i in range(count)]}
        if self.rng.random() < 0.5:
            payload = {"strings": ["a"], "emotives": {f"e{i}": 1.0 for i in range(count)}}
        elif self.rng.random() < 0.5:
            payload = {"vectors": [[0.5] * count]}
        session = self.rng.choice([self._session(), _forged_id(self.rng), "*"])
        return Case(
            "big-observation",
            "POST",
            f"/sessions/{quote(session, safe='*')}/observe",
            (("Content-Type", JSON),),
            json.dumps(payload).encode(),
        )

    def _unknown_method(self, op: Operation) -> Case:
        method = self.rng.choice([m for m in METHODS if m != op.method])
        return self._case("unknown-method", op, method=method)

    def _trailing_slash(self, op: Operation) -> Case:
        path = self._path(op)
        variant = self.rng.choice([path + "/", path + "//", path + "/.", "/" + path, path + "/x"])
        if op.body is not None:  # keep it a bad request: break the body too
            return self._case("trailing-slash", op, path=variant, body=b'{"strings": 7}')
        return self._case("trailing-slash", op, path=variant, method="PATCH")

    def _bad_query(self, op: Operation) -> Case:
        value = self.rng.choice(
            [
                "",
                "abc",
                "-1",
                "0",
                "1e3",
                "99999999999999999999",
                "1.5",
                "NaN",
                "%00",
                "*",
                "..%2f..",
                "a%3Ab",
                "%0d%0aKEYS%20*",
                "x" * 300,
                "2147483648",
                "-0",
            ]
        )
        candidates = [op for op in self.ops if op.query] or self.ops
        op = self.rng.choice(candidates)
        if not op.query:
            return self._case("bad-query", op, query=f"?{value}={value}")
        name = self.rng.choice([name for name, _, _ in op.query])
        if name == "node_id" and self.rng.random() < 0.5:
            value = self.rng.choice(["", "*", "a:b", "{x}", "..%2f..", "%0a", "x" * 129])
        return self._case("bad-query", op, query=self._query(op, {name: value}))

    def _hostile_header(self, op: Operation) -> Case:
        name, value = self.rng.choice(
            [
                ("X-Node-ID", "*"),
                ("X-Node-ID", "{kato:sessions}"),
                ("X-Node-ID", "../../x"),
                ("x-test-id", "a" * 129),
                ("X-Request-ID", "r" * 5000),
                ("X-Request-ID", "id\r\nX-Injected: 1"),
                ("X-Trace-ID", "\u00e9\u00e9"),
                ("X-Session-ID", _forged_id(self.rng)),
                ("Content-Length", "-1"),
                ("Content-Length", "abc"),
                ("Transfer-Encoding", "chunked, identity"),
                ("Host", "evil.example\r\nX: y"),
            ]
        )
        nodes = [o for o in self.ops if any(n == "node_id" for n, _, _ in o.query)]
        if name in ("X-Node-ID", "x-test-id") and nodes:
            op = self.rng.choice(nodes)
            return self._case("hostile-header", op, query="", headers=[(name, value)])
        return self._raw_case("hostile-header", op, [(name, value)])

    def _raw_target(self, op: Operation) -> Case:
        segment = self.rng.choice(
            ["{", "}", "*", "a b", "\u00e9", "\x7f", "..", "%", "%zz", "\\..\\", "x" * 9000]
        )
        path = op.path.replace("{session_id}", segment).replace("{pattern_name}", segment)
        if path == op.path:
            path = f"/sessions/{segment}/stm"
        return self._raw_case("raw-target", op, [], target=path)

    def _raw_case(
        self,
        kind: str,
        op: Operation,
        headers: Sequence[tuple[str, str]],
        *,
        target: str | None = None,
    ) -> Case:
        target = target if target is not None else self._path(op) + self._query(op)
        body = b""
        lines = [f"{op.method} {target} HTTP/1.1", "Host: fuzz", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in headers]
        if op.body is not None and not any(n.lower() == "content-length" for n, _ in headers):
            body = json.dumps(self._valid_body(op)).encode()
            lines.append(f"Content-Length: {len(body)}")
            if not any(n.lower() == "content-type" for n, _ in headers):
                lines.append(f"Content-Type: {JSON}")
        raw = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body
        return Case(kind, op.method, target, raw=raw)


#: Each mutation and its weight in the stream.
MUTATIONS: tuple[tuple[str, float], ...] = (
    ("hostile-id", 14),
    ("forged-id", 10),
    ("wrong-type", 12),
    ("missing-field", 5),
    ("extra-field", 5),
    ("non-finite", 8),
    ("huge-number", 5),
    ("deep-nesting", 4),
    ("huge-body", 1.5),
    ("non-utf8", 6),
    ("bad-content-type", 5),
    ("not-json", 8),
    ("big-observation", 0.2),
    ("unknown-method", 6),
    ("trailing-slash", 4),
    ("bad-query", 6),
    ("hostile-header", 4),
    ("raw-target", 3),
)


def nasty_cases(targets: Targets) -> list[Case]:
    """The hand-written cases: each names one attack the generated stream might only brush."""
    sid = targets.session_ids[0]
    obs = f"/sessions/{sid}/observe"
    j = (("Content-Type", JSON),)
    forged = "session-" + "0123456789abcdef" * 2 + "-1700000000000"
    huge = targets.max_body_bytes + 1
    cases = [
        Case("nasty", "POST", obs, j, b'{"strings": ["a"], "emotives": {"x": NaN}}'),
        Case("nasty", "POST", obs, j, b'{"vectors": [[Infinity]]}'),
        Case("nasty", "POST", obs, j, b'{"strings": ["a"], "metadata": {"x": -Infinity}}'),
        Case("nasty", "POST", obs, j, b'{"vectors": [[1e308, 1e308], [1e308, 1e308]]}'),
        Case("nasty", "POST", obs, j, b'{"strings": ["a"], "emotives": {"e": 1e999}}'),
        Case("nasty", "POST", obs, j, b'{"strings": ["\\ud800"]}'),
        Case("nasty", "POST", obs, j, b'{"strings": ["a"], "metadata": {"k": ["\\udc00"]}}'),
        Case("nasty", "POST", obs, j, b'{"strings": ["\xff\xfe"]}'),
        Case("nasty", "POST", obs, j, b"[" * 100_000 + b"]" * 100_000),
        Case("nasty", "POST", obs, j, b'{"metadata": {"k": ' + b"[" * 40 + b"]" * 40 + b"}}"),
        Case(
            "nasty",
            "POST",
            obs,
            j,
            json.dumps({"strings": [f"s{i}" for i in range(100_000)]}).encode(),
        ),
        Case("nasty", "POST", "/sessions", j, b'{"node_id": "n", "metadata": {"a": NaN}}'),
        Case("nasty", "POST", "/sessions", j, b'{"node_id": "n", "metadata": {"\\ud800": 1}}'),
        Case(
            "nasty",
            "POST",
            "/sessions",
            j,
            b'{"node_id": "n", "metadata": ' + b'{"a":' * 50 + b"1" + b"}" * 50 + b"}",
        ),
        Case("nasty", "POST", "/sessions", j, b'{"node_id": "*"}'),
        Case("nasty", "POST", "/sessions", j, b'{"node_id": "{kato:sessions}"}'),
        Case("nasty", "POST", "/sessions", j, b'{"node_id": "a\\nb"}'),
        Case("nasty", "POST", "/sessions", j, b'{"node_id": "../../etc"}'),
        Case("nasty", "POST", "/sessions", j, b'{"node_id": "n", "ttl_seconds": 1e999}'),
        Case("nasty", "POST", "/sessions", j, b'{"node_id": "n", "config": {"persistence": NaN}}'),
        Case("nasty", "POST", "/sessions", (), b'{"node_id": "n"}'),
        Case("nasty", "POST", "/sessions", (("Content-Type", "text/plain"),), b"node_id=n"),
        Case("nasty", "GET", f"/sessions/{forged}"),
        Case("nasty", "DELETE", f"/sessions/{forged}"),
        Case("nasty", "POST", f"/sessions/{forged}/learn"),
        Case("nasty", "GET", "/sessions/*"),
        Case("nasty", "GET", "/sessions/%2A/stm"),
        Case("nasty", "DELETE", "/sessions/*"),
        Case("nasty", "GET", "/sessions/%7B%7D"),
        Case("nasty", "GET", "/sessions/a%3Ab/exists"),
        Case("nasty", "GET", "/sessions/%0a/stm"),
        Case("nasty", "GET", "/sessions/%0d%0aFLUSHALL%0d%0a"),
        Case("nasty", "GET", "/sessions/..%2f..%2fhealth"),
        Case("nasty", "GET", "/sessions/%2e%2e/count"),
        Case("nasty", "GET", "/sessions/../sessions/count"),
        Case("nasty", "GET", f"/sessions/{sid}%00"),
        Case("nasty", "GET", f"/sessions/{sid.upper()}"),
        Case("nasty", "GET", "/sessions/" + "a" * 100_000),
        Case("nasty", "POST", "/sessions/count"),
        Case("nasty", "DELETE", "/sessions/count/"),
        Case("nasty", "PUT", "/sessions"),
        Case("nasty", "PATCH", f"/sessions/{sid}"),
        Case("nasty", "FOO", f"/sessions/{sid}/stm"),
        Case("nasty", "TRACE", "/"),
        Case("nasty", "POST", f"/sessions/{sid}/extend?ttl_seconds=0"),
        Case("nasty", "POST", f"/sessions/{sid}/extend?ttl_seconds=NaN"),
        Case("nasty", "POST", f"/sessions/{sid}/extend?ttl_seconds=99999999999999999999999"),
        Case("nasty", "POST", f"/sessions/{sid}/extend"),
        Case("nasty", "GET", f"/patterns?node_id={targets.node_id}&offset=99999999999999999999"),
        Case("nasty", "GET", f"/patterns?node_id={targets.node_id}&limit=0"),
        Case("nasty", "GET", "/patterns?node_id=%2A"),
        Case("nasty", "GET", "/patterns?node_id=..%2F.."),
        Case("nasty", "GET", "/symbols/stats"),
        Case("nasty", "GET", f"/pattern/..%2F..%2Fetc%2Fpasswd?node_id={targets.node_id}"),
        Case("nasty", "GET", "/pattern/PTRN%7C" + "a" * 20_000 + f"?node_id={targets.node_id}"),
        Case(
            "nasty",
            "POST",
            obs,
            raw=(
                f"POST {obs} HTTP/1.1\r\nHost: fuzz\r\nContent-Type: {JSON}\r\n"
                f"Content-Length: {huge}\r\nConnection: close\r\n\r\n"
            ).encode(),
        ),
        Case(
            "nasty",
            "POST",
            obs,
            raw=(
                f"POST {obs} HTTP/1.1\r\nHost: fuzz\r\nContent-Type: {JSON}\r\n"
                "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                f"{huge + 16:x}\r\n"  # one chunk over the limit, no length declared
            ).encode()
            + b"[" * (huge + 16)
            + b"\r\n0\r\n\r\n",
        ),
        Case(
            "nasty",
            "GET",
            "/sessions/{x}",
            raw=b"GET /sessions/{x} HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n\r\n",
        ),
        Case(
            "nasty",
            "GET",
            "/sessions/caf\u00e9",
            raw=b"GET /sessions/caf\xc3\xa9 HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n\r\n",
        ),
        Case(
            "nasty",
            "GET",
            "/sessions/\xff",
            raw=b"GET /sessions/\xff/stm HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n\r\n",
        ),
        Case(
            "nasty",
            "GET",
            "/patterns",
            raw=(
                b"GET /patterns HTTP/1.1\r\nHost: fuzz\r\nX-Node-ID: \xff\xfe\r\n"
                b"Connection: close\r\n\r\n"
            ),
        ),
    ]
    return cases
