"""The nemesis: faults injected into a running ``kato serve --workers 2`` on the embedded Redis,
recorded in the history, judged by ``no_lost_updates`` and ``faults``; the latency proxy; and
faults never touching what the workbench did not start."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from kato.lab.checkers import check, dishonest_error_cases, faults, lost_update_cases
from kato.lab.history import History, Op
from kato.lab.nemesis import CommandHook, WorkerKill, nemesis_for
from kato.lab.proxy import LatencyProxy
from kato.lab.run import run
from kato.lab.runner import NoopClient, execute
from kato.lab.scenarios import plan
from kato.lab.spec import FAULTS, Experiment
from kato.lab.targets import Deployment, ServerProcess, deploy
from kato.stores.redis_server import RedisServer

#: A short open-loop run that spans the fault window: ~1.5 s of schedule, fault 0.4 s in, 0.5 s.
UNDER_FAULT = Experiment(
    scenario="many-sessions",
    target="http",
    store="redis",
    workers=2,
    concurrency=6,
    operations=300,
    rate=200,
    fault_at_s=0.4,
    fault_for_s=0.5,
    fault_latency_ms=60,
    fault_jitter_ms=10,
    timeout_s=5,
)

HONEST = {("STORE_UNAVAILABLE", 503), (None, None)}  # a 503, or no answer at all (transport)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X", "T")  # neither gone nor stopped


@pytest.fixture(scope="module")
def bystanders() -> Iterator[tuple[RedisServer, subprocess.Popen[bytes]]]:
    """A redis-server and a python process the workbench did not start (faults must spare them)."""
    with RedisServer() as redis:
        sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
        try:
            yield redis, sleeper
        finally:
            sleeper.kill()
            sleeper.wait()


def _fault_ops(history: History) -> list[Op]:
    return [op for op in history if op.f == "fault"]


@pytest.mark.parametrize("fault", ["redis-restart", "redis-pause", "redis-latency", "worker-kill"])
def test_no_acknowledged_observation_lost_under_fault_with_aof_always(
    fault: str, bystanders: tuple[RedisServer, subprocess.Popen[bytes]]
) -> None:
    result = run(UNDER_FAULT.with_(fault=fault, redis_persistence="always"))
    verdicts = {c["name"]: c for c in result.verdicts["checkers"]}
    dump = json.dumps(result.verdicts, indent=1, default=str)

    start, stop = _fault_ops(result.history)
    assert (start.client, start.args, start.outcome) == (
        "nemesis",
        {"name": fault, "phase": "start"},
        "ok",
    )
    assert (stop.args["phase"], stop.outcome) == ("stop", "ok")
    assert start.complete_ns is not None and stop.complete_ns is not None
    assert start.invoke_ns <= start.complete_ns <= stop.invoke_ns <= stop.complete_ns
    assert stop.invoke_ns - start.invoke_ns >= 0.5e9

    lost = verdicts["no_lost_updates"]
    assert (lost["valid"], lost["counts"]["lost"]) == (True, 0), dump
    assert lost["counts"]["acknowledged"] > 0
    errors = {(op.error_code, op.http_status) for op in result.history if op.outcome != "ok"}
    assert errors <= HONEST, errors
    assert verdicts["faults"]["valid"] is True, dump
    assert verdicts["faults"]["counts"]["not_found"] == 0
    assert result.valid is True, dump

    window = next(e for e in verdicts["faults"]["examples"] if e["kind"] == "window")
    assert window["recovery_ms"] is not None and window["ok_after"] > 0, window
    if fault == "redis-restart":
        assert window["during"].get("STORE_UNAVAILABLE", 0) > 0, window
    if fault == "worker-kill":
        assert stop.value["replacement"] not in (None, start.value["pid"]), stop.value
    if fault == "redis-latency":
        slow = [
            op.latency_ns
            for op in result.history
            if op.f == "observe"
            and op.latency_ns is not None
            and start.complete_ns < op.invoke_ns
            and op.complete_ns is not None
            and op.complete_ns < stop.invoke_ns
        ]
        assert slow and min(slow) >= 40e6, sorted(slow)[:5]  # 60 ± 10 ms per Redis call

    redis, sleeper = bystanders
    assert redis.process is not None and _alive(redis.process.pid)
    assert _alive(sleeper.pid)


def test_redis_restart_without_persistence_verdict_reports_exactly_what_was_lost() -> None:
    spec = UNDER_FAULT.with_(fault="redis-restart", redis_persistence="none")
    with deploy(spec) as deployment:
        history = asyncio.run(
            execute(
                spec,
                plan(spec),
                deployment.make_client,
                node="nemesis-test",
                nemesis=nemesis_for(spec, deployment),
            )
        )
        assert deployment.server is not None
        faults_done = [(op.args, op.outcome, op.value) for op in _fault_ops(history)]
        assert all(outcome == "ok" for _, outcome, _ in faults_done), faults_done
        shown = {sid: _stm_symbols(deployment.server.url, sid) for sid in _sessions(history)}

    # the truth, from the clients' acknowledgements and what the service shows afterwards
    acknowledged = {
        (str(op.session_id), op.args["strings"][0])
        for op in history
        if op.f == "observe" and op.outcome == "ok"
    }
    truly_lost = {(sid, sym) for sid, sym in acknowledged if sym not in shown[sid]}
    start, _ = _fault_ops(history)
    before = {
        (op.session_id, op.args["strings"][0])
        for op in history
        if op.f == "observe" and op.outcome == "ok" and op.complete_ns < start.invoke_ns  # type: ignore[operator]
    }
    assert before and before <= truly_lost  # the restart emptied Redis

    verdict = {c["name"]: c for c in check(history)["checkers"]}
    by_op = {op.op_id: op for op in history}
    reported = {
        (c["session_id"], by_op[c["op"]].args["strings"][0]) for c in lost_update_cases(history)
    }
    assert reported == truly_lost
    assert verdict["no_lost_updates"]["valid"] is False
    assert verdict["no_lost_updates"]["counts"]["lost"] == len(truly_lost)
    # the outage itself was reported honestly; the 404s come after Redis came back empty
    window = next(e for e in verdict["faults"]["examples"] if e["kind"] == "window")
    assert window["during"].get("STORE_UNAVAILABLE", 0) > 0
    assert verdict["faults"]["counts"]["dishonest"] == 0


def _sessions(history: History) -> set[str]:
    return {op.session_id for op in history if op.f == "create" and op.session_id}


def _stm_symbols(url: str, sid: str) -> set[str]:
    """The symbols the service shows in ``sid``'s STM (none if it answers 404)."""
    answer = b""
    for _ in range(50):  # a pooled connection to the old Redis answers 503 once: ask again
        try:
            with urllib.request.urlopen(f"{url}/sessions/{sid}/stm", timeout=10) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 503:
                answer = exc.read()[:300]
                time.sleep(0.1)
                continue
            assert exc.code == 404, exc
            return set()
        return {symbol for event in body["stm"] for symbol in event}
    raise AssertionError(f"the service kept answering 503 for {sid}: {answer!r}")


