"""The in-memory session store: one process only (a notebook, the in-process client, tests).

It keeps every guarantee of sessions.md within its process: ``change`` runs in a worker thread
on the record read, and the result is written only if the session still holds that very record
(else it is computed again), so each update is atomic. It cannot be shared by several worker
processes, and the service refuses to start it behind more than one.
"""

from __future__ import annotations

import itertools
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, TypeVar

from kato.engine import SnapshotChanged
from kato.exceptions import SessionLimitError, SessionNotFoundError
from kato.sessions.record import SessionRecord
from kato.sessions.store import Change, ChangeFn, Lease, Outcome, compute

__all__ = ["MemorySessionStore"]

T = TypeVar("T")
_SNAPSHOT_ATTEMPTS = 16


class MemorySessionStore:
    """Sessions in a dict, each with a deadline on a monotonic ``clock`` (its only expiry clock)."""

    def __init__(
        self,
        *,
        auto_extend: bool = True,
        applied_limit: int = 1000,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        max_sessions: int = 0,
        max_sessions_per_node: int = 0,
    ) -> None:
        self._auto_extend = auto_extend
        self._max_sessions = max_sessions
        self._max_per_node = max_sessions_per_node
        self._applied_limit = applied_limit
        self._clock = clock
        self._wall = wall_clock
        self._sessions: dict[str, tuple[SessionRecord, float]] = {}
        #: Per session, the replies of updates made with a ``unique_id`` (oldest first).
        self._replies: dict[str, OrderedDict[str, Mapping[str, Any]]] = {}
        #: The outbox index: sessions whose record carries pending effects, by mark.
        self._outbox: dict[str, float] = {}
        self._marks = itertools.count(1)

    def _lease(self, record: SessionRecord, deadline: float) -> Lease:
        return Lease(record, self._wall() + (deadline - self._clock()))

    def _live(self, session_id: str) -> tuple[SessionRecord, float]:
        entry = self._sessions.get(session_id)
        if entry is None:
            raise SessionNotFoundError(session_id)
        if entry[1] <= self._clock():
            del self._sessions[session_id]
            self._replies.pop(session_id, None)
            raise SessionNotFoundError(session_id, f"Session '{session_id}' has expired")
        return entry

    def _deadline(self, record: SessionRecord, previous: float | None) -> float:
        if previous is not None and not self._auto_extend:
            return previous
        return self._clock() + record.ttl_seconds

    async def create(self, record: SessionRecord) -> Lease:
        if self._max_sessions or self._max_per_node:
            self._check_room(record.node_id)
        deadline = self._deadline(record, None)
        self._sessions[record.session_id] = (record, deadline)
        return self._lease(record, deadline)

    def _check_room(self, node_id: str) -> None:
        """Raise ``SessionLimitError`` if one more session would pass a limit."""
        live = self._drop_expired()
        if self._max_sessions and live >= self._max_sessions:
            kind, limit = "deployment", self._max_sessions
        elif self._max_per_node and self._max_per_node <= sum(
            1 for record, _ in self._sessions.values() if record.node_id == node_id
        ):
            kind, limit = "node", self._max_per_node
        else:
            return
        raise SessionLimitError.reached(kind, limit)

    async def get(self, session_id: str, *, touch: bool = True, predictions: bool = True) -> Lease:
        record, deadline = self._live(session_id)
        if touch:
            deadline = self._deadline(record, deadline)
            self._sessions[session_id] = (record, deadline)
        return self._lease(record, deadline)

    async def update(
        self, session_id: str, change: ChangeFn[T], *, unique_id: str | None = None
    ) -> Outcome[T]:
        while True:
            record, deadline = self._live(session_id)
            replies = self._replies.setdefault(session_id, OrderedDict())
            if unique_id is not None and unique_id in replies:
                deadline = self._deadline(record, deadline)
                self._sessions[session_id] = (record, deadline)
                return Outcome(self._lease(record, deadline), None, replayed=replies[unique_id])
            changed = await self._run(change, record)
            current = self._sessions.get(session_id)
            if current is None:
                raise SessionNotFoundError(session_id, f"Session '{session_id}' was deleted")
            if current[0] is record:  # nobody wrote meanwhile
                return self._commit(session_id, record, current[1], changed, unique_id)

    def _commit(
        self,
        session_id: str,
        record: SessionRecord,
        deadline: float,
        changed: Change[T],
        unique_id: str | None,
    ) -> Outcome[T]:
        replies = self._replies.setdefault(session_id, OrderedDict())
        new = replace(changed.record, version=record.version + 1)
        deadline = self._deadline(new, deadline)
        self._sessions[session_id] = (new, deadline)
        if unique_id is not None and changed.reply is not None:
            replies[unique_id] = changed.reply
            while len(replies) > self._applied_limit:
                replies.popitem(last=False)
        if new.pending:
            self._outbox[session_id] = next(self._marks)
        return Outcome(self._lease(new, deadline), changed.value)

    @staticmethod
    async def _run(change: ChangeFn[T], record: SessionRecord) -> Change[T]:
        """``change(record)``, computed again while an LTM snapshot was inconsistent."""
        for _ in range(_SNAPSHOT_ATTEMPTS - 1):
            try:
                return await compute(change, record)
            except SnapshotChanged:
                continue
        return await compute(change, record)

    async def delete(self, session_id: str) -> None:
        self._live(session_id)
        del self._sessions[session_id]
        self._replies.pop(session_id, None)

    async def exists(self, session_id: str) -> bool:
        entry = self._sessions.get(session_id)
        return entry is not None and entry[1] > self._clock()

    async def extend(self, session_id: str, ttl_seconds: int) -> Lease:
        record, _ = self._live(session_id)
        record = replace(record, ttl_seconds=ttl_seconds, version=record.version + 1)
        deadline = self._clock() + ttl_seconds
        self._sessions[session_id] = (record, deadline)
        return self._lease(record, deadline)

    async def count(self) -> int:
        return self._drop_expired()

    async def outbox(self, limit: int) -> list[tuple[str, float]]:
        return sorted(self._outbox.items(), key=lambda item: item[1])[:limit]

    async def settled(self, session_id: str, mark: float) -> None:
        if self._outbox.get(session_id) == mark:
            del self._outbox[session_id]

    def _drop_expired(self) -> int:
        """Forget expired sessions; the number of live ones."""
        now = self._clock()
        expired = [sid for sid, (_, deadline) in self._sessions.items() if deadline <= now]
        for sid in expired:
            del self._sessions[sid]
            self._replies.pop(sid, None)
        return len(self._sessions)

    async def close(self) -> None:
        self._sessions.clear()
        self._replies.clear()
        self._outbox.clear()
