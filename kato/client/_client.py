"""``KatoClient`` and ``AsyncKatoClient``: one session on one node, KATO's client model.

Both clients share every method (:class:`_Session`): each builds the :class:`~kato.api.Operation`
of its entry in :data:`kato.api.ENDPOINTS` and sends it; the clients differ only in how they
send (synchronously, or as a coroutine) and in how a session is opened and closed. With
``base_url=None`` operations run in-process on a :class:`LocalBackend`; with a ``base_url`` they
go over HTTP. Either way every method returns exactly the body the HTTP API returns for that
operation and raises the same :mod:`kato.exceptions`, with the same codes.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Coroutine, Mapping, Sequence
from typing import Any, Generic, Self, TypeVar

from kato.api import Body, Operation, operation
from kato.client._local import LocalBackend, default_backend
from kato.client._transports import (
    AsyncLocalTransport,
    AsyncTransport,
    LocalTransport,
    Transport,
)
from kato.core import check_node_id
from kato.exceptions import SessionNotFoundError

__all__ = ["AsyncKatoClient", "KatoClient"]

#: What a client's method returns: the body (sync), or a coroutine of it (async).
R = TypeVar("R")


class _Session(Generic[R]):
    """The parameters and methods of both clients, each written once."""

    def __init__(
        self,
        node_id: str,
        base_url: str | None = None,
        *,
        ttl_seconds: int | None = None,
        metadata: Mapping[str, Any] | None = None,
        backend: LocalBackend | None = None,
        timeout: float = 10.0,
        retries: int = 2,
        transport: Any = None,
        **config: Any,
    ) -> None:
        self.node_id = check_node_id(node_id)
        self._base_url = base_url
        self._session_id: str | None = None
        self._closed = False
        body = {"node_id": node_id, "metadata": dict(metadata or {}), "ttl_seconds": ttl_seconds}
        body["config"] = dict(config) if config else None
        self._create = operation("create_session", body=body)
        if base_url is None and transport is None:
            self._connect(backend or default_backend(), {})
        elif base_url is None:
            raise ValueError("transport= is for HTTP mode only: pass a base_url too")
        else:
            http = {"transport": transport, "timeout": timeout, "retries": retries}
            self._connect(None, {"base_url": base_url, **http})
        self._start()

    def _connect(self, backend: LocalBackend | None, http: dict[str, Any]) -> None:
        """Set up the transport: in-process on ``backend``, else HTTP with ``http`` options."""
        raise NotImplementedError

    def _start(self) -> None:
        """What the constructor does once connected (the sync client opens its session)."""

    def _send(self, op: Operation) -> R:
        raise NotImplementedError

    @property
    def session_id(self) -> str:
        if self._session_id is None:
            raise RuntimeError("the client has no session yet: use it in `async with` or open()")
        return self._session_id

    def __repr__(self) -> str:
        return f"{type(self).__name__}(node_id={self.node_id!r}, session_id={self._session_id!r})"

    def _on_session(self, name: str, body: Mapping[str, Any] | None = None, **args: Any) -> R:
        return self._send(operation(name, session_id=self.session_id, body=body, **args))

    def _on_node(self, name: str, **args: Any) -> R:
        return self._send(operation(name, node_id=self.node_id, **args))

    def observe(
        self,
        strings: Sequence[str] | None = None,
        vectors: Sequence[Sequence[float]] | None = None,
        emotives: Mapping[str, float] | None = None,
        metadata: Mapping[str, Any] | None = None,
        unique_id: str | None = None,
    ) -> R:
        """Observe one event; ``{"status": "okay", "stm_length", "time", "unique_id", ...}``."""
        payload: dict[str, Any] = {
            "strings": list(strings) if strings is not None else [],
            "vectors": [list(v) for v in vectors] if vectors is not None else [],
            "emotives": dict(emotives) if emotives is not None else {},
            "metadata": dict(metadata) if metadata is not None else {},
        }
        if unique_id is None and self._base_url is not None:
            unique_id = "obs-" + uuid.uuid4().hex  # lets the transport retry it safely
        if unique_id is not None:
            payload["unique_id"] = unique_id
        return self._on_session("observe", payload)

    def observe_sequence(
        self,
        observations: Sequence[Mapping[str, Any]],
        *,
        learn_after_each: bool = False,
        learn_at_end: bool = False,
        clear_stm_between: bool = False,
    ) -> R:
        """Observe a batch atomically, optionally learning after each item or at the end."""
        body = {
            "observations": [dict(o) for o in observations],
            "learn_after_each": learn_after_each,
            "learn_at_end": learn_at_end,
            "clear_stm_between": clear_stm_between,
        }
        return self._on_session("observe_sequence", body)

    def learn(self) -> R:
        """Learn the STM as a pattern; ``EmptySTMError`` if STM is empty."""
        return self._on_session("learn")

    def clear_stm(self) -> R:
        return self._on_session("clear_stm")

    def clear_all(self) -> R:
        """Clear this session's STM and the node's whole long-term memory."""
        return self._on_session("clear_all")

    def get_stm(self) -> R:
        return self._on_session("get_stm")

    def get_predictions(self) -> R:
        """The predictions of the latest observe (not recomputed)."""
        return self._on_session("get_predictions")

    def get_percept_data(self) -> R:
        return self._on_session("get_percept_data")

    def get_cognition_data(self) -> R:
        return self._on_session("get_cognition_data")

    def get_pattern(self, name: str) -> R:
        """A pattern of the node by ``PTRN|<hash>`` or ``<hash>``; ``NotFoundError`` if absent."""
        return self._on_node("get_pattern", pattern_name=name)

    def list_patterns(self, *, offset: int = 0, limit: int = 100) -> R:
        return self._on_node("list_patterns", offset=offset, limit=limit)

    def get_symbol_stats(self) -> R:
        return self._on_node("symbol_stats")

    def get_session_info(self) -> R:
        return self._on_session("get_session")

    def get_session_config(self) -> R:
        return self._on_session("get_session_config")

    def update_session_config(self, config: Mapping[str, Any] | None = None, **changes: Any) -> R:
        """Merge configuration overrides; ``InvalidConfigError`` (nothing applied) if invalid."""
        return self._on_session("update_session_config", {"config": {**(config or {}), **changes}})

    def extend_session(self, ttl_seconds: int) -> R:
        return self._on_session("extend_session", ttl_seconds=ttl_seconds)

    def check_session_exists(self) -> R:
        return self._on_session("session_exists")


class KatoClient(_Session[Body]):
    """A session on a KATO node, used synchronously.

        with kato.KatoClient(node_id="demo") as k:
            k.observe(strings=["hello"])

    **Parameters:**

    * **node_id** - the node whose long-term memory this session learns into and predicts from.
    * **base_url** - a KATO service (``"http://127.0.0.1:8000"``); ``None`` (the default) runs
      the engine in this process.
    * **ttl_seconds** - the session's sliding TTL (default: the deployment's, 3600 s).
    * **metadata** - free-form metadata kept with the session.
    * **backend** - in-process only: the deployment to use (default: one shared per process).
    * **timeout**, **retries** - HTTP only: seconds per request, and how often a retry-safe
      call (a read, or an observe with a ``unique_id``) is repeated after a transport error
      or a 503.
    * **transport** - HTTP only: the ``httpx.BaseTransport`` (``httpx.AsyncBaseTransport`` for
      :class:`AsyncKatoClient`) to send through, e.g. an ``httpx.MockTransport`` in tests.
    * **config** - session configuration overrides (``max_pattern_length=3``, ...), validated.
    """

    _transport: Transport

    def _connect(self, backend: LocalBackend | None, http: dict[str, Any]) -> None:
        if backend is not None:
            self._transport = LocalTransport(backend)
        else:
            from kato.client._http import HTTPTransport  # httpx is needed only here

            self._transport = HTTPTransport(**http)

    def _start(self) -> None:
        try:
            self._session_id = self._transport.send(self._create)["session_id"]
        except BaseException:
            self._transport.close()
            raise

    def _send(self, op: Operation) -> Body:
        return self._transport.send(op)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Delete the session (if it still exists) and release the transport."""
        if self._closed:
            return
        self._closed = True
        try:
            # Expired or deleted already: closing wanted the session gone, and it is.
            with contextlib.suppress(SessionNotFoundError):
                self._on_session("delete_session")
        finally:
            self._transport.close()


