"""``kato lab``: run an experiment, a sweep, re-check a history, report on saved runs.

Each subcommand parses its arguments and calls one :mod:`kato.lab` function. Exit codes:
0 the work completed (whatever the verdict; ``--fail-on-anomaly`` turns an invalid verdict into
1; ``soak`` and ``durability`` exit 1 when their verdict fails), 2 bad arguments (with the
reason on stderr). The last line printed is the folder written (``fuzz``: the folder, then
its summary line; exit 1 on any 5xx).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kato._version import DISTRIBUTION
from kato.lab.spec import SCENARIOS, STORES, TARGETS, Experiment

__all__ = ["add_lab_parser"]


def _missing(extra: str) -> SystemExit:
    print(
        f"kato lab needs the 'lab' extra ({extra} is missing): "
        f"pip install '{DISTRIBUTION}[lab]'",
        file=sys.stderr,
    )
    return SystemExit(2)


def _verdict_table(verdicts: Mapping[str, Any]) -> str:
    lines = [f"{'checker':<20} {'valid':<8} {'anomalies':>9}  example"]
    for checker in verdicts["checkers"]:
        example = (
            json.dumps(checker["examples"][0], default=str)[:70] if checker["examples"] else ""
        )
        lines.append(
            f"{checker['name']:<20} {checker['valid']!s:<8} {checker['anomalies']:>9}  {example}"
        )
    lines.append(f"{'overall':<20} {verdicts['valid']!s:<8}")
    return "\n".join(lines)


def _spec_from(args: argparse.Namespace) -> Experiment:
    return Experiment(
        scenario=args.scenario,
        target=args.target,
        store=args.store,
        variant=args.variant,
        workers=args.workers,
        concurrency=args.concurrency,
        operations=args.ops,
        seed=args.seed,
        fault=args.fault,
        rate=args.rate,
        lost_responses=args.lose_responses,
        client_retries=args.client_retries,
        idempotency=not args.no_idempotency,
        **{
            name: value
            for name, value in (
                ("fault_at_s", args.fault_at),
                ("fault_for_s", args.fault_for),
                ("redis_persistence", args.redis_persistence),
            )
            if value is not None
        },
    )


def _cmd_run(args: argparse.Namespace) -> int:
    try:
        spec = _spec_from(args)
    except ValueError as exc:
        print(f"kato lab run: {exc}", file=sys.stderr)
        return 2
    from kato.lab.results import run_row
    from kato.lab.run import run, save

    try:
        result = run(spec, progress=not args.quiet, out=Path(args.out))
    except KeyboardInterrupt as stop:
        notes = getattr(stop, "__notes__", ())
        print("kato lab run: interrupted", *notes, sep="\n", file=sys.stderr)
        return 130
    folder = save(result, Path(args.out))
    row = run_row(json.loads(spec.to_json()), result.history, result.verdicts)
    print(_verdict_table(result.verdicts))
    print(
        f"{row['ops']} ops: {row['ok']} ok, {row['fail']} fail, {row['unknown']} unknown; "
        f"{row['throughput_ops_s']:.0f} ops/s; "
        f"p50 {row['p50_ms']:.2f} ms, p99 {row['p99_ms']:.2f} ms; "
        f"generator ceiling {result.metadata['generator_ceiling_ops_s']:.0f} ops/s"
    )
    print(folder)
    return 1 if args.fail_on_anomaly and result.valid is not True else 0


def _cmd_check(args: argparse.Namespace) -> int:
    from kato.lab.checkers import check
    from kato.lab.history import History

    path = Path(args.history)
    try:
        history, _ = History.read(path)
    except FileNotFoundError:
        print(f"kato lab check: no history at {path}", file=sys.stderr)
        return 2
    verdicts = check(history)
    print(_verdict_table(verdicts))
    print(path)
    return 1 if args.fail_on_anomaly and verdicts["valid"] is not True else 0


def _cmd_report(args: argparse.Namespace) -> int:
    from kato.lab.report import report

    folders = [Path(f) for f in args.runs]
    missing = [str(f) for f in folders if not (f / "params.json").exists()]
    if missing:
        print(f"kato lab report: not run folders: {', '.join(missing)}", file=sys.stderr)
        return 2
    print(report(folders, Path(args.out)))
    return 0


def _grid(document: Mapping[str, Any]) -> list[Experiment]:
    """Experiments of a grid document: ``base`` parameters × every combination of ``grid``."""
    base = dict(document.get("base", {}))
    grid = dict(document.get("grid", {}))
    names = sorted(grid)
    specs = []
    for values in itertools.product(*(grid[name] for name in names)):
        specs.append(Experiment.from_dict({**base, **dict(zip(names, values, strict=True))}))
    return specs


def _cmd_sweep(args: argparse.Namespace) -> int:
    try:
        import yaml
    except ImportError:
        raise _missing("pyyaml") from None
    try:
        document = yaml.safe_load(Path(args.grid).read_text()) or {}
        if isinstance(document, dict) and "notebook" in document:
            return _notebook_sweep(document, Path(args.grid), args)
        specs = _grid(document)
    except (OSError, ValueError, TypeError, yaml.YAMLError) as exc:
        print(f"kato lab sweep: {exc}", file=sys.stderr)
        return 2
    from kato.lab.report import sweep

    print(sweep(specs, Path(args.out), progress=not args.quiet))
    return 0


def _notebook_sweep(document: Mapping[str, Any], grid_file: Path, args: argparse.Namespace) -> int:
    """A grid document naming a ``notebook``: papermill runs it once per cell of ``grid`` over
    the base ``parameters``; prints the report's path last (exit 1 if a notebook failed)."""
    try:
        from kato.lab.notebooks import SweepError, sweep_notebook
    except ImportError:
        raise _missing("papermill") from None
    notebook = Path(document["notebook"])
    if not notebook.exists() and (grid_file.parent / notebook).exists():
        notebook = grid_file.parent / notebook
    if not notebook.exists():
        raise ValueError(f"no notebook at {document['notebook']}")
    try:
        folder = sweep_notebook(
            notebook,
            dict(document.get("grid") or {}),
            Path(args.out),
            parameters=dict(document.get("parameters") or {}),
            progress=not args.quiet,
        )
    except SweepError as exc:
        for failure in exc.failures:
            print(f"kato lab sweep: {failure}", file=sys.stderr)
        print(exc.folder / "report.html")
        return 1
    print(folder / "report.html")
    return 0


