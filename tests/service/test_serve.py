"""``kato serve`` as a real process: it refuses what it cannot do, and logs what it does."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

import httpx

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
