"""The request observer: ids, headers, the body limit, one log line and metrics per request.

A plain ASGI middleware (no per-request task or body copy). It gives every request an id
(echoing ``X-Request-ID`` or ``X-Trace-ID`` when the client sent a sane one), refuses bodies over
the limit with 413 before anything parses them, stamps ``X-Request-ID``, ``X-Kato-Worker`` and
``X-Session-ID`` on every response, and turns an unexpected exception into a logged 500 with the
standard error shape instead of a bare crash.
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kato.exceptions import KatoError, PayloadTooLargeError
from kato.observability import Metrics, session_prefix, start_trace
from kato.service.errors import error_response
from kato.sessions import looks_like_session_id

__all__ = ["RequestObserver", "loggable_path"]

log = logging.getLogger("kato.access")
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_SECRET = re.compile(r"session-[0-9a-f]{32}[0-9-]*")
_LOGGED_PATH_CHARS = 200


def loggable_path(path: str) -> str:
    """``path`` as logs may keep it: session ids cut to their prefix, and at most 200
    characters (a session id is the only credential there is; a path can be a megabyte)."""
    cut = _SECRET.sub(lambda match: session_prefix(match.group(0)) or "", path)
    return cut[:_LOGGED_PATH_CHARS] + ("…" if len(cut) > _LOGGED_PATH_CHARS else "")


class _BodyTooLarge(HTTPException):
    """Raised while the body streams in; FastAPI passes HTTP exceptions to the error handlers."""

    def __init__(self) -> None:
        super().__init__(status_code=413)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


class RequestObserver:
    """Wraps the app; see the module docstring."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.worker = str(os.getpid()).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, b"x-request-id") or _header(scope, b"x-trace-id")
        request_id = (
            incoming if incoming and _SAFE_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        )
        scope.setdefault("state", {})["request_id"] = request_id
        trace = start_trace(request_id)
        started = time.perf_counter()
        status = 500
        response_started = False
        session_id: str | None = scope.get("path_params", {}).get("session_id")

        async def send_with_headers(message: Message) -> None:
            nonlocal status, response_started, session_id
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                headers = list(message.get("headers", []))
                given = dict(headers).get(b"x-session-id")
                headers.append((b"x-request-id", request_id.encode()))
                headers.append((b"x-kato-worker", self.worker))
                if given is not None:
                    session_id = given.decode("latin-1")
                else:
                    session_id = scope.get("path_params", {}).get("session_id")
                    if session_id is not None and looks_like_session_id(session_id):
                        headers.append((b"x-session-id", session_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise _BodyTooLarge
            return message

        declared = _header(scope, b"content-length")
        try:
            if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
                error = PayloadTooLargeError(
                    f"Request body larger than {self.max_body_bytes} bytes"
                )
                await self._reply(scope, receive, send_with_headers, error, request_id)
            else:
                await self.app(scope, limited_receive, send_with_headers)
        except Exception:
            log.exception(
                "unhandled error",
                extra={"fields": {"request_id": request_id, "path": loggable_path(scope["path"])}},
            )
            if response_started:
                raise
            internal = KatoError("Internal server error; the request id is in the log")
            await self._reply(scope, receive, send_with_headers, internal, request_id)
        finally:
            self._record(scope, trace, status, session_id, time.perf_counter() - started)

    @staticmethod
    async def _reply(
        scope: Scope, receive: Receive, send: Send, error: KatoError, request_id: str
    ) -> None:
        await error_response(error, request_id)(scope, receive, send)

    def _record(
        self, scope: Scope, trace: Any, status: int, session_id: str | None, seconds: float
    ) -> None:
        route = scope.get("route")
        path = getattr(route, "path", None)
        template = (path.rstrip("/") or "/") if path else "<unmatched>"
        method = scope.get("method", "")
        self.metrics.requests.labels(method, template, str(status)).inc()
        self.metrics.latency.labels(method, template).observe(seconds)
        log.info(
            "request",
            extra={
                "fields": {
                    "request_id": trace.request_id,
                    "method": method,
                    "route": template,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 3),
                    "session": session_prefix(session_id),
                    "node": trace.node_id,
                    "store_calls": trace.store_calls,
                    "store_ms": round(trace.store_seconds * 1000, 3),
                    "worker": os.getpid(),
                    **trace.extra,
                }
            },
        )
