"""An experiment is a plain, serialisable spec; ``params.json`` of a run is exactly this.

Like a Jepsen test map: what to run (scenario), against what (target, store, variant, workers),
how hard (concurrency, operations or duration, open-loop rate), with what faults, from which
seed, and which trial of its grid cell it is. :data:`NOOP` is the smallest complete experiment
(engine target, no fault); notebooks and tests start from it and change what they need with
:func:`dataclasses.replace`.

Every field is checked when a spec is made: its type, its allowed values, and whether the target
can run it (the ``engine`` target runs only production, without faults, retries or lost
responses), so a spec that would silently run something else is a ``ValueError`` naming the field.

The ``url`` target is a deployment the workbench neither starts nor stops (:mod:`kato.lab.remote`):
``urls`` are its base URLs (used round robin), and a fault reaches it only through a command hook
of ``fault_hooks`` (``{"redis-pause": {"start": "...", "stop": "..."}}``, from a target file), so
a url spec with a fault and no hook for it is refused. ``store`` and ``workers`` then only
describe the deployment, for the record.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from kato.stores.redis_server import PERSISTENCE_MODES

__all__ = [
    "FAULTS", "LTMS", "LTM_FAULTS", "NOOP", "ROUND_OPERATIONS", "SCENARIOS", "TARGETS",
    "Experiment", "variant_names",
]  # fmt: skip

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
TARGETS = ("engine", "http", "url")
STORES = ("memory", "redis")
#: The nemesis's faults (:mod:`kato.lab.nemesis`); ``none`` runs without one.
FAULTS = (
    "none",
    "redis-restart",
    "redis-kill",
    "redis-pause",
    "redis-latency",
    "worker-kill",
    "service-restart",
    "ltm-lock",
    "ltm-pause",
    "ltm-kill",
    "redis-failover",
    "redis-master-pause",
)
#: The faults of a Redis Cluster (``redis_cluster`` > 0); the others act on one Redis.
CLUSTER_FAULTS = ("redis-failover", "redis-master-pause", "worker-kill")
#: The long-term memories an http target's service can run behind Redis (``Experiment.ltm``).
LTMS = ("sqlite", "mongo")
#: The faults each LTM has: SQLite's write lock, or the MongoDB LTM's ``nx-27017`` server.
LTM_FAULTS = {"sqlite": ("ltm-lock",), "mongo": ("ltm-pause", "ltm-kill")}

#: A base URL of the url target: scheme, host, optional port and path prefix, no query.
_BASE_URL = re.compile(r"https?://[^\s/?#]+(/[^\s?#]*)?")

#: The types a field may hold, by its annotation (an int is a valid float: JSON and YAML write
#: ``rate: 400``).
_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "int | None": (int, type(None)),
    "bool": (bool,),
    "float": (int, float),
    "float | None": (int, float, type(None)),
    "tuple[str, ...]": (tuple,),
    "dict[str, dict[str, str]]": (dict,),
}


#: A time-based run plays its scenario in rounds, each a fresh plan of this many operations on
#: fresh sessions, until ``duration_s`` has passed.
ROUND_OPERATIONS = 1000


def variant_names() -> list[str]:
    """``production`` and the bug zoo's variants (imported on demand: the zoo imports this)."""
    from kato.lab.zoo import VARIANTS

    return ["production", *VARIANTS]


