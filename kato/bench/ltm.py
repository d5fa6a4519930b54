"""LTM store benchmark: predictions latency through each node store, beside MemoryLTM.

    python -m kato.bench.ltm             # 1k, 10k and 100k patterns
    python -m kato.bench.ltm --quick     # 1k and 10k patterns, fewer repetitions

The same seeded patterns (3-8 one-symbol events over ``--vocabulary`` symbols) are learned into
every store, one ``apply`` per learn as the service does, growing each store from one size to
the next. At each size the same STMs are predicted through each store the way the service does
it: ``predict(stm, view, config)`` inside ``snapshot()``. MongoDB is ``KATO_MONGO_URL`` (or
``--mongo-url``) when given, else an ``nx-27017`` server started for the run, measured up to
10k patterns only (a pure-Python stand-in learning ~250 patterns/s: its figures say little
about a real MongoDB). ``--no-mongo`` leaves it out.

Per store and size it prints the mean candidate count, predictions p50/p99 in ms, the p50 ratio
to MemoryLTM, and the learn rate while building. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from kato.bench.rows import Row as BenchRow
from kato.bench.rows import size_label
from kato.engine import Effect, EngineConfig, LTMStore, MemoryLTM, SessionState, learn, predict


@dataclass(frozen=True, slots=True)
class Row:
    store: str
    patterns: int
    candidates: float
    p50_ms: float
    p99_ms: float
    learns_per_s: float


def learn_steps(count: int, *, vocabulary: int, rng: random.Random) -> list[tuple[Effect, ...]]:
    """The effects of ``count`` learns of random patterns (3-8 one-symbol events)."""
    words = [f"w{i}" for i in range(vocabulary)]
    config = EngineConfig()
    steps = []
    for _ in range(count):
        events = tuple((rng.choice(words),) for _ in range(rng.randint(3, 8)))
        steps.append(learn(SessionState(stm=events), config).effects)
    return steps


def grow(store: LTMStore, steps: Sequence[tuple[Effect, ...]]) -> float:
    """Apply each step in turn; the learn rate."""
    started = time.perf_counter()
    for effects in steps:
        store.apply(effects)
    return len(steps) / max(time.perf_counter() - started, 1e-9)


def measure(
    name: str, store: LTMStore, stms: Sequence[tuple[tuple[str, ...], ...]], learns_per_s: float
) -> Row:
    config = EngineConfig()
    latencies, candidates = [], 0
    for stm in stms:
        started = time.perf_counter()
        with store.snapshot() as view:
            predict(stm, view, config)
        latencies.append((time.perf_counter() - started) * 1000)
        candidates += len(store.candidates({s for event in stm for s in event}))
    latencies.sort()
    return Row(
        store=name,
        patterns=store.pattern_count(),
        candidates=candidates / len(stms),
        p50_ms=statistics.median(latencies),
        p99_ms=latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        learns_per_s=learns_per_s,
    )


NX_LIMIT = 10_000
"""The most patterns the nx-27017 stand-in is measured with."""


@contextlib.contextmanager
def open_stores(
    workdir: Path, mongo_url: str | None, use_mongo: bool
) -> Iterator[dict[str, tuple[LTMStore, int | None]]]:
    """MemoryLTM, SQLite and (unless left out) MongoDB stores of one fresh node each, with
    the largest size each is measured at (``None``: every size)."""
    from kato.ltm.sqlite import SQLiteNodes

    with contextlib.ExitStack() as stack:
        sqlite = SQLiteNodes(workdir / "ltm.sqlite3")
        stack.callback(sqlite.close)
        stores: dict[str, tuple[LTMStore, int | None]] = {
            "memory": (MemoryLTM(), None),
            "sqlite": (sqlite.ltm("bench"), None),
        }
        if use_mongo:
            from kato.ltm.mongo import MongoNodes
            from kato.ltm.nx27017 import running_nx27017

            label, limit = "mongo", None
            if mongo_url is None:
                mongo_url = stack.enter_context(running_nx27017(workdir / "nx27017"))
                label, limit = "mongo(nx)", NX_LIMIT
            prefix = f"bench{os.getpid()}_"
            mongo = MongoNodes(mongo_url, database_prefix=prefix)
            stack.callback(mongo.close)
            stack.callback(lambda: mongo.client().drop_database(prefix + "bench"))
            stores[label] = (mongo.ltm("bench"), limit)
        yield stores


def run(
    sizes: Sequence[int],
    *,
    vocabulary: int,
    stm_events: int,
    reps: int,
    mongo_url: str | None,
    use_mongo: bool,
) -> None:
    rng = random.Random(20261125)
    steps = learn_steps(max(sizes), vocabulary=vocabulary, rng=rng)
    words = [f"w{i}" for i in range(vocabulary)]
    stms = [tuple((rng.choice(words),) for _ in range(stm_events)) for _ in range(reps)]
    header = (
        f"{'store':>10} {'patterns':>9} {'candidates':>10} {'p50 ms':>9} {'p99 ms':>9} "
        f"{'p50 ratio':>9} {'learns/s':>9}"
    )
    print(f"vocabulary {vocabulary} symbols; STM {stm_events} events; {reps} predictions per row")
    print(header)
    print("-" * len(header))
    with (
        tempfile.TemporaryDirectory(prefix="kato-bench-ltm-") as tmp,
        open_stores(Path(tmp), mongo_url, use_mongo) as stores,
    ):
        done = 0
        for size in sizes:
            rows = []
            for name, (store, limit) in stores.items():
                if limit is None or size <= limit:
                    rate = grow(store, steps[done:size])
                    rows.append(measure(name, store, stms, rate))
            done = size
            base = rows[0].p50_ms
            for row in rows:
                print(
                    f"{row.store:>10} {row.patterns:>9} {row.candidates:>10.1f} "
                    f"{row.p50_ms:>9.3f} {row.p99_ms:>9.3f} {row.p50_ms / base:>9.1f} "
                    f"{row.learns_per_s:>9.0f}"
                )


def ltm_rows(patterns: int, *, reps: int, vocabulary: int = 1000) -> list[BenchRow]:
    """``kato bench``'s LTM row: predictions p50 through the SQLite store (the service's
    embedded default) beside MemoryLTM holding the same patterns."""
    rng = random.Random(20261125)
    steps = learn_steps(patterns, vocabulary=vocabulary, rng=rng)
    words = [f"w{i}" for i in range(vocabulary)]
    stms = [tuple((rng.choice(words),) for _ in range(3)) for _ in range(reps)]
    with (
        tempfile.TemporaryDirectory(prefix="kato-bench-ltm-") as tmp,
        open_stores(Path(tmp), None, use_mongo=False) as stores,
    ):
        rows = {
            name: measure(name, store, stms, grow(store, steps))
            for name, (store, _) in stores.items()
        }
    sqlite, memory = rows["sqlite"], rows["memory"]
    return [
        BenchRow(
            section="engine",
            name=f"ltm.sqlite_predictions.{size_label(patterns)}",
            ours=sqlite.p50_ms,
            reference=memory.p50_ms,
            unit="ms (p50)",
            reference_is="the same predictions over MemoryLTM",
            note=f"3-event STM; learns/s sqlite {sqlite.learns_per_s:,.0f}, "
            f"memory {memory.learns_per_s:,.0f}",
            extra={"p99_ms": sqlite.p99_ms, "reference_p99_ms": memory.p99_ms},
        )
    ]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m kato.bench.ltm", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1k and 10k patterns, fewer reps")
    parser.add_argument("--vocabulary", type=int, default=1000, help="distinct symbols")
    parser.add_argument("--stm", type=int, default=3, help="events (one symbol each) per STM")
    parser.add_argument("--mongo-url", default=os.environ.get("KATO_MONGO_URL"))
    parser.add_argument("--no-mongo", action="store_true", help="leave MongoDB out")
    args = parser.parse_args(argv)
    run(
        (1_000, 10_000) if args.quick else (1_000, 10_000, 100_000),
        vocabulary=args.vocabulary,
        stm_events=args.stm,
        reps=50 if args.quick else 200,
        mongo_url=args.mongo_url,
        use_mongo=not args.no_mongo,
    )


if __name__ == "__main__":
    main()
