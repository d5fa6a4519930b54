"""``KatoClient`` and ``AsyncKatoClient``: one session on one node, KATO's client model.

Both build the same :class:`~kato.client._operations.Operation` for every call and differ only in
how they send it. With ``base_url=None`` operations run in-process on a :class:`LocalBackend`;
with a ``base_url`` they go over HTTP. Either way every method returns exactly the body the HTTP
API returns for that operation and raises the same :mod:`kato.exceptions`, with the same codes.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Self

from kato.client import _operations as ops
from kato.client._local import LocalBackend, default_backend
from kato.client._operations import Operation
from kato.client._transports import (
    AsyncLocalTransport,
    AsyncTransport,
    LocalTransport,
    Transport,
)
from kato.core import check_node_id
from kato.exceptions import SessionNotFoundError

__all__ = ["AsyncKatoClient", "KatoClient"]

Body = dict[str, Any]


class _Calls:
    """The operations of one session, built without I/O; shared by both clients."""

    def __init__(self, node_id: str, base_url: str | None, config: Mapping[str, Any]) -> None:
        self.node_id = check_node_id(node_id)
        self.base_url = base_url
        self.config = dict(config)
        self._session_id: str | None = None

    @property
    def session_id(self) -> str:
        if self._session_id is None:
            raise RuntimeError("the client has no session yet: use it in `async with` or open()")
        return self._session_id

    def observation(
        self,
        strings: Sequence[str] | None,
        vectors: Sequence[Sequence[float]] | None,
        emotives: Mapping[str, float] | None,
        metadata: Mapping[str, Any] | None,
        unique_id: str | None,
    ) -> Operation:
        payload: dict[str, Any] = {
            "strings": list(strings) if strings is not None else [],
            "vectors": [list(v) for v in vectors] if vectors is not None else [],
            "emotives": dict(emotives) if emotives is not None else {},
            "metadata": dict(metadata) if metadata is not None else {},
        }
        if unique_id is None and self.base_url is not None:
            unique_id = "obs-" + uuid.uuid4().hex  # lets the transport retry it safely
        if unique_id is not None:
            payload["unique_id"] = unique_id
        return ops.observe(self.session_id, payload)

    def observation_sequence(
        self,
        observations: Sequence[Mapping[str, Any]],
        learn_after_each: bool,
        learn_at_end: bool,
        clear_stm_between: bool,
    ) -> Operation:
        body = {
            "observations": [dict(o) for o in observations],
            "learn_after_each": learn_after_each,
            "learn_at_end": learn_at_end,
            "clear_stm_between": clear_stm_between,
        }
        return ops.session_write("observe_sequence", self.session_id, "/observe-sequence", body)

    def write(self, name: str, suffix: str, body: Mapping[str, Any] | None = None) -> Operation:
        return ops.session_write(name, self.session_id, suffix, body)

    def read(self, name: str, suffix: str = "") -> Operation:
        return ops.session_read(name, self.session_id, suffix)

    def config_update(
        self, config: Mapping[str, Any] | None, changes: Mapping[str, Any]
    ) -> Operation:
        return self.write(
            "update_session_config", "/config", {"config": {**(config or {}), **changes}}
        )


def _http_transport(base_url: str | None, *, is_async: bool, **options: Any) -> Any:
    """The HTTP transport for ``base_url`` (imported on use: httpx is needed only then)."""
    if base_url is None:
        raise ValueError("transport= is for HTTP mode only: pass a base_url too")
    from kato.client import _http

    if is_async:
        return _http.AsyncHTTPTransport(base_url, **options)
    return _http.HTTPTransport(base_url, **options)


class KatoClient:
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
        self._calls = _Calls(node_id, base_url, config)
        self.node_id = self._calls.node_id
        self._transport: Transport
        if base_url is None and transport is None:
            self._transport = LocalTransport(backend or default_backend())
        else:
            self._transport = _http_transport(
                base_url, is_async=False, transport=transport, timeout=timeout, retries=retries
            )
        op = ops.create_session(node_id, metadata=metadata, ttl_seconds=ttl_seconds, config=config)
        try:
            self._calls._session_id = self._transport.send(op)["session_id"]
        except BaseException:
            self._transport.close()
            raise
        self._closed = False

    @property
    def session_id(self) -> str:
        return self._calls.session_id

    def __repr__(self) -> str:
        return f"KatoClient(node_id={self.node_id!r}, session_id={self.session_id!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Delete the session (if it still exists) and release the transport."""
        if self._closed:
            return
        self._closed = True
        try:
            # Expired or deleted already: closing wanted the session gone, and it is.
            with contextlib.suppress(SessionNotFoundError):
                self._transport.send(ops.delete_session(self.session_id))
        finally:
            self._transport.close()

    def observe(
        self,
        strings: Sequence[str] | None = None,
        vectors: Sequence[Sequence[float]] | None = None,
        emotives: Mapping[str, float] | None = None,
        metadata: Mapping[str, Any] | None = None,
        unique_id: str | None = None,
    ) -> Body:
        """Observe one event; ``{"status": "okay", "stm_length", "time", "unique_id", ...}``."""
        return self._transport.send(
            self._calls.observation(strings, vectors, emotives, metadata, unique_id)
        )

    def observe_sequence(
        self,
        observations: Sequence[Mapping[str, Any]],
        *,
        learn_after_each: bool = False,
        learn_at_end: bool = False,
        clear_stm_between: bool = False,
    ) -> Body:
        """Observe a batch atomically, optionally learning after each item or at the end."""
        op = self._calls.observation_sequence(
            observations, learn_after_each, learn_at_end, clear_stm_between
        )
        return self._transport.send(op)

    def learn(self) -> Body:
        """Learn the STM as a pattern; ``EmptySTMError`` if STM is empty."""
        return self._transport.send(self._calls.write("learn", "/learn"))

    def clear_stm(self) -> Body:
        return self._transport.send(self._calls.write("clear_stm", "/clear-stm"))

    def clear_all(self) -> Body:
        """Clear this session's STM and the node's whole long-term memory."""
        return self._transport.send(self._calls.write("clear_all", "/clear-all"))

    def get_stm(self) -> Body:
        return self._transport.send(self._calls.read("get_stm", "/stm"))

    def get_predictions(self) -> Body:
        """The predictions of the latest observe (not recomputed)."""
        return self._transport.send(self._calls.read("get_predictions", "/predictions"))

    def get_percept_data(self) -> Body:
        return self._transport.send(self._calls.read("get_percept_data", "/percept-data"))

    def get_cognition_data(self) -> Body:
        return self._transport.send(self._calls.read("get_cognition_data", "/cognition-data"))

    def get_pattern(self, name: str) -> Body:
        """A pattern of the node by ``PTRN|<hash>`` or ``<hash>``; ``NotFoundError`` if absent."""
        return self._transport.send(ops.get_pattern(self.node_id, name))

    def list_patterns(self, *, offset: int = 0, limit: int = 100) -> Body:
        return self._transport.send(ops.list_patterns(self.node_id, offset=offset, limit=limit))

    def get_symbol_stats(self) -> Body:
        return self._transport.send(ops.symbol_stats(self.node_id))

    def get_session_info(self) -> Body:
        return self._transport.send(self._calls.read("get_session"))

    def get_session_config(self) -> Body:
        return self._transport.send(self._calls.read("get_session_config", "/config"))

    def update_session_config(
        self, config: Mapping[str, Any] | None = None, **changes: Any
    ) -> Body:
        """Merge configuration overrides; ``InvalidConfigError`` (nothing applied) if invalid."""
        return self._transport.send(self._calls.config_update(config, changes))

    def extend_session(self, ttl_seconds: int) -> Body:
        return self._transport.send(ops.extend_session(self.session_id, ttl_seconds))

    def check_session_exists(self) -> Body:
        return self._transport.send(self._calls.read("session_exists", "/exists"))


