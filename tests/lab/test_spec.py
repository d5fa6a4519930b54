"""Every field of an experiment is checked when it is made, against what its target can run."""

from __future__ import annotations

import json

import pytest

from kato.lab.spec import NOOP, Experiment, variant_names
from kato.lab.zoo import VARIANTS


def test_variants_are_production_and_the_zoo() -> None:
    assert variant_names() == ["production", *VARIANTS]
    for name in VARIANTS:
        assert Experiment(target="http", store="redis", variant=name).variant == name


def test_an_unknown_variant_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="variant must be one of production, r1-read-writeback"):
        Experiment(target="http", store="redis", variant="r99-nope")


@pytest.mark.parametrize(
    "changes",
    [
        {"target": "engine", "store": "memory"},  # the engine target ran production regardless
        {"target": "http", "store": "memory"},  # the zoo's stores are built on Redis
    ],
)
def test_a_variant_on_a_target_that_cannot_run_it_is_refused(changes: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=r"variant=r1-read-writeback .* target=http, store=redis"):
        Experiment(variant="r1-read-writeback", **changes)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"scenario": "nope"}, "scenario must be one of lifecycle"),
        ({"target": "cloud"}, "target must be one of engine, http"),
        ({"store": "disk"}, "store must be one of memory, redis"),
        ({"fault": "meteor"}, "fault must be one of none, redis-restart"),
        ({"redis_persistence": "fsync"}, "redis_persistence must be one of none"),
        ({"ltm": "postgres"}, "ltm must be one of sqlite, mongo, got 'postgres'"),
        ({"ltm": None}, "ltm must be str"),
        ({"workers": 0}, "workers must be >= 1"),
        ({"workers": 1.5}, "workers must be int, got 1.5"),
        ({"workers": True}, "workers must be int, got True"),
        ({"concurrency": "8"}, "concurrency must be int"),
        ({"operations": 0}, "operations must be >= 1"),
        ({"operations": None}, "exactly one of operations and duration_s"),
        ({"duration_s": 5.0}, "exactly one of operations and duration_s"),
        ({"operations": None, "duration_s": 0.0}, "duration_s must be > 0"),
        ({"trial": -1}, "trial must be >= 0"),
        ({"seed": None}, "seed must be int"),
        ({"ttl_seconds": 0}, "ttl_seconds must be >= 1"),
        ({"rate": 0.0}, "rate must be > 0"),
        ({"rate": float("inf")}, "rate must be > 0"),
        ({"timeout_s": 0}, "timeout_s must be > 0"),
        ({"fault_at_s": -1.0}, "fault_at_s must be >= 0"),
        ({"fault_for_s": float("nan")}, "fault_for_s must be >= 0"),
        ({"fault_latency_ms": -5.0}, "fault_latency_ms must be >= 0"),
        ({"fault_jitter_ms": -5.0}, "fault_jitter_ms must be >= 0"),
        ({"lost_responses": 1.0}, "lost_responses must be in"),
        ({"client_retries": -1}, "client_retries must be >= 0"),
        ({"idempotency": 1}, "idempotency must be bool"),
        ({"variant": 1}, "variant must be str"),
    ],
)
def test_each_field_is_checked_by_name(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        NOOP.with_(**changes)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"workers": 2}, "the engine target runs in this process"),
        ({"store": "redis"}, "the engine target runs in this process"),
        ({"redis_persistence": "always"}, "redis_persistence needs store=redis"),
        ({"lost_responses": 0.2}, "lost_responses needs target=http"),
        ({"client_retries": 2}, "client_retries needs target=http"),
        ({"fault": "redis-pause"}, "faults act on what the workbench starts"),
        ({"ltm": "mongo"}, "ltm=mongo is the LTM of the service .* target=http, store=redis"),
    ],
)
def test_the_engine_target_refuses_what_it_would_ignore(
    changes: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        NOOP.with_(**changes)


def test_a_json_or_yaml_int_is_a_valid_float_and_all_problems_are_reported_at_once() -> None:
    spec = Experiment.from_dict({"target": "http", "rate": 400, "timeout_s": 5})
    assert spec.rate == 400
    with pytest.raises(ValueError, match=r"scenario must be .*; target must be"):
        Experiment(scenario="x", target="y")


_HOOK = {"start": "docker pause redis", "stop": "docker unpause redis"}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"target": "url"}, "target=url needs urls"),
        ({"target": "url", "urls": ["localhost:8000"]}, "is not a base URL"),
        ({"target": "url", "urls": ["http://h:1?x=1"]}, "is not a base URL"),
        ({"urls": ["http://h:1"]}, "urls needs target=url"),
        ({"target": "http", "store": "redis", "fault_hooks": {"x": _HOOK}}, "fault_hooks needs"),
        ({"target": "url", "urls": ["http://h:1"], "fault": "redis-pause"}, "cannot inject"),
        (
            {"target": "url", "urls": ["http://h:1"], "fault_hooks": {"p": {"start": "x"}}},
            r"fault_hooks.p must be \{start: command, stop: command\}",
        ),
        ({"target": "url", "urls": ["http://h:1"], "variant": "r2-process-lock"}, "not its"),
    ],
)
def test_a_url_target_is_checked(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Experiment(**changes)  # type: ignore[arg-type]


def test_a_url_target_with_a_hook_runs_that_fault_and_round_trips() -> None:
    spec = NOOP.with_(
        target="url",
        urls=["http://10.0.0.5:8000", "https://kato.example/api"],
        fault="redis-pause",
        fault_hooks={"redis-pause": _HOOK, "node-kill": _HOOK},
    )
    assert spec.urls == ("http://10.0.0.5:8000", "https://kato.example/api")
    assert Experiment.from_dict(json.loads(spec.to_json())) == spec
    assert spec.with_(fault="node-kill").fault == "node-kill"  # a hook may name its own fault
    with pytest.raises(ValueError, match="fault must be one of"):
        NOOP.with_(fault="node-kill")


def test_specs_are_hashable_by_value_also_with_fault_hooks() -> None:
    """Specs key caches and dicts (the zoo's tests cache runs by spec): a dict-valued field must
    not make them unhashable, and equal specs hash alike."""

    def spec() -> Experiment:
        hooks = {"redis-pause": {"start": "true", "stop": "true"}}
        return Experiment(
            target="url", urls=("http://127.0.0.1:1",), fault="redis-pause", fault_hooks=hooks
        )

    a, b = spec(), spec()
    assert a == b and hash(a) == hash(b) and {a: 1}[b] == 1
    assert hash(NOOP.with_(concurrency=3)) == hash(NOOP.with_(concurrency=3))
    assert hash(NOOP.with_(concurrency=3)) != hash(NOOP.with_(concurrency=4))


def test_a_fault_window_lies_inside_the_run_by_default() -> None:
    timed = Experiment(target="http", store="redis", fault="redis-pause", operations=None,
                       duration_s=6)  # fmt: skip
    assert (timed.fault_start_s(), timed.fault_length_s()) == (2.0, 2.0)  # the middle third
    counted = timed.with_(operations=300, duration_s=None)
    assert counted.fault_start_s() is None, "the runner starts it a third into the operations"
    assert counted.fault_length_s() == 1.0
    assert counted.with_(fault_at_s=0.2, fault_for_s=0.5).fault_start_s() == 0.2
    assert timed.plan_operations > counted.plan_operations == 300


_HTTP_REDIS = {"target": "http", "store": "redis", "workers": 2}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"redis_cluster": 3, "target": "engine", "store": "memory", "workers": 1}, "need target"),
        ({**_HTTP_REDIS, "redis_cluster": -1}, "redis_cluster and redis_wait_replicas must be >="),
        ({**_HTTP_REDIS, "redis_cluster": 3, "redis_persistence": "always"}, "persistence=none"),
        ({**_HTTP_REDIS, "redis_cluster": 3, "fault": "redis-kill"}, "a cluster run's faults"),
        ({**_HTTP_REDIS, "fault": "redis-failover"}, "redis-failover needs redis_cluster >= 1"),
        ({**_HTTP_REDIS, "hosts": 0}, "hosts must be >= 1"),
        ({"hosts": 2}, "hosts > 1 needs target=http, store=redis"),
        ({**_HTTP_REDIS, "hosts": 2, "fault": "service-restart"}, "one host only"),
    ],
)
def test_cluster_and_hosts_are_refused_where_they_cannot_run(
    changes: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        NOOP.with_(**changes)


def test_a_cluster_run_with_its_faults_and_hosts_is_valid() -> None:
    for fault in ("redis-failover", "redis-master-pause", "worker-kill"):
        spec = NOOP.with_(
            **_HTTP_REDIS, redis_cluster=3, redis_wait_replicas=1, hosts=2, fault=fault
        )
        assert spec.redis_cluster == 3 and spec.hosts == 2


def test_the_mongo_ltm_runs_behind_redis_on_the_http_target_and_round_trips() -> None:
    spec = NOOP.with_(target="http", store="redis", ltm="mongo", fault="ltm-kill")
    assert Experiment.from_dict(json.loads(spec.to_json())) == spec
    with pytest.raises(ValueError, match="ltm=mongo is the LTM of the service"):
        spec.with_(store="memory", fault="none")
    with pytest.raises(
        ValueError,
        match=r"ltm-pause acts on the mongo LTM .* \(the sqlite LTM's faults: ltm-lock\)",
    ):
        spec.with_(ltm="sqlite", fault="ltm-pause")
