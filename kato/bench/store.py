"""``kato bench``'s store rows: the Redis session store beside raw Redis, on one embedded Redis.

* ``store.observe`` — :class:`~kato.sessions.redis.RedisSessionStore` updates (an observe's
  read-modify-write: an STM kept at ≤ 5 events) per second, beside the *unsafe* read-modify-write
  of the same document with the same redis-py client (``GET`` then ``SET``): the ratio is what
  atomicity (the compare-and-set script, version, TTL, index) costs.
* ``redis.set`` — redis-py ``SET`` per second at the same concurrency beside ``redis-benchmark``
  (C, Debian's ``redis-tools``; the row says so when it is absent): what the Python client costs.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import statistics
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

from kato.bench.rows import Row
from kato.sessions import codec
from kato.sessions.record import SessionRecord
from kato.sessions.redis import RedisSessionStore
from kato.sessions.store import Change
from kato.stores.redis_server import RedisServer

__all__ = ["store_rows"]

CONCURRENCY = 16
SESSIONS = 64
EVENT = ("w1", "w2")


async def _timed(operations: int, one: Callable[[int], Awaitable[object]]) -> tuple[float, float]:
    """Operations per second and p50 latency (µs) of ``one(i)`` run by ``CONCURRENCY`` tasks."""
    latencies: list[float] = []
    queue = iter(range(operations))

    async def worker() -> None:
        for i in queue:
            started = time.perf_counter()
            await one(i)
            latencies.append((time.perf_counter() - started) * 1e6)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    elapsed = time.perf_counter() - began
    return operations / elapsed, statistics.median(latencies)


def _observe(record: SessionRecord) -> Change[None]:
    stm = (*record.state.stm, EVENT)[-5:]
    return Change(replace(record, state=replace(record.state, stm=stm)), None)


async def _store_vs_raw(url: str, operations: int) -> tuple[Row, float]:
    store = RedisSessionStore(url, key_prefix="bench")
    ids = [f"session-{i:032x}-0" for i in range(SESSIONS)]
    for sid in ids:
        await store.create(
            SessionRecord(session_id=sid, node_id="bench", created_at=0.0, ttl_seconds=3600)
        )
    await _timed(SESSIONS, lambda i: store.update(ids[i % SESSIONS], _observe))  # warm up
    ours, ours_p50 = await _timed(operations, lambda i: store.update(ids[i % SESSIONS], _observe))
    raw = store._redis  # the same client and pool the store uses
    doc = b"".join(codec.encode(_observe((await store.get(ids[0])).record).record).values())

    async def unsafe(i: int) -> None:
        key = f"raw:{i % SESSIONS}"
        await raw.get(key)
        await raw.set(key, doc, px=3_600_000)

    reference, raw_p50 = await _timed(operations, unsafe)
    set_rate, _ = await _timed(operations, lambda i: raw.set(f"set:{i % SESSIONS}", "x"))
    await store.close()
    row = Row(
        section="store",
        name="store.observe",
        ours=ours,
        reference=reference,
        unit="updates/s",
        reference_is="unsafe GET + SET of the same record (all its parts), same client",
        note=f"{CONCURRENCY} concurrent tasks over {SESSIONS} sessions, one process",
        extra={"p50_us": ours_p50, "reference_p50_us": raw_p50},
    )
    return row, set_rate


def _redis_benchmark(port: int, operations: int) -> float | None:
    binary = shutil.which("redis-benchmark")
    if binary is None:
        return None
    command = [binary, "-h", "127.0.0.1", "-p", str(port), "-c", str(CONCURRENCY)]
    command += ["-n", str(operations), "-t", "set", "--csv"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    match = re.search(r'^"SET","([\d.]+)"', done.stdout, re.MULTILINE)
    return float(match.group(1)) if match else None


def store_rows(*, operations: int) -> list[Row]:
    """The store rows, on a fresh embedded Redis."""
    with RedisServer() as redis:
        observe, set_rate = asyncio.run(_store_vs_raw(redis.url, operations))
        benchmark = _redis_benchmark(redis.port, operations * 4)
    set_row = Row(
        section="store",
        name="redis.set",
        ours=set_rate,
        reference=benchmark if benchmark is not None else float("nan"),
        unit="SET/s",
        reference_is="redis-benchmark -t set, same concurrency",
        note="" if benchmark is not None else "redis-benchmark absent (Debian: redis-tools)",
    )
    return [observe, set_row]