class AsyncKatoClient:
    """A session on a KATO node, used from asyncio; the session is created on entry.

        async with kato.AsyncKatoClient(node_id="demo") as k:
            await k.observe(strings=["hello"])

    Takes the parameters of :class:`KatoClient`.
    """

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
        self._calls = _Calls(node_id, base_url, config)
        self.node_id = self._calls.node_id
        self._create = ops.create_session(
            node_id, metadata=metadata, ttl_seconds=ttl_seconds, config=config
        )
        self._transport: AsyncTransport
        if base_url is None and transport is None:
            self._transport = AsyncLocalTransport(backend or default_backend())
        else:
            self._transport = _http_transport(
                base_url, is_async=True, transport=transport, timeout=timeout, retries=retries
            )
        self._closed = False

    @property
    def session_id(self) -> str:
        return self._calls.session_id

    def __repr__(self) -> str:
        return f"AsyncKatoClient(node_id={self.node_id!r}, session_id={self._calls._session_id!r})"

    async def open(self) -> Self:
        """Create the session (``async with`` does this for you)."""
        if self._calls._session_id is None:
            self._calls._session_id = (await self._transport.send(self._create))["session_id"]
        return self

    async def __aenter__(self) -> Self:
        try:
            return await self.open()
        except BaseException:
            await self._transport.aclose()
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Delete the session (if it still exists) and release the transport."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._calls._session_id is not None:
                with contextlib.suppress(SessionNotFoundError):
                    await self._transport.send(ops.delete_session(self.session_id))
        finally:
            await self._transport.aclose()

    async def observe(
        self,
        strings: Sequence[str] | None = None,
        vectors: Sequence[Sequence[float]] | None = None,
        emotives: Mapping[str, float] | None = None,
        metadata: Mapping[str, Any] | None = None,
        unique_id: str | None = None,
    ) -> Body:
        return await self._transport.send(
            self._calls.observation(strings, vectors, emotives, metadata, unique_id)
        )

    async def observe_sequence(
        self,
        observations: Sequence[Mapping[str, Any]],
        *,
        learn_after_each: bool = False,
        learn_at_end: bool = False,
        clear_stm_between: bool = False,
    ) -> Body:
        op = self._calls.observation_sequence(
            observations, learn_after_each, learn_at_end, clear_stm_between
        )
        return await self._transport.send(op)

    async def learn(self) -> Body:
        return await self._transport.send(self._calls.write("learn", "/learn"))

    async def clear_stm(self) -> Body:
        return await self._transport.send(self._calls.write("clear_stm", "/clear-stm"))

    async def clear_all(self) -> Body:
        return await self._transport.send(self._calls.write("clear_all", "/clear-all"))

    async def get_stm(self) -> Body:
        return await self._transport.send(self._calls.read("get_stm", "/stm"))

    async def get_predictions(self) -> Body:
        return await self._transport.send(self._calls.read("get_predictions", "/predictions"))

    async def get_percept_data(self) -> Body:
        return await self._transport.send(self._calls.read("get_percept_data", "/percept-data"))

    async def get_cognition_data(self) -> Body:
        return await self._transport.send(self._calls.read("get_cognition_data", "/cognition-data"))

    async def get_pattern(self, name: str) -> Body:
        return await self._transport.send(ops.get_pattern(self.node_id, name))

    async def list_patterns(self, *, offset: int = 0, limit: int = 100) -> Body:
        return await self._transport.send(
            ops.list_patterns(self.node_id, offset=offset, limit=limit)
        )

    async def get_symbol_stats(self) -> Body:
        return await self._transport.send(ops.symbol_stats(self.node_id))

    async def get_session_info(self) -> Body:
        return await self._transport.send(self._calls.read("get_session"))

    async def get_session_config(self) -> Body:
        return await self._transport.send(self._calls.read("get_session_config", "/config"))

    async def update_session_config(
        self, config: Mapping[str, Any] | None = None, **changes: Any
    ) -> Body:
        return await self._transport.send(self._calls.config_update(config, changes))

    async def extend_session(self, ttl_seconds: int) -> Body:
        return await self._transport.send(ops.extend_session(self.session_id, ttl_seconds))

    async def check_session_exists(self) -> Body:
        return await self._transport.send(self._calls.read("session_exists", "/exists"))
