"""The HTTP routes of api.md, each a thin call into :class:`~kato.core.Kato`.

Request bodies are pydantic models so that ``/openapi.json`` describes them truthfully and bad
types are refused with 422 before the core is reached; the core validates again and owns every
rule. Fixed segments are declared before parameters (``/sessions/count`` before
``/sessions/{session_id}``) and every route also answers with a trailing slash.
"""

from __future__ import annotations

import contextlib
import time
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from kato._version import __version__
from kato.core import Kato, check_node_id
from kato.exceptions import (
    MethodNotAllowedError,
    StoreUnavailableError,
    ValidationError,
)
from kato.observability import Metrics, current_trace

__all__ = ["build_router"]

Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
#: The largest pattern-list offset: what every LTM backend can take as an integer.
MAX_OFFSET = 2**31 - 1
Body = dict[str, Any]


class ObservationIn(BaseModel):
    """One observation (engine.md §2.1): strings, vectors, emotives, metadata, unique_id."""

    model_config = ConfigDict(extra="ignore")
    strings: list[StrictStr] = Field(default_factory=list)
    vectors: list[list[Number]] = Field(default_factory=list)
    emotives: dict[str, Number] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    unique_id: StrictStr | None = Field(default=None, min_length=1, max_length=128)


class ObserveSequenceIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    observations: list[ObservationIn] = Field(default_factory=list)
    learn_after_each: StrictBool = False
    learn_at_end: StrictBool = False
    clear_stm_between: StrictBool = False


class SessionCreateIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    node_id: StrictStr = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.\-]+$")
    metadata: dict[str, Any] = Field(default_factory=dict)
    ttl_seconds: StrictInt | None = None
    config: dict[str, Any] | None = None


class SlashTolerantRouter(APIRouter):
    """Registers every route twice, with and without a trailing slash (the second unlisted),
    so ``/sessions/count/`` is routed exactly like ``/sessions/count`` instead of redirected."""

    def add_api_route(self, path: str, endpoint: Any, **kwargs: Any) -> None:
        super().add_api_route(path, endpoint, **kwargs)
        if path != "/" and not path.endswith("/"):
            twin = {**kwargs, "include_in_schema": False}
            super().add_api_route(path + "/", endpoint, **twin)


class _Tag(StrEnum):
    sessions = "sessions"
    nodes = "nodes"
    service = "service"


