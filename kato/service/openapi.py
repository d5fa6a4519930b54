"""What ``/openapi.json`` says each route answers besides 200: the statuses and the one error shape.

Every error the service sends has the shape of :class:`ErrorBody` (api.md, "One error shape"),
whichever layer answers. A route documents the errors of its operation
(:attr:`kato.api.Endpoint.refusals`) and those the middleware can answer on any route
(:func:`middleware_errors`); a new error answered on every route is added there, a new
operation's own errors go in its table entry. The 405 of a method a path does not serve is not
an operation's answer and is not listed; it carries ``Allow``
(:func:`kato.service.routes.allowed_methods`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, Field

from kato.exceptions import (
    KatoError,
    PayloadTooLargeError,
    RateLimitedError,
    RequestTimeoutError,
    ServerBusyError,
)
from kato.settings import Settings

__all__ = ["ErrorBody", "ErrorInfo", "error_responses", "middleware_errors"]


class ErrorInfo(BaseModel):
    """The ``error`` object: a stable ``code`` to match on, and where the error came from."""

    code: str = Field(description="stable error code, e.g. SESSION_NOT_FOUND")
    message: str
    session_id: str | None
    layer: str = Field(description="the layer that refused: validation, session, store, ...")
    request_id: str | None
    details: dict[str, Any] = Field(
        default_factory=dict, description="per-code details (present only when there are any)"
    )


class ErrorBody(BaseModel):
    """The body of every error response."""

    detail: str = Field(description="the message again (FastAPI-style clients read it)")
    error: ErrorInfo


def middleware_errors(
    settings: Settings, *, rate_limited: bool = True
) -> tuple[type[KatoError], ...]:
    """The errors the middleware can answer on any route, before or around the route itself:
    413 for a body over the limit, 408 for a body that did not arrive in time, 503 when the
    worker holds too many bodies in flight, 429 when the per-client rate limit is on
    (``rate_limited`` is false for the routes it exempts), and 500 for an unexpected failure."""
    limited = (RateLimitedError,) if rate_limited and settings.rate_limit > 0 else ()
    return (PayloadTooLargeError, RequestTimeoutError, ServerBusyError, *limited, KatoError)


#: An error response of a route whose own answers are not JSON (FastAPI would give a ``model``
#: the route's media type); :class:`ErrorBody` is in the components through the other routes.
_JSON_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}


def error_responses(
    errors: Iterable[type[KatoError]], *, json_route: bool = True
) -> dict[int | str, dict[str, Any]]:
    """FastAPI ``responses=`` for ``errors``: one entry per status, naming its codes."""
    codes: dict[int, list[str]] = {}
    for error in errors:
        listed = codes.setdefault(error.status, [])
        if error.code not in listed:
            listed.append(error.code)
    shape = {"model": ErrorBody} if json_route else {"content": _JSON_ERROR}
    return {
        status: {**shape, "description": " or ".join(codes[status])} for status in sorted(codes)
    }
