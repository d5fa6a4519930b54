"""An experiment is a plain, serialisable spec; ``params.json`` of a run is exactly this.

Like a Jepsen test map: what to run (scenario), against what (target, store, variant, workers),
how hard (concurrency, operations or duration, open-loop rate), with what faults, from which
seed. :data:`NOOP` is the smallest complete experiment (engine target, no fault); notebooks and
tests start from it and change what they need with :func:`dataclasses.replace`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from kato.stores.redis_server import PERSISTENCE_MODES

__all__ = ["FAULTS", "NOOP", "SCENARIOS", "TARGETS", "Experiment"]

SCENARIOS = (
    "lifecycle",
    "shared-session",
    "many-sessions",
    "read-after-create",
    "ttl",
    "learn-race",
    "mixed",
    "delete-race",
)
TARGETS = ("engine", "http")
STORES = ("memory", "redis")
#: The nemesis's faults (:mod:`kato.lab.nemesis`); ``none`` runs without one.
FAULTS = ("none", "redis-restart", "redis-kill", "redis-pause", "redis-latency", "worker-kill")


@dataclass(frozen=True, slots=True)
class Experiment:
    """Everything that defines a run. Two runs of equal specs issue the same operations."""

    scenario: str = "lifecycle"
    target: str = "engine"
    store: str = "memory"
    variant: str = "production"
    workers: int = 1
    concurrency: int = 4
    operations: int = 200
    seed: int = 0
    #: A fault from :data:`FAULTS`, injected once per run by the nemesis (``http`` + ``redis``).
    fault: str = "none"
    #: When the fault starts, in seconds after the clients start (after setup). ``None``: 30 %
    #: into an open-loop run's schedule, or 0.5 s into a closed-loop run.
    fault_at_s: float | None = None
    #: How long the fault lasts (seconds from its start to the call that ends it).
    fault_for_s: float = 1.0
    #: ``redis-latency``: the delay added to each request to Redis, and its jitter (± ms).
    fault_latency_ms: float = 50.0
    fault_jitter_ms: float = 10.0
    #: Persistence of the embedded Redis (``store="redis"``): none, everysec or always (AOF).
    redis_persistence: str = "none"
    #: Open loop: invocations per second, whatever the completions do (``None``: closed loop).
    rate: float | None = None
    #: Session TTL for the ``ttl`` scenario (seconds).
    ttl_seconds: int = 2
    #: Seconds a single operation may take before its outcome is recorded as ``unknown``.
    timeout_s: float = 10.0
    #: Fraction of ``observe`` responses the bug zoo's lossy layer drops after applying the
    #: request (a lost response, answered 503 ``RESPONSE_LOST``; ``http`` target only). Retries
    #: are never dropped, so every step's outcome is decided.
    lost_responses: float = 0.0
    #: How many times the HTTP client retries an ``observe`` whose response was lost (503 or a
    #: dropped connection); the step's outcome is that of its last attempt.
    client_retries: int = 0
    #: Whether a retrying client sends an idempotency key (``unique_id``, one per step, reused on
    #: every retry). ``False`` reproduces R9.
    idempotency: bool = True

    def __post_init__(self) -> None:
        problems = []
        if self.scenario not in SCENARIOS:
            problems.append(
                f"scenario must be one of {', '.join(SCENARIOS)}, got {self.scenario!r}"
            )
        if self.target not in TARGETS:
            problems.append(f"target must be one of {', '.join(TARGETS)}, got {self.target!r}")
        if self.store not in STORES:
            problems.append(f"store must be one of {', '.join(STORES)}, got {self.store!r}")
        for name in ("workers", "concurrency", "operations", "ttl_seconds"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.rate is not None and self.rate <= 0:
            problems.append(f"rate must be > 0 ops/s, got {self.rate}")
        if self.target == "engine" and (self.workers != 1 or self.store != "memory"):
            problems.append("the engine target runs in this process: workers=1, store=memory")
        if self.store == "memory" and self.workers > 1:
            problems.append("the memory store serves one process: use store=redis for workers > 1")
        problems += self._fault_problems()
        problems += self._retry_problems()
        if problems:
            raise ValueError("; ".join(problems))

    def _fault_problems(self) -> list[str]:
        problems = []
        if self.fault not in FAULTS:
            problems.append(f"fault must be one of {', '.join(FAULTS)}, got {self.fault!r}")
        if self.redis_persistence not in PERSISTENCE_MODES:
            problems.append(
                f"redis_persistence must be one of {', '.join(PERSISTENCE_MODES)}, "
                f"got {self.redis_persistence!r}"
            )
        if self.fault_at_s is not None and self.fault_at_s < 0:
            problems.append(f"fault_at_s must be >= 0, got {self.fault_at_s}")
        if self.fault_for_s < 0:
            problems.append(f"fault_for_s must be >= 0, got {self.fault_for_s}")
        if self.fault_latency_ms < 0 or self.fault_jitter_ms < 0:
            problems.append("fault_latency_ms and fault_jitter_ms must be >= 0")
        if self.fault != "none" and (self.target != "http" or self.store != "redis"):
            problems.append("faults act on what the workbench starts: use target=http, store=redis")
        if self.fault == "worker-kill" and self.workers < 2:
            problems.append("worker-kill needs workers >= 2 (one worker has no supervisor)")
        return problems

    def _retry_problems(self) -> list[str]:
        problems = []
        if not 0.0 <= self.lost_responses < 1.0:
            problems.append(f"lost_responses must be in [0, 1), got {self.lost_responses}")
        if self.lost_responses > 0 and self.target != "http":
            problems.append("lost_responses needs target=http (the zoo server drops them)")
        if self.client_retries < 0:
            problems.append(f"client_retries must be >= 0, got {self.client_retries}")
        return problems

    def fault_start_s(self) -> float:
        """When the fault starts, seconds after the clients start (see ``fault_at_s``)."""
        if self.fault_at_s is not None:
            return self.fault_at_s
        if self.rate is not None:
            return 0.3 * self.operations / self.rate
        return 0.5

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Experiment:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown experiment parameters: {', '.join(sorted(unknown))}")
        return cls(**data)

    def with_(self, **changes: Any) -> Experiment:
        """A copy with ``changes`` (validated like any spec)."""
        return replace(self, **changes)


NOOP = Experiment(scenario="lifecycle", target="engine", concurrency=2, operations=20)
