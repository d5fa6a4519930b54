"""R8 — store exceptions swallowed and returned as "no session".

**What users saw:** errors reported as SESSION_NOT_FOUND that were really pool exhaustion or
timeouts; clients dropped sessions that still existed.

**Mechanism:** loading a session was wrapped in ``except Exception: return None``, and every
caller read ``None`` as "no such session". :class:`SwallowedErrorsStore` loads sessions that
way. To expose it the variant also *injects* the transient faults that the original met under
load: a fraction (``failure_rate``, 5 % by default) of session reads raise the redis client's
``ConnectionError`` before reaching Redis. The injection is part of the exposure, not of the
bug: the same fault in the production store becomes 503 ``STORE_UNAVAILABLE`` (an ``unknown``
outcome in the lab), which no checker counts against it.

**Why production does not have it:** Redis errors are translated at one boundary
(:mod:`kato.stores.redis_errors`) into ``StoreUnavailableError``; nothing catches ``Exception``
and a missing key is the only way to SESSION_NOT_FOUND (sessions.md guarantee 8).

Exposed by ``many-sessions``: ``read_your_writes`` reports SESSION_NOT_FOUND on sessions that
certainly exist.
"""

from __future__ import annotations

import os
import random
from typing import Any

from redis import exceptions as redis_exceptions

from kato.exceptions import SessionNotFoundError
from kato.lab.zoo._variant import Variant, redis_options
from kato.sessions.redis import RedisSessionStore, _Read
from kato.settings import Settings

__all__ = ["VARIANT", "SwallowedErrorsStore"]


class SwallowedErrorsStore(RedisSessionStore):
    """The production store whose session loads turn any exception into "not found" (R8)."""

    def __init__(
        self, url: str, *, failure_rate: float = 0.05, seed: int | None = None, **options: Any
    ) -> None:
        super().__init__(url, **options)
        self.failure_rate = failure_rate
        self._faults = random.Random(os.getpid() if seed is None else seed)

    async def _load(self, session_id: str, *, touch: bool, unique_id: str | None) -> _Read | None:
        try:
            if self._faults.random() < self.failure_rate:  # the exposure: a transient fault
                raise redis_exceptions.ConnectionError("injected: too many connections")
            return await super()._read(session_id, touch=touch, unique_id=unique_id)
        except Exception:  # the bug: every failure reads as "no such session"
            return None

    async def _read(self, session_id: str, *, touch: bool, unique_id: str | None) -> _Read:
        read = await self._load(session_id, touch=touch, unique_id=unique_id)
        if read is None:
            raise SessionNotFoundError(session_id)
        return read


def _store(settings: Settings) -> SwallowedErrorsStore:
    return SwallowedErrorsStore(**redis_options(settings))


VARIANT = Variant(
    name="r8-swallowed-errors",
    failure="R8",
    description="store exceptions (injected transient faults) swallowed into SESSION_NOT_FOUND",
    scenario="many-sessions",
    checker="read_your_writes",
    spec={"workers": 1, "concurrency": 4, "operations": 160},
    store=_store,
)
