"""The ``url`` target: deployments the workbench did not start — ``kato serve --workers 4`` and the
zoo's R2 started here as plain processes, and a KATO app without this server's extras behind a
real uvicorn — judged over the API they speak, with faults reaching them through command hooks."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kato.lab.remote import Capabilities, probe
from kato.lab.run import run
from kato.lab.spec import SCENARIOS, Experiment
from kato.processes import free_port, stop
from kato.stores.redis_server import RedisServer


def _worker(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url + "/health", timeout=1) as response:
            return response.headers.get("X-Kato-Worker") if response.status == 200 else None
    except OSError:
        return None


@contextlib.contextmanager
def _by_hand(*program: str, workers: int = 4) -> Iterator[tuple[str, RedisServer]]:
    """``python -m PROGRAM --workers N --port P`` on a Redis of its own, as an operator would
    start it; yields its URL once every worker has answered."""
    port = free_port()
    with RedisServer() as redis, tempfile.TemporaryDirectory(prefix="kato-url-") as data:
        command = [sys.executable, "-m", *program, "--workers", str(workers), "--port", str(port)]
        process = subprocess.Popen(
            [*command, "--data-dir", data],
            env={**os.environ, "KATO_REDIS_URL": redis.url},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            answered: set[str] = set()
            deadline = time.monotonic() + 60
            while len(answered) < workers:
                assert process.poll() is None and time.monotonic() < deadline, command
                worker = _worker(url)
                if worker is None:
                    time.sleep(0.05)
                else:
                    answered.add(worker)
            yield url, redis
        finally:
            stop(process)


@pytest.fixture(scope="module")
def production() -> Iterator[tuple[str, RedisServer]]:
    with _by_hand("kato", "serve") as served:
        yield served


def _lab_run(*args: str, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kato", "lab", "run", *args, "--out", str(out), "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
    )


def _verdicts(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    folder = Path(done.stdout.strip().splitlines()[-1])
    return json.loads((folder / "verdicts.json").read_text())  # type: ignore[no-any-return]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_scenario_on_kato_serve_by_url_is_valid(
    scenario: str, production: tuple[str, RedisServer]
) -> None:
    url, _ = production
    spec = Experiment(
        scenario=scenario, target="url", urls=(url,), concurrency=8, operations=160, ttl_seconds=1
    )
    result = run(spec)
    assert result.valid is True, json.dumps(result.verdicts, indent=1, default=str)
    assert "skipped" not in result.verdicts
    assert all(op.worker_pid for op in result.history if op.outcome == "ok")
    assert result.metadata["target"]["capabilities"] == Capabilities(foreign=True).to_dict()


def test_the_cli_runs_by_url_round_robin_and_leaves_no_session(
    production: tuple[str, RedisServer], tmp_path: Path
) -> None:
    url, _ = production
    done = _lab_run(
        "many-sessions", "--url", url, "--url", url + "/", "--concurrency", "4", "--ops", "60",
        "--fail-on-anomaly", out=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    assert _verdicts(done)["valid"] is True
    params = json.loads((Path(done.stdout.splitlines()[-1]) / "params.json").read_text())
    assert params["target"] == "url" and params["urls"] == [url, url + "/"]
    with urllib.request.urlopen(url + "/sessions/count") as response:
        assert json.load(response)["active_session_count"] == 0  # the run cleaned up after itself


def test_r2_served_by_hand_loses_updates_and_fails_the_run(tmp_path: Path) -> None:
    with _by_hand("kato.lab.zoo", "serve", "--variant", "r2-process-lock") as (url, _):
        done = _lab_run(
            "shared-session", "--url", url, "--concurrency", "32", "--ops", "300",
            "--fail-on-anomaly", out=tmp_path,
        )  # fmt: skip
    assert done.returncode == 1, done.stderr + done.stdout
    verdicts = _verdicts(done)
    assert verdicts["valid"] is False
    lost = next(c for c in verdicts["checkers"] if c["name"] == "no_lost_updates")
    assert lost["valid"] is False and lost["anomalies"] > 0
    assert lost["examples"] and lost["examples"][0]["kind"] == "lost"


def test_a_fault_reaches_the_deployment_through_its_hooks(
    production: tuple[str, RedisServer], tmp_path: Path
) -> None:
    url, redis = production
    assert redis.process is not None
    pid = redis.process.pid
    target = tmp_path / "deployment.yaml"
    target.write_text(
        f"urls: [{url}]\n"
        f"faults:\n  redis-pause: {{start: 'kill -STOP {pid}', stop: 'kill -CONT {pid}'}}\n"
    )
    done = _lab_run(
        "shared-session", "--target-file", str(target), "--fault", "redis-pause",
        "--fault-at", "0.2", "--fault-for", "0.5", "--rate", "100", "--ops", "150",
        "--concurrency", "4", out=tmp_path / "runs",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    verdicts = _verdicts(done)
    assert verdicts["valid"] is True, json.dumps(verdicts, indent=1)
    faults = next(c for c in verdicts["checkers"] if c["name"] == "faults")
    assert faults["counts"]["windows"] == 1
    import pandas as pd

    history = pd.read_parquet(Path(done.stdout.splitlines()[-1]) / "history.parquet")
    calls = history[history["f"] == "fault"]
    assert list(calls["outcome"]) == ["ok", "ok"]
    assert [json.loads(v)["command"] for v in calls["value"]] == [
        f"kill -STOP {pid}",
        f"kill -CONT {pid}",
    ]


def test_a_fault_without_a_hook_is_refused_before_the_run(
    production: tuple[str, RedisServer], tmp_path: Path
) -> None:
    url, _ = production
    done = _lab_run("shared-session", "--url", url, "--fault", "redis-kill", out=tmp_path)
    assert done.returncode == 2
    assert "cannot inject redis-kill" in done.stderr and "hook" in done.stderr
    assert not list(tmp_path.glob("*"))


# -- a KATO server without this one's extras ------------------------------------------------------


class _WithoutExtras:
    """ASGI middleware: the session API only — no X-Kato-Worker, ``unique_id`` dropped from
    observe bodies (no replay), 404 on ``/sessions/count`` and ``/openapi.json``."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"].rstrip("/")
        if path in ("/sessions/count", "/openapi.json"):
            await send({"type": "http.response.start", "status": 404, "headers": []})
            return await send({"type": "http.response.body", "body": b'{"detail":"Not Found"}'})
        if path.endswith("/observe"):
            receive = await self._without_unique_id(receive)

        async def stripped(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message["headers"] if k.lower() != b"x-kato-worker"]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, stripped)

    @staticmethod
    async def _without_unique_id(receive: Any) -> Any:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        with contextlib.suppress(ValueError):
            document = json.loads(body)
            if isinstance(document, dict):
                document.pop("unique_id", None)
                body = json.dumps(document).encode()
        sent = False

        async def replay() -> Any:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        return replay