def _node_from_request(
    node_id: Annotated[
        str | None, Query(description="The node (else X-Node-ID or x-test-id)")
    ] = None,
    x_node_id: Annotated[str | None, Header()] = None,
    x_test_id: Annotated[str | None, Header()] = None,
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


def build_router(kato: Kato, metrics: Metrics, started: float) -> APIRouter:
    """All routes, closed over one deployment (no module-level state)."""
    router = SlashTolerantRouter()
    sessions = _Tag.sessions

    # -- sessions: fixed paths first ---------------------------------------------------------
    @router.post("/sessions", tags=[sessions], summary="Create a session")
    async def create_session(body: SessionCreateIn, response: Response) -> Body:
        created = await kato.create_session(
            body.node_id, metadata=body.metadata, ttl_seconds=body.ttl_seconds, config=body.config
        )
        response.headers["X-Session-ID"] = created["session_id"]
        return created

    @router.get("/sessions/count", tags=[sessions], summary="Count live sessions")
    async def count_sessions() -> Body:
        return await kato.count_sessions()

    @router.api_route(
        "/sessions/count", methods=["POST", "PUT", "PATCH", "DELETE"], include_in_schema=False
    )
    async def count_wrong_method(request: Request) -> Body:
        raise MethodNotAllowedError(f"Method {request.method} not allowed on /sessions/count")

    # -- one session -------------------------------------------------------------------------
    @router.get("/sessions/{session_id}", tags=[sessions], summary="Session info")
    async def get_session(session_id: str) -> Body:
        return await kato.get_session(session_id)

    @router.delete("/sessions/{session_id}", tags=[sessions], summary="Delete a session")
    async def delete_session(session_id: str) -> Body:
        return await kato.delete_session(session_id)

    @router.get("/sessions/{session_id}/exists", tags=[sessions], summary="Does it exist?")
    async def session_exists(session_id: str) -> Body:
        return await kato.session_exists(session_id)

    @router.post("/sessions/{session_id}/extend", tags=[sessions], summary="Set and restart TTL")
    async def extend_session(
        session_id: str,
        ttl_seconds: Annotated[int, Query(description="new TTL length in seconds (1..86400)")],
    ) -> Body:
        return await kato.extend_session(session_id, ttl_seconds)

    @router.get("/sessions/{session_id}/config", tags=[sessions], summary="Effective config")
    async def get_session_config(session_id: str) -> Body:
        return await kato.get_session_config(session_id)

    @router.post("/sessions/{session_id}/config", tags=[sessions], summary="Update config")
    async def update_session_config(session_id: str, body: dict[str, Any]) -> Body:
        nested = body.get("config")
        return await kato.update_session_config(
            session_id, nested if isinstance(nested, dict) else body
        )

    @router.post("/sessions/{session_id}/observe", tags=[sessions], summary="Observe")
    async def observe(session_id: str, body: ObservationIn) -> Body:
        return await kato.observe(session_id, body.model_dump(exclude_none=True))

    @router.post(
        "/sessions/{session_id}/observe-sequence", tags=[sessions], summary="Observe a batch"
    )
    async def observe_sequence(session_id: str, body: ObserveSequenceIn) -> Body:
        return await kato.observe_sequence(session_id, body.model_dump(exclude_none=True))

    @router.get("/sessions/{session_id}/stm", tags=[sessions], summary="Short-term memory")
    async def get_stm(session_id: str) -> Body:
        return await kato.get_stm(session_id)

    @router.post("/sessions/{session_id}/learn", tags=[sessions], summary="Learn the STM")
    async def learn(session_id: str) -> Body:
        return await kato.learn(session_id)

    @router.get("/sessions/{session_id}/predictions", tags=[sessions], summary="Predictions")
    async def get_predictions(session_id: str) -> Body:
        return await kato.get_predictions(session_id)

    @router.post("/sessions/{session_id}/clear-stm", tags=[sessions], summary="Clear STM")
    async def clear_stm(session_id: str) -> Body:
        return await kato.clear_stm(session_id)

    @router.post(
        "/sessions/{session_id}/clear-all", tags=[sessions], summary="Clear STM and node LTM"
    )
    async def clear_all(session_id: str) -> Body:
        return await kato.clear_all(session_id)

    @router.get("/sessions/{session_id}/percept-data", tags=[sessions], summary="Last percept")
    async def get_percept_data(session_id: str) -> Body:
        return await kato.get_percept_data(session_id)

    @router.get("/sessions/{session_id}/cognition-data", tags=[sessions], summary="Cognition")
    async def get_cognition_data(session_id: str) -> Body:
        return await kato.get_cognition_data(session_id)

    # -- nodes -------------------------------------------------------------------------------
    @router.get("/pattern/{pattern_name}", tags=[_Tag.nodes], summary="One learned pattern")
    async def get_pattern(pattern_name: str, node: NodeId) -> Body:
        return await kato.get_pattern(node, pattern_name)

    @router.get("/patterns", tags=[_Tag.nodes], summary="Learned patterns, paginated")
    async def list_patterns(
        node: NodeId,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> Body:
        return await kato.list_patterns(node, offset=offset, limit=limit)

    @router.get("/symbols/stats", tags=[_Tag.nodes], summary="Symbol statistics and totals")
    async def symbol_stats(node: NodeId) -> Body:
        return await kato.symbol_stats(node)

    # -- service -----------------------------------------------------------------------------
    @router.get("/", tags=[_Tag.service], summary="Service description")
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

    @router.get("/health", tags=[_Tag.service], summary="Health of the service and its stores")
    async def health() -> JSONResponse:
        body = await kato.health(started=started)
        return JSONResponse(body, status_code=503 if body["status"] == "unhealthy" else 200)

    @router.get("/status", tags=[_Tag.service], summary="Process-wide status")
    async def status() -> Body:
        try:
            active = (await kato.count_sessions())["active_session_count"]
        except StoreUnavailableError:
            active = None
        return {
            "status": "running",
            "version": __version__,
            "workers": kato.settings.workers,
            "store": kato.settings.store,
            "sessions": {"active": active},
            "uptime_seconds": round(time.monotonic() - started, 3),
        }

    @router.get("/metrics", tags=[_Tag.service], summary="Prometheus metrics")
    async def metrics_endpoint() -> Response:
        # If the store is down its own metrics show it; the exposition is served regardless.
        with contextlib.suppress(StoreUnavailableError):
            metrics.active_sessions.set((await kato.count_sessions())["active_session_count"])
        return Response(metrics.exposition(), media_type="text/plain; version=0.0.4")

    return router
