"""The HTTP routes: one per operation of :data:`kato.api.ENDPOINTS`, plus the service's own
(``/``, ``/health``, ``/status``, and the monitoring of :mod:`kato.service.monitoring`).

Each operation's route is generated from its table entry: the entry's path, query and body
parameters become the endpoint's signature (so FastAPI parses, validates and documents them),
and the handler hands the core exactly the :class:`~kato.api.Operation` the in-process client
would. Every route also answers with a trailing slash.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

from kato._version import __version__
from kato.api import ENDPOINTS, Body, Endpoint, Operation, shapes
from kato.core import NODE_ID_PATTERN, Kato, check_node_id
from kato.exceptions import (
    MethodNotAllowedError,
    NotFoundError,
    StoreUnavailableError,
    ValidationError,
)
from kato.observability import Metrics, current_trace
from kato.service.monitoring import Monitor, statistics
from kato.service.openapi import error_responses, middleware_errors

__all__ = ["SlashTolerantRouter", "allowed_methods", "build_router", "operation_reply"]

#: The name of the route that refuses methods ``/sessions/count`` does not serve.
_REFUSER = "count_wrong_method"


class SlashTolerantRouter(APIRouter):
    """Registers every route twice, with and without a trailing slash (the second unlisted),
    so ``/sessions/count/`` is routed exactly like ``/sessions/count`` instead of redirected.
    ``operations`` are the table's entries it serves, by route name (for the fast path)."""

    def __init__(self) -> None:
        super().__init__()
        self.operations: dict[str, Endpoint] = {}

    def add_api_route(self, path: str, endpoint: Any, **kwargs: Any) -> None:
        super().add_api_route(path, endpoint, **kwargs)
        if path != "/" and not path.endswith("/"):
            twin = {**kwargs, "include_in_schema": False}
            super().add_api_route(path + "/", endpoint, **twin)


def allowed_methods(routes: Sequence[BaseRoute], scope: Scope) -> list[str]:
    """The methods ``scope``'s path is served with by ``routes``, as routing would dispatch
    them (for the ``Allow`` of a 405): a method counts when the first route it fully matches is
    not the refuser of ``/sessions/count``."""
    candidates = {
        method
        for route in routes
        if route.matches(scope)[0] is not Match.NONE
        for method in getattr(route, "methods", None) or ()
    }
    allowed = []
    for method in sorted(candidates):
        probe = {**scope, "method": method}  # some route takes it: the one it came from
        first = next(route for route in routes if route.matches(probe)[0] is Match.FULL)
        if getattr(first, "name", None) != _REFUSER:
            allowed.append(method)
    return allowed


#: How ``/openapi.json`` states the node of a node operation: a required query parameter (the
#: headers the service also reads are an alternative OpenAPI cannot express).
_NODE_PARAMETER = {
    "name": "node_id",
    "in": "query",
    "required": True,
    "description": "The node (the X-Node-ID header may carry it instead)",
    "schema": {"type": "string", "pattern": f"^{NODE_ID_PATTERN.pattern}$"},
}


