"""The HTTP transports: send an :class:`Operation` to a KATO service with httpx.

    transport = HTTPTransport("http://127.0.0.1:8000", timeout=10.0, retries=2)
    body = transport.send(operation("count_sessions"))

:class:`HTTPTransport` and :class:`AsyncHTTPTransport` share every decision: the request built
from an operation (:func:`_request_options`), the reading of a response into a body or a
:mod:`kato.exceptions` error (:func:`_read_response`), the translation of httpx's transport errors
into :class:`~kato.exceptions.TransportError` (:func:`_map_transport_errors`, the one boundary)
and whether to try again (:func:`_should_retry`, :func:`_backoff`), gathered per operation in an
:class:`_Exchange`. Each transport only performs the requests and the waits.

Retries repeat only ``retry_safe`` operations (reads, and observes with a ``unique_id``), only
after a transport error or a 503 answer, and with the same ``X-Request-ID`` each time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import uuid
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

import httpx

from kato._version import __version__
from kato.api import Body, Operation
from kato.exceptions import (
    KatoError,
    SessionNotFoundError,
    TransportError,
    ValidationError,
    from_error_body,
)
from kato.sessions import looks_like_session_id

__all__ = ["IDLE_EXPIRY_S", "AsyncHTTPTransport", "HTTPTransport"]


USER_AGENT = f"kato-client/{__version__}"

#: Seconds a kept-alive connection may sit idle before a client closes it, well under the
#: seconds after which ``kato serve`` closes it (:data:`kato.service.server.KEEP_ALIVE_S`). A
#: client that kept it as long as the server did could send a request on a connection the
#: server was closing at that moment: "server disconnected without sending a response", for a
#: request the server may never have read. A busy client releases a connection late, which
#: widens that window (seen in a multi-worker test on 2 busy cores).
IDLE_EXPIRY_S = 2.0

# httpx errors after which a retry-safe request is worth repeating: the service may be back, or
# the connection was a stale keep-alive one. Others (an unsupported URL scheme, a proxy refusing
# us) would fail the same way again.
_RETRYABLE = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


def _answer_without_sending(op: Operation) -> Body | None:
    """The service's answer for an operation on a malformed session id, known without asking.

    Session ids are opaque but have one shape; the service refuses any other without a store
    lookup, and some (with ``/`` or control characters) could not even be routed. Answering here
    keeps the HTTP client's behaviour identical to the in-process one.
    """
    if op.session_id is None or looks_like_session_id(op.session_id):
        return None
    if op.name == "session_exists":
        return {"exists": False, "expired": False, "session_id": op.session_id}
    raise SessionNotFoundError(op.session_id)


def _request_options(op: Operation, request_id: str) -> dict[str, Any]:
    """The keyword arguments of ``httpx.Client.request`` for ``op``.

    Raises ``ValidationError`` for a body JSON cannot carry (NaN or an infinity), as the service
    would for the same values.
    """
    headers = {"X-Request-ID": request_id}
    options: dict[str, Any] = {"method": op.method, "url": op.path, "headers": headers}
    if op.body is not None:
        try:
            options["content"] = json.dumps(dict(op.body), allow_nan=False).encode()
        except ValueError as exc:
            raise ValidationError(
                f"{op.method} {op.path}: the body holds a number JSON cannot carry ({exc})",
                session_id=op.session_id,
                details={"errors": [{"field": "body", "problem": "non-finite number"}]},
            ) from exc
        headers["Content-Type"] = "application/json"
    if op.params:
        options["params"] = dict(op.params)
    return options


def _read_response(op: Operation, response: httpx.Response, request_id: str) -> Body:
    """The JSON body of a 2xx ``response``; else the :mod:`kato.exceptions` error it carries."""
    answered_id = response.headers.get("X-Request-ID") or request_id
    if response.status_code >= 400:
        try:
            body: object = response.json()
        except ValueError:
            body = response.text
        raise from_error_body(response.status_code, body, request_id=answered_id)
    try:
        body = response.json() if 200 <= response.status_code < 300 else None
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise KatoError(
            f"{op.method} {op.path}: unexpected HTTP {response.status_code} response "
            f"(expected a JSON object): {response.text[:200]!r}",
            request_id=answered_id,
        )
    return body


@contextlib.contextmanager
def _map_transport_errors(op: Operation, request_id: str, attempt: int) -> Iterator[None]:
    """Re-raise httpx's transport errors as :class:`TransportError`, ``from`` the original."""
    try:
        yield
    except httpx.TransportError as exc:
        raise TransportError(
            f"{op.method} {op.path} failed on attempt {attempt + 1}: "
            f"{type(exc).__name__}: {str(exc) or 'no message'}. The service may or may not have "
            "applied the operation; its outcome is unknown.",
            session_id=op.session_id,
            request_id=request_id,
            details={"method": op.method, "path": op.path, "attempts": attempt + 1},
        ) from exc


