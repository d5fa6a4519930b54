"""The collector of a serving worker: settled (frozen, a larger young threshold) and timed, and
what it costs visible in ``/metrics``."""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from kato.collector import PAUSES, YOUNG_THRESHOLD, Pauses, settle, settled
from kato.observability import Metrics


def _samples(text: str, name: str) -> dict[str, float]:
    return {
        sample.labels.get("generation", ""): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


@pytest.fixture
def restored_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_pauses_count_each_generation_and_time_it() -> None:
    pauses = Pauses()
    pauses.install()
    pauses.install()  # once per process: a second call adds no second callback
    try:
        assert gc.callbacks.count(pauses._callback) == 1
        gc.collect(0)
        gc.collect(2)
        gc.collect(2)
        collections, seconds = pauses.read()
        assert collections[0] >= 1 and collections[2] >= 2
        assert seconds[2] > 0.0
    finally:
        gc.callbacks.remove(pauses._callback)


def test_settle_freezes_what_exists_and_raises_only_the_young_threshold(
    restored_collector: None,
) -> None:
    gc.unfreeze()
    _, older, oldest = gc.get_threshold()
    kept = [[index] for index in range(1000)]  # alive when settled: frozen with the rest
    settle()
    assert gc.get_freeze_count() >= len(kept)
    assert gc.get_threshold() == (YOUNG_THRESHOLD, older, oldest)


def test_settled_holds_for_a_measurement_and_is_undone_after(restored_collector: None) -> None:
    gc.unfreeze()
    before = gc.get_threshold()
    kept = [[index] for index in range(1000)]
    with settled():
        assert gc.get_freeze_count() >= len(kept)
        assert gc.get_threshold()[0] == YOUNG_THRESHOLD
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == before


def test_metrics_count_collections_since_they_were_made() -> None:
    metrics = Metrics()
    before = _samples(metrics.exposition().decode(), "kato_gc_collections_total")
    assert not before or all(value < 1e9 for value in before.values())
    gc.collect(2)
    gc.collect(2)
    after = _samples(metrics.exposition().decode(), "kato_gc_collections_total")
    seconds = _samples(metrics.exposition().decode(), "kato_gc_seconds_total")
    assert after["2"] - before.get("2", 0.0) >= 2
    assert seconds["2"] > 0.0
    # Counted once: reading again without a collection adds nothing.
    gc.disable()
    try:
        again = _samples(metrics.exposition().decode(), "kato_gc_collections_total")
    finally:
        gc.enable()
    assert again["2"] == after["2"]
    assert PAUSES.read()[0][2] >= 2


@pytest.mark.parametrize("workers", [1, 2])
def test_a_served_worker_is_settled_and_shows_its_collections(
    start_server: Any, workers: int
) -> None:
    with start_server("--workers", str(workers)) as server:
        deadline = time.monotonic() + 20
        while True:  # each worker reports once its app has started
            text = httpx.get(server.url + "/metrics", headers={"Accept": "text/plain"}).text
            frozen = _samples(text, "kato_gc_frozen_objects")[""]
            if frozen >= 10_000 * workers or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert frozen >= 10_000 * workers  # the modules, routes and schemas of each worker
        assert "kato_gc_seconds_total" in text