def _node_from_request(
    node_id: Annotated[str | None, Query(include_in_schema=False)] = None,
    x_node_id: Annotated[str | None, Header(include_in_schema=False)] = None,
    x_test_id: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> str:
    chosen = node_id or x_node_id or x_test_id
    if chosen is None:
        raise ValidationError(
            "node_id is required: pass ?node_id=, or the X-Node-ID header",
            details={"errors": [{"field": "query.node_id", "problem": "missing"}]},
        )
    node = check_node_id(chosen)
    trace = current_trace()
    if trace is not None:
        trace.node_id = node
    return node


NodeId = Annotated[str, Depends(_node_from_request)]

_PROMETHEUS = "text/plain; version=0.0.4"
Minutes = Annotated[int, Query(ge=1, le=1440, description="the window, in minutes")]


def _wants_prometheus(accept: str) -> bool:
    """Whether an ``Accept`` header asks for the text exposition (Prometheus names
    ``application/openmetrics-text`` and ``text/plain``; KATO's clients send ``*/*``)."""
    types = {part.split(";", 1)[0].strip().lower() for part in accept.split(",")}
    return bool(types & {"text/plain", "application/openmetrics-text"})


def _parameters(ep: Endpoint) -> list[inspect.Parameter]:
    """The endpoint signature FastAPI reads ``ep``'s request from: path parameters, the node,
    query parameters and the body."""

    P = inspect.Parameter

    def param(name: str, annotation: Any, default: Any = P.empty) -> inspect.Parameter:
        return P(name, P.KEYWORD_ONLY, default=default, annotation=annotation)

    params = [param(name, str) for name in ep.path_params]
    if ep.node:
        params.append(param("node", NodeId))
    for q in ep.query:
        if q.core_checks:
            documented = {"minimum": q.ge, "maximum": q.le}
            rule = Query(description=q.description, json_schema_extra=documented)
        else:
            rule = Query(ge=q.ge, le=q.le, description=q.description)
        default = P.empty if q.default is None else q.default
        params.append(param(q.name, Annotated[int, rule], default))
    if ep.body is not None:
        params.append(param("body", getattr(shapes, ep.body)))
    return params


#: The encoder of every operation's answer, on both paths to the core (the FastAPI route and
#: :mod:`kato.service.fastpath`), so that they answer the same bytes. msgspec writes what
#: pydantic's ``dump_json`` did (a non-finite float as ``null``), several times faster, except
#: exponents: ``1e16``, not ``1e+16``.
_encode = msgspec.json.Encoder().encode


def operation_reply(ep: Endpoint, result: Body) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """The body and headers of ``ep``'s 200 answer ``result`` (with its echoed header)."""
    body = _encode(result)
    headers = [(b"content-length", b"%d" % len(body)), (b"content-type", b"application/json")]
    if ep.echo_header is not None:
        header, field = ep.echo_header
        headers.append((header.lower().encode(), str(result[field]).encode("latin-1")))
    return body, headers


class _Reply(Response):
    """An operation's 200 answer, as :func:`operation_reply` makes it."""

    def __init__(self, ep: Endpoint, result: Body) -> None:
        super().__init__()
        self.body, self.raw_headers = operation_reply(ep, result)


def _handler(kato: Kato, ep: Endpoint) -> Callable[..., Awaitable[Response]]:
    """The route of ``ep``: the request's parts, as an :class:`Operation`, served by the core."""

    async def handle(**request: Any) -> Response:
        body = request.pop("body", None)
        op = Operation(
            ep,
            session_id=request.pop("session_id", None),
            node_id=request.pop("node", None),
            args=request,
            body=body.model_dump(exclude_none=True) if isinstance(body, BaseModel) else body,
        )
        return _Reply(ep, await op.call(kato))

    # The declared answer stays ``Body`` (what /openapi.json documents); the route returns it
    # already encoded.
    handle.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        _parameters(ep), return_annotation=Body
    )
    return handle


