"""The embedded Redis launcher: a real server, our own lifecycle, never left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import redis

from kato.stores.redis_server import RedisServer, redis_url


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); look at its state
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2] != "Z"


def test_starts_answers_and_stops_cleanly() -> None:
    server = RedisServer().start()
    pid, data_dir = server.process.pid, server.data_dir  # type: ignore[union-attr]
    client = redis.Redis.from_url(server.url)
    assert client.ping()
    assert client.info("server")["redis_version"].startswith("6.2")
    assert client.config_get("save")["save"] == ""
    assert client.config_get("appendonly")["appendonly"] == "no"
    assert redis.Redis(unix_socket_path=str(server.unix_socket)).ping()
    server.stop()
    time.sleep(0.05)
    assert not alive(pid) and not data_dir.exists()


def test_aof_always_keeps_data_across_a_restart() -> None:
    with RedisServer(persistence="always") as server:
        client = redis.Redis.from_url(server.url)
        assert client.config_get("appendfsync")["appendfsync"] == "always"
        client.set("kept", "1")
        server.kill()
        server.start()
        assert redis.Redis.from_url(server.url).get("kept") == b"1"


def test_without_persistence_a_restart_loses_everything() -> None:
    with RedisServer() as server:
        redis.Redis.from_url(server.url).set("gone", "1")
        server.restart()
        assert redis.Redis.from_url(server.url).get("gone") is None


def test_the_server_dies_with_its_parent() -> None:
    child = textwrap.dedent(
        """
        import sys, time
        from kato.stores.redis_server import RedisServer
        server = RedisServer().start()
        print(server.process.pid, flush=True)
        time.sleep(60)
        """
    )
    with subprocess.Popen(
        [sys.executable, "-c", child], stdout=subprocess.PIPE, text=True
    ) as parent:
        assert parent.stdout is not None
        redis_pid = int(parent.stdout.readline())
        assert alive(redis_pid)
        parent.send_signal(signal.SIGKILL)  # no atexit, no cleanup: only the death signal helps
        parent.wait()
    deadline = time.monotonic() + 5
    while alive(redis_pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not alive(redis_pid), "redis-server outlived the process that started it"


def test_external_url_starts_nothing(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("KATO_REDIS_URL", "redis://127.0.0.1:1/0")
    with redis_url() as url:
        assert url == "redis://127.0.0.1:1/0"
