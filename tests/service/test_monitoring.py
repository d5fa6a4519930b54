"""KATO's monitoring surface on ``kato serve --workers 2``: ``/health``, ``/status``, both forms
of ``/metrics``, ``/stats`` and ``/metrics/{name}``; whichever worker answers, the figures are
the service's, aggregated over every worker.

Each request here opens its own connection, so consecutive requests land on either worker (the
``X-Kato-Worker`` header says which).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from kato.service import create_app
from kato.settings import Settings
from kato.stores.redis_server import RedisServer

#: What Prometheus sends when it scrapes.
SCRAPER_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
SAMPLE_SECONDS = 0.5
SERIES = (
    "kato_cpu_usage_percent",
    "kato_memory_usage_percent",
    "kato_requests_total",
    "kato_request_duration_seconds",
    # the shorter names KATO's own test suite reads
    "cpu_percent",
    "memory_percent",
    "requests_total",
    "response_time",
)


@pytest.fixture(scope="module")
def redis_for_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="module")
def server(redis_for_server: RedisServer, start_server: Any) -> Iterator[Any]:
    env = {
        "KATO_REDIS_URL": redis_for_server.url,
        "KATO_REDIS_TIMEOUT": "1",
        "KATO_PROCESSOR_ID": "monitored",
        "KATO_SAMPLE_SECONDS": str(SAMPLE_SECONDS),
        # memory and disk use can never exceed 100%: this server is healthy whatever the host
        "KATO_HEALTH_LIMIT_PERCENT": "100",
    }
    args = ("--workers", "2", "--store", "redis", "--ltm", "sqlite", "--log-level", "warning")
    with start_server(*args, env=env) as running:
        yield running


def get(server: Any, path: str, **kwargs: Any) -> httpx.Response:
    """One request on a connection of its own (so either worker may take it)."""
    return httpx.get(server.url + path, timeout=30, **kwargs)


def from_each_worker(
    server: Any, path: str, *, reads: int = 40, **kwargs: Any
) -> dict[str, list[httpx.Response]]:
    """Read ``path`` until both workers have answered at least twice (``reads`` at most)."""
    answers: dict[str, list[httpx.Response]] = {}
    for _ in range(reads):
        response = get(server, path, **kwargs)
        answers.setdefault(response.headers["x-kato-worker"], []).append(response)
        if len(answers) == 2 and min(len(r) for r in answers.values()) >= 2:
            break
    assert len(answers) == 2, f"only worker {list(answers)} answered {reads} requests"
    return answers


def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


# -- /health and /status -----------------------------------------------------------------------
def test_health_has_every_field_on_every_worker(server: Any) -> None:
    for responses in from_each_worker(server, "/health").values():
        for response in responses:
            assert response.status_code == 200
            body = response.json()
            assert body["status"] == "healthy"
            assert body["processor_id"] == "monitored"
            assert body["service_name"] == "KATO"
            assert body["processor_status"] == "healthy"
            assert body["uptime_seconds"] > 0
            assert body["issues"] == []
            assert body["metrics_collected"] >= 1
            assert time.time() - 60 < body["last_collection"] <= time.time()
            assert {c["status"] for c in body["checks"].values()} == {"ok"}
            assert isinstance(body["active_sessions"], int)


def test_status_names_the_processor(server: Any) -> None:
    body = get(server, "/status").json()
    assert body["processor_id"] == "monitored"
    assert body["workers"] == 2 and body["status"] == "running"


def test_unhealthy_while_redis_is_down_then_healthy(
    server: Any, redis_for_server: RedisServer
) -> None:
    redis_for_server.pause()
    try:
        down = get(server, "/health")
    finally:
        redis_for_server.resume()
    assert down.status_code == 503
    body = down.json()
    assert body["status"] == "unhealthy"
    assert body["checks"]["store"] == {
        "status": "down",
        "backend": "redis",
        "error": "STORE_UNAVAILABLE",
    }
    assert body["issues"] == ["store (redis) down: STORE_UNAVAILABLE"]
    assert body["processor_status"] == "healthy"  # the nodes' LTM still answers
    assert get(server, "/health").json()["status"] == "healthy"


def test_degraded_when_a_resource_is_over_the_limit() -> None:
    # disk use is above 0% on any host: with a limit of 0 it is an issue
    with TestClient(create_app(Settings(health_limit_percent=0.0))) as http:
        response = http.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert any(issue.startswith("High disk usage: ") for issue in body["issues"])
    assert body["processor_status"] == "healthy"


def test_unhealthy_processor_when_the_ltm_cannot_be_opened(tmp_path: Any) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    settings = Settings(
        ltm="sqlite", ltm_path=str(blocker / "ltm.sqlite3"), health_limit_percent=100.0
    )
    with TestClient(create_app(settings)) as http:
        response = http.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy" and body["processor_status"] == "unhealthy"
    assert body["issues"] == ["ltm (sqlite) down: STORE_UNAVAILABLE"]


# -- /metrics ------------------------------------------------------------------------------------
def test_json_metrics_have_every_section(server: Any) -> None:
    body = get(server, "/metrics").json()
    assert isinstance(body["timestamp"], float)
    assert set(body["sessions"]) == {"total_created", "total_deleted", "active", "operations_total"}
    assert set(body["performance"]) == {
        "total_requests",
        "total_errors",
        "error_rate",
        "average_response_time",
    }
    assert body["performance"]["average_response_time"] > 0
    assert 0 <= body["performance"]["error_rate"] <= 1
    for name in ("cpu_percent", "memory_percent", "disk_percent"):
        assert 0 <= body["resources"][name] <= 100, name
    assert set(body["databases"]["redis"]) == {"operations", "errors", "avg_response_time"}
    assert isinstance(body["rates"], dict)
    manager = body["processor_manager"]
    assert manager["total_processors"] == 2
    assert {p["pid"] for p in manager["processors"]} == set(server.worker_pids())


def test_json_metrics_agree_across_workers_and_with_prometheus(server: Any) -> None:
    def sessions() -> dict[str, Any]:
        return dict(get(server, "/metrics").json()["sessions"])

    before = sessions()
    created = []
    for i in range(6):
        response = httpx.post(server.url + "/sessions", json={"node_id": f"mon-{i}"})
        created.append(response.json()["session_id"])
        httpx.post(
            f"{server.url}/sessions/{created[-1]}/observe", json={"strings": ["a"]}, timeout=30
        )
    for sid in created[:4]:
        httpx.delete(f"{server.url}/sessions/{sid}", timeout=30)

    answers = from_each_worker(server, "/metrics")
    readings = [r.json() for responses in answers.values() for r in responses]
    figures = {
        (
            s["total_created"] - before["total_created"],
            s["total_deleted"] - before["total_deleted"],
            s["operations_total"] - before["operations_total"],
        )
        for s in (reading["sessions"] for reading in readings)
    }
    assert figures == {(6, 4, 10)}, "workers disagree, or miss the other worker's requests"
    assert len({reading["sessions"]["active"] for reading in readings}) == 1
    totals = [reading["performance"]["total_requests"] for reading in readings]
    assert max(totals) - min(totals) < len(readings) + 2  # only the reads themselves between

    text = get(server, "/metrics", headers={"Accept": SCRAPER_ACCEPT}).text
    requests = [
        s
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "kato_http_requests_total"
    ]
    created_total = sum(
        s.value
        for s in requests
        if s.labels["route"] == "/sessions" and s.labels["status"] == "200"
    )
    final = get(server, "/metrics").json()
    assert final["sessions"]["total_created"] == created_total


@pytest.mark.parametrize("accept", [SCRAPER_ACCEPT, "text/plain", "application/openmetrics-text"])
def test_scrapers_get_the_text_exposition_and_it_parses(server: Any, accept: str) -> None:
    response = get(server, "/metrics", headers={"Accept": accept})
    assert response.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    assert "kato_http_requests" in families and "kato_store_calls" in families


@pytest.mark.parametrize("accept", [None, "*/*", "application/json"])
def test_everyone_else_gets_json(server: Any, accept: str | None) -> None:
    headers = {"Accept": accept} if accept else {}
    response = get(server, "/metrics", headers=headers)
    assert response.headers["content-type"] == "application/json"
    assert "performance" in response.json()


# -- /stats and /metrics/{name} ---------------------------------------------------------------
def points(server: Any, name: str) -> list[dict[str, Any]]:
    response = get(server, f"/metrics/{name}")
    return list(response.json()["data_points"]) if response.status_code == 200 else []


def test_stats_has_every_field(server: Any) -> None:
    wait_for(lambda: len(points(server, "kato_requests_total")) >= 3)
    body = get(server, "/stats").json()
    assert body["time_range_minutes"] == 10
    assert time.time() - 60 < body["timestamp"] <= time.time()
    assert body["processor_id"] == "monitored"
    assert body["current_status"]["status"] == "healthy"
    assert body["current_status"]["issues"] == []
    for name in SERIES:
        assert isinstance(body["time_series"][name], list), name
    assert len(body["time_series"]["kato_requests_total"]) >= 3
    for point in body["time_series"]["kato_cpu_usage_percent"]:
        assert 0 <= point["value"] <= 100
        assert time.time() - 600 <= point["timestamp"] <= time.time()
    assert set(body["summary"]) == {"sessions", "performance", "resources", "databases"}
    assert get(server, "/stats", params={"minutes": 5}).json()["time_range_minutes"] == 5


def test_series_are_sampled_on_shared_ticks_and_bounded_by_the_window(server: Any) -> None:
    wait_for(lambda: len(points(server, "kato_requests_total")) >= 3)
    stamps: list[set[float]] = []
    for responses in from_each_worker(server, "/metrics/kato_requests_total").values():
        series = responses[-1].json()["data_points"]
        values = [p["value"] for p in series]
        assert values == sorted(values), "a total went down"
        ticks = [p["timestamp"] for p in series[1:]]  # the first is the worker's start
        assert ticks == [round(t / SAMPLE_SECONDS) * SAMPLE_SECONDS for t in ticks]
        stamps.append(set(ticks))
    # both workers sampled on the same wall-clock ticks (each may have missed one when busy)
    first, second = stamps
    assert len(first & second) >= min(len(first), len(second)) - 2
    one_minute = get(server, "/metrics/kato_requests_total", params={"minutes": 1}).json()
    assert all(p["timestamp"] >= time.time() - 61 for p in one_minute["data_points"])


def test_one_metrics_history(server: Any) -> None:
    get(server, "/health")
    wait_for(lambda: bool(points(server, "response_time")))
    body = get(server, "/metrics/response_time").json()
    assert body["metric_name"] == "response_time"
    assert body["time_range_minutes"] == 10
    stats = body["statistics"]
    values = [p["value"] for p in body["data_points"]]
    assert stats["count"] == len(values) > 0
    assert stats["min"] == min(values) and stats["max"] == max(values)
    assert stats["avg"] == pytest.approx(sum(values) / len(values))
    assert all(v > 0 for v in values)


def test_an_unknown_metric_is_404_no_data_available(server: Any) -> None:
    response = get(server, "/metrics/no_such_metric")
    assert response.status_code == 404
    assert "No data available" in response.json()["detail"]
    assert response.json()["error"]["code"] == "NOT_FOUND"


@pytest.mark.parametrize("path", ["/stats", "/metrics/cpu_percent"])
def test_a_bad_window_is_422(server: Any, path: str) -> None:
    for minutes in (0, 100000, "ten"):
        response = get(server, path, params={"minutes": minutes})
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "VALIDATION_ERROR"
