"""The one place where Redis client errors become KATO errors.

A Redis that cannot be reached, refuses connections, times out, or is still loading its data is
*unavailable*: :class:`~kato.exceptions.StoreUnavailableError` (503), raised ``from`` the
original. It is never reported as a missing session. Anything else (a script error, a wrong
type) is a bug and propagates unchanged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from redis import exceptions as redis_exceptions

from kato.exceptions import StoreUnavailableError

__all__ = ["redis_errors"]

_UNAVAILABLE = (
    redis_exceptions.ConnectionError,  # includes BusyLoadingError (LOADING)
    redis_exceptions.TimeoutError,
    redis_exceptions.TryAgainError,
    redis_exceptions.ClusterDownError,
    redis_exceptions.MasterDownError,
    redis_exceptions.ReadOnlyError,
    redis_exceptions.SlotNotCoveredError,  # a cluster slot without a master (mid-failover)
    redis_exceptions.RedisClusterUnreachableError,
)


@contextlib.contextmanager
def redis_errors(operation: str, session_id: str | None = None) -> Iterator[None]:
    """Translate an unavailable Redis into ``StoreUnavailableError`` for ``operation``."""
    try:
        yield
    except _UNAVAILABLE as exc:
        raise StoreUnavailableError(
            f"session store unavailable during {operation}: {type(exc).__name__}: {exc}",
            session_id=session_id,
        ) from exc
