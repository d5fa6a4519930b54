"""The session-store contract every backend keeps (sessions.md guarantees 1–9).

A state-changing operation is ``store.update(session_id, change, unique_id=...)``: the store
reads the session, calls the pure function ``change(record) -> Change``, and commits the new
record atomically against every other writer of that session, in any process. A store may call
``change`` more than once (an optimistic store does, after a conflict), so ``change`` must not
have effects of its own: effects go into ``Change.value``, and LTM effects into the new
record's outbox (``SessionRecord.pending``), which the caller drains after the update returns.
A store calls ``change`` through :func:`compute`: in a worker thread (it reads long-term memory
and computes predictions), or, for an :class:`AtOnce` change that can answer at once, first on
the event loop. The record it hands ``change`` may leave the session's
stored predictions unread (:data:`kato.sessions.codec.NOT_READ`): no engine step reads them, a
step replaces them.

The store indexes every session whose committed record carries pending effects
(``outbox``), so a drainer finds them without scanning; ``settled`` drops one from the index.

``unique_id`` makes an update idempotent: the store remembers ``Change.reply`` under it, and a
later update with the same id is not applied; its :class:`Outcome` carries the first reply in
``replayed`` instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from kato.engine import WouldWait
from kato.sessions.codec import StoredPredictions
from kato.sessions.record import SessionRecord

__all__ = ["AtOnce", "Change", "ChangeFn", "Lease", "Outcome", "SessionStore", "compute"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Lease:
    """A session as read from the store, with the expiry time the store's TTL implies."""

    record: SessionRecord
    expires_at: float
    #: The stored predictions, undecoded, when the read asked for them and the store keeps them
    #: encoded (then the record's are :data:`~kato.sessions.codec.NOT_READ`); read them with
    #: :func:`kato.sessions.codec.stored_predictions`.
    predictions: StoredPredictions | None = None


@dataclass(frozen=True, slots=True)
class Change(Generic[T]):
    """What ``change`` returns: the new record, a value for the caller, and the reply to
    remember under the update's ``unique_id`` (if it has one)."""

    record: SessionRecord
    value: T
    reply: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Outcome(Generic[T]):
    """The result of an update: the committed lease and ``change``'s value, or, when the
    ``unique_id`` had been applied before, nothing new and the first reply in ``replayed``."""

    lease: Lease
    value: T | None
    replayed: Mapping[str, Any] | None = None


#: What ``update`` applies: a pure function of the session's record (see the module docstring).
ChangeFn = Callable[[SessionRecord], Change[T]]


class AtOnce(Generic[T]):
    """A change that may be computed on the event loop: ``step(record, at_once)`` with
    ``at_once=True`` either computes without waiting for anything (a small node read from
    memory, :data:`kato.engine.ltm.AT_ONCE_SYMBOLS`) or raises :class:`~kato.engine.WouldWait`;
    called as a :data:`ChangeFn` it computes with ``at_once=False``.

    Handing a step to a thread and back costs more than a step over a small node does (a
    bare observe spent twice as much CPU on the hand-off and the GIL changing hands as on the
    step itself, #17)."""

    __slots__ = ("step",)

    def __init__(self, step: Callable[[SessionRecord, bool], Change[T]]) -> None:
        self.step = step

    def __call__(self, record: SessionRecord) -> Change[T]:
        return self.step(record, False)


async def compute(change: ChangeFn[T], record: SessionRecord) -> Change[T]:
    """``change(record)``: at once when it is an :class:`AtOnce` that can answer so, else in a
    worker thread (it may read a slow LTM and compute predictions, and the event loop must
    keep serving every other request meanwhile). An update computed at once still lets the
    other tasks run first: without that suspension an in-process store's update never yields,
    and concurrent clients of one event loop (the workbench's engine target) would each run
    their whole program in turn."""
    if isinstance(change, AtOnce):
        await asyncio.sleep(0)
        try:
            return change.step(record, True)
        except WouldWait:
            pass
    return await asyncio.to_thread(change, record)


class SessionStore(Protocol):
    """Where sessions live. Every method raises ``SessionNotFoundError`` for a missing session
    and ``StoreUnavailableError`` when the store cannot answer; never one for the other."""

    async def create(self, record: SessionRecord) -> Lease:
        """Store a new session; it is visible to every later call the moment this returns."""
        ...

    async def get(self, session_id: str, *, touch: bool = True, predictions: bool = True) -> Lease:
        """Read a session; ``touch`` restarts its TTL (sliding expiry). Never writes the record.

        ``predictions=False``: the record's predictions and future potentials may be left
        unread (:data:`kato.sessions.codec.NOT_READ`), for reads that do not answer with them;
        ``True``: :func:`kato.sessions.codec.stored_predictions` gives them.
        """
        ...

    async def update(
        self, session_id: str, change: ChangeFn[T], *, unique_id: str | None = None
    ) -> Outcome[T]:
        """Atomically apply ``change`` to the session (see the module docstring)."""
        ...

    async def delete(self, session_id: str) -> None:
        """Delete a session; no later or in-flight write can bring it back."""
        ...

    async def exists(self, session_id: str) -> bool:
        """Whether the session is live, without extending its TTL.

        An expired session is gone exactly like a deleted one: the store's TTL is the only clock
        (guarantee 5), and no store keeps a trace of what expired, so ``exists`` cannot tell the
        two apart and the API's ``expired`` is always false.
        """
        ...

    async def extend(self, session_id: str, ttl_seconds: int) -> Lease:
        """Set the session's TTL length to ``ttl_seconds`` and restart it."""
        ...

    async def count(self) -> int:
        """The exact number of live sessions, without scanning keys."""
        ...

    async def outbox(self, limit: int) -> list[tuple[str, float]]:
        """Up to ``limit`` sessions whose record may carry pending effects, oldest first, each
        with the mark it is indexed under (a session may also have gone since)."""
        ...

    async def settled(self, session_id: str, mark: float) -> None:
        """Drop ``session_id`` from the outbox index if it is still indexed under ``mark`` (a
        write that committed pending effects since has indexed it anew, and it stays)."""
        ...

    async def close(self) -> None:
        """Release connections; the store is not used afterwards."""
        ...
