"""Every call a client can make, described once as an :class:`Operation`.

An operation names the :class:`~kato.core.Kato` method that serves it *and* the HTTP request
that reaches that method through the service, so the in-process transport and the HTTP transport
run the very same list of operations and cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from kato.core import Kato

__all__ = ["Operation", "run_locally"]

Body = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Operation:
    """One API call: the core method ``name`` and its HTTP ``method`` and ``path``.

    ``retry_safe`` marks calls a transport may repeat after a lost response: reads, and
    observations that carry a ``unique_id`` (the service applies those at most once).
    """

    name: str
    method: str
    path: str
    session_id: str | None = None
    node_id: str | None = None
    body: Mapping[str, Any] | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    retry_safe: bool = False


def _session_path(session_id: str, suffix: str = "") -> str:
    return f"/sessions/{quote(session_id, safe='')}{suffix}"


def create_session(
    node_id: str,
    *,
    metadata: Mapping[str, Any] | None,
    ttl_seconds: int | None,
    config: Mapping[str, Any] | None,
) -> Operation:
    body = {"node_id": node_id, "metadata": dict(metadata or {}), "ttl_seconds": ttl_seconds}
    body["config"] = dict(config) if config else None
    return Operation("create_session", "POST", "/sessions", node_id=node_id, body=body)


def session_read(name: str, session_id: str, suffix: str) -> Operation:
    """A GET on the session (``get_stm``, ``get_predictions``, ...); reads are retry-safe."""
    return Operation(
        name, "GET", _session_path(session_id, suffix), session_id=session_id, retry_safe=True
    )


def session_write(
    name: str, session_id: str, suffix: str, body: Mapping[str, Any] | None = None
) -> Operation:
    """A POST that changes the session; never retried by a transport."""
    return Operation(
        name, "POST", _session_path(session_id, suffix), session_id=session_id, body=body
    )


def delete_session(session_id: str) -> Operation:
    return Operation("delete_session", "DELETE", _session_path(session_id), session_id=session_id)


def extend_session(session_id: str, ttl_seconds: int) -> Operation:
    return Operation(
        "extend_session",
        "POST",
        _session_path(session_id, "/extend"),
        session_id=session_id,
        params={"ttl_seconds": ttl_seconds},
    )


def observe(session_id: str, payload: Mapping[str, Any]) -> Operation:
    return Operation(
        "observe",
        "POST",
        _session_path(session_id, "/observe"),
        session_id=session_id,
        body=payload,
        retry_safe=payload.get("unique_id") is not None,
    )


def count_sessions() -> Operation:
    return Operation("count_sessions", "GET", "/sessions/count", retry_safe=True)


def get_pattern(node_id: str, name: str) -> Operation:
    return Operation(
        "get_pattern",
        "GET",
        f"/pattern/{quote(name, safe='')}",
        node_id=node_id,
        params={"node_id": node_id},
        retry_safe=True,
    )


def list_patterns(node_id: str, *, offset: int, limit: int) -> Operation:
    params = {"node_id": node_id, "offset": offset, "limit": limit}
    return Operation(
        "list_patterns", "GET", "/patterns", node_id=node_id, params=params, retry_safe=True
    )


def symbol_stats(node_id: str) -> Operation:
    return Operation(
        "symbol_stats",
        "GET",
        "/symbols/stats",
        node_id=node_id,
        params={"node_id": node_id},
        retry_safe=True,
    )


def _sid(op: Operation) -> str:
    assert op.session_id is not None, op
    return op.session_id


def _nid(op: Operation) -> str:
    assert op.node_id is not None, op
    return op.node_id


def _body(op: Operation) -> Mapping[str, Any]:
    return op.body or {}


_LOCAL: dict[str, Callable[[Kato, Operation], Awaitable[Body]]] = {
    "create_session": lambda k, op: k.create_session(
        _nid(op),
        metadata=_body(op).get("metadata"),
        ttl_seconds=_body(op).get("ttl_seconds"),
        config=_body(op).get("config"),
    ),
    "get_session": lambda k, op: k.get_session(_sid(op)),
    "session_exists": lambda k, op: k.session_exists(_sid(op)),
    "delete_session": lambda k, op: k.delete_session(_sid(op)),
    "extend_session": lambda k, op: k.extend_session(_sid(op), op.params["ttl_seconds"]),
    "count_sessions": lambda k, op: k.count_sessions(),
    "get_session_config": lambda k, op: k.get_session_config(_sid(op)),
    "update_session_config": lambda k, op: k.update_session_config(
        _sid(op), _body(op).get("config", {})
    ),
    "observe": lambda k, op: k.observe(_sid(op), _body(op)),
    "observe_sequence": lambda k, op: k.observe_sequence(_sid(op), _body(op)),
    "learn": lambda k, op: k.learn(_sid(op)),
    "clear_stm": lambda k, op: k.clear_stm(_sid(op)),
    "clear_all": lambda k, op: k.clear_all(_sid(op)),
    "get_stm": lambda k, op: k.get_stm(_sid(op)),
    "get_predictions": lambda k, op: k.get_predictions(_sid(op)),
    "get_percept_data": lambda k, op: k.get_percept_data(_sid(op)),
    "get_cognition_data": lambda k, op: k.get_cognition_data(_sid(op)),
    "get_pattern": lambda k, op: k.get_pattern(_nid(op), unquote(op.path.rsplit("/", 1)[1])),
    "list_patterns": lambda k, op: k.list_patterns(
        _nid(op), offset=op.params["offset"], limit=op.params["limit"]
    ),
    "symbol_stats": lambda k, op: k.symbol_stats(_nid(op)),
}


async def run_locally(kato: Kato, op: Operation) -> Body:
    """Serve ``op`` by calling the core directly (the in-process transport)."""
    return await _LOCAL[op.name](kato, op)