# -- the latency proxy ------------------------------------------------------------------------


@pytest.fixture
def echo_server() -> Iterator[int]:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=_echo, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield port
    finally:
        listener.close()


def _echo(conn: socket.socket) -> None:
    with conn:
        while data := conn.recv(65536):
            conn.sendall(data)


def _round_trip(sock: socket.socket, payload: bytes) -> float:
    began = time.perf_counter()
    sock.sendall(payload)
    received = b""
    while len(received) < len(payload):
        received += sock.recv(65536)
    assert received == payload
    return time.perf_counter() - began


def test_proxy_adds_latency_only_while_active(echo_server: int) -> None:
    with (
        LatencyProxy("127.0.0.1", echo_server, seed=1) as proxy,
        socket.create_connection(("127.0.0.1", proxy.port)) as sock,
    ):
        quiet = max(_round_trip(sock, b"ping %d" % i) for i in range(5))
        proxy.set_delay(0.08, 0.01)
        delayed = [_round_trip(sock, b"slow %d" % i) for i in range(5)]
        proxy.set_delay(0.0, 0.0)
        after = max(_round_trip(sock, b"again %d" % i) for i in range(5))
    assert quiet < 0.03 and after < 0.03, (quiet, after)
    assert min(delayed) >= 0.07 and max(delayed) < 0.5, delayed


def test_proxy_keeps_order_under_jitter(echo_server: int) -> None:
    with (
        LatencyProxy("127.0.0.1", echo_server, seed=2) as proxy,
        socket.create_connection(("127.0.0.1", proxy.port)) as sock,
    ):
        proxy.set_delay(0.02, 0.02)
        payload = b"".join(b"%04d," % i for i in range(200))
        for i in range(200):
            sock.sendall(b"%04d," % i)
        received = b""
        while len(received) < len(payload):
            received += sock.recv(65536)
    assert received == payload


