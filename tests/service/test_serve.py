"""``kato serve`` as a real process: it refuses what it cannot do, logs what it does, and
brings its embedded Redis back (with its data) after a crash or a restart."""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

import kato
from kato.engine import pattern_name


def test_memory_store_refuses_several_workers() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "kato",
            "serve",
            "--workers",
            "2",
            "--store",
            "memory",
            "--ltm",
            "memory",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "memory store" in result.stderr and "2 workers" in result.stderr


def test_bad_arguments_exit_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kato", "serve", "--port", "not-a-port"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "--port" in result.stderr


def test_real_server_headers_and_json_log_lines(start_server: Any) -> None:
    with start_server("--store", "memory", "--ltm", "memory", "--log-level", "info") as server:
        created = httpx.post(server.url + "/sessions", json={"node_id": "serve-test"})
        session_id = created.json()["session_id"]
        observed = httpx.post(
            f"{server.url}/sessions/{session_id}/observe",
            json={"strings": ["a"]},
            headers={"X-Request-ID": "trace-me-1"},
        )
        assert observed.headers["x-kato-worker"] == str(server.pid)
        assert observed.headers["x-session-id"] == session_id
        assert observed.headers["x-request-id"] == "trace-me-1"
        httpx.get(server.url + "/health")
        lines = [
            json.loads(line)
            for line in server.log_path.read_text().splitlines()
            if line.startswith("{")
        ]
    traced = [line for line in lines if line.get("request_id") == "trace-me-1"]
    assert len(traced) == 1
    entry = traced[0]
    assert entry["route"] == "/sessions/{session_id}/observe"
    assert entry["status"] == 200 and entry["node"] == "serve-test"
    assert entry["worker"] == server.pid and entry["store_calls"] == 1
    assert session_id not in json.dumps(lines)


def test_async_client_in_both_modes(server_url: str) -> None:
    async def scenario(base_url: str | None) -> tuple[str, list[list[str]], str]:
        async with kato.AsyncKatoClient(node_id="async-client", base_url=base_url) as k:
            await k.observe(strings=["x"])
            await k.observe(strings=["y"])
            name = (await k.learn())["pattern_name"]
            await k.observe_sequence([{"strings": ["x"]}, {"strings": ["y"]}])
            stm = (await k.get_stm())["stm"]
            try:
                await k.update_session_config(max_predictions=0)
            except kato.InvalidConfigError as exc:
                code = exc.code
            return name, stm, code

    local = asyncio.run(scenario(None))
    remote = asyncio.run(scenario(server_url))
    assert local == remote
    assert local == (pattern_name([["x"], ["y"]]), [["x"], ["y"]], "INVALID_CONFIG")


def test_the_socket_shared_by_workers_turns_nagle_off() -> None:
    """Without TCP_NODELAY on the shared socket, two workers answered in ~44 ms instead of 1."""
    import socket

    import uvicorn

    from kato.service.server import shared_socket

    config = uvicorn.Config("kato.service.app:create_app_from_env", port=0, workers=2)
    sock = shared_socket(config)
    try:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        sock.listen()
        client = socket.create_connection(sock.getsockname()[:2])
        accepted, _ = sock.accept()
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        accepted.close()
        client.close()
    finally:
        sock.close()


def _redis_child(server: Any) -> psutil.Process:
    [redis_server] = [
        child for child in psutil.Process(server.pid).children() if child.name() == "redis-server"
    ]
    return redis_server


def _new_session(url: str, node: str) -> str:
    response = httpx.post(url + "/sessions", json={"node_id": node})
    assert response.status_code == 200, response.text
    return str(response.json()["session_id"])


def _stm(url: str, session_id: str) -> list[list[str]]:
    response = httpx.get(f"{url}/sessions/{session_id}/stm")
    assert response.status_code == 200, response.text
    return list(response.json()["stm"])


