"""R1 — reads write the whole session back, outside any concurrency control.

**What users saw:** about 1 in 10 concurrent observations into one session were lost, with a
single worker.

**Mechanism:** to refresh a session's TTL, every read saved the whole session document it had
just read (a plain write, no version check). Observe reads the session too, so a read that
started before another request's write saved the *older* document after that write, and the
newer observation vanished. Here the production store's ``refresh`` seam is :class:`WriteBack`:
every touching read writes back the version and document it read, unconditionally (only if the
key still exists, so R4 stays out). Like the earlier system, the store does not queue a
process's writers of one session behind each other (production's ``queue_writers``, a
contention fix that would also hide this bug within one process).

**Why production does not have it:** the production store's reads never write the document
(sessions.md guarantee 2): the read script restarts the key's TTL with ``PEXPIRE`` and nothing
else, and every write is a compare-and-set on the version.

Exposed by ``shared-session`` (16 clients, one worker): ``no_lost_updates`` reports lost
observations.
"""

from __future__ import annotations

from kato.lab.zoo._variant import Variant, redis_store
from kato.sessions import codec
from kato.sessions.redis import Read, RedisSessionStore

__all__ = ["VARIANT", "WriteBack"]

# KEYS: doc   ARGV: version, ttl ms, then the record's parts as field, value... — the old
# "save to refresh the TTL"
_WRITE_BACK = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 't', ARGV[2], unpack(ARGV, 3))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""


class WriteBack:
    """The store's ``refresh``: save the version and document just read, unconditionally (R1)."""

    def __init__(self, store: RedisSessionStore) -> None:
        self._store = store
        self._script = store.redis.register_script(_WRITE_BACK)

    async def __call__(self, read: Read) -> None:
        parts = codec.encode(read.record)
        ttl_ms = read.record.ttl_seconds * 1000
        await self._script(keys=read.keys[:1], args=[read.version, ttl_ms, *codec.flat(parts)])
        self._store.note_round_trip(sum(len(value) for value in parts.values()))


VARIANT = Variant.of(
    __name__, "shared-session", "no_lost_updates", workers=1, concurrency=16, operations=200,
    store=redis_store(refresh=WriteBack, queue_writers=False, leases=False),
)