@pytest.fixture(scope="module")
def without_extras() -> Iterator[str]:
    """Our app behind :class:`_WithoutExtras`, served by a real uvicorn on a free port."""
    import uvicorn

    from kato.service.app import create_app

    port = free_port()
    config = uvicorn.Config(
        _WithoutExtras(create_app()), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline
        time.sleep(0.05)
    yield url
    server.should_exit = True
    thread.join(timeout=10)


def test_the_probe_finds_no_extras(without_extras: str) -> None:
    assert probe([without_extras]) == Capabilities(
        worker_header=False, idempotency=False, session_count=False, openapi=False, foreign=True
    )


_SKIPPED = {"counts: session counts", "worker attribution"}


@pytest.mark.parametrize("scenario", ["shared-session", "learn-race", "delete-race"])
def test_a_server_without_extras_is_checked_partially(scenario: str, without_extras: str) -> None:
    spec = Experiment(
        scenario=scenario, target="url", urls=(without_extras,), concurrency=4, operations=80
    )
    result = run(spec)
    assert result.valid == "partial", json.dumps(result.verdicts, indent=1, default=str)
    assert all(c["valid"] is True for c in result.verdicts["checkers"])
    assert {s["check"] for s in result.verdicts["skipped"]} == _SKIPPED
    assert not any(op.f == "count" for op in result.history)  # the plan dropped them


def test_the_verdict_says_what_was_skipped_and_why(without_extras: str, tmp_path: Path) -> None:
    done = _lab_run(
        "lifecycle", "--url", without_extras, "--concurrency", "4", "--ops", "80",
        "--fail-on-anomaly", out=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout  # partial is no anomaly
    verdicts = _verdicts(done)
    assert verdicts["valid"] == "partial"
    skipped = {s["check"]: s["reason"] for s in verdicts["skipped"]}
    assert set(skipped) == _SKIPPED
    assert "/sessions/count" in skipped["counts: session counts"]
    assert "X-Kato-Worker" in skipped["worker attribution"]
    assert "skipped" in done.stdout and "partial" in done.stdout
    from kato.lab.grid import recheck

    _, again = recheck(Path(done.stdout.splitlines()[-1]))
    assert again == verdicts  # judged again, the verdict still says what was skipped


def test_retries_against_a_server_without_replay_are_refused(
    without_extras: str, tmp_path: Path
) -> None:
    done = _lab_run("many-sessions", "--url", without_extras, "--client-retries", "2", out=tmp_path)
    assert done.returncode == 2
    assert "unique_id replay" in done.stderr


def test_a_sweep_takes_its_deployment_from_a_target_file(
    production: tuple[str, RedisServer], tmp_path: Path
) -> None:
    url, _ = production
    (tmp_path / "deployment.yaml").write_text(f"urls: [{url}]\n")
    grid = tmp_path / "grid.yaml"
    grid.write_text(
        "target_file: deployment.yaml\n"
        "base: {scenario: shared-session, operations: 40}\n"
        "grid: {concurrency: [2, 4]}\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "kato", "lab", "sweep", str(grid), "--out", str(tmp_path / "out"),
         "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    runs = sorted((tmp_path / "out").glob("*/runs/*/params.json"))
    assert [json.loads(p.read_text())["urls"] for p in runs] == [[url], [url]]
    assert all(
        json.loads((p.parent / "verdicts.json").read_text())["valid"] is True for p in runs
    )
