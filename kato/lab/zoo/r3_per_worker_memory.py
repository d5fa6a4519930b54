"""R3 — an in-memory session store in each worker process, behind several workers.

**What users saw:** a session created through one worker was "not found" on the others.

**Mechanism:** every worker process had its own dict of sessions; a request reaching another
worker than the one that created the session found nothing. This variant gives each worker its
own :class:`~kato.sessions.memory.MemorySessionStore`, whatever store the settings name (the
lab's spec says ``store=redis`` only because it refuses the memory store behind several
workers, the same refusal production makes).

**Why production does not have it:** sessions live in Redis, shared by every worker; the
``memory`` store refuses to start behind more than one worker (sessions.md, "Stores").

Exposed by ``read-after-create`` with four workers (the read goes over another connection):
``read_your_writes`` reports SESSION_NOT_FOUND on sessions that certainly exist.
"""

from __future__ import annotations

from kato.lab.zoo._variant import Variant
from kato.sessions.memory import MemorySessionStore
from kato.settings import Settings

__all__ = ["VARIANT"]


def _store(settings: Settings) -> MemorySessionStore:
    return MemorySessionStore(
        auto_extend=settings.auto_extend, applied_limit=settings.applied_ids_limit
    )


VARIANT = Variant.of(
    __name__, "read-after-create", "read_your_writes", workers=4, concurrency=16, operations=96,
    store=_store,
)
