"""Slow uploads against one worker: does its memory stay bounded, and come back afterwards?

    python -m kato.bench.slowbodies                 # 300 connections, 4 MB declared, 3.99 MB sent
    python -m kato.bench.slowbodies --quick         # 50 connections, 5 s body timeout
    python -m kato.bench.slowbodies --connections 100 --body-timeout 10
    python -m kato.bench.slowbodies --quick --bodies-in-flight 1099511627776   # no budget

Starts ``kato serve`` (one worker, memory stores, loopback only). Every connection declares a
``Content-Length`` of 4,000,000 bytes on ``POST /sessions`` and sends 3.99 MB of it in 64 KiB
pieces, slowly, never finishing. Without bounds each such body was buffered whole (300 of them:
71 → 1,238 MB, never given back). With them, the worker holds at most
``KATO_MAX_BODIES_IN_FLIGHT`` bytes of bodies (the others are answered 503 ``SERVER_BUSY``
before a byte is read) and answers the late ones 408 after ``KATO_BODY_TIMEOUT_S``. Prints the
worker's RSS at baseline, at its peak, and after every connection has closed, and the answers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
import psutil

from kato.lab.targets import serve

__all__ = ["SlowBodies", "main", "run"]

MIB = 2**20
PIECE = 64 * 1024


@dataclass(frozen=True, slots=True)
class SlowBodies:
    """What one run measured (bytes and seconds)."""

    connections: int
    baseline_rss: int
    peak_rss: int
    after_rss: int
    answers: dict[str, int]
    seconds: float

    def lines(self) -> list[str]:
        base = self.baseline_rss / MIB
        return [
            f"connections      {self.connections}",
            f"worker RSS       baseline {base:.1f} MiB",
            f"                 peak     {self.peak_rss / MIB:.1f} MiB "
            f"(+{(self.peak_rss - self.baseline_rss) / MIB:.1f})",
            f"                 after    {self.after_rss / MIB:.1f} MiB "
            f"(+{(self.after_rss - self.baseline_rss) / MIB:.1f}, all connections closed)",
            "answers          " + ", ".join(f"{k}: {v}" for k, v in sorted(self.answers.items())),
            f"seconds          {self.seconds:.1f}",
        ]


async def _upload(port: int, declared: int, sent: int, interval: float, limit: float) -> str:
    """One slow upload; what it got: the answer's status, ``closed`` or ``reset``."""
    head = (
        f"POST /sessions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    ).encode()
    piece = b" " * PIECE
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return "refused"
    answer = asyncio.ensure_future(reader.readline())
    try:
        writer.write(head)
        remaining = sent
        while remaining > 0 and not answer.done():
            writer.write(piece[: min(PIECE, remaining)])
            remaining -= min(PIECE, remaining)
            await writer.drain()
            await asyncio.sleep(interval)
        line = await asyncio.wait_for(answer, limit)
        return line.split(b" ")[1].decode() if line.startswith(b"HTTP/") else "closed"
    except (ConnectionError, TimeoutError):
        return "reset"
    finally:
        answer.cancel()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def _drive(
    port: int, pid: int, connections: int, interval: float, limit: float
) -> tuple[int, Counter[str]]:
    worker = psutil.Process(pid)
    peak = worker.memory_info().rss
    tasks = [
        asyncio.ensure_future(_upload(port, 4_000_000, 3_990_000, interval, limit))
        for _ in range(connections)
    ]
    while not all(task.done() for task in tasks):
        peak = max(peak, worker.memory_info().rss)
        await asyncio.sleep(0.1)
    return peak, Counter(task.result() for task in tasks)


def run(
    connections: int = 300,
    *,
    body_timeout: float = 30.0,
    bodies_in_flight: int | None = None,
    interval: float = 0.1,
) -> SlowBodies:
    """Measure ``connections`` slow uploads against a fresh one-worker ``kato serve``
    (``bodies_in_flight`` sets ``KATO_MAX_BODIES_IN_FLIGHT``; default: the service's)."""
    env = {"KATO_BODY_TIMEOUT_S": str(body_timeout)}
    if bodies_in_flight is not None:
        env["KATO_MAX_BODIES_IN_FLIGHT"] = str(bodies_in_flight)
    with serve("--store", "memory", "--ltm", "memory", "--log-level", "warning", env=env) as server:
        port = int(server.url.rsplit(":", 1)[1])
        with httpx.Client(base_url=server.url) as http:
            for _ in range(20):  # warm the paths the uploads take
                http.post("/sessions", json={"node_id": "bench-slow"}).raise_for_status()
        worker = psutil.Process(server.pid)
        baseline = worker.memory_info().rss
        started = time.monotonic()
        peak, answers = asyncio.run(
            _drive(port, server.pid, connections, interval, body_timeout + 15)
        )
        seconds = time.monotonic() - started
        time.sleep(1.0)
        after = worker.memory_info().rss
    return SlowBodies(connections, baseline, peak, after, dict(answers), seconds)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kato.bench.slowbodies", description=__doc__)
    parser.add_argument("--connections", type=int, default=300)
    parser.add_argument("--body-timeout", type=float, default=30.0, help="KATO_BODY_TIMEOUT_S")
    parser.add_argument(
        "--bodies-in-flight", type=int, help="KATO_MAX_BODIES_IN_FLIGHT (huge: no budget)"
    )
    parser.add_argument("--quick", action="store_true", help="50 connections, 5 s body timeout")
    args = parser.parse_args(argv)
    if args.quick:
        args.connections, args.body_timeout = 50, 5.0
    result = run(
        args.connections, body_timeout=args.body_timeout, bodies_in_flight=args.bodies_in_flight
    )
    print("\n".join(result.lines()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
