"""How a client's operations reach KATO: in-process transports (HTTP ones live in ``_http``).

They hand back what the service would answer, decoded: a core reply may carry JSON it never
decoded (stored predictions, ``msgspec.Raw``), which is decoded here (``materialize``).
"""

from __future__ import annotations

from typing import Protocol

from kato.api import Body, Operation
from kato.client._local import LocalBackend
from kato.sessions.codec import materialize

__all__ = ["AsyncLocalTransport", "AsyncTransport", "LocalTransport", "Transport"]


class Transport(Protocol):
    def send(self, op: Operation) -> Body: ...

    def close(self) -> None: ...


class AsyncTransport(Protocol):
    async def send(self, op: Operation) -> Body: ...

    async def aclose(self) -> None: ...


class LocalTransport:
    """Runs operations on an in-process :class:`LocalBackend`, as the service's routes do."""

    def __init__(self, backend: LocalBackend) -> None:
        self.backend = backend

    def send(self, op: Operation) -> Body:
        return materialize(self.backend.run(op.call(self.backend.kato)))  # type: ignore[no-any-return]

    def close(self) -> None:
        return None


class AsyncLocalTransport:
    """Awaits operations on an in-process :class:`LocalBackend` (its loop serialises them)."""

    def __init__(self, backend: LocalBackend) -> None:
        self.backend = backend

    async def send(self, op: Operation) -> Body:
        return materialize(await self.backend.run_async(op.call(self.backend.kato)))  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        return None
