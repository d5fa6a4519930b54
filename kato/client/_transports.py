"""How a client's operations reach KATO: in-process transports (HTTP ones live in ``_http``)."""

from __future__ import annotations

from typing import Protocol

from kato.api import Body, Operation
from kato.client._local import LocalBackend

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
        return self.backend.run(op.call(self.backend.kato))

    def close(self) -> None:
        return None


class AsyncLocalTransport:
    """Awaits operations on an in-process :class:`LocalBackend` (its loop serialises them)."""

    def __init__(self, backend: LocalBackend) -> None:
        self.backend = backend

    async def send(self, op: Operation) -> Body:
        return await self.backend.run_async(op.call(self.backend.kato))

    async def aclose(self) -> None:
        return None