# -- faults touch only what the workbench started ---------------------------------------------


def test_worker_kill_refuses_a_process_that_is_not_a_worker_of_ours() -> None:
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        fault = WorkerKill(ServerProcess("http://127.0.0.1:1", stranger, Path("/dev/null")))
        with pytest.raises(RuntimeError, match="no worker processes"):
            fault.start()
        assert _alive(stranger.pid)
    finally:
        stranger.kill()
        stranger.wait()


def test_redis_faults_need_the_redis_the_workbench_started() -> None:
    spec = UNDER_FAULT.with_(fault="redis-restart")
    bare = Deployment(make_client=lambda: None, info={})  # type: ignore[arg-type,return-value]
    with pytest.raises(ValueError, match="needs the Redis"):
        nemesis_for(spec, bare)
    assert nemesis_for(spec.with_(fault="none"), bare) is None


def test_spec_validates_faults() -> None:
    with pytest.raises(ValueError, match="fault must be one of none, redis-restart"):
        UNDER_FAULT.with_(fault="meteor")
    with pytest.raises(ValueError, match="target=http, store=redis"):
        Experiment(fault="redis-pause")
    with pytest.raises(ValueError, match="workers >= 2"):
        UNDER_FAULT.with_(fault="worker-kill", workers=1)
    with pytest.raises(ValueError, match="redis_persistence must be one of"):
        UNDER_FAULT.with_(redis_persistence="fsync")
    assert set(FAULTS) >= {"redis-restart", "redis-kill", "redis-pause", "redis-latency"}
    assert UNDER_FAULT.with_(fault_at_s=None).fault_start_s() == pytest.approx(0.3 * 300 / 200)


# -- the faults checker on hand-made histories ------------------------------------------------


def _op(op_id: int, f: str, ms: tuple[int, int], outcome: str = "ok", **kw: object) -> Op:
    """An op invoked and completed at ``ms`` (milliseconds)."""
    client = str(kw.pop("client", "c1"))
    invoke, complete = ms[0] * 1_000_000, ms[1] * 1_000_000
    return Op(op_id, client, f, invoke_ns=invoke, complete_ns=complete, outcome=outcome, **kw)  # type: ignore[arg-type]


def test_faults_checker_reports_each_window_and_flags_dishonest_errors() -> None:
    nemesis = {"client": "nemesis"}
    h = History(
        [
            _op(0, "fault", (10, 12), args={"name": "redis-pause", "phase": "start"}, **nemesis),
            _op(1, "observe", (11, 30), "unknown", error_code="STORE_UNAVAILABLE", http_status=503),
            _op(2, "observe", (13, 31), "unknown"),  # no answer: transport
            _op(3, "read_stm", (14, 32), "unknown", error_code="INTERNAL", http_status=500),
            _op(4, "fault", (40, 42), args={"name": "redis-pause", "phase": "stop"}, **nemesis),
            _op(5, "observe", (43, 50), "unknown", error_code="STORE_UNAVAILABLE", http_status=503),
            _op(6, "observe", (44, 52)),
            _op(7, "observe", (45, 47)),
        ]
    )
    verdict = faults(h)
    assert (verdict.valid, verdict.anomalies) == (False, 1)
    assert [c["op"] for c in dishonest_error_cases(h)] == [3]
    window = next(e for e in verdict.examples if e["kind"] == "window")
    assert window["during"] == {"INTERNAL": 1, "STORE_UNAVAILABLE": 1, "TRANSPORT": 1}
    assert window["after"] == {"STORE_UNAVAILABLE": 1}
    assert (window["ok_after"], window["first_ok_after"]) == (2, 6)
    assert window["recovery_ms"] == pytest.approx(52 - 42)
    assert verdict.counts["windows"] == 1 and verdict.counts["store_unavailable"] == 2


def test_a_failed_fault_call_leaves_the_verdict_unknown() -> None:
    h = History(
        [
            _op(
                0,
                "fault",
                (10, 12),
                "unknown",
                client="nemesis",
                args={"name": "redis-pause", "phase": "start"},
                value={"error": "boom"},
            ),
            _op(1, "observe", (20, 25)),
        ]
    )
    verdict = faults(h)
    assert verdict.valid == "unknown"
    assert verdict.examples[0]["kind"] == "fault-failed"


