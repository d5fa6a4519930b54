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
    │   ├── LimitExceededError      LIMIT_EXCEEDED     413  an observation over a work bound
    │   │   └── StmFullError        STM_FULL           409  the STM would grow over its bound
    │   ├── RequestTimeoutError     REQUEST_TIMEOUT    408  the body did not arrive in time
    │   └── MethodNotAllowedError   METHOD_NOT_ALLOWED 405  route known, method not
    ├── NotFoundError               NOT_FOUND          404  unknown route or pattern
    │   ├── PatternNotFoundError    PATTERN_NOT_FOUND  404  a pattern name of the wrong shape
    │   └── SessionNotFoundError    SESSION_NOT_FOUND  404  the session does not exist or expired
    │       └── SessionExpiredError SESSION_EXPIRED    404  (KATO's; this service reports an
    │                                                       expired session as not found)
    ├── ConcurrencyError            CONCURRENCY_ERROR  409  (KATO's name and arguments)
    │   └── ConflictError           CONFLICT           409  a session stayed contended past
    │                                                       the store's bounded retries
    ├── ResourceExhaustedError      RESOURCE_EXHAUSTED 429  (KATO's name and arguments)
    │   └── SessionLimitError       SESSION_LIMIT      429  the deployment or the node holds
    │                                                       as many sessions as it may
    ├── RateLimitedError            RATE_LIMITED       429  this client sent faster than the
    │                                                       per-client rate limit
    ├── ServerBusyError             SERVER_BUSY        503  too many request bodies in flight
    ├── DatabaseConnectionError     DATABASE_CONNECTION_ERROR 503  (KATO's name and arguments)
    │   └── StoreUnavailableError   STORE_UNAVAILABLE  503  a store could not be reached
    └── TransportError              TRANSPORT_ERROR    503  (client side) the service could not
                                                            be reached or did not answer

A missing session and an unreachable store are different errors and are never reported as each
other: a ``SessionNotFoundError`` means the store answered "no such session". Likewise a
``TransportError`` is raised by an HTTP client that got no answer from the service at all; it
says nothing about the store.

:func:`from_error_body` turns an error response of the service back into the error above that
the service raised, so a client over HTTP raises what an in-process client raises.

Code written against the original KATO's ``kato.exceptions`` runs unchanged: ``KatoV2Exception``
is :class:`KatoError`, which also takes KATO's ``error_code``, ``context`` and ``recoverable``
arguments; KATO's ``ConcurrencyError``, ``DatabaseConnectionError``, ``ResourceExhaustedError``
and ``SessionExpiredError`` (with their constructor arguments) are bases or subclasses of the
errors this package raises, so ``except DatabaseConnectionError`` catches a
``StoreUnavailableError``; ``ValidationError`` also takes KATO's ``field_name``,
``field_value`` and ``validation_rule``; and the helpers :func:`session_not_found` and
:func:`validation_failed` build those errors as KATO's did.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

__all__ = [
    "ECHO_LIMIT",
    "ConcurrencyError",
    "ConflictError",
    "DatabaseConnectionError",
    "EmptySTMError",
    "InvalidConfigError",
    "InvalidRequest",
    "KatoError",
    "KatoV2Exception",
    "LimitExceededError",
    "MethodNotAllowedError",
    "NotFoundError",
    "PatternNotFoundError",
    "PayloadTooLargeError",
    "RateLimitedError",
    "RequestTimeoutError",
    "ResourceExhaustedError",
    "ServerBusyError",
    "SessionExpiredError",
    "SessionLimitError",
    "SessionNotFoundError",
    "StmFullError",
    "StoreUnavailableError",
    "TransportError",
    "ValidationError",
    "VectorDimensionError",
    "echo",
    "error_class_for",
    "from_error_body",
    "session_not_found",
    "validation_failed",
]


#: Characters of a client-supplied id or path an error may echo (:func:`echo`).
ECHO_LIMIT = 64


def echo(text: str, limit: int = ECHO_LIMIT) -> str:
    """``text`` as an error may repeat it to its client: at most ``limit`` characters, control
    and other unprintable characters escaped (``\\x07``), ``…`` added when cut.

    A 404 used to echo a 65 KB session id, control characters and all, into its body.
    """
    out: list[str] = []
    size = 0
    for char in text:
        piece = char if char.isprintable() else repr(char)[1:-1]
        if size + len(piece) > limit:
            return "".join(out) + "…"
        out.append(piece)
        size += len(piece)
    return "".join(out)


class KatoError(Exception):
    """Base of every KATO error; ``code`` and ``status`` identify the kind.

    Also the original KATO's ``KatoV2Exception``: ``error_code`` (a code of the caller's),
    ``context`` (merged into ``details``) and ``recoverable`` are its arguments, and
    ``error_code``, ``context``, ``recoverable`` and ``timestamp`` its attributes.
    """

    code: str = "INTERNAL"
    status: int = 500
    layer: str = "engine"
    #: Whether retrying (later, or with a changed request) can succeed; KATO's attribute.
    recoverable: bool = True

    def __init__(
        self,
        message: str,
        error_code: str | None = None,
        context: Mapping[str, Any] | None = None,
        recoverable: bool | None = None,
        *,
        session_id: str | None = None,
        request_id: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.session_id = session_id
        self.request_id = request_id
        self.details: dict[str, Any] = {**(details or {}), **(context or {})}
        self.timestamp = time.time()
        if error_code is not None:
            self.code = error_code
        if recoverable is not None:
            self.recoverable = recoverable

    @property
    def error_code(self) -> str:
        """KATO's name for :attr:`code`."""
        return self.code

    @property
    def context(self) -> dict[str, Any]:
        """KATO's name for :attr:`details`."""
        return self.details

    def to_dict(self) -> dict[str, Any]:
        """The ``error`` object of the service's error body (api.md, "One error shape")."""
        body: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "session_id": None if self.session_id is None else echo(self.session_id),
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
    """A field has the wrong type or shape; ``details["errors"]`` lists each problem.

    Also takes the original KATO's keyword arguments ``field_name``, ``field_value`` and
    ``validation_rule`` (kept in ``details`` and as attributes); without a ``message`` one is
    made from them, as KATO did.
    """

    code = "VALIDATION_ERROR"
    status = 422
    field_name: str | None = None
    field_value: Any = None
    validation_rule: str | None = None

    def __init__(
        self,
        message: str | None = None,
        *,
        field_name: str | None = None,
        field_value: Any = None,
        validation_rule: str | None = None,
        context: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.field_name = field_name
        self.field_value = field_value
        self.validation_rule = validation_rule
        if field_name is not None:
            rule = f": {validation_rule}" if validation_rule else ""
            message = message or f"Validation failed for field '{field_name}'{rule}"
            value = None if field_value is None else str(field_value)[:100]
            context = {
                "field_name": field_name,
                "field_value": value,
                "validation_rule": validation_rule,
                **(context or {}),
            }
        super().__init__(message or "Invalid request", context=context, **kwargs)


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


class LimitExceededError(InvalidRequest):
    """An observation is over one of the deployment's work bounds (symbols per event, emotive
    keys, metadata bytes, matching work); nothing was changed.

    ``details`` names the bound: ``{"limit": <name>, "max": <bound>, "got": <value>}``.
    """

    code = "LIMIT_EXCEEDED"
    status = 413
    layer = "engine"

    @classmethod
    def over(cls, limit: str, bound: int, got: int, advice: str = "") -> LimitExceededError:
        """The error for ``got`` over the bound ``limit`` (``bound``), with optional advice."""
        text = f"{limit} is {got}, over the bound of {bound}" + (f"; {advice}" if advice else "")
        return cls(text, details={"limit": limit, "max": bound, "got": got})


class StmFullError(LimitExceededError):
    """The observation would take the session's STM over its bound of symbols; learn or
    clear the STM first. Nothing was changed."""

    code = "STM_FULL"
    status = 409


class RequestTimeoutError(InvalidRequest):
    """The request body did not arrive within ``KATO_BODY_TIMEOUT_S``; the connection is closed."""

    code = "REQUEST_TIMEOUT"
    status = 408
    layer = "router"


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


class PatternNotFoundError(NotFoundError):
    """A pattern name that cannot name any pattern (not ``PTRN|<hex>`` or ``<hex>``); the
    store is not asked. A well-formed name that is not learned is a plain ``NOT_FOUND``."""

    code = "PATTERN_NOT_FOUND"
    layer = "engine"


class SessionNotFoundError(NotFoundError):
    """The session does not exist, was deleted, or expired."""

    code = "SESSION_NOT_FOUND"
    layer = "session"

    def __init__(self, session_id: str, message: str | None = None, **kwargs: Any) -> None:
        kwargs.pop("session_id", None)
        super().__init__(
            message or f"Session '{echo(session_id)}' not found or has expired",
            session_id=session_id,
            **kwargs,
        )


class SessionExpiredError(SessionNotFoundError):
    """The original KATO's error for an expired session, with its arguments. This service
    never raises it (an expired session is gone, like a deleted one: ``SESSION_NOT_FOUND``)."""

    code = "SESSION_EXPIRED"
    expired_at: float | None = None

    def __init__(
        self,
        session_id: str,
        expired_at: float | None = None,
        message: str | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> None:
        self.expired_at = expired_at
        super().__init__(
            session_id,
            message or f"Session '{session_id}' has expired",
            context={"expired_at": expired_at, **(context or {})},
        )


def session_not_found(
    session_id: str, additional_context: Mapping[str, Any] | None = None
) -> SessionNotFoundError:
    """KATO's helper: the error for a missing session, with extra ``details``."""
    return SessionNotFoundError(session_id, context=additional_context)


def validation_failed(field_name: str, field_value: Any, rule: str) -> ValidationError:
    """KATO's helper: the error for ``field_name`` (holding ``field_value``) breaking ``rule``."""
    return ValidationError(field_name=field_name, field_value=field_value, validation_rule=rule)


class ConcurrencyError(KatoError):
    """The original KATO's error for conflicting concurrent operations, with its arguments;
    the base of :class:`ConflictError`, which this service raises."""

    code = "CONCURRENCY_ERROR"
    status = 409
    layer = "store"
    resource_id: str | None = None
    operation: str | None = None

    def __init__(
        self,
        resource_id: str,
        operation: str,
        message: str | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> None:
        self.resource_id = resource_id
        self.operation = operation
        super().__init__(
            message or f"Concurrent access conflict for {resource_id} during {operation}",
            context={"resource_id": resource_id, "operation": operation, **(context or {})},
        )


class ConflictError(ConcurrencyError):
    """Concurrent writers kept changing the session; the store gave up after bounded retries.

    Nothing was applied. Retrying later is safe (and an observe with a ``unique_id`` is applied
    at most once whatever happens).
    """

    code = "CONFLICT"

    def __init__(self, message: str, **kwargs: Any) -> None:
        KatoError.__init__(self, message, **kwargs)


class ResourceExhaustedError(KatoError):
    """The original KATO's error for an exhausted resource, with its arguments; the base of
    :class:`SessionLimitError`, which this service raises."""

    code = "RESOURCE_EXHAUSTED"
    status = 429
    layer = "session"
    resource_type: str | None = None
    current_usage: float | None = None
    max_capacity: float | None = None

    def __init__(
        self,
        resource_type: str,
        current_usage: float,
        max_capacity: float,
        message: str | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> None:
        self.resource_type = resource_type
        self.current_usage = current_usage
        self.max_capacity = max_capacity
        usage = {
            "resource_type": resource_type,
            "current_usage": current_usage,
            "max_capacity": max_capacity,
            "utilization": current_usage / max_capacity if max_capacity > 0 else 1.0,
        }
        super().__init__(
            message or f"Resource exhausted: {resource_type} ({current_usage}/{max_capacity})",
            context={**usage, **(context or {})},
        )


class SessionLimitError(ResourceExhaustedError):
    """A new session would exceed ``KATO_MAX_SESSIONS`` or ``KATO_MAX_SESSIONS_PER_NODE``.

    Nothing was created. ``details["limit"]`` says which limit (``deployment`` or ``node``) and
    ``details["max"]`` its value; deleting sessions, or waiting for some to expire, makes room.
    """

    code = "SESSION_LIMIT"

    def __init__(self, message: str, **kwargs: Any) -> None:
        KatoError.__init__(self, message, **kwargs)

    @classmethod
    def reached(cls, kind: str, limit: int) -> SessionLimitError:
        """The error every session store raises when the ``kind`` limit (``deployment`` or
        ``node``) of ``limit`` live sessions is reached."""
        return cls(
            f"the {kind} already holds {limit} live sessions; delete some or wait for expiry",
            details={"limit": kind, "max": limit},
        )


class RateLimitedError(KatoError):
    """The client sent more requests than the per-client rate limit allows (``KATO_RATE_LIMIT``).

    The request was not served; the response's ``Retry-After`` says when a token is back.
    """

    code = "RATE_LIMITED"
    status = 429
    layer = "router"


class ServerBusyError(KatoError):
    """The worker already holds as many bytes of request bodies as ``KATO_MAX_BODIES_IN_FLIGHT``
    allows; the request was refused before its body was read. ``Retry-After`` says when to retry.
    """

    code = "SERVER_BUSY"
    status = 503
    layer = "router"


class DatabaseConnectionError(KatoError):
    """The original KATO's error for a database that failed, with its arguments; the base of
    :class:`StoreUnavailableError`, which this service raises."""

    code = "DATABASE_CONNECTION_ERROR"
    status = 503
    layer = "store"
    database_type: str | None = None
    connection_string: str | None = None
    operation: str | None = None

    def __init__(
        self,
        database_type: str,
        connection_string: str | None = None,
        operation: str | None = None,
        message: str | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> None:
        self.database_type = database_type
        self.connection_string = connection_string
        self.operation = operation
        during = f" during {operation}" if operation else ""
        super().__init__(
            message or f"Database connection error for {database_type}{during}",
            context={
                "database_type": database_type,
                "connection_string": connection_string,
                "operation": operation,
                **(context or {}),
            },
        )


class StoreUnavailableError(DatabaseConnectionError):
    """A store (sessions or long-term memory) could not be reached or did not answer in time."""

    code = "STORE_UNAVAILABLE"

    def __init__(self, message: str, **kwargs: Any) -> None:
        KatoError.__init__(self, message, **kwargs)


class TransportError(KatoError):
    """An HTTP client got no answer from the service: the connection failed or timed out.

    Raised by the client, never by the service, ``from`` the underlying httpx error. The outcome
    of the operation is unknown: the service may or may not have applied it.
    """

    code = "TRANSPORT_ERROR"
    status = 503
    layer = "client"


#: The original KATO's base exception: code written against it catches every error here.
KatoV2Exception = KatoError


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


_MESSAGE_LIMIT = 500

# The class for an error response without a usable ``error.code``, by HTTP status.
_CLASS_BY_STATUS: dict[int, type[KatoError]] = {
    404: NotFoundError,
    405: MethodNotAllowedError,
    413: PayloadTooLargeError,
    422: ValidationError,
    503: StoreUnavailableError,
}


def _class_for_status(status: int) -> type[KatoError]:
    if status in _CLASS_BY_STATUS:
        return _CLASS_BY_STATUS[status]
    return InvalidRequest if 400 <= status < 500 else KatoError


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def from_error_body(status: int, body: object, *, request_id: str | None = None) -> KatoError:
    """The error a service answered with, rebuilt from its HTTP ``status`` and ``body``.

        exc = from_error_body(404, {"detail": "...", "error": {"code": "SESSION_NOT_FOUND", ...}})

    ``body`` is the parsed JSON body, or the raw text when it was not JSON. With the service's
    error shape (api.md), the class is picked by ``error.code`` and ``message``, ``session_id``,
    ``request_id`` and ``details`` are taken from the body (an ``InvalidConfigError`` also gets
    its ``field_errors``). Any other body, a proxy's HTML page say, is mapped by ``status`` and
    its text, cut to 500 characters, becomes the message. ``request_id`` (the response's
    ``X-Request-ID``) is used when the body names none. The instance's ``code`` and ``status``
    are those the service sent, also when the code is one this version does not know.
    """
    mapping = body if isinstance(body, Mapping) else {}
    error = mapping.get("error")
    error = error if isinstance(error, Mapping) else {}
    code = _text(error.get("code"))
    cls = error_class_for(code) if code is not None else KatoError
    if cls is KatoError:
        cls = _class_for_status(status)
    if isinstance(body, Mapping):
        text = json.dumps(body, ensure_ascii=False, default=str)
    else:
        text = body.decode(errors="replace") if isinstance(body, bytes) else str(body)
    message = _text(mapping.get("detail")) or _text(error.get("message"))
    if message is None:
        message = text[:_MESSAGE_LIMIT] if text.strip() else f"HTTP {status} with an empty body"
    details = error.get("details")
    details = details if isinstance(details, Mapping) else {}

    # Subclasses' constructors take other arguments (a session id, field errors): build the
    # instance directly and initialise it as a plain KatoError.
    exc = cls.__new__(cls)
    KatoError.__init__(
        exc,
        message,
        session_id=_text(error.get("session_id")),
        request_id=_text(error.get("request_id")) or request_id,
        details=details,
    )
    if isinstance(exc, InvalidConfigError):
        fields = details.get("fields")
        exc.field_errors = dict(fields) if isinstance(fields, Mapping) else {}
    if code is not None and code != cls.code:
        exc.code = code
    if status != cls.status:
        exc.status = status
    layer = _text(error.get("layer"))
    if layer is not None and layer != cls.layer:
        exc.layer = layer
    return exc
