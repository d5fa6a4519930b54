"""R10 — a middleware that reads the path's second segment as a session id before routing.

**What users saw:** ``GET /sessions/count/`` (trailing slash) and ``POST /sessions/count``
answered "session not found" instead of a count (or 405).

**Mechanism:** to attach the session to each request, a middleware split the URL path itself
before the router ran: under ``/sessions/`` the second segment was taken as a session id and
looked up, and a missing session ended the request with 404 SESSION_NOT_FOUND. Only the exact
string ``GET /sessions/count`` was exempted, so every other spelling of the count route was
taken for a session named ``count``. :class:`PathSessionMiddleware` does just that, in front
of the production app.

**Why production does not have it:** the router resolves paths (fixed segments such as
``/sessions/count`` are declared before ``/sessions/{session_id}``, and every route also answers
with a trailing slash); middleware reads ``path_params`` only after routing and never decides
that a session is missing (style guide, "Work in the wrong layer").

Exposed by ``lifecycle`` (half of its counts spelled ``/sessions/count/``): ``counts`` reports
counts failing with SESSION_NOT_FOUND.
"""

from __future__ import annotations

from typing import Any

from kato.exceptions import SessionNotFoundError
from kato.lab.zoo._variant import Variant
from kato.service.errors import error_response

__all__ = ["VARIANT", "PathSessionMiddleware"]


class PathSessionMiddleware:
    """Looks up ``/sessions/<second segment>`` before routing; 404 if no such session (R10)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            segments = scope["path"].split(
                "/"
            )  # "/sessions/count/" -> ["", "sessions", "count", ""]
            exempt = scope["method"] == "GET" and scope["path"] == "/sessions/count"
            if len(segments) > 2 and segments[1] == "sessions" and segments[2] and not exempt:
                session_id = segments[2]
                if not await self.app.state.kato.sessions.exists(session_id):
                    response = error_response(SessionNotFoundError(session_id), None)
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)


VARIANT = Variant.of(
    __name__, "lifecycle", "counts", workers=1, concurrency=4, operations=112,
    app=PathSessionMiddleware,
)