def test_kill_9_of_the_embedded_redis_under_load_loses_no_acknowledged_observe(
    tmp_path: Path, start_server: Any, node_id: str
) -> None:
    """The supervisor restarts Redis on its port and AOF; ``always`` keeps every ack."""
    args = ("--workers", "2", "--redis-persistence", "always", "--data-dir", str(tmp_path))
    with start_server(*args, "--log-level", "info") as server:
        sessions = [_new_session(server.url, node_id) for _ in range(4)]
        acknowledged: dict[str, list[str]] = {s: [] for s in sessions}
        refused: list[int] = []
        done = threading.Event()

        def observe(session_id: str) -> None:
            with httpx.Client(base_url=server.url, timeout=15) as client:
                for i in itertools.count():
                    if done.is_set():
                        return
                    symbol = f"s{i}"
                    answer = client.post(
                        f"/sessions/{session_id}/observe", json={"strings": [symbol]}
                    )
                    if answer.status_code == 200:
                        acknowledged[session_id].append(symbol)
                    else:
                        refused.append(answer.status_code)

        threads = [threading.Thread(target=observe, args=(s,)) for s in sessions]
        for thread in threads:
            thread.start()
        try:
            time.sleep(0.5)
            victim = _redis_child(server)
            before = sum(map(len, acknowledged.values()))
            victim.kill()
            killed = time.monotonic()
            while httpx.get(server.url + "/health", timeout=10).status_code != 200:
                assert time.monotonic() - killed < 10, "the service did not recover in 10 s"
                time.sleep(0.05)
            recovered = time.monotonic() - killed
            time.sleep(0.5)  # load goes on after the restart
        finally:
            done.set()
            for thread in threads:
                thread.join()
        assert recovered < 10
        assert before > 0 and sum(map(len, acknowledged.values())) > before
        assert set(refused) <= {503}, refused  # unavailable, never "not found"
        assert _redis_child(server).pid != victim.pid and not psutil.pid_exists(victim.pid)
        for session_id, symbols in acknowledged.items():
            stored = [event[0] for event in _stm(server.url, session_id)]
            assert set(symbols) <= set(stored), f"lost: {set(symbols) - set(stored)}"
        lines = [
            json.loads(line) for line in server.log_path.read_text().splitlines() if line[:1] == "{"
        ]
    messages = [line["msg"] for line in lines if line.get("logger") == "kato"]
    assert "embedded redis died" in messages and "embedded redis restarted" in messages


def test_sessions_survive_a_restart_of_the_service_with_the_same_data_dir(
    tmp_path: Path, start_server: Any, node_id: str
) -> None:
    args = ("--redis-persistence", "always", "--data-dir", str(tmp_path))
    with start_server(*args) as server:
        session_id = _new_session(server.url, node_id)
        for symbol in ("a", "b"):
            observed = httpx.post(
                f"{server.url}/sessions/{session_id}/observe", json={"strings": [symbol]}
            )
            assert observed.status_code == 200
        second = subprocess.run(
            [sys.executable, "-m", "kato", "serve", "--port", "0", *args],
            capture_output=True,
            text=True,
            timeout=60,
        )  # two Redis servers appending to one AOF would corrupt it
        assert second.returncode == 2 and "in use" in second.stderr, second.stderr
    assert (tmp_path / "redis" / "appendonly.aof").exists()
    with start_server(*args) as again:
        assert _stm(again.url, session_id) == [["a"], ["b"]]


def test_clients_let_go_of_an_idle_connection_well_before_a_worker_closes_it() -> None:
    """A client that kept an idle connection as long as the server could send a request on it
    as the server closed it ("server disconnected without sending a response"); a busy client
    releases a connection late, so the margin is half the server's keep-alive or more."""
    from kato.client._http import IDLE_EXPIRY_S
    from kato.service.server import KEEP_ALIVE_S

    assert 0 < IDLE_EXPIRY_S <= KEEP_ALIVE_S / 2