class AsyncKatoClient(_Session[Coroutine[Any, Any, Body]]):
    """A session on a KATO node, used from asyncio; the session is created on entry.

        async with kato.AsyncKatoClient(node_id="demo") as k:
            await k.observe(strings=["hello"])

    Takes the parameters of :class:`KatoClient`; its methods return coroutines.
    """

    _transport: AsyncTransport

    def _connect(self, backend: LocalBackend | None, http: dict[str, Any]) -> None:
        if backend is not None:
            self._transport = AsyncLocalTransport(backend)
        else:
            from kato.client._http import AsyncHTTPTransport  # httpx is needed only here

            self._transport = AsyncHTTPTransport(**http)

    def _send(self, op: Operation) -> Coroutine[Any, Any, Body]:
        return self._transport.send(op)

    async def open(self) -> Self:
        """Create the session (``async with`` does this for you)."""
        if self._session_id is None:
            self._session_id = (await self._transport.send(self._create))["session_id"]
        return self

    async def __aenter__(self) -> Self:
        try:
            return await self.open()
        except BaseException:
            await self._transport.aclose()
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Delete the session (if it still exists) and release the transport."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._session_id is not None:
                with contextlib.suppress(SessionNotFoundError):
                    await self._on_session("delete_session")
        finally:
            await self._transport.aclose()
