"""Engine micro-benchmark: observe and predictions throughput against LTMs of growing size.

    python -m kato.bench.engine            # LTM sizes 1k, 10k, 100k patterns
    python -m kato.bench.engine --quick    # 1k and 10k only, fewer repetitions

Patterns are random sequences over a fixed vocabulary (seeded, so every run measures the same
data). For each LTM size and STM length it reports the mean number of candidate patterns, the
predictions latency (p50/p99) and the observe rate (observe = predictions + session bookkeeping),
and the LTM's build rate. Figures are printed, never asserted: a shared machine's absolute
numbers are noise, the ratios between rows are the result.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
import tracemalloc
from collections.abc import Sequence
from dataclasses import dataclass

from kato.bench import rows as bench_rows
from kato.engine import EngineConfig, MemoryLTM, Observation, SessionState, learn, observe, predict


@dataclass(frozen=True, slots=True)
class Row:
    patterns: int
    stm_events: int
    candidates: float
    predict_p50_ms: float
    predict_p99_ms: float
    observe_per_s: float


def build_ltm(
    count: int, *, vocabulary: int, rng: random.Random, config: EngineConfig
) -> tuple[MemoryLTM, float]:
    """An LTM of ``count`` learned patterns (3–8 one-symbol events each) and the learn rate."""
    ltm = MemoryLTM()
    words = [f"w{i}" for i in range(vocabulary)]
    started = time.perf_counter()
    for _ in range(count):
        events = tuple((rng.choice(words),) for _ in range(rng.randint(3, 8)))
        step = learn(SessionState(stm=events), config)
        ltm.apply(step.effects)
    return ltm, count / (time.perf_counter() - started)


def measure(
    ltm: MemoryLTM,
    patterns: int,
    stm_events: int,
    *,
    vocabulary: int,
    reps: int,
    rng: random.Random,
) -> Row:
    config = EngineConfig()
    words = [f"w{i}" for i in range(vocabulary)]
    stms = [tuple((rng.choice(words),) for _ in range(stm_events)) for _ in range(reps)]
    latencies, candidates = [], 0
    for stm in stms:
        candidates += len(ltm.candidates({s for e in stm for s in e}))
        started = time.perf_counter()
        predict(stm, ltm, config)
        latencies.append((time.perf_counter() - started) * 1000)
    latencies.sort()

    state = SessionState(stm=stms[0][:-1])
    started = time.perf_counter()
    for i, stm in enumerate(stms):
        step = observe(
            state,
            Observation(strings=stm[-1]),
            config,
            ltm,
            node_id="bench",
            unique_id=f"obs-{i}",
        )
        state = SessionState(stm=stm[:-1])  # keep the STM length fixed for the next round
        del step
    observe_rate = reps / (time.perf_counter() - started)
    return Row(
        patterns=patterns,
        stm_events=stm_events,
        candidates=candidates / reps,
        predict_p50_ms=statistics.median(latencies),
        predict_p99_ms=latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        observe_per_s=observe_rate,
    )


def run(sizes: Sequence[int], stm_lengths: Sequence[int], *, vocabulary: int, reps: int) -> None:
    rng = random.Random(20261125)
    config = EngineConfig()
    header = (
        f"{'patterns':>9} {'stm':>4} {'candidates':>10} {'pred p50 ms':>11} "
        f"{'pred p99 ms':>11} {'observe/s':>10}"
    )
    print(f"vocabulary {vocabulary} symbols; {reps} predictions per row")
    print(header)
    print("-" * len(header))
    for size in sizes:
        ltm, learn_rate = build_ltm(size, vocabulary=vocabulary, rng=rng, config=config)
        for stm_events in stm_lengths:
            row = measure(ltm, size, stm_events, vocabulary=vocabulary, reps=reps, rng=rng)
            print(
                f"{row.patterns:>9} {row.stm_events:>4} {row.candidates:>10.1f} "
                f"{row.predict_p50_ms:>11.3f} {row.predict_p99_ms:>11.3f} "
                f"{row.observe_per_s:>10.1f}"
            )
        print(f"{'':>9} learn rate while building: {learn_rate:,.0f} patterns/s")


def engine_rows(sizes: Sequence[int], *, reps: int, vocabulary: int = 5000) -> list[bench_rows.Row]:
    """``kato bench``'s engine rows: predictions p50 (3-event STM) at each LTM size beside the
    p50 at the smallest; at each size but the smallest, the p99 beside the p50 of the same
    predictions (what the collector's pauses cost: goal ``<= 2`` at 100k patterns); and the
    memory a learned pattern takes beside its JSON document."""
    rng = random.Random(20261125)
    config = EngineConfig()
    measured = {}
    for size in sizes:
        ltm, _ = build_ltm(size, vocabulary=vocabulary, rng=rng, config=config)
        measured[size] = measure(ltm, size, 3, vocabulary=vocabulary, reps=reps, rng=rng)
        del ltm
    base = measured[sizes[0]]
    rows = [
        bench_rows.Row(
            section="engine",
            name=f"engine.predictions.{bench_rows.size_label(size)}",
            ours=row.predict_p50_ms,
            reference=base.predict_p50_ms,
            unit="ms (p50)",
            reference_is=f"p50 with {bench_rows.size_label(sizes[0])} patterns",
            goal=bench_rows.Goal("ours", "<=", 10.0) if size >= 100_000 else None,
            note=f"{row.candidates:.0f} candidates per STM; p99 {row.predict_p99_ms:.1f} ms",
            extra={"p99_ms": row.predict_p99_ms},
        )
        for size, row in measured.items()
        if size != sizes[0]
    ]
    tails = [
        bench_rows.Row(
            section="engine",
            name=f"engine.predictions_p99_p50.{bench_rows.size_label(size)}",
            ours=row.predict_p99_ms,
            reference=row.predict_p50_ms,
            unit="ms (p99)",
            reference_is=f"p50 of the same {reps} predictions",
            goal=bench_rows.Goal("ratio", "<=", 2.0) if size >= 100_000 else None,
            note=f"{row.candidates:.0f} candidates per STM",
        )
        for size, row in measured.items()
        if size != sizes[0]
    ]
    return [*rows, *tails, _memory_row(min(sizes[-1], 10_000), vocabulary=vocabulary)]


def _memory_row(patterns: int, *, vocabulary: int) -> bench_rows.Row:
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        ltm, _ = build_ltm(
            patterns, vocabulary=vocabulary, rng=random.Random(7), config=EngineConfig()
        )
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    count = ltm.pattern_count()
    documents = sum(len(json.dumps(pattern.to_document())) for pattern in ltm.patterns())
    return bench_rows.Row(
        section="engine",
        name="engine.bytes_per_pattern",
        ours=held / count,
        reference=documents / count,
        unit="bytes",
        reference_is="the pattern's JSON document",
        note=f"{count:,} patterns in MemoryLTM (tracemalloc), index and symbol stats included",
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m kato.bench.engine", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1k and 10k patterns, fewer reps")
    parser.add_argument("--vocabulary", type=int, default=5000, help="distinct symbols")
    args = parser.parse_args(argv)
    sizes = (1_000, 10_000) if args.quick else (1_000, 10_000, 100_000)
    run(sizes, (2, 3, 5), vocabulary=args.vocabulary, reps=50 if args.quick else 200)


if __name__ == "__main__":
    main()
