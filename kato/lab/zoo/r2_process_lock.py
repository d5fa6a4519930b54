"""R2 — a per-process ``asyncio.Lock`` around GET → compute → SET of the session.

**What users saw:** half of the concurrent observations into one session were lost with four
workers (and none with one, which is why the lock looked like a fix).

**Mechanism:** each worker process kept a dict of ``asyncio.Lock`` objects, one per session, and
held it around reading the session, computing the change and writing the whole document back
with a plain SET. The lock serialises the coroutines of one process only; two workers read the
same version, both write, and the second write erases the first. This variant is the
production store, whose writer queue is exactly such a per-process lock, with R4's
:class:`~kato.lab.zoo.r4_resurrect_on_delete.PlainWrite` as its ``commit`` seam in place of the
compare-and-set (refusing a missing key, so R4 stays out). To make the race likely at small
scale on a loaded machine the write waits 5 ms after the read (an observe of a small node is
computed on the event loop, so little else separates them): the exposure, not the bug (as in
R4).

**Why production does not have it:** an ``asyncio.Lock`` is not shared by processes
(sessions.md guarantee 2). The production store commits with a Lua compare-and-set on the
session's version and retries on conflict, which serialises writers in every process and host.

Exposed by ``shared-session`` with four workers: ``no_lost_updates`` reports lost observations.
"""

from __future__ import annotations

from kato.lab.zoo._variant import Variant, redis_store
from kato.lab.zoo.r4_resurrect_on_delete import PlainWrite
from kato.sessions.redis import RedisSessionStore

__all__ = ["VARIANT"]


def _set(store: RedisSessionStore) -> PlainWrite:
    """The old SET: no version check, a missing key refused (so R4 stays out), 5 ms late."""
    return PlainWrite(store, refuse_missing=True, delay_s=0.005)


VARIANT = Variant.of(
    __name__, "shared-session", "no_lost_updates", workers=4, concurrency=32, operations=200,
    store=redis_store(commit=_set, leases=False),
)
