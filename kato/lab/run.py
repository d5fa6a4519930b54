"""``run(spec)``: deploy the target, play the scenario, judge the history; ``save`` writes it all.

A saved run is a folder ``results/<run-id>/`` holding ``history.parquet``, ``params.json`` (the
spec), ``verdicts.json``, ``summary.csv`` (one row: the run's figures), ``metadata.json`` (the
environment: versions, git revision, worker count, the load generator's own ceiling) and PNG
plots. :func:`load` reads one back, so any run can be checked and plotted again.

``run(spec, out=root)`` makes the folder when the clients start and journals the history into
it (``history.jsonl``) as it goes; ``save(result, root)`` then completes the folder and the Parquet
file replaces the journal. A run that crashes or is interrupted leaves the folder with its
journal, which ``kato lab check`` judges like a finished run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import platform
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kato._version import __version__
from kato.lab.checkers import check
from kato.lab.history import JOURNAL, PARQUET, History, Op
from kato.lab.nemesis import nemesis_for
from kato.lab.remote import adapt, skipped_checks
from kato.lab.results import workers_answered
from kato.lab.runner import execute, generator_ceiling, run_blocking
from kato.lab.scenarios import plan
from kato.lab.spec import Experiment
from kato.lab.targets import Deployment, deploy

__all__ = ["Run", "load", "run", "save"]

log = logging.getLogger("kato.lab")


@dataclass
class Run:
    """A finished run: its spec, history, verdicts and environment."""

    run_id: str
    spec: Experiment
    history: History
    verdicts: dict[str, Any]
    metadata: dict[str, Any]

    @property
    def valid(self) -> bool | str:
        """``True``, ``False`` (an anomaly), ``"unknown"`` or ``"partial"`` (some check could not
        run on the target; see :func:`kato.lab.checkers.check`)."""
        return self.verdicts["valid"]  # type: ignore[no-any-return]


def _run_id(spec: Experiment) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    digest = hashlib.sha1(f"{spec.to_json()}{time.time_ns()}".encode()).hexdigest()[:6]
    return f"{stamp}-{spec.scenario}-{digest}"


def _git_revision() -> str | None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,  # the code's revision, wherever the run is
        )
        if done.returncode == 0:
            return done.stdout.strip()
    return None


def _environment(spec: Experiment, info: dict[str, Any], ceiling: float) -> dict[str, Any]:
    import numpy

    return {
        "kato": __version__,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "git_revision": _git_revision(),
        "target": info,
        "workers": spec.workers,
        "store": spec.store,
        "generator_ceiling_ops_s": round(ceiling, 1),
    }


def run(
    spec: Experiment,
    *,
    on_op: Callable[[Op], None] | None = None,
    progress: bool = False,
    monitor: Callable[[Deployment], AbstractContextManager[object]] | None = None,
    out: Path | None = None,
    stop: threading.Event | None = None,
) -> Run:
    """Run one experiment to the end and judge it. Works inside Jupyter's running loop too.

    ``on_op`` sees each operation as it completes (live plots); ``progress`` shows a bar;
    ``monitor(deployment)`` is entered just before the clients start and left once they have
    all closed (a soak's resource sampler watches what the run started). ``out``: the root the
    run will be saved under; its history is journalled into ``out/<run-id>/`` as it goes, and an
    error or Ctrl-C leaving :func:`run` carries a note naming that folder. Setting ``stop``
    (from another thread) ends the clients early; the final reads still run and the shortened
    history is judged (see :func:`kato.lab.runner.execute`).
    """
    steps = plan(spec)
    run_id = _run_id(spec)
    journal = None if out is None else out / run_id / JOURNAL
    ceiling = generator_ceiling(spec, steps)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        total = steps.size if spec.duration_s is None else None  # a time-based run: open-ended
        bar = tqdm(total=total, desc=f"{spec.scenario} ×{spec.concurrency}", unit="op")

    def observe(op: Op) -> None:
        if bar is not None:
            bar.update(1)
        if on_op is not None:
            on_op(op)

    began = time.time()
    try:
        with _noted(journal), deploy(spec) as deployment:
            nemesis = nemesis_for(spec, deployment)
            playable = adapt(steps, deployment.capabilities)
            with monitor(deployment) if monitor else contextlib.nullcontext():
                history = run_blocking(
                    lambda: execute(
                        spec,
                        playable,
                        deployment.make_client,
                        node=f"lab-{run_id}",
                        on_op=observe,
                        nemesis=nemesis,
                        journal=journal,
                        context={"target": deployment.info},
                        stop=stop,
                    )
                )
            metadata = _environment(spec, deployment.info, ceiling)
    finally:
        if bar is not None:
            bar.close()
    metadata.update({"run_id": run_id, "started": began, "finished": time.time()})
    _count_workers(spec, history, metadata)
    verdicts = check(history, skipped=skipped_checks(metadata["target"]))
    return Run(run_id, spec, history, verdicts, metadata)


def _count_workers(spec: Experiment, history: History, metadata: dict[str, Any]) -> None:
    """Record how many workers answered, and warn when a server this run started with several
    answered through fewer: its histories say nothing about races between the silent ones."""
    answered = metadata["workers_answered"] = workers_answered(history)
    started = spec.workers * spec.hosts if spec.target == "http" else 0
    if started > 1 and answered is not None and answered < started:
        log.warning(
            "%s: %d of the %d workers answered its requests (the kernel chooses the worker of"
            " each connection); run it again, or with more concurrency, to exercise races"
            " between processes",
            metadata["run_id"],
            answered,
            started,
        )


@contextlib.contextmanager
def _noted(journal: Path | None) -> Iterator[None]:
    """Whatever stops the run, its exception says where the history so far is."""
    try:
        yield
    except BaseException as exc:
        if journal is not None and journal.exists():
            exc.add_note(f"the history so far: {journal} (kato lab check {journal.parent})")
        raise


def save(result: Run, root: Path = Path("results")) -> Path:
    """Write ``result`` into ``root/<run-id>/`` (see the module docstring); return the folder."""
    from kato.lab import plots
    from kato.lab.results import faults_frame, ops_frame, run_row

    folder = root / result.run_id
    folder.mkdir(parents=True, exist_ok=True)  # a run with ``out=root`` made it
    if (folder / PARQUET).exists():
        raise FileExistsError(f"{folder} holds a saved run already")
    params = json.loads(result.spec.to_json())
    result.history.to_parquet(folder / PARQUET, metadata={"params": params, **result.metadata})
    (folder / JOURNAL).unlink(missing_ok=True)  # the Parquet file is the history now
    (folder / "params.json").write_text(result.spec.to_json() + "\n")
    (folder / "verdicts.json").write_text(json.dumps(result.verdicts, indent=2, default=str) + "\n")
    (folder / "metadata.json").write_text(json.dumps(result.metadata, indent=2, default=str) + "\n")
    import pandas as pd

    pd.DataFrame([run_row(params, result.history, result.verdicts)]).to_csv(
        folder / "summary.csv", index=False
    )
    ops = ops_frame(result.history)
    plots.throughput_over_time(ops, faults_frame(result.history), path=folder / "throughput.png")
    plots.latency_by_operation(ops, path=folder / "latency.png")
    if result.spec.scenario == "read-after-create":
        plots.visibility_delay(ops, path=folder / "visibility.png")
    return folder


def load(folder: Path) -> Run:
    """Read a run saved by :func:`save` (its verdicts as saved; ``check`` again if you like)."""
    history, _ = History.from_parquet(folder / PARQUET)
    spec = Experiment.from_dict(json.loads((folder / "params.json").read_text()))
    verdicts = json.loads((folder / "verdicts.json").read_text())
    metadata = json.loads((folder / "metadata.json").read_text())
    return Run(folder.name, spec, history, verdicts, metadata)
