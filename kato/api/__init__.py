"""KATO's API, described once: every operation's route, core call, retry rule and shapes.

:data:`ENDPOINTS` is the one list of operations. The service registers one route per entry
(:mod:`kato.service.routes`), the clients send :class:`Operation` values built from it, in-process
(:func:`Endpoint.call` on the core) or over HTTP (:attr:`Operation.path` and friends), and the
workbench's clients issue their steps through it (:mod:`kato.lab.clients`). Adding an operation
is one entry here; the routes and transports follow. The service's own routes (``/``,
``/health``, ``/status``, ``/metrics``, ``/stats``, ``/metrics/{name}``) reach no core method
and are not operations.

Request bodies are named shapes, pydantic models in :mod:`kato.api.shapes`, so that
``/openapi.json`` describes them truthfully and bad types are refused with 422 before the core is
reached; the core validates again and owns every rule. Every operation answers a JSON object
(:data:`Body`).
"""

from __future__ import annotations

import string
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

from kato.core import Kato
from kato.exceptions import (
    ConflictError,
    EmptySTMError,
    InvalidConfigError,
    KatoError,
    LimitExceededError,
    NotFoundError,
    SessionLimitError,
    SessionNotFoundError,
    StmFullError,
    StoreUnavailableError,
    ValidationError,
    VectorDimensionError,
)
from kato.settings import MAX_TTL, MIN_SESSION_TTL

__all__ = [
    "ENDPOINTS",
    "MAX_OFFSET",
    "Body",
    "Endpoint",
    "Operation",
    "QueryParam",
    "Shape",
    "endpoint",
    "operation",
]

Body = dict[str, Any]
#: The largest pattern-list offset: what every LTM backend can take as an integer.
MAX_OFFSET = 2**31 - 1
#: The request bodies' shapes, by their name in :mod:`kato.api.shapes` (pydantic models the
#: service validates with; named here so that the clients never import pydantic).
Shape = Literal["SessionCreateIn", "ObservationIn", "ObserveSequenceIn", "ConfigUpdateIn"]


@dataclass(frozen=True, slots=True)
class QueryParam:
    """An integer query parameter; without a ``default`` it is required. Out of ``ge``..``le``
    it is refused with 422, unless ``core_checks``: then the core refuses it (with its own
    error) and the range is only documented."""

    name: str
    default: int | None = None
    ge: int | None = None
    le: int | None = None
    description: str | None = None
    core_checks: bool = False


# -- the table --------------------------------------------------------------------------------
CoreCall = Callable[[Kato, "Operation"], Coroutine[Any, Any, Body]]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One operation: its route, the :class:`~kato.core.Kato` call that serves it, its shapes.

    * ``call`` - the core call, given the operation's arguments (the same for the service and
      the in-process client, so they cannot drift apart).
    * ``retry_safe`` - a transport may repeat it after a lost response (reads).
      ``idempotency_key`` - a write is retry-safe when its body carries this field (the service
      applies such a write at most once).
    * ``body`` - the request body's shape (in :mod:`kato.api.shapes`); ``node`` - the node id
      comes in the query (``?node_id=`` or ``X-Node-ID``); ``query`` - further query parameters.
    * ``echo_header`` - ``(header, field)``: the response repeats the body's field in a header.
    * ``errors`` - the errors the operation's own rules raise; :attr:`refusals` adds those
      that every operation of its kind can answer. ``needs_session`` - false for the one
      session operation that answers about a missing session instead of refusing it.
    """

    name: str
    method: Literal["GET", "POST", "DELETE"]
    path: str
    summary: str
    tag: Literal["sessions", "nodes"]
    call: CoreCall
    retry_safe: bool = False
    idempotency_key: str | None = None
    body: Shape | None = None
    node: bool = False
    query: tuple[QueryParam, ...] = ()
    echo_header: tuple[str, str] | None = None
    errors: tuple[type[KatoError], ...] = ()
    needs_session: bool = True

    @property
    def refusals(self) -> tuple[type[KatoError], ...]:
        """Every error the operation can answer (for its documentation): its own; 422 for a
        request that does not parse into its parameters or body; 404 for an unknown session
        and 409 for a write that kept conflicting, on a session's path; 503 for an
        unreachable store, always."""
        found = list(self.errors)
        if self.path_params or self.node or self.query or self.body is not None:
            found.append(ValidationError)
        if "session_id" in self.path_params and self.needs_session:
            found.append(SessionNotFoundError)
            if self.method == "POST":
                found.append(ConflictError)
        found.append(StoreUnavailableError)
        return tuple(dict.fromkeys(found))

    @property
    def path_params(self) -> tuple[str, ...]:
        """The names of the path's ``{parameters}``, in order."""
        return tuple(name for _, name, _, _ in string.Formatter().parse(self.path) if name)


