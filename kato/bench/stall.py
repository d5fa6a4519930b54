"""``kato bench``'s LTM-stall rows: what a locked long-term memory costs everyone else.

One ``kato serve`` worker (embedded Redis store, SQLite LTM with its default 10 s busy timeout).
For ``seconds`` another process holds the SQLite file's write lock
(:class:`~kato.lab.ltm_lock.LTMLock`, as a backup tool or a second writer would) while three
clients keep learning into sessions of their own (each learn waits for the lock, gives up, and
leaves its effects in its session's outbox), and the bench polls ``/health`` and observes into
a session of another node. Both latencies are compared with the same polling before the lock
(the reference); the goal is ``/health`` p99 ≤ 50 ms during the lock: no LTM stall blocks the
event loop. ``extra`` records what ``/health`` said about the LTM and the store.
"""

from __future__ import annotations

import contextlib
import statistics
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from kato.bench.rows import Goal, Row
from kato.lab.ltm_lock import LTMLock
from kato.lab.targets import serve

__all__ = ["stall_rows"]

#: Seconds between two polls of ``/health`` (and two observes).
POLL_S = 0.02
LEARNERS = 3


def _p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[98] if len(samples) > 1 else float("nan")


def _session(client: httpx.Client, node: str) -> str:
    return str(client.post("/sessions", json={"node_id": node}).json()["session_id"])


def _learn_until(url: str, stop: threading.Event, learned: Counter[int]) -> None:
    with httpx.Client(base_url=url, timeout=60) as client:
        session = _session(client, "stall-learners")
        while not stop.is_set():
            for symbol in ("x", "y"):
                client.post(f"/sessions/{session}/observe", json={"strings": [symbol]})
            learned[client.post(f"/sessions/{session}/learn").status_code] += 1


def _poll(client: httpx.Client, session: str, seconds: float) -> dict[str, Any]:
    """Poll ``/health`` and observe into ``session`` for ``seconds``; latencies in ms."""
    health: list[float] = []
    observe: list[float] = []
    said: Counter[str] = Counter()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        body = client.get("/health").json()
        health.append((time.perf_counter() - started) * 1e3)
        checks = body["checks"]
        said[f"ltm {checks['ltm']['status']}, store {checks['store']['status']}"] += 1
        started = time.perf_counter()
        client.post(f"/sessions/{session}/observe", json={"strings": ["o"]})
        observe.append((time.perf_counter() - started) * 1e3)
        time.sleep(POLL_S)
    return {"health": health, "observe": observe, "said": dict(said)}


def stall_rows(seconds: float = 10.0) -> list[Row]:
    """The ``/health`` and other-node observe p99 during an LTM lock of ``seconds``."""
    with contextlib.ExitStack() as stack:
        data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kato-stall-")))
        args = ("--workers", "1", "--ltm", "sqlite", "--data-dir", str(data_dir))
        server = stack.enter_context(serve(*args, "--log-level", "warning"))
        with httpx.Client(base_url=server.url, timeout=60) as client:
            bystander = _session(client, "stall-bystander")
            warm = _session(client, "stall-warm")
            for symbol in ("w", "v"):
                client.post(f"/sessions/{warm}/observe", json={"strings": [symbol]})
            client.post(f"/sessions/{warm}/learn")  # the LTM file exists before it is locked
            before = _poll(client, bystander, min(seconds, 3.0))
            stop, learned = threading.Event(), Counter[int]()
            with LTMLock(data_dir / "ltm.sqlite3"):
                learners = [
                    threading.Thread(target=_learn_until, args=(server.url, stop, learned))
                    for _ in range(LEARNERS)
                ]
                for thread in learners:
                    thread.start()
                during = _poll(client, bystander, seconds)
                stop.set()
            for thread in learners:
                thread.join()
    note = f"{seconds:g} s of SQLite write lock, {LEARNERS} clients learning meanwhile"
    extra = {
        "health_said": during["said"],
        "learns_by_status": dict(learned),
        "health_p50_ms": statistics.median(during["health"]),
        "health_polls": len(during["health"]),
    }
    goals = {"health": Goal("ours", "<=", 50.0), "observe": None}
    names = {"health": "stall.health.p99", "observe": "stall.observe_other_node.p99"}
    references = {"health": "/health p99 before the lock", "observe": "the same observes before"}
    return [
        Row(
            section="ltm-stall",
            name=names[key],
            ours=_p99(during[key]),
            reference=_p99(before[key]),
            unit="ms",
            reference_is=references[key],
            goal=goals[key],
            note=note,
            extra=extra,
        )
        for key in ("health", "observe")
    ]
