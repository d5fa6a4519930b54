"""R2 — a per-process ``asyncio.Lock`` around GET → compute → SET of the session.

**What users saw:** half of the concurrent observations into one session were lost with four
workers (and none with one, which is why the lock looked like a fix).

**Mechanism:** each worker process kept a dict of ``asyncio.Lock`` objects, one per session, and
held it around reading the session, computing the change and writing the whole document back
with a plain SET. The lock serialises the coroutines of one process only; two workers read the
same version, both write, and the second write erases the first. :class:`ProcessLockStore`
does exactly that (the SET refuses a missing key, so R4 stays out). To make the race likely at
small scale on a loaded machine it waits ``write_delay_s`` (2 ms) between its read and its write:
the exposure, not the bug (as in R4).

Replies are not remembered under ``unique_id`` (the lab client sends none).

**Why production does not have it:** an ``asyncio.Lock`` is not shared by processes
(sessions.md guarantee 2). The production store commits with a Lua compare-and-set on the
session's version and retries on conflict, which serialises writers in every process and host.

Exposed by ``shared-session`` with four workers: ``no_lost_updates`` reports lost observations.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

from kato.engine import SnapshotChanged
from kato.exceptions import SessionNotFoundError
from kato.lab.zoo._variant import Variant, redis_options
from kato.sessions.record import SessionRecord
from kato.sessions.redis import RedisSessionStore
from kato.sessions.store import Change, Outcome
from kato.settings import Settings
from kato.stores.redis_errors import redis_errors

__all__ = ["VARIANT", "ProcessLockStore"]

T = TypeVar("T")

# KEYS: doc   ARGV: version, doc, ttl ms -> {-1} missing, {1, pttl} written (no version check)
_SET = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1} end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'd', ARGV[2], 't', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {1, redis.call('PTTL', KEYS[1])}
"""


class ProcessLockStore(RedisSessionStore):
    """The production store, except that updates hold a lock of this process only (R2)."""

    def __init__(self, url: str, *, write_delay_s: float = 0.002, **options: Any) -> None:
        super().__init__(url, **options)
        self.write_delay_s = write_delay_s
        self._set = self._redis.register_script(_SET)
        self._locks: dict[str, asyncio.Lock] = {}

    async def update(
        self,
        session_id: str,
        change: Callable[[SessionRecord], Change[T]],
        *,
        unique_id: str | None = None,
    ) -> Outcome[T]:
        lock = self._locks.setdefault(session_id, asyncio.Lock())
        async with lock:
            read = await self._read(session_id, touch=self.auto_extend, unique_id=None)
            for _ in range(self.max_attempts - 1):
                try:
                    changed = change(read.record)
                    break
                except SnapshotChanged:
                    continue
            else:
                changed = change(read.record)
            new = replace(changed.record, version=read.record.version + 1)
            doc = new.to_json()
            await asyncio.sleep(self.write_delay_s)  # the exposure: other workers read meanwhile
            with redis_errors("update", session_id):
                status, *ttl = await self._set(
                    keys=self._keys(session_id)[:1],
                    args=[str(new.version), doc, new.ttl_seconds * 1000],
                )
            self._count(len(doc))
        if status == -1:
            raise SessionNotFoundError(session_id, f"Session '{session_id}' was deleted")
        return Outcome(self._lease(new, int(ttl[0])), changed.value)


def _store(settings: Settings) -> ProcessLockStore:
    return ProcessLockStore(**redis_options(settings))


VARIANT = Variant(
    name="r2-process-lock",
    failure="R2",
    description="a per-process asyncio.Lock around GET, compute, SET: lost updates across workers",
    scenario="shared-session",
    checker="no_lost_updates",
    spec={"workers": 4, "concurrency": 32, "operations": 200},
    store=_store,
)
