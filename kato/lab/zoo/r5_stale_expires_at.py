"""R5 — reads extend the key's TTL but not a stored ``expires_at``, which then "expires" it.

**What users saw:** sessions that were only read (never written) died ``ttl_seconds`` after
their last write, although they were used all the time.

**Mechanism:** the session kept a second clock, an ``expires_at`` field written with the session.
Reads restarted the key's TTL (so Redis kept the key) but did not rewrite ``expires_at``; the next
read compared it with the time, saw the session "expired", and deleted it. :class:`StaleExpiresAt`,
a layer over the production store, stores ``expires_at`` beside the record on every write and checks
it on every read.

**Why production does not have it:** the key's TTL is the only clock (sessions.md guarantee
5); ``expires_at`` in responses is derived from ``PTTL``, never stored.

Exposed by ``ttl`` (sessions kept alive only by reads, 1 s TTL): ``read_your_writes`` reports
SESSION_NOT_FOUND on sessions read a third of a TTL earlier.
"""

from __future__ import annotations

import time
from typing import TypeVar

from kato.exceptions import SessionNotFoundError
from kato.lab.zoo._variant import StoreLayer, Variant, redis_store
from kato.sessions import ChangeFn, Lease, Outcome, SessionRecord
from kato.stores.redis_errors import redis_errors

__all__ = ["VARIANT", "StaleExpiresAt"]

T = TypeVar("T")
_FIELD = "expires_at"


class StaleExpiresAt(StoreLayer):
    """Production's store plus a stored ``expires_at`` that only writes move (R5)."""

    async def _stamp(self, session_id: str, ttl_seconds: int) -> None:
        key = self.inner.keys(session_id)[0]
        with redis_errors("write", session_id):
            await self.inner.redis.hset(key, _FIELD, str(time.time() + ttl_seconds))

    async def create(self, record: SessionRecord) -> Lease:
        lease = await self.inner.create(record)
        await self._stamp(record.session_id, record.ttl_seconds)
        return lease

    async def update(
        self, session_id: str, change: ChangeFn[T], *, unique_id: str | None = None
    ) -> Outcome[T]:
        outcome = await self.inner.update(session_id, change, unique_id=unique_id)
        await self._stamp(session_id, outcome.lease.record.ttl_seconds)
        return outcome

    async def get(self, session_id: str, *, touch: bool = True, predictions: bool = True) -> Lease:
        # restarts the key's TTL only
        lease = await self.inner.get(session_id, touch=touch, predictions=predictions)
        with redis_errors("read", session_id):
            stamp = await self.inner.redis.hget(self.inner.keys(session_id)[0], _FIELD)
        if stamp is not None and float(stamp) <= time.time():
            await self.inner.delete(session_id)
            raise SessionNotFoundError(session_id, f"Session '{session_id}' has expired")
        return lease


VARIANT = Variant.of(
    __name__, "ttl", "read_your_writes", workers=1, concurrency=4, operations=48, ttl_seconds=1,
    store=redis_store(StaleExpiresAt),
)
