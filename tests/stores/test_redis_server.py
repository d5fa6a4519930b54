"""The embedded Redis launcher: a real server, our own lifecycle, never left behind."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import redis

from kato.exceptions import InvalidConfigError
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


def test_a_supervised_server_comes_back_after_kill_9_with_its_data(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kato")
    with RedisServer(persistence="always", data_dir=tmp_path / "redis") as server:
        server.supervise()
        port, first = server.port, server.process.pid  # type: ignore[union-attr]
        redis.Redis.from_url(server.url).set("kept", "1")
        os.kill(first, signal.SIGKILL)  # from outside, as an operator or the OOM killer would
        client = redis.Redis.from_url(server.url, retry=None)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.ConnectionError):
                if client.get("kept") == b"1":
                    break
            time.sleep(0.02)
        assert client.get("kept") == b"1"
        assert server.port == port and server.process.pid != first  # type: ignore[union-attr]
        assert not alive(first), "the dead server was not reaped"
    died = [r for r in caplog.records if r.getMessage() == "embedded redis died"]
    restarted = [r for r in caplog.records if r.getMessage() == "embedded redis restarted"]
    assert [r.fields["pid"] for r in died] == [first]  # type: ignore[attr-defined]
    assert died[0].fields["returncode"] == -signal.SIGKILL  # type: ignore[attr-defined]
    assert len(restarted) == 1 and restarted[0].fields["port"] == port  # type: ignore[attr-defined]


def test_a_stopped_supervised_server_stays_stopped_and_keeps_its_folder(tmp_path: Path) -> None:
    with RedisServer(persistence="everysec", data_dir=tmp_path / "redis") as server:
        server.supervise()
        redis.Redis.from_url(server.url).set("kept", "1")
        pid = server.process.pid  # type: ignore[union-attr]
    time.sleep(0.3)  # a supervisor that missed the stop would have started another by now
    assert not alive(pid) and server.process is None
    assert (tmp_path / "redis" / "appendonly.aof").exists()
    with RedisServer(persistence="everysec", data_dir=tmp_path / "redis") as again:
        assert redis.Redis.from_url(again.url).get("kept") == b"1"


def test_redis_url_keeps_the_aof_in_the_data_dir_only_with_persistence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KATO_REDIS_URL", raising=False)
    with redis_url(persistence="always", data_dir=tmp_path / "kept") as url:
        redis.Redis.from_url(url).set("k", "1")
    assert (tmp_path / "kept" / "appendonly.aof").exists()
    with redis_url(persistence="none", data_dir=tmp_path / "temporary") as url:
        redis.Redis.from_url(url).set("k", "1")
    assert not (tmp_path / "temporary").exists()


def test_two_servers_never_share_a_data_dir(tmp_path: Path) -> None:
    with RedisServer(persistence="always", data_dir=tmp_path) as first:
        second = RedisServer(persistence="always", data_dir=tmp_path)
        with pytest.raises(InvalidConfigError, match="in use"):
            second.start()
        assert redis.Redis.from_url(first.url).ping()
    with RedisServer(persistence="always", data_dir=tmp_path):  # free again after a stop
        pass
