"""The session record: everything a session holds (sessions.md, "What a session holds")."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kato.engine import SessionState
from kato.sessions.outbox import Pending

__all__ = ["SessionRecord"]


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """One session; ``version`` grows by one with every write (the store keeps it).

    Expiry is not stored here: the store's own TTL is the only clock (sessions.md guarantee 5).
    The replies remembered for idempotent retries live beside the record, in the store.
    ``pending`` is the session's outbox: LTM effects committed with it and maybe not applied
    yet (:mod:`kato.sessions.outbox`), oldest first.
    """

    session_id: str
    node_id: str
    created_at: float
    ttl_seconds: int
    metadata: Mapping[str, Any] = field(default_factory=dict)
    config: Mapping[str, Any] = field(default_factory=dict)
    state: SessionState = field(default_factory=SessionState)
    version: int = 0
    pending: tuple[Pending, ...] = ()
