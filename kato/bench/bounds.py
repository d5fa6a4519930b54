"""Bounded work per request: prediction time against event size, and a 4 MiB observe on a worker.

    python -m kato.bench.bounds            # the curve at 10k…400k symbols, then the service
    python -m kato.bench.bounds --quick    # 10k…100k, then the service

The curve is the attack that used to take minutes: learn one event of n distinct symbols, then
predict from an STM holding the same n symbols (one candidate, matched whole). It runs the
engine directly, without the service's bounds, and prints seconds, microseconds per symbol, and
the time relative to a linear extrapolation of the first row (1.0 = exactly linear; the old
set-less code reached 40 at 400k, quadratic). The service part starts ``kato serve`` (one
worker, embedded Redis, SQLite LTM) and times, while a thread polls ``/health`` every 10 ms:
an observe at the ``KATO_MAX_EVENT_SYMBOLS`` bound against a learned pattern of that size (200),
and a 4 MiB observe (~350k symbols: 413 ``LIMIT_EXCEEDED``). Figures are printed, not asserted,
then issue #16's acceptance verdict for the 4 MiB observe: answered (200 or a 4xx with its code)
within 1 s while no ``/health`` in flight took over 50 ms. The machine's load average is printed
beside it: on a busy machine every time is inflated (run it at a quiet moment).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx

from kato.engine import EngineConfig, MemoryLTM, SessionState, learn, predict
from kato.lab.targets import serve
from kato.settings import Settings

__all__ = ["curve", "main", "service", "verdict"]

SIZES = (10_000, 25_000, 50_000, 100_000, 200_000, 400_000)
#: Issue #16's acceptance for the 4 MiB observe on one worker.
ANSWER_WITHIN_S = 1.0
HEALTH_WITHIN_MS = 50.0
QUICK_SIZES = (10_000, 25_000, 50_000, 100_000)


def _symbols(n: int) -> list[str]:
    return [f"s{i:06d}" for i in range(n)]


def curve(sizes: Sequence[int]) -> list[tuple[int, float]]:
    """``(n, seconds)`` of one prediction of n symbols against a learned pattern of the same n."""
    config = EngineConfig()
    rows = []
    for n in sizes:
        event = tuple(_symbols(n))
        ltm = MemoryLTM()
        ltm.apply(learn(SessionState(stm=(event,)), config).effects)
        gc.collect()  # start each row with no garbage of the last one
        started = time.perf_counter()
        predictions, _ = predict((event,), ltm, config)
        rows.append((n, time.perf_counter() - started))
        assert predictions and predictions[0]["similarity"] == 1.0
    return rows


def print_curve(rows: Sequence[tuple[int, float]]) -> None:
    first_n, first_s = rows[0]
    print(f"{'symbols':>9} {'seconds':>8} {'us/symbol':>9} {'vs linear':>9}")
    for n, seconds in rows:
        linear = first_s * n / first_n
        print(f"{n:>9,} {seconds:>8.3f} {seconds / n * 1e6:>9.2f} {seconds / linear:>9.2f}")


@dataclass
class _HealthWatch:
    """``GET /health`` every 10 ms in a thread; each answer's start time and latency."""

    url: str
    samples: list[tuple[float, float]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as http:
            while not self.stop.is_set():
                started = time.perf_counter()
                http.get("/health").raise_for_status()
                self.samples.append((started, time.perf_counter() - started))
                time.sleep(0.01)

    def worst(self, since: float, until: float) -> tuple[float, int]:
        """The slowest ``/health`` that was in flight within ``[since, until]``, and how many."""
        during = [s for t, s in self.samples if t <= until and t + s >= since]
        return (max(during) if during else float("nan")), len(during)


@contextmanager
def _watching(url: str) -> Iterator[_HealthWatch]:
    watch = _HealthWatch(url)
    thread = threading.Thread(target=watch.run, daemon=True)
    thread.start()
    try:
        yield watch
    finally:
        watch.stop.set()
        thread.join()


def _timed_observe(
    http: httpx.Client, watch: _HealthWatch, session: str, content: bytes
) -> dict[str, object]:
    time.sleep(0.1)  # a few /health answers before, as the baseline
    started = time.perf_counter()
    response = http.post(
        f"/sessions/{session}/observe",
        content=content,
        headers={"content-type": "application/json"},
    )
    ended = time.perf_counter()
    time.sleep(0.1)
    worst, count = watch.worst(started, ended)
    code = response.json().get("error", {}).get("code") if response.status_code != 200 else ""
    return {
        "body_bytes": len(content),
        "status": response.status_code,
        "code": code,
        "seconds": round(ended - started, 3),
        "health_worst_ms": round(worst * 1000, 1),
        "health_answers": count,
    }


def service() -> list[dict[str, object]]:
    """The observe at the symbol bound, and the 4 MiB observe, on a one-worker ``kato serve``."""
    settings = Settings()
    bound = settings.engine.max_event_symbols
    big = _symbols(settings.max_body_bytes // 12)
    while len(json.dumps({"strings": big})) > settings.max_body_bytes:
        big.pop()
    results = []
    with (
        serve("--workers", "1", "--log-level", "warning") as server,
        httpx.Client(base_url=server.url, timeout=120) as http,
        _watching(server.url) as watch,
    ):

        def session() -> str:
            created = http.post("/sessions", json={"node_id": "bench-bounds"})
            return str(created.raise_for_status().json()["session_id"])

        at_bound = json.dumps({"strings": _symbols(bound)}).encode()
        teacher = session()
        results.append({"case": "learn event", **_timed_observe(http, watch, teacher, at_bound)})
        http.post(f"/sessions/{teacher}/learn").raise_for_status()
        case = f"{bound:,} symbols vs pattern"
        results.append({"case": case, **_timed_observe(http, watch, session(), at_bound)})
        content = json.dumps({"strings": big}).encode()
        case = f"4 MiB ({len(big):,} symbols)"
        results.append({"case": case, **_timed_observe(http, watch, session(), content)})
    return results


def print_service(results: Sequence[dict[str, object]]) -> None:
    print(f"{'observe':<28} {'bytes':>9} {'status':>6} {'code':<15} {'s':>6} {'/health worst':>14}")
    for row in results:
        health = f"{row['health_worst_ms']} ms ({row['health_answers']})"
        print(
            f"{row['case']!s:<28} {row['body_bytes']:>9,} {row['status']!s:>6} {row['code']!s:<15}"
            f" {row['seconds']!s:>6} {health:>14}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kato.bench.bounds", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="the curve up to 100k symbols")
    parser.add_argument("--no-service", action="store_true", help="the engine curve only")
    args = parser.parse_args(argv)
    print("prediction time vs event size (engine, one learned pattern of the same symbols)")
    print_curve(curve(QUICK_SIZES if args.quick else SIZES))
    if not args.no_service:
        print("\nkato serve, one worker, /health polled every 10 ms (worst answer in flight)")
        results = service()
        print_service(results)
        met, reason = verdict(results[-1])
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"\nacceptance (#16), 4 MiB observe: {'MET' if met else 'NOT MET'}: {reason}")
        print(f"machine load average (1, 5, 15 min): {load} on {os.cpu_count()} cores")
    return 0


def verdict(row: dict[str, object]) -> tuple[bool, str]:
    """Whether the 4 MiB observe's ``row`` meets issue #16's acceptance, and why."""
    status, seconds, worst = row["status"], row["seconds"], row["health_worst_ms"]
    assert isinstance(status, int) and isinstance(seconds, float) and isinstance(worst, float)
    answered = status == 200 or (400 <= status < 500 and bool(row["code"]))
    met = answered and seconds <= ANSWER_WITHIN_S and worst <= HEALTH_WITHIN_MS
    code = f" {row['code']}" if row["code"] else ""
    return met, (
        f"answered {status}{code} in {seconds} s (goal: 200 or a clear 4xx within "
        f"{ANSWER_WITHIN_S:g} s), /health worst {worst} ms over {row['health_answers']} answers "
        f"in flight (goal: <= {HEALTH_WITHIN_MS:g} ms)"
    )


if __name__ == "__main__":
    raise SystemExit(main())
