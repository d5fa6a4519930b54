"""R6 — ``/sessions/count`` by ``KEYS``, then from an index that expired sessions never leave.

**What users saw:** first a count that was slow and blocked Redis for everyone; later, after
the scan was replaced by an index, counts that only grew.

**Mechanism:** the count scanned the keyspace with ``KEYS`` (O(all keys), blocking Redis). The
replacement kept a set of session ids, added on create and removed on delete, but an expiring key
leaves no trace, so expired sessions stayed counted for ever. :class:`KeysCount`, a layer over the
production store, reproduces both: the first count seeds the set with ``KEYS``, and every count is
that set's size.

**Why production does not have it:** the production index is a sorted set scored by expiry
time; ``count`` drops (or re-scores) the entries past their recorded expiry after checking their
keys' ``PTTL``, so expired sessions drop out, without ``KEYS``/``SCAN`` (sessions.md guarantee
6).

Exposed by ``ttl`` (half the sessions expire before the final count): ``counts`` reports a
count above the sessions that can still be live.
"""

from __future__ import annotations

from kato.lab.zoo._variant import StoreLayer, Variant, redis_store
from kato.sessions import Lease, SessionRecord
from kato.sessions.redis import RedisSessionStore
from kato.stores.redis_errors import redis_errors

__all__ = ["VARIANT", "KeysCount"]


class KeysCount(StoreLayer):
    """Production's store with the old count: a ``KEYS``-seeded set of ids (R6)."""

    def __init__(self, inner: RedisSessionStore) -> None:
        super().__init__(inner)
        self.id_set_key = f"{inner.prefix}:zoo-session-ids"

    async def create(self, record: SessionRecord) -> Lease:
        lease = await self.inner.create(record)
        with redis_errors("create", record.session_id):
            await self.inner.redis.sadd(self.id_set_key, record.session_id)
        return lease

    async def delete(self, session_id: str) -> None:
        await self.inner.delete(session_id)
        with redis_errors("delete", session_id):
            await self.inner.redis.srem(self.id_set_key, session_id)

    async def count(self) -> int:
        redis = self.inner.redis
        with redis_errors("count"):
            if not await redis.exists(self.id_set_key):
                keys = await redis.keys(f"{self.inner.prefix}:{{*}}")  # blocks Redis
                names = [key.decode() if isinstance(key, bytes) else key for key in keys]
                ids = {name.split("{", 1)[1].split("}", 1)[0] for name in names}
                if ids:
                    await redis.sadd(self.id_set_key, *ids)
            return int(await redis.scard(self.id_set_key))


VARIANT = Variant.of(
    __name__, "ttl", "counts", workers=1, concurrency=4, operations=48, ttl_seconds=1,
    store=redis_store(KeysCount),
)
