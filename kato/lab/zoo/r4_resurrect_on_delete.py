"""R4 — a write already in flight when the delete ran saves the session again.

**What users saw:** a deleted session came back, with its data.

**Mechanism:** an update read the session, computed the new document, and saved it with a plain
write — no version check and no check that the key still existed. A ``DELETE`` that landed
between that read and that write was undone: the write recreated every key, with the document
as it was before the delete plus the new observation. :class:`ResurrectingStore` updates that
way. To make the race likely at small scale the variant also waits ``write_delay_s`` (10 ms)
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
import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

from kato.engine import SnapshotChanged
from kato.lab.zoo._variant import Variant, redis_options
from kato.sessions.record import SessionRecord
from kato.sessions.redis import RedisSessionStore
from kato.sessions.store import Change, Outcome
from kato.settings import Settings
from kato.stores.redis_errors import redis_errors

__all__ = ["VARIANT", "ResurrectingStore"]

T = TypeVar("T")

# KEYS: doc, ids, idq   ARGV: version, doc, ttl ms, unique id, reply — written whatever is there
_PLAIN_WRITE = """
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'd', ARGV[2], 't', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[2], ARGV[4], ARGV[5])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
return redis.call('PTTL', KEYS[1])
"""


class ResurrectingStore(RedisSessionStore):
    """The production store, except that updates save without checking the key (R4)."""

    def __init__(self, url: str, *, write_delay_s: float = 0.01, **options: Any) -> None:
        super().__init__(url, **options)
        self.write_delay_s = write_delay_s
        self._plain_write = self._redis.register_script(_PLAIN_WRITE)

    async def _update(
        self,
        session_id: str,
        change: Callable[[SessionRecord], Change[T]],
        *,
        unique_id: str | None,
        restart: bool,
    ) -> Outcome[T]:
        keys = self._keys(session_id)
        self.counters.updates += 1
        while True:
            read = await self._read(session_id, touch=self.auto_extend, unique_id=unique_id)
            if read.earlier is not None:
                return Outcome(self._lease(read.record, read.pttl_ms), None, replayed=read.earlier)
            try:
                changed = change(read.record)
            except SnapshotChanged:
                continue
            break
        new = replace(changed.record, version=read.record.version + 1)
        doc = new.to_json()
        reply = json.dumps(changed.reply) if unique_id and changed.reply is not None else ""
        await asyncio.sleep(self.write_delay_s)  # the exposure: a write still in flight
        with redis_errors("update", session_id):  # the bug: a plain write, deleted or not
            ttl = await self._plain_write(
                keys=keys,
                args=[str(new.version), doc, new.ttl_seconds * 1000, unique_id or "", reply],
            )
        self._count(len(doc) + len(reply))
        return Outcome(self._lease(new, int(ttl)), changed.value)


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