def _cmd_zoo(args: argparse.Namespace) -> int:
    import pandas as pd

    from kato.lab.zoo.sweep import zoo

    try:
        folder = zoo(
            Path(args.out),
            variants=args.variants,
            concurrency=args.concurrency,
            progress=not args.quiet,
        )
    except ValueError as exc:
        print(f"kato lab zoo: {exc}", file=sys.stderr)
        return 2
    table = pd.read_csv(folder / "zoo.csv")
    columns = ["variant", "scenario", "workers", "concurrency", "operations", "anomalies", "valid"]
    print(table[columns].to_string(index=False))
    print(folder)
    return 0


def _cmd_soak(args: argparse.Namespace) -> int:
    from kato.lab.soak import SoakLimits, soak, soak_spec, summary, warmup_for

    try:
        spec = soak_spec(
            minutes=1.0 if args.quick else args.minutes,
            rate=args.rate,
            workers=args.workers,
            concurrency=args.concurrency,
        )
        limits = SoakLimits(
            warmup_s=warmup_for(spec) if args.warmup is None else args.warmup,
            rss_growth_mib=args.max_rss_growth,
            connection_slack=args.connection_slack,
        )
        folder, document = soak(
            spec, limits, Path(args.out), interval_s=args.interval, progress=not args.quiet
        )
    except ValueError as exc:
        print(f"kato lab soak: {exc}", file=sys.stderr)
        return 2
    print(summary(document))
    print(folder)
    return 0 if document["valid"] else 1


def _cmd_durability(args: argparse.Namespace) -> int:
    from kato.lab.durability import durability, markdown

    try:
        folder, table = durability(
            Path(args.out),
            operations=args.operations,
            persistence=args.persistence,
            faults=args.faults,
            progress=not args.quiet,
        )
    except ValueError as exc:
        print(f"kato lab durability: {exc}", file=sys.stderr)
        return 2
    print(markdown(table))
    print(folder)
    promised = table[table["persistence"] == "always"]
    return 1 if int(promised["lost"].sum()) > 0 else 0


def _add_endurance_verbs(verbs: Any) -> None:
    """``kato lab soak`` and ``kato lab durability``."""
    from kato.lab.durability import DURABILITY, FAULTS
    from kato.lab.spec import PERSISTENCE

    soak = verbs.add_parser(
        "soak",
        help="minutes of steady mixed load, sampling RSS, connections and Redis memory; "
        "exit 1 if anything grows after warm-up or an acknowledged write is lost",
    )
    soak.add_argument("--quick", action="store_true", help="60 s instead of --minutes (CI)")
    soak.add_argument("--minutes", type=float, default=10.0)
    soak.add_argument("--rate", type=float, default=50.0, help="operations per second")
    soak.add_argument("--workers", type=int, default=4)
    soak.add_argument("--concurrency", type=int, default=8)
    soak.add_argument("--warmup", type=float, default=None, help="s (default: 1/4, ≤ 60 s)")
    soak.add_argument("--interval", type=float, default=2.0, help="seconds between samples")
    soak.add_argument(
        "--max-rss-growth", type=float, default=10.0, help="MiB per process after warm-up"
    )
    soak.add_argument("--connection-slack", type=int, default=4)
    soak.add_argument("--out", default="results")
    soak.add_argument("--quiet", action="store_true")
    soak.set_defaults(run=_cmd_soak)

    durability = verbs.add_parser(
        "durability",
        help="acknowledged observations lost per Redis persistence × fault "
        "(durability.csv, durability.md); exit 1 if AOF always lost any",
    )
    durability.add_argument("--operations", type=int, default=DURABILITY.operations)
    durability.add_argument(
        "--persistence", nargs="+", choices=PERSISTENCE, default=list(PERSISTENCE)
    )
    durability.add_argument("--faults", nargs="+", choices=FAULTS, default=list(FAULTS))
    durability.add_argument("--out", default="results")
    durability.add_argument("--quiet", action="store_true")
    durability.set_defaults(run=_cmd_durability)


