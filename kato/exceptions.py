"""The one error family of KATO, shared by the engine, the session layer and the clients.

Every error carries a stable ``code`` that programs match on, the HTTP ``status`` the service
answers with, and, where known, the ``session_id`` and ``request_id``::

    KatoError                       (base; code INTERNAL, 500)
    ├── InvalidRequest              (4xx: the request itself is wrong; nothing was changed)
    │   ├── ValidationError         VALIDATION_ERROR   422  a field has the wrong type or shape
    │   ├── InvalidConfigError      INVALID_CONFIG     400  a configuration value is out of range
    │   ├── EmptySTMError           EMPTY_STM          400  learn with nothing in STM
    │   ├── VectorDimensionError    VECTOR_DIMENSION   400  vectors of one observe differ in length
    │   ├── PayloadTooLargeError    PAYLOAD_TOO_LARGE  413  request body over the limit
    │   └── MethodNotAllowedError   METHOD_NOT_ALLOWED 405  route known, method not
    ├── NotFoundError               NOT_FOUND          404  unknown route or pattern
    │   └── SessionNotFoundError    SESSION_NOT_FOUND  404  the session does not exist or expired
    └── StoreUnavailableError       STORE_UNAVAILABLE  503  a store could not be reached

A missing session and an unreachable store are different errors and are never reported as each
other: a ``SessionNotFoundError`` means the store answered "no such session".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "EmptySTMError",
    "InvalidConfigError",
    "InvalidRequest",
    "KatoError",
    "MethodNotAllowedError",
    "NotFoundError",
    "PayloadTooLargeError",
    "SessionNotFoundError",
    "StoreUnavailableError",
    "ValidationError",
    "VectorDimensionError",
    "error_class_for",
]


class KatoError(Exception):
    """Base of every KATO error; ``code`` and ``status`` identify the kind."""

    code: str = "INTERNAL"
    status: int = 500
    layer: str = "engine"

    def __init__(
        self,
        message: str,
        *,
        session_id: str | None = None,
        request_id: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.session_id = session_id
        self.request_id = request_id
        self.details: dict[str, Any] = dict(details or {})

    def to_dict(self) -> dict[str, Any]:
        """The ``error`` object of the service's error body (api.md, "One error shape")."""
        body: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "session_id": self.session_id,
            "layer": self.layer,
            "request_id": self.request_id,
        }
        if self.details:
            body["details"] = self.details
        return body


class InvalidRequest(KatoError):
    """The request is wrong; it was rejected before anything changed."""

    code = "INVALID_REQUEST"
    status = 400
    layer = "validation"


class ValidationError(InvalidRequest):
    """A field has the wrong type or shape; ``details["errors"]`` lists each problem."""

    code = "VALIDATION_ERROR"
    status = 422


class InvalidConfigError(InvalidRequest):
    """One or more configuration values are invalid; none of the update was applied."""

    code = "INVALID_CONFIG"
    status = 400

    def __init__(self, field_errors: Mapping[str, str], *, session_id: str | None = None) -> None:
        self.field_errors = dict(field_errors)
        text = "; ".join(
            f"{name}: {problem}" for name, problem in sorted(self.field_errors.items())
        )
        super().__init__(
            f"Invalid configuration: {text}",
            session_id=session_id,
            details={"fields": self.field_errors},
        )


class EmptySTMError(InvalidRequest):
    """learn was asked for with an empty STM (existing clients match the message text)."""

    code = "EMPTY_STM"
    status = 400
    layer = "engine"

    def __init__(self, *, session_id: str | None = None) -> None:
        super().__init__("Cannot learn from empty STM", session_id=session_id)


class VectorDimensionError(InvalidRequest):
    """The vectors of one observation are empty or of different lengths."""

    code = "VECTOR_DIMENSION"
    status = 400


class PayloadTooLargeError(InvalidRequest):
    """The request body is larger than the configured limit."""

    code = "PAYLOAD_TOO_LARGE"
    status = 413


class MethodNotAllowedError(InvalidRequest):
    """The route exists but not with this HTTP method."""

    code = "METHOD_NOT_ALLOWED"
    status = 405
    layer = "router"


class NotFoundError(KatoError):
    """An unknown route or an unknown pattern."""

    code = "NOT_FOUND"
    status = 404
    layer = "router"


class SessionNotFoundError(NotFoundError):
    """The session does not exist, was deleted, or expired."""

    code = "SESSION_NOT_FOUND"
    layer = "session"

    def __init__(self, session_id: str, message: str | None = None, **kwargs: Any) -> None:
        kwargs.pop("session_id", None)
        super().__init__(
            message or f"Session '{session_id}' not found or has expired",
            session_id=session_id,
            **kwargs,
        )


class StoreUnavailableError(KatoError):
    """A store (sessions or long-term memory) could not be reached or did not answer in time."""

    code = "STORE_UNAVAILABLE"
    status = 503
    layer = "store"


def error_class_for(code: str) -> type[KatoError]:
    """The most specific error class for a stable error ``code`` (``KatoError`` if unknown)."""
    for cls in _all_subclasses(KatoError):
        if cls.code == code:
            return cls
    return KatoError


def _all_subclasses(cls: type[KatoError]) -> list[type[KatoError]]:
    found: list[type[KatoError]] = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_all_subclasses(sub))
    return found