def _config_of(body: Mapping[str, Any]) -> Any:
    """``POST .../config`` takes the changes themselves or ``{"config": {...}}``; in the second
    form, changes given beside ``config`` count too (``config``'s win), so every field of the
    body is validated, as its schema says. A ``config`` that is neither an object nor null is
    handed on as it is, for the validation to refuse (400 ``INVALID_CONFIG``)."""
    nested = body.get("config")
    if nested is None:
        return body
    if not isinstance(nested, dict):
        return nested
    return {**{key: value for key, value in body.items() if key != "config"}, **nested}


_S = "/sessions/{session_id}"

#: Every operation, in routing order: fixed paths before the parameters that would shadow them.
ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "create_session", "POST", "/sessions", "Create a session", "sessions",
        lambda k, op: k.create_session(
            op.json["node_id"],
            metadata=op.json.get("metadata"),
            ttl_seconds=op.json.get("ttl_seconds"),
            config=op.json.get("config"),
        ),
        body="SessionCreateIn", echo_header=("X-Session-ID", "session_id"),
        errors=(InvalidConfigError, SessionLimitError),
    ),
    Endpoint(
        "count_sessions", "GET", "/sessions/count", "Count live sessions", "sessions",
        lambda k, op: k.count_sessions(), retry_safe=True,
    ),
    Endpoint(
        "get_session", "GET", _S, "Session info", "sessions",
        lambda k, op: k.get_session(op.sid), retry_safe=True,
    ),
    Endpoint(
        "delete_session", "DELETE", _S, "Delete a session", "sessions",
        lambda k, op: k.delete_session(op.sid),
    ),
    Endpoint(
        "session_exists", "GET", _S + "/exists", "Does it exist?", "sessions",
        lambda k, op: k.session_exists(op.sid), retry_safe=True, needs_session=False,
    ),
    Endpoint(
        "extend_session", "POST", _S + "/extend", "Set and restart TTL", "sessions",
        lambda k, op: k.extend_session(op.sid, op.args["ttl_seconds"]),
        query=(
            QueryParam(
                "ttl_seconds", ge=MIN_SESSION_TTL, le=MAX_TTL, core_checks=True,
                description="new TTL length in seconds",
            ),
        ),
        errors=(InvalidConfigError,),
    ),
    Endpoint(
        "get_session_config", "GET", _S + "/config", "Effective config", "sessions",
        lambda k, op: k.get_session_config(op.sid), retry_safe=True,
    ),
    Endpoint(
        "update_session_config", "POST", _S + "/config", "Update config", "sessions",
        lambda k, op: k.update_session_config(op.sid, _config_of(op.json)),
        body="ConfigUpdateIn", errors=(InvalidConfigError,),
    ),
    Endpoint(
        "observe", "POST", _S + "/observe", "Observe", "sessions",
        lambda k, op: k.observe(op.sid, op.json),
        idempotency_key="unique_id", body="ObservationIn",
        errors=(VectorDimensionError, LimitExceededError, StmFullError),
    ),
    Endpoint(
        "observe_sequence", "POST", _S + "/observe-sequence", "Observe a batch", "sessions",
        lambda k, op: k.observe_sequence(op.sid, op.json),
        body="ObserveSequenceIn",
        errors=(VectorDimensionError, EmptySTMError, LimitExceededError, StmFullError),
    ),
    Endpoint(
        "get_stm", "GET", _S + "/stm", "Short-term memory", "sessions",
        lambda k, op: k.get_stm(op.sid), retry_safe=True,
    ),
    Endpoint(
        "learn", "POST", _S + "/learn", "Learn the STM", "sessions",
        lambda k, op: k.learn(op.sid), errors=(EmptySTMError,),
    ),
    Endpoint(
        "get_predictions", "GET", _S + "/predictions", "Predictions", "sessions",
        lambda k, op: k.get_predictions(op.sid), retry_safe=True,
    ),
    Endpoint(
        "clear_stm", "POST", _S + "/clear-stm", "Clear STM", "sessions",
        lambda k, op: k.clear_stm(op.sid),
    ),
    Endpoint(
        "clear_all", "POST", _S + "/clear-all", "Clear STM and node LTM", "sessions",
        lambda k, op: k.clear_all(op.sid),
    ),
    Endpoint(
        "get_percept_data", "GET", _S + "/percept-data", "Last percept", "sessions",
        lambda k, op: k.get_percept_data(op.sid), retry_safe=True,
    ),
    Endpoint(
        "get_cognition_data", "GET", _S + "/cognition-data", "Cognition", "sessions",
        lambda k, op: k.get_cognition_data(op.sid), retry_safe=True,
    ),
    Endpoint(
        "get_pattern", "GET", "/pattern/{pattern_name}", "One learned pattern", "nodes",
        lambda k, op: k.get_pattern(op.nid, op.args["pattern_name"]),
        retry_safe=True, node=True, errors=(NotFoundError,),
    ),
    Endpoint(
        "list_patterns", "GET", "/patterns", "Learned patterns, paginated", "nodes",
        lambda k, op: k.list_patterns(
            op.nid, offset=op.args.get("offset", 0), limit=op.args.get("limit", 100)
        ),
        retry_safe=True, node=True,
        query=(
            QueryParam("offset", 0, ge=0, le=MAX_OFFSET),
            QueryParam("limit", 100, ge=1, le=1000),
        ),
    ),
    Endpoint(
        "symbol_stats", "GET", "/symbols/stats", "Symbol statistics and totals", "nodes",
        lambda k, op: k.symbol_stats(op.nid), retry_safe=True, node=True,
    ),
    Endpoint(
        "node_percept_data", "GET", "/percept-data", "A node's percept (KATO's)", "nodes",
        lambda k, op: k.node_percept_data(op.nid), retry_safe=True, node=True,
    ),
    Endpoint(
        "node_cognition_data", "GET", "/cognition-data", "A node's cognition (KATO's)", "nodes",
        lambda k, op: k.node_cognition_data(op.nid), retry_safe=True, node=True,
    ),
)  # fmt: skip