def _cmd_fuzz(args: argparse.Namespace) -> int:
    from kato.lab.fuzz import run_fuzz

    if args.requests < 1 or args.workers < 1 or args.concurrency < 1:
        print(
            "kato lab fuzz: --requests, --workers and --concurrency must be >= 1", file=sys.stderr
        )
        return 2
    folder, report = run_fuzz(
        args.requests,
        seed=args.seed,
        workers=args.workers,
        concurrency=args.concurrency,
        out=Path(args.out),
        progress=not args.quiet,
    )
    print("by status:", json.dumps(dict(sorted(report.by_status.items()))))
    print("by code:  ", json.dumps(dict(sorted(report.by_code.items()))))
    print(
        f"accepted {report.accepted}; no error shape {report.bad_shape}; dropped {report.dropped}; "
        f"store checks {report.checked} checked, {report.changed} changed; "
        f"{report.duration_s:.1f} s"
    )
    print(folder)
    print(f"fuzz: {report.requests} requests, {report.server_errors} server errors")
    return 1 if report.server_errors else 0


def _add_fuzz_verb(verbs: Any) -> None:
    """``kato lab fuzz``."""
    fuzz = verbs.add_parser(
        "fuzz",
        help="hostile-input campaign against kato serve (fuzz.json); exit 1 on any 5xx",
    )
    fuzz.add_argument("--requests", type=int, default=10_000)
    fuzz.add_argument("--seed", type=int, default=0)
    fuzz.add_argument("--workers", type=int, default=2, help="kato serve worker processes")
    fuzz.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    fuzz.add_argument("--out", default="results")
    fuzz.add_argument("--quiet", action="store_true", help="no progress bar")
    fuzz.set_defaults(run=_cmd_fuzz)


def add_lab_parser(commands: Any) -> None:
    """Add ``kato lab …`` to the ``kato`` command's subparsers."""
    lab = commands.add_parser("lab", help="the concurrency workbench")
    verbs = lab.add_subparsers(dest="lab_command", required=True)

    run = verbs.add_parser("run", help="run one experiment and judge it")
    run.add_argument("scenario", choices=SCENARIOS)
    run.add_argument("--target", choices=TARGETS, default="http")
    run.add_argument("--store", choices=STORES, default="redis")
    run.add_argument("--variant", default="production")
    run.add_argument("--workers", type=int, default=2)
    run.add_argument("--concurrency", type=int, default=16)
    run.add_argument("--ops", type=int, default=500, help="operations to issue (about)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--fault", default="none", help="a fault to inject during the run")
    run.add_argument("--fault-at", type=float, default=None, help="seconds into the run")
    run.add_argument("--fault-for", type=float, default=None, help="how long it lasts (s)")
    run.add_argument("--redis-persistence", choices=["none", "everysec", "always"], default=None)
    run.add_argument("--rate", type=float, default=None, help="open loop: operations per second")
    run.add_argument(
        "--lose-responses",
        type=float,
        default=0.0,
        help="fraction of observe responses the zoo's lossy layer drops after applying them (R9)",
    )
    run.add_argument(
        "--client-retries", type=int, default=0, help="retries of an observe whose answer was lost"
    )
    run.add_argument(
        "--no-idempotency", action="store_true", help="retry without a unique_id (R9's bug)"
    )
    run.add_argument("--out", default="results", help="results folder (default ./results)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--fail-on-anomaly", action="store_true", help="exit 1 if invalid")
    run.set_defaults(run=_cmd_run)

    check = verbs.add_parser("check", help="judge a saved history again")
    check.add_argument(
        "history", help="a run folder, its history.parquet, or the history.jsonl of a stopped run"
    )
    check.add_argument("--fail-on-anomaly", action="store_true")
    check.set_defaults(run=_cmd_check)

    report = verbs.add_parser("report", help="tables and plots over saved runs")
    report.add_argument("runs", nargs="+", help="run folders")
    report.add_argument("--out", default="results")
    report.set_defaults(run=_cmd_report)

    sweep = verbs.add_parser(
        "sweep",
        help="run a grid of experiments (YAML: base, grid) or of a notebook "
        "(YAML: notebook, parameters, grid)",
    )
    sweep.add_argument("grid")
    sweep.add_argument("--out", default="results")
    sweep.add_argument("--quiet", action="store_true")
    sweep.set_defaults(run=_cmd_sweep)

    zoo = verbs.add_parser("zoo", help="every bug-zoo variant beside production (zoo.csv, zoo.png)")
    zoo.add_argument("--variants", nargs="+", default=None, help="default: all")
    zoo.add_argument("--concurrency", nargs="+", type=int, default=[4, 16])
    zoo.add_argument("--out", default="results")
    zoo.add_argument("--quiet", action="store_true")
    zoo.set_defaults(run=_cmd_zoo)
    _add_endurance_verbs(verbs)
    _add_fuzz_verb(verbs)