def build_router(
    kato: Kato, metrics: Metrics, monitor: Monitor, started: float
) -> SlashTolerantRouter:
    """All routes, closed over one deployment (no module-level state)."""
    router = SlashTolerantRouter()
    middleware = middleware_errors(kato.settings)

    # Before ``/sessions/{session_id}`` would take ``count`` for a session id.
    @router.api_route(
        "/sessions/count",
        methods=["POST", "PUT", "PATCH", "DELETE"],
        include_in_schema=False,
        name=_REFUSER,
    )
    async def count_wrong_method(request: Request) -> Body:
        raise MethodNotAllowedError(f"Method {request.method} not allowed on /sessions/count")

    for ep in ENDPOINTS:
        router.operations[ep.name] = ep
        router.add_api_route(
            ep.path,
            _handler(kato, ep),
            methods=[ep.method],
            name=ep.name,
            tags=[ep.tag],
            summary=ep.summary,
            responses=error_responses((*ep.refusals, *middleware)),
            openapi_extra={"parameters": [_NODE_PARAMETER]} if ep.node else None,
        )

    # -- service -----------------------------------------------------------------------------
    unlimited = middleware_errors(kato.settings, rate_limited=False)

    @router.get(
        "/",
        tags=["service"],
        summary="Service description",
        responses=error_responses(middleware),
    )
    async def root() -> Body:
        return {
            "service": "KATO",
            "version": __version__,
            "description": "Deterministic pattern learning with per-user sessions",
            "docs": "/docs",
            "health": "/health",
            "status": "running",
            "uptime_seconds": round(time.monotonic() - started, 3),
            "session_support": True,
        }

    @router.get(
        "/health",
        tags=["service"],
        summary="Health of the service and its stores",
        response_model=Body,
        responses={
            **error_responses(unlimited),
            503: {"model": Body, "description": "unhealthy: a store is down (the same body)"},
        },
    )
    async def health() -> JSONResponse:
        latest = monitor.latest
        body = await kato.health(started=started, issues=monitor.issues())
        body["metrics_collected"] = len(monitor.ring)
        body["last_collection"] = latest.timestamp if latest is not None else None
        return JSONResponse(body, status_code=503 if body["status"] == "unhealthy" else 200)

    @router.get(
        "/status",
        tags=["service"],
        summary="Process-wide status",
        responses=error_responses(middleware),
    )
    async def status() -> Body:
        return {
            "status": "running",
            "processor_id": kato.settings.processor_id,
            "version": __version__,
            "workers": kato.settings.workers,
            "store": kato.settings.store,
            "sessions": {"active": await _active()},
            "uptime_seconds": round(time.monotonic() - started, 3),
        }

    async def _active() -> int | None:
        """Live sessions in the store; ``None`` if it cannot be reached (its metrics say so)."""
        try:
            active: int = (await kato.count_sessions())["active_session_count"]
        except StoreUnavailableError:
            return None
        metrics.active_sessions.set(active)
        return active

    @router.get(
        "/metrics",
        tags=["service"],
        summary="Metrics: Prometheus text for scrapers, KATO's JSON otherwise",
        description=(
            "An `Accept` naming `text/plain` or `application/openmetrics-text` (what Prometheus "
            "sends) gets the text exposition; any other gets KATO's JSON (`timestamp`, "
            "`sessions`, `performance`, `resources`, `databases`, `rates`, "
            "`processor_manager`). Both aggregate every worker process."
        ),
        responses={
            200: {"content": {"application/json": {}, _PROMETHEUS: {}}},
            **error_responses(unlimited, json_route=False),
        },
    )
    async def metrics_endpoint(request: Request) -> Response:
        active = await _active()
        if _wants_prometheus(request.headers.get("accept", "")):
            return Response(metrics.exposition(), media_type=_PROMETHEUS)
        totals = await asyncio.to_thread(monitor.totals)
        return JSONResponse(
            {
                "timestamp": time.time(),
                **monitor.summary(totals, active),
                "rates": monitor.rates(totals),
                "processor_manager": monitor.processor_manager(),
                "uptime_seconds": round(time.monotonic() - started, 3),
                "active_sessions": active,
            }
        )

    @router.get(
        "/stats",
        tags=["service"],
        summary="Time series of the last minutes (KATO's)",
        responses=error_responses([*middleware, ValidationError]),
    )
    async def stats(minutes: Minutes = 10) -> Body:
        totals = await asyncio.to_thread(monitor.totals)
        active = await _active()
        return {
            "time_range_minutes": minutes,
            "timestamp": time.time(),
            "processor_id": kato.settings.processor_id,
            "processor_manager": monitor.processor_manager(),
            "current_status": monitor.current_status(totals),
            "time_series": monitor.time_series(minutes),
            "summary": monitor.summary(totals, active),
        }

    @router.get(
        "/metrics/{metric_name}",
        tags=["service"],
        summary="One time series (KATO's)",
        responses=error_responses([*middleware, ValidationError, NotFoundError]),
    )
    async def metric_history(metric_name: str, minutes: Minutes = 10) -> Body:
        points = monitor.series(metric_name, minutes)
        if not points:
            raise NotFoundError(
                f"No data available for metric '{metric_name}' in the last {minutes} minutes"
            )
        return {
            "metric_name": metric_name,
            "time_range_minutes": minutes,
            "timestamp": time.time(),
            "statistics": statistics(points),
            "data_points": points,
        }

    return router
