"""Session ids: ``session-<32 hex>-<unix ms>``, 128 random bits from the OS CSPRNG.

The id is the only secret that guards a session (the service has no authentication), so it
carries 128 bits from :mod:`secrets`. :func:`looks_like_session_id` bounds the work spent on a
hostile id: the length is checked before the pattern, so a megabyte of path costs the same as a
typo, and an id of the wrong shape never reaches a store.
"""

from __future__ import annotations

import re
import secrets

__all__ = [
    "SESSION_ID_MAX_LENGTH",
    "SESSION_ID_MIN_LENGTH",
    "SESSION_ID_PATTERN",
    "looks_like_session_id",
    "new_session_id",
]

SESSION_ID_PATTERN = re.compile(r"session-[0-9a-f]{32}-[0-9]{1,16}")
#: ``session-`` + 32 hex + ``-`` + 1..16 digits.
SESSION_ID_MIN_LENGTH = 8 + 32 + 1 + 1
SESSION_ID_MAX_LENGTH = 8 + 32 + 1 + 16


def new_session_id(now_ms: int) -> str:
    """A fresh, unguessable session id stamped with the creation time in unix milliseconds."""
    return f"session-{secrets.token_hex(16)}-{now_ms}"


def looks_like_session_id(value: str) -> bool:
    """True if ``value`` has the shape of a session id; anything else is never looked up."""
    if not SESSION_ID_MIN_LENGTH <= len(value) <= SESSION_ID_MAX_LENGTH:
        return False
    return SESSION_ID_PATTERN.fullmatch(value) is not None
