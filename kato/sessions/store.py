"""The session-store contract every backend keeps (sessions.md guarantees 1–9)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from kato.sessions.record import SessionRecord

__all__ = ["Lease", "SessionStore"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Lease:
    """A session as read from the store, with the expiry time the store's TTL implies."""

    record: SessionRecord
    expires_at: float


class SessionStore(Protocol):
    """Where sessions live. Every method raises ``SessionNotFoundError`` for a missing session
    and ``StoreUnavailableError`` when the store cannot answer; never one for the other."""

    async def create(self, record: SessionRecord) -> Lease:
        """Store a new session; it is visible to every later call the moment this returns."""
        ...

    async def get(self, session_id: str, *, touch: bool = True) -> Lease:
        """Read a session; ``touch`` restarts its TTL (sliding expiry). Never writes the record."""
        ...

    async def update(
        self, session_id: str, change: Callable[[SessionRecord], tuple[SessionRecord, T]]
    ) -> tuple[Lease, T]:
        """Atomically apply ``change`` to the session and return its new lease and ``change``'s
        second value. ``change`` must be pure: a store may call it more than once."""
        ...

    async def delete(self, session_id: str) -> None:
        """Delete a session; no later or in-flight write can bring it back."""
        ...

    async def exists(self, session_id: str) -> tuple[bool, bool]:
        """``(exists, expired)`` without extending the TTL."""
        ...

    async def extend(self, session_id: str, ttl_seconds: int) -> Lease:
        """Set the session's TTL length to ``ttl_seconds`` and restart it."""
        ...

    async def count(self) -> int:
        """The exact number of live sessions, without scanning keys."""
        ...

    async def close(self) -> None: ...
