"""R4 — a write already in flight when the delete ran saves the session again.

**What users saw:** a deleted session came back, with its data.

**Mechanism:** an update read the session, computed the new document, and saved it with a plain
write — no version check and no check that the key still existed. A ``DELETE`` that landed
between that read and that write was undone: the write recreated every key, with the document
as it was before the delete plus the new observation. :class:`ResurrectingStore` updates that
way: it is the production store with a plain write in place of the compare-and-set script. To
make the race likely at small scale the variant also waits ``write_delay_s`` (10 ms)
between its read and its write — the exposure, not the bug (like R8's injected faults): the
production store, slowed the same way, would still refuse the write. Without a compare-and-set the
variant also loses concurrent observations (``no_lost_updates`` flags that too, as for R2).

**Why production does not have it:** every write is a compare-and-set script that first reads
the version from the key; a missing key answers "deleted" and the update fails with
SESSION_NOT_FOUND instead of writing, so a delete is final (sessions.md guarantee 4).

Exposed by ``delete-race`` (several clients observe into each session while one deletes it,
then the session is read): ``resurrection`` reports ok operations on sessions whose delete had
completed.
"""

from __future__ import annotations

import asyncio
from typing import Any

from kato.lab.zoo._variant import Variant, redis_options
from kato.sessions.redis import RedisSessionStore
from kato.settings import Settings

__all__ = ["VARIANT", "ResurrectingStore"]

# The compare-and-set's contract (KEYS: doc, ids, idq; ARGV: expected version, new version, doc,
# ttl ms, restart ttl, unique id, reply, limit) without its two checks: it writes whatever is
# there, or is not, and always answers "written".
_PLAIN_WRITE = """
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'd', ARGV[3], 't', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
if ARGV[6] ~= '' then
  redis.call('HSET', KEYS[2], ARGV[6], ARGV[7])
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
end
return {1, redis.call('PTTL', KEYS[1])}
"""


class ResurrectingStore(RedisSessionStore):
    """The production store with a plain write where the compare-and-set was (R4), and no
    writer queue (the earlier system had none)."""

    def __init__(self, url: str, *, write_delay_s: float = 0.01, **options: Any) -> None:
        super().__init__(url, queue_writers=False, **options)
        self.write_delay_s = write_delay_s
        self._plain_write = self._redis.register_script(_PLAIN_WRITE)
        self._cas_script = self._slow_plain_write  # type: ignore[assignment]

    async def _slow_plain_write(self, *, keys: list[str], args: list[Any]) -> Any:
        await asyncio.sleep(self.write_delay_s)  # the exposure: a write still in flight
        return await self._plain_write(keys=keys, args=args)  # the bug: deleted or not


def _store(settings: Settings) -> ResurrectingStore:
    return ResurrectingStore(**redis_options(settings))


VARIANT = Variant(
    name="r4-resurrect-on-delete",
    failure="R4",
    description="updates save with a plain write, so one in flight undoes a delete",
    scenario="delete-race",
    checker="resurrection",
    spec={"workers": 1, "concurrency": 4, "operations": 160},
    store=_store,
)
