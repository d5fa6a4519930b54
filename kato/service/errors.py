"""The service's one error shape, whatever layer answers (api.md, "One error shape")."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from kato.exceptions import (
    KatoError,
    MethodNotAllowedError,
    NotFoundError,
    PayloadTooLargeError,
    RequestTimeoutError,
    ValidationError,
    echo,
)
from kato.service.routes import allowed_methods

__all__ = ["error_body", "error_response", "install_error_handlers"]


def error_body(exc: KatoError, request_id: str | None) -> dict[str, Any]:
    exc.request_id = exc.request_id or request_id
    return {"detail": exc.message, "error": exc.to_dict()}


def error_response(exc: KatoError, request_id: str | None) -> JSONResponse:
    return JSONResponse(error_body(exc, request_id), status_code=exc.status)


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def _field_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """pydantic's errors without the echoed input (which may be huge or not JSON)."""
    return [
        {
            "field": ".".join(str(part) for part in error.get("loc", ())),
            "problem": str(error.get("msg", "")),
            "type": str(error.get("type", "")),
        }
        for error in errors
    ]


def _allow(request: Request, response: JSONResponse) -> JSONResponse:
    """A 405 names every method its path is served with (RFC 9110), not only one route's."""
    routes = request.app.state.routes  # the flat list (FastAPI includes routers lazily)
    response.headers["Allow"] = ", ".join(allowed_methods(routes, request.scope))
    return response


async def _kato_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, KatoError)
    response = error_response(exc, _request_id(request))
    return _allow(request, response) if isinstance(exc, MethodNotAllowedError) else response


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = _field_errors(exc.errors())
    summary = "; ".join(f"{e['field']}: {e['problem']}" for e in errors[:5])
    error = ValidationError(
        f"Invalid request: {summary}",
        session_id=request.path_params.get("session_id"),
        details={"errors": errors},
    )
    return error_response(error, _request_id(request))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    error: KatoError
    if exc.status_code == 400:  # FastAPI could not read the body (e.g. it is not UTF-8)
        error = ValidationError(f"Invalid request body: {exc.detail}")
    elif exc.status_code == 413:
        error = PayloadTooLargeError("Request body larger than the service accepts")
    elif exc.status_code == 408:
        error = RequestTimeoutError("Request body not received in time; the connection is closed")
    elif exc.status_code == 405:
        error = MethodNotAllowedError(
            f"Method {request.method} not allowed on {echo(request.url.path)}"
        )
    elif exc.status_code == 404:
        error = NotFoundError(f"Not found: {echo(request.url.path)}")
    else:
        error = KatoError(str(exc.detail))
        error.status = exc.status_code
    response = error_response(error, _request_id(request))
    if exc.headers:
        response.headers.update(exc.headers)
    return _allow(request, response) if exc.status_code == 405 else response


def install_error_handlers(app: Any) -> None:
    app.add_exception_handler(KatoError, _kato_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