_BY_NAME = {e.name: e for e in ENDPOINTS}


def endpoint(name: str) -> Endpoint:
    """The operation called ``name``; ``KeyError`` if the API has none."""
    return _BY_NAME[name]


# -- one call ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Operation:
    """One call of an :class:`Endpoint` with its arguments: what a client sends and what a
    route hands the core. ``args`` are the other path parameters and the query parameters."""

    endpoint: Endpoint
    session_id: str | None = None
    node_id: str | None = None
    args: Mapping[str, Any] = field(default_factory=dict)
    body: Mapping[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.endpoint.name

    @property
    def method(self) -> str:
        return self.endpoint.method

    @property
    def path(self) -> str:
        """The request path, each parameter percent-encoded whole."""
        values = {**self.args, "session_id": self.session_id}
        quoted = {name: quote(str(values[name]), safe="") for name in self.endpoint.path_params}
        return self.endpoint.path.format(**quoted)

    @property
    def params(self) -> dict[str, Any]:
        """The query parameters (the node id first, for node operations)."""
        path_params = self.endpoint.path_params
        query = {k: v for k, v in self.args.items() if k not in path_params}
        return {"node_id": self.node_id, **query} if self.endpoint.node else query

    @property
    def retry_safe(self) -> bool:
        """Whether a transport may send it again after a lost response."""
        key = self.endpoint.idempotency_key
        return self.endpoint.retry_safe or (key is not None and self.json.get(key) is not None)

    @property
    def sid(self) -> str:
        assert self.session_id is not None, self
        return self.session_id

    @property
    def nid(self) -> str:
        assert self.node_id is not None, self
        return self.node_id

    @property
    def json(self) -> Mapping[str, Any]:
        return self.body if self.body is not None else {}

    def call(self, kato: Kato) -> Coroutine[Any, Any, Body]:
        """Serve this operation on ``kato`` (the core), as the service does."""
        return self.endpoint.call(kato, self)


def operation(
    name: str,
    *,
    session_id: str | None = None,
    node_id: str | None = None,
    body: Mapping[str, Any] | None = None,
    **args: Any,
) -> Operation:
    """The call of operation ``name``; ``args`` fill its other path and query parameters."""
    return Operation(endpoint(name), session_id, node_id, args, body)
