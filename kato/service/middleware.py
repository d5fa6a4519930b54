"""The request observer: ids, headers, the body bounds, one log line and metrics per request.

A plain ASGI middleware (no per-request task or body copy). It gives every request an id
(echoing ``X-Request-ID`` or ``X-Trace-ID`` when the client sent a sane one), stamps
``X-Request-ID``, ``X-Kato-Worker`` and ``X-Session-ID`` on every response, and turns an
unexpected exception into a logged 500 with the standard error shape instead of a bare crash.

It also bounds what request bodies may cost a worker, before anything parses them:

* a body over ``max_body_bytes`` is refused with 413 ``PAYLOAD_TOO_LARGE``;
* the bytes that the bodies being received may still bring (their ``Content-Length``; a chunked
  body counts as ``max_body_bytes``) are reserved from a per-worker budget of
  ``max_bodies_in_flight`` bytes; a request that does not fit is answered 503 ``SERVER_BUSY``
  with ``Retry-After`` and its body is never read, so 300 slow 4 MB uploads cannot hold 1.2 GB;
* a body that has not fully arrived ``body_timeout_s`` seconds after the request began is
  answered 408 ``REQUEST_TIMEOUT``, nothing more of it is read and the connection is closed.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import os
import re
import secrets
import time
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kato.exceptions import KatoError, PayloadTooLargeError, ServerBusyError
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


class _BodyTimedOut(HTTPException):
    """Raised when the body is late; the answer closes the connection (its rest is unread)."""

    def __init__(self) -> None:
        super().__init__(status_code=408, headers={"Connection": "close"})


class BodyBudget:
    """Bytes of request bodies one worker process has promised to receive (its requests in
    flight), against a fixed ``limit``; one event loop uses it, so no lock is needed."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.reserved = 0

    def take(self, size: int) -> bool:
        """Reserve ``size`` bytes if they fit; ``False`` (and nothing reserved) if not."""
        if self.reserved + size > self.limit:
            return False
        self.reserved += size
        return True

    def give(self, size: int) -> None:
        self.reserved -= size


#: The request headers the observer reads, gathered in one pass (the first of each).
_READ = frozenset({b"x-request-id", b"x-trace-id", b"content-length", b"transfer-encoding"})


def _headers(scope: Scope) -> dict[bytes, str]:
    found: dict[bytes, str] = {}
    for key, value in scope.get("headers", ()):
        if key in _READ and key not in found:
            found[key] = value.decode("latin-1")
    return found


class RequestObserver:
    """Wraps the app; see the module docstring."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        max_body_bytes: int,
        max_bodies_in_flight: int | None = None,
        body_timeout_s: float = math.inf,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.budget = BodyBudget(max_bodies_in_flight or max_body_bytes * 8)
        self.body_timeout_s = body_timeout_s
        self.pid = os.getpid()
        self.worker = str(self.pid).encode()
        # Request ids: 32 hex digits, this worker's random half and a count (a uuid4 per request
        # cost a system call and a fifth of this middleware's time).
        self._id_prefix = secrets.token_hex(8)
        self._ids = itertools.count(1)

    def _reservation(self, headers: dict[bytes, str]) -> int:
        """The body bytes a request may still bring: its ``Content-Length``, else for a chunked
        body ``max_body_bytes`` (over the limit it is refused anyway)."""
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit():
            return min(int(declared), self.max_body_bytes)
        return self.max_body_bytes if headers.get(b"transfer-encoding") else 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        incoming = headers.get(b"x-request-id") or headers.get(b"x-trace-id")
        request_id = (
            incoming
            if incoming and _SAFE_REQUEST_ID.fullmatch(incoming)
            else f"{self._id_prefix}{next(self._ids):016x}"
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
                sent = list(message.get("headers", ()))
                given = next((v for k, v in sent if k == b"x-session-id"), None)
                sent.append((b"x-request-id", request_id.encode()))
                sent.append((b"x-kato-worker", self.worker))
                if given is not None:
                    session_id = given.decode("latin-1")
                else:
                    session_id = scope.get("path_params", {}).get("session_id")
                    if session_id is not None and looks_like_session_id(session_id):
                        sent.append((b"x-session-id", session_id.encode()))
                message = {**message, "headers": sent}
            await send(message)

        received = 0
        body_done = False
        deadline = asyncio.get_running_loop().time() + self.body_timeout_s

        async def limited_receive() -> Message:
            nonlocal received, body_done
            if body_done or self.body_timeout_s == math.inf:  # later reads wait for a disconnect
                return await receive()
            try:
                remaining = deadline - asyncio.get_running_loop().time()
                message = await asyncio.wait_for(receive(), max(remaining, 0.0))
            except TimeoutError:
                body_done = True
                raise _BodyTimedOut from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
                if received > self.max_body_bytes:
                    raise _BodyTooLarge
            return message

        declared = headers.get(b"content-length")
        reserved = 0
        try:
            if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
                error = PayloadTooLargeError(
                    f"Request body larger than {self.max_body_bytes} bytes"
                )
                await self._reply(scope, receive, send_with_headers, error, request_id)
            elif not self.budget.take(wanted := self._reservation(headers)):
                await self._busy(scope, receive, send_with_headers, request_id)
            else:
                reserved = wanted
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
            self.budget.give(reserved)
            self._record(scope, trace, status, session_id, time.perf_counter() - started)

    @staticmethod
    async def _reply(
        scope: Scope, receive: Receive, send: Send, error: KatoError, request_id: str
    ) -> None:
        await error_response(error, request_id)(scope, receive, send)

    async def _busy(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        """503 ``SERVER_BUSY``: the body budget is spent. The body is left unread, so the
        connection is closed with the answer."""
        error = ServerBusyError(
            f"this worker is receiving {self.budget.reserved} bytes of request bodies, its "
            f"bound is {self.budget.limit}; retry shortly",
            details={"retry_after_s": 1, "max_bodies_in_flight": self.budget.limit},
        )
        response = error_response(error, request_id)
        response.headers.update({"Retry-After": "1", "Connection": "close"})
        await response(scope, receive, send)

    def _record(
        self, scope: Scope, trace: Any, status: int, session_id: str | None, seconds: float
    ) -> None:
        route = scope.get("route")
        path = getattr(route, "path", None)
        template = (path.rstrip("/") or "/") if path else "<unmatched>"
        method = scope.get("method", "")
        key = (method, template, str(status))
        metrics = self.metrics
        metrics.child(metrics.requests, *key).inc()
        metrics.child(metrics.latency, *key[:2]).observe(seconds)
        if not log.isEnabledFor(logging.INFO):
            return
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
                    "worker": self.pid,
                    **trace.extra,
                }
            },
        )
