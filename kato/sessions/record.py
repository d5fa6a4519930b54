"""The session record: everything a session holds (sessions.md, "What a session holds")."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from kato.engine import SessionState

__all__ = ["SessionRecord"]


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """One session; ``version`` grows by one with every write.

    ``applied`` remembers the results of observations sent with a client ``unique_id``, newest
    last, so that a retried observe is answered with its first result and not applied twice.
    Expiry is not stored here: the store's own TTL is the only clock (sessions.md guarantee 5).
    """

    session_id: str
    node_id: str
    created_at: float
    ttl_seconds: int
    metadata: Mapping[str, Any] = field(default_factory=dict)
    config: Mapping[str, Any] = field(default_factory=dict)
    state: SessionState = field(default_factory=SessionState)
    applied: tuple[tuple[str, Mapping[str, Any]], ...] = ()
    version: int = 0

    def applied_result(self, unique_id: str) -> Mapping[str, Any] | None:
        """The first result of an already applied observation, if this session has one."""
        return next((result for uid, result in reversed(self.applied) if uid == unique_id), None)

    def remember(self, unique_id: str, result: Mapping[str, Any], limit: int) -> SessionRecord:
        """This record with ``result`` remembered under ``unique_id`` (newest ``limit`` kept)."""
        return replace(self, applied=((*self.applied, (unique_id, dict(result))))[-limit:])

    def to_json(self) -> str:
        return json.dumps(
            {
                "session_id": self.session_id,
                "node_id": self.node_id,
                "created_at": self.created_at,
                "ttl_seconds": self.ttl_seconds,
                "metadata": self.metadata,
                "config": self.config,
                "state": self.state.to_dict(),
                "applied": [[uid, result] for uid, result in self.applied],
                "version": self.version,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> SessionRecord:
        data = json.loads(text)
        return cls(
            session_id=data["session_id"],
            node_id=data["node_id"],
            created_at=data["created_at"],
            ttl_seconds=data["ttl_seconds"],
            metadata=data["metadata"],
            config=data["config"],
            state=SessionState.from_dict(data["state"]),
            applied=tuple((uid, result) for uid, result in data["applied"]),
            version=data["version"],
        )
