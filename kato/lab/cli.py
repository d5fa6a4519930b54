"""``kato lab``: run an experiment, a sweep, re-check a history, report on saved runs.

Each subcommand parses its arguments and calls one :mod:`kato.lab` function. Exit codes:
0 the work completed (whatever the verdict; ``--fail-on-anomaly`` turns an invalid or unknown
verdict into 1, never a ``partial`` one — checks the target could not serve; ``soak`` and
``durability`` exit 1 when their verdict fails), 2 bad arguments (with the reason on stderr).
The last line printed is the folder written (``fuzz``: the folder, then its summary line; exit 1
on any 5xx).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from kato._version import DISTRIBUTION
from kato.lab.spec import LTMS, SCENARIOS, STORES, TARGETS, Experiment
from kato.stores.redis_server import PERSISTENCE_MODES

__all__ = ["add_arguments"]

Command = Callable[[argparse.Namespace], int]

#: ``kato lab run``'s operations when neither ``--ops`` nor ``--duration`` is given.
DEFAULT_OPS = 500


def _missing(extra: str) -> SystemExit:
    print(
        f"kato lab needs the 'lab' extra ({extra} is missing): pip install '{DISTRIBUTION}[lab]'",
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
    for skipped in verdicts.get("skipped", []):
        lines.append(f"{skipped['check']:<20} {'skipped':<8} {'':>9}  {skipped['reason']}")
    lines.append(f"{'overall':<20} {verdicts['valid']!s:<8}")
    return "\n".join(lines)


def _anomalous(valid: object) -> bool:
    """What ``--fail-on-anomaly`` fails on: not valid, and not ``"partial"`` (every check that
    could run passed; the target could not serve the others)."""
    from kato.lab.checkers import PARTIAL

    return valid is not True and valid != PARTIAL


#: ``kato lab run``'s flags by the experiment field each sets (the others share its name).
_RUN_FLAGS = {
    "operations": "ops",
    "duration_s": "duration",
    "lost_responses": "lose_responses",
    "fault_at_s": "fault_at",
    "fault_for_s": "fault_for",
}
_RUN_FIELDS = (
    "scenario", "target", "store", "variant", "workers", "concurrency", "operations", "duration_s",
    "seed",
    "fault", "rate", "lost_responses", "client_retries", "fault_at_s", "fault_for_s",
    "redis_persistence", "redis_cluster", "redis_wait_replicas", "hosts", "ltm",
)  # fmt: skip


def _spec_from(args: argparse.Namespace) -> Experiment:
    """The experiment ``kato lab run``'s flags describe (a flag left unset keeps the default)."""
    given = {name: getattr(args, _RUN_FLAGS.get(name, name)) for name in _RUN_FIELDS}
    given["idempotency"] = not args.no_idempotency
    if args.target_file:
        from kato.lab.remote import load_target_file

        deployment = load_target_file(Path(args.target_file))
        given.update(urls=deployment["urls"], fault_hooks=deployment["fault_hooks"])
    if args.url:
        given["urls"] = [*given.get("urls", []), *args.url]
    if given["target"] is None:
        given["target"] = "url" if given.get("urls") else "http"
    if args.ops is None and args.duration is None:
        given["operations"] = DEFAULT_OPS
    chosen = {name: value for name, value in given.items() if value is not None}
    if args.duration is not None and args.ops is None:
        chosen["operations"] = None  # a time-based run (given both, the spec refuses them)
    return Experiment.from_dict(chosen)


