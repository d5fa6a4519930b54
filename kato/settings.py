"""Deployment settings: engine defaults for every session, plus service-level limits.

Built explicitly (``Settings(...)``) or from the environment (:meth:`Settings.from_env`), never
at import. Engine and session variables keep the original KATO's names (``MAX_PATTERN_LENGTH``,
``SESSION_TTL``, …) and also work with a ``KATO_`` prefix, which wins when both are set; the
service's own variables exist only with the prefix (``KATO_STORE``, ``KATO_REDIS_URL``, …).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from kato.engine import EngineConfig
from kato.exceptions import InvalidConfigError

__all__ = ["LTM_BACKENDS", "STORES", "Settings"]

MIN_TTL, MAX_TTL = 60, 86400
#: A single session may live as briefly as this (the deployment default stays >= MIN_TTL).
MIN_SESSION_TTL = 1
STORES = ("memory", "redis")
LTM_BACKENDS = ("memory", "sqlite", "mongo")


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
    #: Session store: ``memory`` (one process only) or ``redis`` (any number of processes).
    store: str = "memory"
    #: The Redis of the ``redis`` store (``kato serve`` starts an embedded one if unset).
    redis_url: str | None = None
    #: Seconds a Redis command may take before the store reports itself unavailable.
    redis_timeout: float = 5.0
    #: After each session write, wait (``WAIT``) until this many replicas have it (0: don't).
    redis_wait_replicas: int = 0
    #: Long-term memory: ``memory`` (one process only), ``sqlite`` (the embedded default that
    #: several processes share) or ``mongo``.
    ltm: str = "memory"
    #: The SQLite file of the ``sqlite`` LTM.
    ltm_path: str = "kato-ltm.sqlite3"
    #: The MongoDB of the ``mongo`` LTM.
    mongo_url: str | None = None
    #: Seconds one LTM operation waits (SQLite's write lock, a MongoDB server) before the LTM
    #: is reported unavailable; a learn's effects then stay in its session's outbox.
    ltm_timeout: float = 10.0
    #: Request bodies larger than this are refused with 413 before they are parsed.
    max_body_bytes: int = 4 * 1024 * 1024
    #: Bytes of request bodies one worker may be receiving at once (their ``Content-Length``;
    #: a chunked body counts as ``max_body_bytes``); over it: 503 ``SERVER_BUSY``.
    max_bodies_in_flight: int = 32 * 1024 * 1024
    #: Seconds a request's body may take to arrive, from the request's start; then 408.
    body_timeout_s: float = 30.0
    #: Seconds a connection may take to send a request's headers (``kato serve``), then closed.
    header_timeout_s: float = 10.0
    #: Worker processes the service runs with (reported by ``/status``).
    workers: int = 1
    #: Live sessions the deployment may hold (0: no limit); one more is 429 ``SESSION_LIMIT``.
    max_sessions: int = 0
    #: Live sessions one node may hold (0: no limit); exact across every worker process.
    max_sessions_per_node: int = 0
    #: Requests per second each client address may send to one worker process (0: off).
    rate_limit: float = 0.0
    #: Requests a client may send at once before the rate applies (0: twice the rate).
    rate_limit_burst: int = 0
    #: The deployment's name in ``/health``, ``/status`` and ``/stats`` (KATO's PROCESSOR_ID).
    processor_id: str = "kato"
    #: Seconds between the monitoring samples behind ``/stats`` and ``/metrics/{name}``.
    sample_seconds: float = 10.0
    #: Host memory or disk use above this percentage makes ``/health`` ``degraded``.
    health_limit_percent: float = 95.0

    def __post_init__(self) -> None:
        errors = {}
        problem = ttl_problem(self.session_ttl)
        if problem:
            errors["session_ttl"] = problem
        if self.store not in STORES:
            errors["store"] = f"must be one of {', '.join(STORES)}, got {self.store!r}"
        if self.max_body_bytes < 1:
            errors["max_body_bytes"] = f"must be >= 1, got {self.max_body_bytes}"
        if self.max_bodies_in_flight < self.max_body_bytes:
            errors["max_bodies_in_flight"] = (
                f"must be >= max_body_bytes ({self.max_body_bytes}), "
                f"got {self.max_bodies_in_flight}"
            )
        for name in ("body_timeout_s", "header_timeout_s"):
            if not 0 < getattr(self, name) < float("inf"):
                errors[name] = f"must be a positive number of seconds, got {getattr(self, name)}"
        if self.workers < 1:
            errors["workers"] = f"must be >= 1, got {self.workers}"
        if self.applied_ids_limit < 1:
            errors["applied_ids_limit"] = f"must be >= 1, got {self.applied_ids_limit}"
        for name in ("max_sessions", "max_sessions_per_node", "rate_limit_burst"):
            if getattr(self, name) < 0:
                errors[name] = f"must be >= 0 (0: no limit), got {getattr(self, name)}"
        if not 0 <= self.rate_limit < float("inf"):
            errors["rate_limit"] = f"must be >= 0 requests/s (0: off), got {self.rate_limit}"
        if not 0 < len(self.processor_id) <= 128:
            errors["processor_id"] = f"must be 1-128 characters, got {self.processor_id!r}"
        if not 0 < self.sample_seconds <= 3600:
            errors["sample_seconds"] = f"must be in (0, 3600] seconds, got {self.sample_seconds}"
        if not 0 <= self.health_limit_percent <= 100:
            errors["health_limit_percent"] = f"must be in [0, 100], got {self.health_limit_percent}"
        if not 0 < self.ltm_timeout < float("inf"):
            errors["ltm_timeout"] = f"must be > 0 seconds, got {self.ltm_timeout}"
        if self.ltm not in LTM_BACKENDS:
            errors["ltm"] = f"must be one of {', '.join(LTM_BACKENDS)}, got {self.ltm!r}"
        if self.store == "memory" and self.workers > 1:
            errors["store"] = (
                f"the memory store keeps sessions inside one process and cannot serve "
                f"{self.workers} workers (each would see different sessions); "
                "use --store redis, or one worker"
            )
        if self.ltm == "memory" and self.workers > 1:
            errors["ltm"] = (
                f"the memory LTM keeps patterns inside one process and cannot serve "
                f"{self.workers} workers (each would learn alone); use --ltm sqlite or mongo"
            )
        if self.store == "redis" and not self.redis_url:
            errors["redis_url"] = "the redis store needs KATO_REDIS_URL (kato serve starts one)"
        if self.ltm == "mongo" and not self.mongo_url:
            errors["mongo_url"] = "the mongo LTM needs KATO_MONGO_URL"
        if errors:
            raise InvalidConfigError(errors)

    @property
    def burst(self) -> int:
        """The rate limiter's bucket size: ``rate_limit_burst``, else twice the rate (>= 1)."""
        return self.rate_limit_burst or max(1, math.ceil(2 * self.rate_limit))

    @property
    def ltm_location(self) -> str:
        """Where long-term memory lives, as :func:`kato.nodes.open_nodes` reads it."""
        if self.ltm == "sqlite":
            return f"sqlite:{self.ltm_path}"
        if self.ltm == "mongo":
            assert self.mongo_url is not None  # __post_init__ refuses mongo without a URL
            return self.mongo_url
        return "memory"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from ``KATO_*`` (and the original KATO) environment variables.

        ``overrides`` (e.g. from command-line flags) win over the environment. A malformed
        value raises ``InvalidConfigError`` naming the variable.
        """
        env = os.environ if environ is None else environ
        errors: dict[str, str] = {}

        def read(name: str, parse: Callable[[str], Any], *, bare: bool = True) -> Any:
            """``KATO_<name>``, else (for the original KATO's names) ``<name>``."""
            for key in (f"KATO_{name}", name) if bare else (f"KATO_{name}",):
                if key in env:
                    try:
                        return parse(env[key])
                    except ValueError as exc:
                        errors[key] = str(exc)
                        return None
            return None

        engine_values = {
            name: read(env_name, parse)
            for name, env_name, parse in (
                ("max_pattern_length", "MAX_PATTERN_LENGTH", int),
                ("stm_mode", "STM_MODE", str),
                ("persistence", "PERSISTENCE", int),
                ("recall_threshold", "RECALL_THRESHOLD", float),
                ("max_predictions", "MAX_PREDICTIONS", int),
                ("sort_symbols", "SORT", _parse_bool),
                ("process_predictions", "PROCESS_PREDICTIONS", _parse_bool),
                ("indexer_type", "INDEXER_TYPE", str),
                ("rank_sort_algo", "RANK_SORT_ALGO", str),
                ("stm_max_events", "STM_MAX_EVENTS", int),
                ("accumulator_max_entries", "ACCUMULATOR_MAX_ENTRIES", int),
            )
        }
        engine_values.update(
            (name, read(name.upper(), int, bare=False))
            for name in (
                "max_event_symbols",
                "max_stm_symbols",
                "max_stm_chars",
                "max_emotive_keys",
                "max_metadata_bytes",
                "max_match_pairs",
            )
        )
        service_values = {
            "session_ttl": read("SESSION_TTL", int),
            "auto_extend": read("SESSION_AUTO_EXTEND", _parse_bool),
            "applied_ids_limit": read("APPLIED_IDS_LIMIT", int, bare=False),
            "store": read("STORE", str, bare=False),
            "redis_url": read("REDIS_URL", str, bare=False),
            "redis_timeout": read("REDIS_TIMEOUT", float, bare=False),
            "redis_wait_replicas": read("REDIS_WAIT_REPLICAS", int, bare=False),
            "ltm": read("LTM", str, bare=False),
            "ltm_path": read("LTM_PATH", str, bare=False),
            "mongo_url": read("MONGO_URL", str, bare=False),
            "ltm_timeout": read("LTM_TIMEOUT", float, bare=False),
            "max_body_bytes": read("MAX_BODY_BYTES", int, bare=False),
            "max_bodies_in_flight": read("MAX_BODIES_IN_FLIGHT", int, bare=False),
            "body_timeout_s": read("BODY_TIMEOUT_S", float, bare=False),
            "header_timeout_s": read("HEADER_TIMEOUT_S", float, bare=False),
            "workers": read("WORKERS", int, bare=False),
            "max_sessions": read("MAX_SESSIONS", int, bare=False),
            "max_sessions_per_node": read("MAX_SESSIONS_PER_NODE", int, bare=False),
            "rate_limit": read("RATE_LIMIT", float, bare=False),
            "rate_limit_burst": read("RATE_LIMIT_BURST", int, bare=False),
            "processor_id": read("PROCESSOR_ID", str),
            "sample_seconds": read("SAMPLE_SECONDS", float, bare=False),
            "health_limit_percent": read("HEALTH_LIMIT_PERCENT", float, bare=False),
        }
        if errors:
            raise InvalidConfigError(errors)
        engine = EngineConfig(**{k: v for k, v in engine_values.items() if v is not None})
        values = {k: v for k, v in service_values.items() if v is not None}
        known = {f.name for f in fields(cls)}
        values.update({k: v for k, v in overrides.items() if k in known and v is not None})
        return replace(cls(), engine=engine, **values)


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def ttl_problem(value: object, minimum: int = MIN_TTL) -> str | None:
    """Why ``value`` is not a valid TTL in seconds (``minimum``..86400), or ``None``."""
    if isinstance(value, bool) or not isinstance(value, int):
        return f"must be an integer number of seconds in [{minimum}, {MAX_TTL}], got {value!r}"
    if not minimum <= value <= MAX_TTL:
        return f"must be in [{minimum}, {MAX_TTL}] seconds, got {value}"
    return None