@dataclass(frozen=True, slots=True)
class Experiment:
    """Everything that defines a run. Two runs of equal specs issue the same operations."""

    scenario: str = "lifecycle"
    target: str = "engine"
    store: str = "memory"
    #: ``production`` or a bug-zoo variant (:func:`variant_names`; those need http + redis).
    variant: str = "production"
    workers: int = 1
    concurrency: int = 4
    #: About how many operations the run issues. Exactly one of ``operations`` and
    #: ``duration_s`` governs a run: a time-based run sets ``operations=None``.
    operations: int | None = 200
    #: A time-based run: the clients play the scenario in rounds (:data:`ROUND_OPERATIONS`
    #: each, fresh sessions) until this many seconds after they started.
    duration_s: float | None = None
    seed: int = 0
    #: Which trial of its grid cell this run is (:func:`kato.lab.grid.trials_of`: trial ``i`` of a
    #: cell runs with ``seed + i``); runs that differ only in ``seed`` and ``trial`` form a cell.
    trial: int = 0
    #: A fault from :data:`FAULTS`, injected once per run by the nemesis (``http`` + ``redis``).
    fault: str = "none"
    #: When the fault starts, in seconds after the clients start (after setup). ``None``: inside
    #: the run — a third into a time-based run, 30 % into an open-loop run's schedule, or once a
    #: third of a closed-loop run's operations have completed.
    fault_at_s: float | None = None
    #: How long the fault lasts (seconds from its start to the call that ends it). ``None``: a
    #: third of a time-based run (the window is its middle third), else 1 s.
    fault_for_s: float | None = None
    #: ``redis-latency``: the delay added to each request to Redis, and its jitter (± ms).
    fault_latency_ms: float = 50.0
    fault_jitter_ms: float = 10.0
    #: Persistence of the embedded Redis (``store="redis"``): none, everysec or always (AOF).
    redis_persistence: str = "none"
    #: ``http`` + ``redis``: an embedded Redis Cluster of this many masters (and as many
    #: replicas) instead of one Redis (0).
    redis_cluster: int = 0
    #: ``KATO_REDIS_WAIT_REPLICAS`` of the service: replicas each session write waits for.
    redis_wait_replicas: int = 0
    #: ``http`` + ``redis``: how many ``kato serve`` hosts (each with ``workers`` workers) share
    #: the Redis and one LTM; clients use them round robin. Several hosts share a MongoDB LTM
    #: (``nx-27017``): a SQLite file belongs to one host.
    hosts: int = 1
    #: The service's long-term memory behind Redis (``target="http"``, ``store="redis"``):
    #: ``sqlite`` (a file in its data directory) or ``mongo`` (an ``nx-27017`` server the
    #: workbench starts, for the ``ltm-pause`` and ``ltm-kill`` faults).
    ltm: str = "sqlite"
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
    #: ``url`` target: the base URLs of the deployment (``http://host:port``), used round robin.
    urls: tuple[str, ...] = ()
    #: ``url`` target: per fault name, the shell commands that start and stop it
    #: (``{"start": str, "stop": str}``), run by :class:`~kato.lab.nemesis.CommandHook`.
    fault_hooks: dict[str, dict[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.urls, list):  # JSON and YAML give lists
            object.__setattr__(self, "urls", tuple(self.urls))
        # each stage's rules assume the previous stage's hold (a type, then a known name)
        problems = self._type_problems()
        if not problems:
            problems = self._choice_problems() + self._range_problems()
        if not problems:
            problems = self._target_problems() + self._url_problems() + self._fault_problems()
        if problems:
            raise ValueError("; ".join(problems))

    def _type_problems(self) -> list[str]:
        problems = []
        for spec_field in fields(self):
            value = getattr(self, spec_field.name)
            allowed = _TYPES[str(spec_field.type)]
            # bool is an int to Python, never to a spec (workers=True is a mistake)
            if isinstance(value, bool) != (bool in allowed) or not isinstance(value, allowed):
                problems.append(f"{spec_field.name} must be {spec_field.type}, got {value!r}")
        return problems

    def _choice_problems(self) -> list[str]:
        problems = [
            f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}"
            for name, allowed in (
                ("scenario", SCENARIOS),
                ("target", TARGETS),
                ("store", STORES),
                ("fault", (*FAULTS, *self.fault_hooks)),
                ("redis_persistence", PERSISTENCE_MODES),
                ("ltm", LTMS),
            )
            if getattr(self, name) not in allowed
        ]
        if self.variant != "production":
            known = variant_names()
            if self.variant not in known:
                problems.append(f"variant must be one of {', '.join(known)}, got {self.variant!r}")
        return problems

    def _range_problems(self) -> list[str]:
        problems = [
            f"{name} must be >= 1, got {getattr(self, name)}"
            for name in ("workers", "concurrency", "operations", "ttl_seconds")
            if getattr(self, name) is not None and getattr(self, name) < 1
        ]
        if (self.operations is None) == (self.duration_s is None):
            problems.append(
                "exactly one of operations and duration_s governs a run: set operations=None "
                "for a time-based run (duration_s), or duration_s=None"
            )
        if self.trial < 0:
            problems.append(f"trial must be >= 0, got {self.trial}")
        problems += [
            f"{name} must be > 0, got {getattr(self, name)}"
            for name in ("rate", "timeout_s", "duration_s")
            if getattr(self, name) is not None and not 0 < getattr(self, name) < math.inf
        ]
        problems += [
            f"{name} must be >= 0, got {getattr(self, name)}"
            for name in (
                "fault_at_s", "fault_for_s", "fault_latency_ms", "fault_jitter_ms", "client_retries"
            )
            if getattr(self, name) is not None and not 0 <= getattr(self, name) < math.inf
        ]  # fmt: skip
        if not 0.0 <= self.lost_responses < 1.0:
            problems.append(f"lost_responses must be in [0, 1), got {self.lost_responses}")
        return problems

    def _target_problems(self) -> list[str]:
        """What each target can run: the engine target is this process, nothing else."""
        problems = []
        if self.target == "engine" and (self.workers != 1 or self.store != "memory"):
            problems.append("the engine target runs in this process: workers=1, store=memory")
        if self.store == "memory" and self.workers > 1:
            problems.append("the memory store serves one process: use store=redis for workers > 1")
        if self.variant != "production" and (self.target != "http" or self.store != "redis"):
            problems.append(
                f"variant={self.variant} runs in the bug zoo's server on Redis: it needs "
                f"target=http, store=redis; target={self.target}, store={self.store} runs only "
                "variant=production"
            )
        if self.redis_persistence != "none" and self.store != "redis":
            problems.append("redis_persistence needs store=redis")
        problems += self._cluster_problems()
        if self.ltm != "sqlite" and (self.target != "http" or self.store != "redis"):
            problems.append(
                f"ltm={self.ltm} is the LTM of the service the workbench starts behind Redis: "
                "it needs target=http, store=redis"
            )
        if self.lost_responses > 0 and self.target != "http":
            problems.append("lost_responses needs target=http (the zoo server drops them)")
        if self.client_retries > 0 and self.target == "engine":
            problems.append("client_retries needs target=http or url (the HTTP client retries)")
        return problems

    def _url_problems(self) -> list[str]:
        """A url target names where it is, and runs only what a deployment not ours can."""
        if self.target != "url":
            wrong = [name for name in ("urls", "fault_hooks") if getattr(self, name)]
            return [f"{name} needs target=url" for name in wrong]
        problems = [] if self.urls else ["target=url needs urls (http://host:port, one or more)"]
        problems += [
            f"urls: {url!r} is not a base URL http(s)://host:port[/prefix]"
            for url in self.urls
            if not isinstance(url, str) or not _BASE_URL.fullmatch(url)
        ]
        for name, hook in self.fault_hooks.items():
            if (
                not isinstance(hook, dict)
                or set(hook) != {"start", "stop"}
                or not all(isinstance(c, str) and c.strip() for c in hook.values())
            ):
                problems.append(f"fault_hooks.{name} must be {{start: command, stop: command}}")
        if self.variant != "production" or self.redis_persistence != "none":
            problems.append(
                "target=url is a deployment the workbench did not start: variant and "
                "redis_persistence are not its to choose"
            )
        return problems

    def _fault_problems(self) -> list[str]:
        problems = []
        if self.target == "url":
            if self.fault != "none" and self.fault not in self.fault_hooks:
                hooks = ", ".join(sorted(self.fault_hooks)) or "none"
                problems.append(
                    f"the url target cannot inject {self.fault}: the workbench did not start it, "
                    f"and its target file has no hook for it (hooks: {hooks}); add "
                    f"faults: {{{self.fault}: {{start: command, stop: command}}}}"
                )
            return problems
        if self.fault != "none" and (self.target != "http" or self.store != "redis"):
            problems.append("faults act on what the workbench starts: use target=http, store=redis")
        if self.fault == "worker-kill" and self.workers < 2:
            problems.append("worker-kill needs workers >= 2 (one worker has no supervisor)")
        for ltm, faults in LTM_FAULTS.items():
            if self.fault in faults and self.ltm != ltm:
                problems.append(
                    f"{self.fault} acts on the {ltm} LTM and this run's LTM is {self.ltm}: set "
                    f"ltm={ltm} (the {self.ltm} LTM's faults: "
                    f"{', '.join(LTM_FAULTS[self.ltm])})"
                )
        return problems

    def _cluster_problems(self) -> list[str]:
        """What a cluster run can be: http + redis, no persistence, the cluster's faults."""
        problems = []
        if self.redis_cluster < 0 or self.redis_wait_replicas < 0:
            problems.append("redis_cluster and redis_wait_replicas must be >= 0")
        if self.hosts < 1:
            problems.append(f"hosts must be >= 1, got {self.hosts}")
        if self.hosts > 1 and (self.target != "http" or self.store != "redis"):
            problems.append("hosts > 1 needs target=http, store=redis (the hosts share Redis)")
        if self.hosts > 1 and self.fault == "service-restart":
            problems.append("service-restart runs kato serve's own Redis: one host only")
        if self.hosts > 1 and self.fault == "ltm-lock":
            problems.append("ltm-lock locks one host's SQLite LTM; several hosts share MongoDB")
        if (self.redis_cluster or self.redis_wait_replicas) and (
            self.target != "http" or self.store != "redis"
        ):
            problems.append("redis_cluster and redis_wait_replicas need target=http, store=redis")
        if self.redis_cluster and self.redis_persistence != "none":
            problems.append("the embedded cluster runs without persistence: redis_persistence=none")
        if self.redis_cluster and self.fault not in ("none", *CLUSTER_FAULTS):
            problems.append(
                f"a cluster run's faults are {', '.join(CLUSTER_FAULTS)}, got {self.fault}"
            )
        if not self.redis_cluster and self.fault in CLUSTER_FAULTS[:2]:
            problems.append(f"{self.fault} needs redis_cluster >= 1 (e.g. --redis-cluster 3)")
        return problems

    @property
    def plan_operations(self) -> int:
        """The operations of one plan: ``operations``, or one round of a time-based run."""
        return ROUND_OPERATIONS if self.operations is None else self.operations

    def fault_start_s(self) -> float | None:
        """When the fault starts, seconds after the clients start (see ``fault_at_s``); ``None``:
        once a third of the run's operations have completed (the runner watches)."""
        if self.fault_at_s is not None:
            return self.fault_at_s
        if self.duration_s is not None:
            return self.duration_s / 3
        if self.rate is not None:
            return 0.3 * self.plan_operations / self.rate
        return None

    def fault_length_s(self) -> float:
        """How long the fault lasts (see ``fault_for_s``)."""
        if self.fault_for_s is not None:
            return self.fault_for_s
        return 1.0 if self.duration_s is None else self.duration_s / 3

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    def __hash__(self) -> int:
        # ``fault_hooks`` is a dict (as a target file gives it): hash the spec by its canonical
        # JSON, which equal specs share, so specs stay usable as keys and in caches.
        return hash(self.to_json())

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
