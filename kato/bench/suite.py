"""``kato bench``: every comparison in one run — ours beside a reference, and the ratio.

    kato bench            # the whole suite, ≤ 10 minutes on 2 cores
    kato bench --quick    # smaller sizes and shorter loads, ≤ 2 minutes (CI runs it untimed)
    kato bench --only http contention --quick --workers 2    # one section's rows, quickly

Sections, in the order they run (each starts and stops what it measures):

* ``engine`` — predictions p50 at 1k/10k/100k learned patterns beside 1k; memory per pattern
  beside its JSON document; predictions through SQLite beside MemoryLTM;
* ``workbench`` — judging 10k/100k-operation histories beside indexing them; the load
  generator's ceiling against a no-op client beside the best rate the server reached;
* ``store`` — Redis session-store updates beside an unsafe GET + SET, redis-py beside
  redis-benchmark;
* ``http`` — issue #17's rows: a bare observe, an observe into a learning node of 1,000
  patterns, get-STM and predictions of sessions storing 60 predictions, each beside a trivial
  endpoint at 1 and 2 workers (``wrk``); the store's round trips per observe from its counters;
* ``contention`` — observes into one session beside the same load over many, at 4 workers, and
  how many of them failed;
* ``ltm-stall`` — ``/health`` and another node's observes during a 10 s SQLite LTM write lock
  beside the same before it, on one worker (:mod:`kato.bench.stall`).

It writes ``bench.csv`` (columns :data:`kato.bench.rows.COLUMNS` plus per-row extras),
``bench.png`` and ``environment.json`` into ``results/bench-<time>/``, prints the table, and
prints that folder on its last line. Goals are printed, never asserted. The HTTP ratios need
``wrk``: with the aiohttp loop instead (no wrk on the PATH, or ``--load-tool aiohttp``) each says
it is not comparable and its goal is missed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from kato.bench.load import TOOLS
from kato.bench.load import load_tool as pick_tool
from kato.bench.rows import Goal, Row, format_table, plot_rows, write_csv
from kato.lab.folders import new_folder

__all__ = ["SECTIONS", "Sizes", "add_arguments", "main", "run_suite"]

SECTIONS = ("engine", "workbench", "store", "http", "contention", "ltm-stall")


@dataclass(frozen=True, slots=True)
class Sizes:
    """How big each section runs: :meth:`full` or :meth:`quick`."""

    patterns: tuple[int, ...]
    predictions: int
    ltm_patterns: int
    histories: tuple[int, ...]
    generator_ops: int
    store_ops: int
    workers: tuple[int, ...]
    contention_workers: int
    seconds: float
    stall_seconds: float

    @classmethod
    def full(cls) -> Sizes:
        return cls(
            (1_000, 10_000, 100_000),
            200,
            10_000,
            (10_000, 100_000),
            40_000,
            10_000,
            (1, 2),
            4,
            6.0,
            10.0,
        )

    @classmethod
    def quick(cls) -> Sizes:
        return cls((1_000, 10_000), 50, 2_000, (10_000,), 10_000, 2_000, (1, 2), 2, 2.0, 3.0)


def _engine(sizes: Sizes, tool: str) -> list[Row]:
    from kato.bench.engine import engine_rows
    from kato.bench.ltm import ltm_rows

    return [
        *engine_rows(sizes.patterns, reps=sizes.predictions),
        *ltm_rows(sizes.ltm_patterns, reps=sizes.predictions),
    ]


def _workbench(sizes: Sizes, tool: str) -> list[Row]:
    from kato.bench.checkers import checker_rows
    from kato.lab.runner import generator_ceiling
    from kato.lab.scenarios import plan
    from kato.lab.spec import Experiment

    spec = Experiment(
        scenario="many-sessions",
        target="http",
        store="redis",
        concurrency=64,
        operations=sizes.generator_ops,
    )
    ceiling = generator_ceiling(spec, plan(spec))
    generator = Row(
        section="workbench",
        name="generator.ceiling",
        ours=ceiling,
        reference=math.nan,  # filled in by _server_best once the HTTP rows exist
        unit="ops/s",
        reference_is="the best observe rate the server reached (http rows)",
        goal=Goal("ratio", ">=", 2.0),
        note=f"the runner against a no-op client (many-sessions, 64 clients, "
        f"{sizes.generator_ops:,} ops)",
    )
    return [*checker_rows(sizes.histories), generator]


def _store(sizes: Sizes, tool: str) -> list[Row]:
    from kato.bench.store import store_rows

    return store_rows(operations=sizes.store_ops)


def _http(sizes: Sizes, tool: str) -> list[Row]:
    from kato.bench.http import http_rows

    return http_rows(sizes.workers, seconds=sizes.seconds, tool=tool)


def _contention(sizes: Sizes, tool: str) -> list[Row]:
    from kato.bench.http import contention_rows

    return contention_rows(sizes.contention_workers, seconds=sizes.seconds, tool=tool)


def _stall(sizes: Sizes, tool: str) -> list[Row]:
    from kato.bench.stall import stall_rows

    return stall_rows(sizes.stall_seconds)


#: Each section's rows, from the sizes and the HTTP load tool (only ``http`` and ``contention``
#: load over HTTP).
_RUNNERS: dict[str, Callable[[Sizes, str], list[Row]]] = {
    "engine": _engine,
    "workbench": _workbench,
    "store": _store,
    "http": _http,
    "contention": _contention,
    "ltm-stall": _stall,
}


def _server_best(rows: list[Row]) -> list[Row]:
    """The generator row's reference: the best observe rate any HTTP row reached (bare observes
    included: they are the fastest the server goes)."""
    observed = [row.ours for row in rows if row.name.startswith("http.observe")]
    best = max(observed) if observed else math.nan
    return [
        replace(row, reference=best) if row.name == "generator.ceiling" else row for row in rows
    ]


def _environment(quick: bool, sections: Sequence[str], tool: str) -> dict[str, object]:
    from kato import __version__

    return {
        "kato": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "quick": quick,
        "sections": list(sections),
        "load_tool": tool,
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def run_suite(
    root: Path,
    *,
    quick: bool = False,
    sections: Sequence[str] = SECTIONS,
    progress: bool = True,
    workers: Sequence[int] | None = None,
    contention_workers: int | None = None,
    load_tool: str | None = None,
) -> tuple[Path, list[Row]]:
    """Run ``sections``; write bench.csv, bench.png and environment.json into a new folder.

    ``workers`` and ``contention_workers`` replace the sizes' worker counts of the ``http`` and
    ``contention`` rows; ``load_tool`` (``wrk``, ``aiohttp``) the one found on the PATH."""
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        raise ValueError(f"unknown sections {unknown}; known: {', '.join(SECTIONS)}")
    sizes = Sizes.quick() if quick else Sizes.full()
    if workers:
        sizes = replace(sizes, workers=tuple(workers))
    if contention_workers:
        sizes = replace(sizes, contention_workers=contention_workers)
    if any(count < 1 for count in (*sizes.workers, sizes.contention_workers)):
        raise ValueError("worker counts must be at least 1")
    tool = pick_tool(load_tool)
    folder = new_folder(root, "bench")
    environment = _environment(quick, sections, tool)
    ordered = [name for name in SECTIONS if name in sections]
    iterator: Sequence[str] = ordered
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(ordered, desc="bench", unit="section", file=sys.stderr)
    rows: list[Row] = []
    for name in iterator:
        if progress:
            iterator.set_postfix_str(name)  # type: ignore[attr-defined]
        rows += _RUNNERS[name](sizes, tool)
    rows = _server_best(rows)
    write_csv(rows, folder / "bench.csv")
    plot_rows(rows, folder / "bench.png")
    (folder / "environment.json").write_text(json.dumps(environment, indent=2) + "\n")
    return folder, rows


def add_arguments(bench: argparse.ArgumentParser) -> None:
    """``kato bench``'s arguments (:mod:`kato.cli` loads this module only when the command is
    ``bench``)."""
    bench.add_argument("--quick", action="store_true", help="small sizes, short loads (≤ 2 min)")
    bench.add_argument(
        "--only", nargs="+", choices=SECTIONS, metavar="SECTION", help=f"among {SECTIONS}"
    )
    bench.add_argument("--out", default="results", help="parent folder of the run's folder")
    bench.add_argument("--quiet", action="store_true", help="no progress bar")
    bench.add_argument(
        "--workers",
        nargs="+",
        type=int,
        metavar="N",
        help="worker counts of the http rows (default 1 2)",
    )
    bench.add_argument(
        "--contention-workers",
        type=int,
        metavar="N",
        help="worker count of the contention rows (default 4; --quick 2)",
    )
    bench.add_argument(
        "--load-tool",
        choices=TOOLS,
        help="HTTP load: wrk (default when on the PATH) or aiohttp (its ratios not comparable)",
    )
    bench.set_defaults(run=main)


def main(args: argparse.Namespace) -> int:
    """``kato bench`` (arguments from :func:`add_arguments`)."""
    try:
        folder, rows = run_suite(
            Path(args.out),
            quick=args.quick,
            sections=args.only or SECTIONS,
            progress=not args.quiet,
            workers=args.workers,
            contention_workers=args.contention_workers,
            load_tool=args.load_tool,
        )
    except ValueError as exc:
        print(f"kato bench: {exc}", file=sys.stderr)
        return 2
    print(format_table(rows))
    reasons = {row.not_comparable for row in rows if row.not_comparable}
    for reason in sorted(reasons):
        names = [row.name for row in rows if row.not_comparable == reason]
        print(f"{reason}: {', '.join(names)}")
    missed = [row.name for row in rows if row.met is False]
    if missed:
        print(f"goals missed: {', '.join(missed)}")
    print(folder)
    return 0