def _cmd_run(args: argparse.Namespace) -> int:
    try:
        spec = _spec_from(args)
        if args.trials < 1 or (args.until_halfwidth is not None and args.until_halfwidth <= 0):
            raise ValueError("--trials must be >= 1 and --until-halfwidth > 0")
    except ValueError as exc:
        print(f"kato lab run: {exc}", file=sys.stderr)
        return 2
    if args.trials > 1:
        return _run_trials(spec, args)
    from kato.lab.grid import row
    from kato.lab.run import run, save

    try:
        result = run(spec, progress=not args.quiet, out=Path(args.out))
    except ValueError as exc:  # the target refused before the run (a url target's probe)
        print(f"kato lab run: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:
        notes = getattr(stop, "__notes__", ())
        print("kato lab run: interrupted", *notes, sep="\n", file=sys.stderr)
        return 130
    folder = save(result, Path(args.out))
    figures = row(result)
    print(_verdict_table(result.verdicts))
    print(
        f"{figures['ops']} ops: {figures['ok']} ok, {figures['fail']} fail, "
        f"{figures['unknown']} unknown; {figures['throughput_ops_s']:.0f} ops/s; "
        f"p50 {figures['p50_ms']:.2f} ms, p99 {figures['p99_ms']:.2f} ms; "
        f"generator ceiling {result.metadata['generator_ceiling_ops_s']:.0f} ops/s"
    )
    print(folder)
    return 1 if args.fail_on_anomaly and _anomalous(result.valid) else 0


#: What ``kato lab run --trials`` prints of its cell, and to how many decimals.
_CELL_FIGURES = (
    ("anomaly_rate", 4), ("anomalous_trials", 2), ("error_rate", 4),
    ("throughput_ops_s", 0), ("p50_ms", 2), ("p99_ms", 2),
)  # fmt: skip


def _run_trials(spec: Experiment, args: argparse.Namespace) -> int:
    """``kato lab run --trials N``: a sweep of one cell; prints the cell's figures with their
    95 % intervals, then the folder (``--fail-on-anomaly``: exit 1 if any trial was invalid)."""
    import pandas as pd

    from kato.lab.report import sweep

    folder = sweep(
        [spec],
        Path(args.out),
        trials=args.trials,
        until_halfwidth=args.until_halfwidth,
        progress=not args.quiet,
    )
    table = pd.read_csv(folder / "results.csv")
    cell = table[table["kind"] == "cell"].iloc[0]

    def interval(name: str, digits: int) -> str:
        low, high = cell[f"{name}_lo"], cell[f"{name}_hi"]
        return f"{name} {cell[name]:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"

    shown = "; ".join(interval(name, digits) for name, digits in _CELL_FIGURES)
    print(f"{cell['trials']} trials, {cell['ops']} ops; {shown} (95 %)")
    print(folder)
    trials = table[table["kind"] == "trial"]
    return 1 if args.fail_on_anomaly and (trials["valid"].astype(str) != "True").any() else 0


def _cmd_check(args: argparse.Namespace) -> int:
    from kato.lab.grid import recheck

    try:
        path, verdicts = recheck(Path(args.history))
    except FileNotFoundError as exc:
        print(f"kato lab check: {exc}", file=sys.stderr)
        return 2
    print(_verdict_table(verdicts))
    print(path)
    return 1 if args.fail_on_anomaly and _anomalous(verdicts["valid"]) else 0


def _cmd_report(args: argparse.Namespace) -> int:
    from kato.lab.report import report

    folders = [Path(f) for f in args.runs]
    missing = [str(f) for f in folders if not (f / "params.json").exists()]
    if missing:
        print(f"kato lab report: not run folders: {', '.join(missing)}", file=sys.stderr)
        return 2
    print(report(folders, Path(args.out)))
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    try:
        import yaml
    except ImportError:
        raise _missing("pyyaml") from None
    from kato.lab.grid import experiments

    try:
        document = yaml.safe_load(Path(args.grid).read_text()) or {}
        if isinstance(document, dict) and "notebook" in document:
            return _notebook_sweep(document, Path(args.grid), args)
        base = _target_fields(document, Path(args.grid)) | dict(document.get("base", {}))
        specs = experiments(base, document.get("grid", {}))
        trials = int(document.get("trials", 1))
        until = document.get("until_halfwidth")
        if trials < 1:
            raise ValueError(f"trials must be >= 1, got {trials}")
    except (OSError, ValueError, TypeError, yaml.YAMLError) as exc:
        print(f"kato lab sweep: {exc}", file=sys.stderr)
        return 2
    from kato.lab.report import sweep

    folder = sweep(
        specs,
        Path(args.out),
        trials=trials,
        until_halfwidth=None if until is None else float(until),
        progress=not args.quiet,
    )
    print(folder)
    return 0


def _target_fields(document: Mapping[str, Any], grid_file: Path) -> dict[str, Any]:
    """A grid document's ``target_file`` (beside the document, or from here) as experiment
    fields (``target``, ``urls``, ``fault_hooks``); none: ``{}``."""
    if not document.get("target_file"):
        return {}
    from kato.lab.remote import load_target_file

    path = Path(document["target_file"])
    if not path.exists() and (grid_file.parent / path).exists():
        path = grid_file.parent / path
    return load_target_file(path)


def _notebook_sweep(document: Mapping[str, Any], grid_file: Path, args: argparse.Namespace) -> int:
    """A grid document naming a ``notebook``: papermill runs it once per cell of ``grid`` over
    the base ``parameters``; prints the report's path last (exit 1 if a notebook failed)."""
    try:
        import papermill  # noqa: F401  (the notebook sweep's one extra dependency)
    except ImportError:
        raise _missing("papermill") from None
    notebook = Path(document["notebook"])
    if not notebook.exists() and (grid_file.parent / notebook).exists():
        notebook = grid_file.parent / notebook
    if not notebook.exists():
        raise ValueError(f"no notebook at {document['notebook']}")
    from kato.lab.report import SweepError, sweep_notebook

    try:
        folder = sweep_notebook(
            notebook,
            document.get("grid") or {},
            Path(args.out),
            parameters=_target_fields(document, grid_file) | dict(document.get("parameters") or {}),
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

    folder = zoo(
        Path(args.out),
        variants=args.variants,
        concurrency=args.concurrency,
        progress=not args.quiet,
    )
    table = pd.read_csv(folder / "zoo.csv")
    columns = ["variant", "scenario", "workers", "concurrency", "operations", "anomalies", "valid"]
    print(table[columns].to_string(index=False))
    print(folder)
    return 0


def _refusing(verb: str, command: Command) -> Command:
    """``command``, with a ``ValueError`` (arguments the work refuses) turned into exit 2 and
    the reason on stderr."""

    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except ValueError as exc:
            print(f"kato lab {verb}: {exc}", file=sys.stderr)
            return 2

    return run


def _writes(parser: Any, command: Command, *, quiet: bool = True) -> None:
    """A verb that writes a results folder: ``--out`` (and ``--quiet``), run by ``command``."""
    parser.add_argument("--out", default="results", help="results folder (default ./results)")
    if quiet:
        parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=command)


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

    folder, table = durability(
        Path(args.out),
        operations=args.operations,
        persistence=args.persistence,
        faults=args.faults,
        cluster_waits=args.cluster_waits,
        progress=not args.quiet,
    )
    print(markdown(table))
    print(folder)
    promised = table[table["persistence"] == "always"]
    return 1 if int(promised["lost"].sum()) > 0 else 0


def _cmd_live_view_cost(args: argparse.Namespace) -> int:
    """Exit 1 when the live view more than doubles the p99 it measures."""
    from kato.lab.explorer import live_view_cost

    cost = live_view_cost(repeats=args.repeats, draw_s=args.draw)
    print(
        f"p99 live view off {cost['p99_off_ms']:.1f} ms, on {cost['p99_on_ms']:.1f} ms "
        f"(median of {args.repeats}): ratio {cost['ratio']:.2f}; "
        f"{cost['paints']:.0f} live figures drawn while the clients ran"
    )
    return 0 if cost["ratio"] <= 2 else 1


def _add_endurance_verbs(verbs: Any) -> None:
    """``kato lab soak`` and ``kato lab durability``."""
    from kato.lab.durability import CLUSTER_WAITS, DURABILITY, FAULTS

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
    durability.add_argument("--operations", type=int, default=DURABILITY.plan_operations)
    durability.add_argument(
        "--persistence", nargs="*", choices=PERSISTENCE_MODES, default=list(PERSISTENCE_MODES)
    )
    durability.add_argument("--faults", nargs="*", choices=FAULTS, default=list(FAULTS))
    durability.add_argument(
        "--cluster-waits",
        nargs="*",
        type=int,
        default=list(CLUSTER_WAITS),
        help="rows of redis-failover and redis-master-pause on an embedded cluster, per WAIT "
        "replicas (default 0 1; none: no cluster rows)",
    )
    _writes(durability, _refusing("durability", _cmd_durability))


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


def add_arguments(lab: argparse.ArgumentParser) -> None:
    """The verbs of ``kato lab`` and their arguments (:mod:`kato.cli` loads this module only
    when the command is ``lab``)."""
    verbs = lab.add_subparsers(dest="lab_command", required=True)

    run = verbs.add_parser("run", help="run one experiment and judge it")
    run.add_argument("scenario", choices=SCENARIOS)
    run.add_argument(
        "--target", choices=TARGETS, default=None, help="default: http, or url with --url"
    )
    run.add_argument(
        "--url",
        action="append",
        default=[],
        help="a running KATO service (http://host:port) to test; repeat for several hosts of one "
        "deployment, used round robin",
    )
    run.add_argument(
        "--target-file", default=None, help="a YAML file: urls, and faults: {name: {start, stop}}"
    )
    run.add_argument("--store", choices=STORES, default="redis")
    run.add_argument("--variant", default="production")
    run.add_argument("--workers", type=int, default=2)
    run.add_argument("--concurrency", type=int, default=16)
    run.add_argument(
        "--ops", type=int, default=None, help=f"operations to issue (about; default {DEFAULT_OPS})"
    )
    run.add_argument(
        "--duration",
        type=float,
        default=None,
        help="seconds: a time-based run instead of --ops (a fault's window: its middle third)",
    )
    run.add_argument(
        "--trials",
        type=int,
        default=1,
        help="independent trials (seeds seed, seed+1, …; each a fresh server): results.csv "
        "with one row per trial and the cell's 95 %% intervals",
    )
    run.add_argument(
        "--until-halfwidth",
        type=float,
        default=None,
        help="stop adding trials once the anomaly rate's interval is narrower than ± this",
    )
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--fault", default="none", help="a fault to inject during the run")
    run.add_argument("--fault-at", type=float, default=None, help="seconds into the run")
    run.add_argument("--fault-for", type=float, default=None, help="how long it lasts (s)")
    run.add_argument("--redis-persistence", choices=PERSISTENCE_MODES, default=None)
    run.add_argument(
        "--redis-cluster", type=int, default=None, help="an embedded Redis Cluster of N masters"
    )
    run.add_argument(
        "--redis-wait-replicas", type=int, default=None, help="WAIT for N replicas per write"
    )
    run.add_argument(
        "--hosts", type=int, default=None, help="kato serve hosts sharing Redis and a MongoDB LTM"
    )
    run.add_argument(
        "--ltm",
        choices=LTMS,
        default=None,
        help="the service's LTM behind Redis (default sqlite; mongo: an nx-27017 server, for "
        "ltm-pause and ltm-kill)",
    )
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
    run.add_argument(
        "--fail-on-anomaly",
        action="store_true",
        help="exit 1 if invalid or unknown (not if partial: checks the target cannot serve)",
    )
    run.set_defaults(run=_cmd_run)

    check = verbs.add_parser("check", help="judge a saved history again")
    check.add_argument(
        "history", help="a run folder, its history.parquet, or the history.jsonl of a stopped run"
    )
    check.add_argument("--fail-on-anomaly", action="store_true")
    check.set_defaults(run=_cmd_check)

    report = verbs.add_parser("report", help="tables and plots over saved runs")
    report.add_argument("runs", nargs="+", help="run folders")
    _writes(report, _cmd_report, quiet=False)

    sweep = verbs.add_parser(
        "sweep",
        help="run a grid of experiments (YAML: base, grid) or of a notebook "
        "(YAML: notebook, parameters, grid)",
    )
    sweep.add_argument("grid")
    _writes(sweep, _cmd_sweep)

    zoo = verbs.add_parser("zoo", help="every bug-zoo variant beside production (zoo.csv, zoo.png)")
    zoo.add_argument("--variants", nargs="+", default=None, help="default: all")
    zoo.add_argument("--concurrency", nargs="+", type=int, default=[4, 16])
    _writes(zoo, _refusing("zoo", _cmd_zoo))
    _add_endurance_verbs(verbs)
    _add_fuzz_verb(verbs)
    cost = verbs.add_parser(
        "live-view-cost",
        help="p99 of an engine run at 32 clients with the explorer's live view off and on",
    )
    cost.add_argument("--repeats", type=int, default=5, help="runs per side (the median is shown)")
    cost.add_argument(
        "--draw",
        type=float,
        default=None,
        help="also draw the figure every DRAW seconds while the clients run (default: after)",
    )
    cost.set_defaults(run=_cmd_live_view_cost)
