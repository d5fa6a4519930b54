"""Deployment settings: engine defaults for every session plus service-level limits."""

from __future__ import annotations

from dataclasses import dataclass, field

from kato.engine import EngineConfig
from kato.exceptions import InvalidConfigError

__all__ = ["Settings"]

MIN_TTL, MAX_TTL = 60, 86400


@dataclass(frozen=True, slots=True)
class Settings:
    """What one KATO deployment runs with; every field has a sane default."""

    engine: EngineConfig = field(default_factory=EngineConfig)
    #: Default session TTL in seconds (60..86400); every session access restarts it.
    session_ttl: int = 3600
    #: Sliding expiry; ``False`` gives every session a fixed lifetime from creation.
    auto_extend: bool = True
    #: How many client ``unique_id`` results a session remembers for idempotent retries.
    applied_ids_limit: int = 1000

    def __post_init__(self) -> None:
        problem = ttl_problem(self.session_ttl)
        if problem:
            raise InvalidConfigError({"session_ttl": problem})


def ttl_problem(value: object) -> str | None:
    """Why ``value`` is not a valid TTL in seconds, or ``None`` if it is."""
    if isinstance(value, bool) or not isinstance(value, int):
        return f"must be an integer number of seconds in [{MIN_TTL}, {MAX_TTL}], got {value!r}"
    if not MIN_TTL <= value <= MAX_TTL:
        return f"must be in [{MIN_TTL}, {MAX_TTL}] seconds, got {value}"
    return None
