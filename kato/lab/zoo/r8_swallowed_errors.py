"""R8 — store exceptions swallowed and returned as "no session".

**What users saw:** errors reported as SESSION_NOT_FOUND that were really pool exhaustion or
timeouts; clients dropped sessions that still existed.

**Mechanism:** loading a session was wrapped in ``except Exception: return None``, and every caller
read ``None`` as "no such session". :class:`SwallowedErrors`, a layer over the production store,
loads sessions that way. To expose it the variant also *injects* the transient faults that the
original met under load: a fraction (``failure_rate``, 5 % by default) of session reads raise the
redis client's ``ConnectionError`` before reaching Redis. The injection is part of the exposure, not
of the bug: the same fault in the production store becomes 503 ``STORE_UNAVAILABLE`` (an ``unknown``
outcome in the lab), which no checker counts against it.

**Why production does not have it:** Redis errors are translated at one boundary
(:mod:`kato.stores.redis_errors`) into ``StoreUnavailableError``; nothing catches ``Exception``
and a missing key is the only way to SESSION_NOT_FOUND (sessions.md guarantee 8).

Exposed by ``many-sessions``: ``read_your_writes`` reports SESSION_NOT_FOUND on sessions that
certainly exist.
"""

from __future__ import annotations

import os
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis import exceptions as redis_exceptions

from kato.exceptions import SessionNotFoundError
from kato.lab.zoo._variant import StoreLayer, Variant, redis_store
from kato.sessions import ChangeFn, Lease, Outcome
from kato.sessions.redis import RedisSessionStore

__all__ = ["VARIANT", "SwallowedErrors"]

T = TypeVar("T")


class SwallowedErrors(StoreLayer):
    """Production's store whose session loads turn any exception into "not found" (R8)."""

    def __init__(
        self, inner: RedisSessionStore, *, failure_rate: float = 0.05, seed: int | None = None
    ) -> None:
        super().__init__(inner)
        self.failure_rate = failure_rate
        self._faults = random.Random(os.getpid() if seed is None else seed)

    async def _load(self, session_id: str, call: Callable[[], Awaitable[T]]) -> T:
        try:
            if self._faults.random() < self.failure_rate:  # the exposure: a transient fault
                raise redis_exceptions.ConnectionError("injected: too many connections")
            return await call()
        except Exception:  # the bug: every failure reads as "no such session"
            raise SessionNotFoundError(session_id) from None

    async def get(self, session_id: str, *, touch: bool = True, predictions: bool = True) -> Lease:
        return await self._load(
            session_id, lambda: self.inner.get(session_id, touch=touch, predictions=predictions)
        )

    async def update(
        self, session_id: str, change: ChangeFn[T], *, unique_id: str | None = None
    ) -> Outcome[T]:
        return await self._load(
            session_id, lambda: self.inner.update(session_id, change, unique_id=unique_id)
        )

    async def extend(self, session_id: str, ttl_seconds: int) -> Lease:
        return await self._load(session_id, lambda: self.inner.extend(session_id, ttl_seconds))


VARIANT = Variant.of(
    __name__, "many-sessions", "read_your_writes", workers=1, concurrency=4, operations=160,
    store=redis_store(SwallowedErrors),
)
