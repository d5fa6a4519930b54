"""R1 — reads write the whole session back, outside any concurrency control.

**What users saw:** about 1 in 10 concurrent observations into one session were lost, with a
single worker.

**Mechanism:** to refresh a session's TTL, every read saved the whole session document it had
just read (a plain write, no version check). Observe reads the session too, so a read that
started before another request's write saved the *older* document after that write, and the
newer observation vanished. Here every read of :class:`ReadWritebackStore` writes back the
version and document it read, unconditionally (only if the key still exists, so R4 stays out).
Like the earlier system, it does not queue a process's writers of one session behind each other
(production's ``queue_writers``, a contention fix that would also hide this bug within one
process).

**Why production does not have it:** the production store's reads never write the document
(sessions.md guarantee 2): the read script restarts the key's TTL with ``PEXPIRE`` and nothing
else, and every write is a compare-and-set on the version.

Exposed by ``shared-session`` (16 clients, one worker): ``no_lost_updates`` reports lost
observations.
"""

from __future__ import annotations

from typing import Any

from kato.lab.zoo._variant import Variant, redis_options
from kato.sessions.redis import RedisSessionStore, _Read
from kato.settings import Settings
from kato.stores.redis_errors import redis_errors

__all__ = ["VARIANT", "ReadWritebackStore"]

# KEYS: doc   ARGV: version, doc, ttl ms — the old "save to refresh the TTL"
_WRITE_BACK = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'd', ARGV[2], 't', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""


class ReadWritebackStore(RedisSessionStore):
    """The production store, except that every touching read saves what it read (R1)."""

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(url, **options)
        self._write_back = self._redis.register_script(_WRITE_BACK)

    async def _read(self, session_id: str, *, touch: bool, unique_id: str | None) -> _Read:
        read = await super()._read(session_id, touch=touch, unique_id=unique_id)
        if touch:
            record = read.record
            doc = record.to_json()
            with redis_errors("read", session_id):
                await self._write_back(
                    keys=self._keys(session_id)[:1],
                    args=[read.version, doc, record.ttl_seconds * 1000],
                )
            self._count(len(doc))
        return read


def _store(settings: Settings) -> ReadWritebackStore:
    return ReadWritebackStore(**redis_options(settings), queue_writers=False)


VARIANT = Variant(
    name="r1-read-writeback",
    failure="R1",
    description="every read writes the session it read back, overwriting newer writes",
    scenario="shared-session",
    checker="no_lost_updates",
    spec={"workers": 1, "concurrency": 16, "operations": 200},
    store=_store,
)