def test_a_url_target_faults_through_its_command_hooks(tmp_path: Path) -> None:
    marker = tmp_path / "paused"
    spec = Experiment(
        target="url",
        urls=("http://127.0.0.1:1",),
        fault="redis-pause",
        fault_hooks={"redis-pause": {"start": f"touch {marker}", "stop": f"rm {marker}"}},
    )
    nemesis = nemesis_for(spec, Deployment(NoopClient, {}))
    assert nemesis is not None
    assert isinstance(nemesis.fault, CommandHook) and nemesis.fault.name == "redis-pause"
    assert nemesis.fault.start()["command"] == f"touch {marker}" and marker.exists()
    assert nemesis.fault.stop()["returncode"] == 0 and not marker.exists()
    with pytest.raises(RuntimeError, match=r"stop hook 'rm .*' exited 1"):
        nemesis.fault.stop()  # the marker is gone: the command fails, and says so


def test_ltm_lock_blocks_writers_not_readers_for_its_window(tmp_path: Path) -> None:
    from kato.engine import EngineConfig, SessionState, learn
    from kato.exceptions import StoreUnavailableError
    from kato.lab.nemesis import LTMLockFault
    from kato.ltm.sqlite import SQLiteNodes

    nodes = SQLiteNodes(tmp_path / "ltm.sqlite3", timeout=0.1)
    ltm = nodes.ltm("n")
    effects = learn(SessionState(stm=(("a",), ("b",))), EngineConfig()).effects
    ltm.apply(effects)
    fault = LTMLockFault(tmp_path / "ltm.sqlite3")
    started = fault.start()
    try:
        assert started["pid"] != 0
        with pytest.raises(StoreUnavailableError):
            ltm.apply(effects)
        with pytest.raises(StoreUnavailableError):
            nodes.check_writable()
        assert ltm.pattern_count() == 1  # reads go on (WAL)
    finally:
        assert fault.stop()["released"] is True
    nodes.check_writable()
    ltm.apply(effects)
    [pattern] = ltm.patterns()
    assert pattern.frequency == 2
    nodes.close()


def test_spec_accepts_ltm_faults_only_where_they_run() -> None:
    assert UNDER_FAULT.with_(fault="ltm-lock").fault == "ltm-lock"
    with pytest.raises(ValueError, match="target=http, store=redis"):
        Experiment(fault="ltm-lock")
    for fault in ("ltm-pause", "ltm-kill"):
        with pytest.raises(ValueError, match="set ltm=mongo"):
            UNDER_FAULT.with_(fault=fault)
        assert UNDER_FAULT.with_(fault=fault, ltm="mongo").fault == fault
    with pytest.raises(ValueError, match=r"ltm-lock acts on the sqlite LTM .* set ltm=sqlite"):
        UNDER_FAULT.with_(fault="ltm-lock", ltm="mongo")
    bare = Deployment(make_client=lambda: None, info={})  # type: ignore[arg-type,return-value]
    with pytest.raises(ValueError, match="SQLite LTM"):
        nemesis_for(UNDER_FAULT.with_(fault="ltm-lock"), bare)
    with pytest.raises(ValueError, match="needs the nx-27017"):
        nemesis_for(UNDER_FAULT.with_(fault="ltm-kill", ltm="mongo"), bare)


def test_learn_race_on_the_mongo_ltm_under_ltm_pause_loses_and_doubles_no_learn() -> None:
    """The outbox under a frozen MongoDB server: learns acknowledged before, during and after
    the pause are each counted once. Steps need the LTM to read, so some answer 503 during the
    window (honestly): no checker may find an anomaly, the LTM ones must be valid."""
    spec = Experiment(
        scenario="learn-race",
        target="http",
        store="redis",
        ltm="mongo",
        workers=2,
        concurrency=4,
        operations=160,
        fault="ltm-pause",
        fault_at_s=0.5,
        fault_for_s=1.0,
        client_retries=3,
        timeout_s=5,
    )
    result = run(spec, progress=False)
    verdicts = {c["name"]: c for c in result.verdicts["checkers"]}
    assert verdicts["ltm_effects"]["valid"] is True, verdicts["ltm_effects"]["examples"]
    assert verdicts["ltm_effects"]["counts"]["acknowledged"] > 0
    assert verdicts["counts"]["valid"] is True
    assert all(c["valid"] is not False for c in verdicts.values()), verdicts
    [start, stop] = [op for op in _fault_ops(result.history) if op.outcome == "ok"]
    assert start.value["signal"] == "SIGSTOP" and stop.value["signal"] == "SIGCONT"