def _should_retry(op: Operation, error: KatoError, attempt: int, retries: int) -> bool:
    """Whether ``error`` on attempt ``attempt`` (from 0) of ``op`` calls for another attempt."""
    if not op.retry_safe or attempt >= retries:
        return False
    if isinstance(error, TransportError):
        return isinstance(error.__cause__, _RETRYABLE)
    return error.status == 503


def _backoff(attempt: int) -> float:
    """Seconds to wait before retry ``attempt + 1``: short, exponential, jittered."""
    return 0.05 * 2.0**attempt * random.uniform(0.5, 1.5)


class _Exchange:
    """One operation's attempts without the I/O: what to send, how to read an answer, and
    whether (and after how long) to try again. Each transport only performs the requests."""

    def __init__(self, op: Operation, retries: int) -> None:
        self.op = op
        self.retries = retries
        self.request_id = uuid.uuid4().hex
        self.attempts = 0
        self.delay = 0.0
        self._result = _answer_without_sending(op)
        self.options = {} if self._result is not None else _request_options(op, self.request_id)

    @property
    def done(self) -> bool:
        return self._result is not None

    @property
    def result(self) -> Body:
        assert self._result is not None, "no answer yet"
        return self._result

    @contextlib.contextmanager
    def attempt(self) -> Iterator[None]:
        """Around one attempt: an error worth retrying is swallowed (setting :attr:`delay`),
        any other raised as a :mod:`kato.exceptions` error."""
        try:
            with _map_transport_errors(self.op, self.request_id, self.attempts):
                yield
        except KatoError as exc:
            if not _should_retry(self.op, exc, self.attempts, self.retries):
                raise
            self.delay = _backoff(self.attempts)
            self.attempts += 1

    def read(self, response: httpx.Response) -> None:
        self._result = _read_response(self.op, response, self.request_id)


T = TypeVar("T", httpx.BaseTransport, httpx.AsyncBaseTransport)


class _BaseHTTPTransport(Generic[T]):
    """What both transports hold: the retry budget and the httpx client.

    **Parameters:**

    * **base_url** - the service, ``"http://127.0.0.1:8000"``.
    * **timeout** - seconds per request attempt (connect, read, write and pool each).
    * **retries** - extra attempts for a retry-safe operation after a transport error or a 503.
    * **transport** - an ``httpx.BaseTransport`` (``httpx.AsyncBaseTransport`` for the async
      transport) to send through (``httpx.MockTransport`` in tests); default: httpx's own.
    * **headers** - extra headers sent with every request.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10.0,
        retries: int = 2,
        transport: T | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self.base_url = base_url
        self.retries = retries
        self._open(
            transport,
            base_url=base_url,
            timeout=httpx.Timeout(timeout),
            headers={"User-Agent": USER_AGENT, **(headers or {})},
            limits=httpx.Limits(
                max_connections=100, max_keepalive_connections=20, keepalive_expiry=IDLE_EXPIRY_S
            ),
        )

    def _open(self, transport: T | None, **options: Any) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r}, retries={self.retries})"


class HTTPTransport(_BaseHTTPTransport[httpx.BaseTransport]):
    """Sends operations to a KATO service with an ``httpx.Client``."""

    def _open(self, transport: httpx.BaseTransport | None, **options: Any) -> None:
        self._client = httpx.Client(transport=transport, **options)

    def send(self, op: Operation) -> Body:
        """Send ``op`` (retrying it if it is safe to) and return the response body."""
        exchange = _Exchange(op, self.retries)
        while not exchange.done:
            time.sleep(exchange.delay)  # 0 before the first attempt
            with exchange.attempt():
                exchange.read(self._client.request(**exchange.options))
        return exchange.result

    def close(self) -> None:
        self._client.close()


class AsyncHTTPTransport(_BaseHTTPTransport[httpx.AsyncBaseTransport]):
    """Sends operations to a KATO service with an ``httpx.AsyncClient``."""

    def _open(self, transport: httpx.AsyncBaseTransport | None, **options: Any) -> None:
        self._client = httpx.AsyncClient(transport=transport, **options)

    async def send(self, op: Operation) -> Body:
        """Send ``op`` (retrying it if it is safe to) and return the response body."""
        exchange = _Exchange(op, self.retries)
        while not exchange.done:
            await asyncio.sleep(exchange.delay)  # 0 before the first attempt
            with exchange.attempt():
                exchange.read(await self._client.request(**exchange.options))
        return exchange.result

    async def aclose(self) -> None:
        await self._client.aclose()
