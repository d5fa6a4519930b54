"""Session ids: ``session-<32 hex>-<unix ms>``, 128 random bits from the OS CSPRNG."""

from __future__ import annotations

import re
import secrets

__all__ = ["SESSION_ID_PATTERN", "looks_like_session_id", "new_session_id"]

SESSION_ID_PATTERN = re.compile(r"session-[0-9a-f]{32}-[0-9]{1,16}")


def new_session_id(now_ms: int) -> str:
    """A fresh, unguessable session id stamped with the creation time in unix milliseconds."""
    return f"session-{secrets.token_hex(16)}-{now_ms}"


def looks_like_session_id(value: str) -> bool:
    """True if ``value`` has the shape of a session id; anything else is never looked up."""
    return SESSION_ID_PATTERN.fullmatch(value) is not None
