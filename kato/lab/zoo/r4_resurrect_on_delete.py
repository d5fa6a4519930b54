"""R4 — a write already in flight when the delete ran saves the session again.

**What users saw:** a deleted session came back, with its data.

**Mechanism:** an update read the session, computed the new document, and saved it with a plain
write — no version check and no check that the key still existed. A ``DELETE`` that landed between
that read and that write was undone: the write recreated every key, with the document as it was
before the delete plus the new observation. This variant is the production store with
:class:`PlainWrite` as its ``commit`` seam in place of the compare-and-set, and no writer queue (the
earlier system had none). To make the race likely at small scale the plain write also waits
``delay_s`` (10 ms) between the read and the write — the exposure, not the bug (like R8's injected
faults): the production store, slowed the same way, would still refuse the write. Without a
compare-and-set the variant also loses concurrent observations (``no_lost_updates`` flags that too,
as for R2).

**Why production does not have it:** every write is a compare-and-set script that first reads
the version from the key; a missing key answers "deleted" and the update fails with
SESSION_NOT_FOUND instead of writing, so a delete is final (sessions.md guarantee 4).

Exposed by ``delete-race`` (several clients observe into each session while one deletes it,
then the session is read): ``resurrection`` reports ok operations on sessions whose delete had
completed.
"""

from __future__ import annotations

import asyncio

from kato.exceptions import SessionNotFoundError
from kato.lab.zoo._variant import Variant, redis_store
from kato.sessions import codec
from kato.sessions.redis import RedisSessionStore, Write

__all__ = ["VARIANT", "PlainWrite"]

# KEYS: doc, ids   ARGV: refuse a missing key ("1"/"0"), version, ttl ms, unique id, reply,
# then the whole record's parts as field, value... -> false if refused, else the key's PTTL: no
# version check, ever
_PLAIN_WRITE = """
if ARGV[1] == '1' and redis.call('EXISTS', KEYS[1]) == 0 then return false end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 't', ARGV[3], unpack(ARGV, 6))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[2], ARGV[4], ARGV[5])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
return redis.call('PTTL', KEYS[1])
"""


class PlainWrite:
    """A ``commit`` that writes whatever was computed, after ``delay_s``: never a conflict, and a
    deleted session is written again unless ``refuse_missing`` (R4; R2 refuses)."""

    def __init__(
        self, store: RedisSessionStore, *, refuse_missing: bool = False, delay_s: float = 0.01
    ) -> None:
        self.refuse_missing = refuse_missing
        self.delay_s = delay_s
        self._store = store
        self._script = store.redis.register_script(_PLAIN_WRITE)

    async def __call__(self, write: Write) -> int | None:
        await asyncio.sleep(self.delay_s)  # the exposure: a write still in flight
        new, refuse = write.record, "1" if self.refuse_missing else "0"
        args: list[str | bytes | int] = [refuse, str(new.version), new.ttl_seconds * 1000]
        args += [write.unique_id, write.reply, *codec.flat(codec.encode(write.record))]
        ttl = await self._script(keys=write.read.keys[:2], args=args)
        if ttl is None:
            session_id = write.read.session_id
            raise SessionNotFoundError(session_id, f"Session '{session_id}' was deleted")
        if new.pending:
            await self._store.index_outbox(write.read.session_id)
        return int(ttl)


VARIANT = Variant.of(
    __name__, "delete-race", "resurrection", workers=1, concurrency=4, operations=160,
    store=redis_store(commit=PlainWrite, queue_writers=False, leases=False),
)
