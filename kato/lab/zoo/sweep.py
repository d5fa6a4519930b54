"""``kato lab zoo``: every variant beside the production store, over a concurrency grid.

For each variant and concurrency the variant's exposing experiment runs twice: against the
variant and against ``production`` with the same spec (production runs are shared between
variants that use the same spec). Every run goes through :mod:`kato.lab.grid` and is saved as a
run folder beside the table, so ``kato lab check <zoo folder>/<run>`` judges any of them again.
The result is ``zoo.csv`` — one row per variant × concurrency, production rows included, with
``run`` naming the row's run folder — ``grid.json`` and ``zoo.png``: anomalies per operation vs
concurrency, a line per variant and one for production, which should lie flat on zero.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kato.lab import grid
from kato.lab.folders import new_folder
from kato.lab.spec import Experiment
from kato.lab.zoo import VARIANTS

__all__ = ["DEFAULT_CONCURRENCY", "zoo"]

DEFAULT_CONCURRENCY = (4, 16)


#: What makes two rows of the table the same run.
_RUN_COLUMNS = (
    "variant",
    "scenario",
    "workers",
    "concurrency",
    "lost_responses",
    "client_retries",
    "idempotency",
)


def _row(variant: str, checker: str, saved: grid.Saved) -> dict[str, Any]:
    spec, verdicts, ops = saved.run.spec, saved.run.verdicts, len(saved.run.history)
    anomalies = sum(int(c["anomalies"]) for c in verdicts["checkers"])
    flagged = next((c for c in verdicts["checkers"] if c["name"] == checker), None)
    return {
        "variant": variant,
        "scenario": spec.scenario,
        "workers": spec.workers,
        "concurrency": spec.concurrency,
        "lost_responses": spec.lost_responses,
        "client_retries": spec.client_retries,
        "idempotency": spec.idempotency,
        "operations": ops,
        "anomalies": anomalies,
        "valid": verdicts["valid"],
        "checker": checker,
        "checker_anomalies": None if flagged is None else flagged["anomalies"],
        "anomaly_rate": anomalies / ops if ops else 0.0,
        "run": saved.folder.name,
    }


def zoo(
    root: Path,
    *,
    variants: Sequence[str] | None = None,
    concurrency: Sequence[int] = DEFAULT_CONCURRENCY,
    progress: bool = True,
) -> Path:
    """Run the zoo grid and write ``zoo.csv``, ``zoo.png`` and every run into a new folder
    under ``root``; return the folder."""
    import pandas as pd

    from kato.lab.plots import failure_rate_vs_concurrency

    names = list(variants or VARIANTS)
    unknown = [name for name in names if name not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    pairs = [
        (VARIANTS[name], VARIANTS[name].production(spec), spec)
        for name in names
        for spec in (VARIANTS[name].experiment(concurrency=c) for c in concurrency)
    ]
    specs: dict[str, Experiment] = {}  # each distinct run once, in grid order
    for _, clean, broken in pairs:
        specs.setdefault(broken.to_json(), broken)
        specs.setdefault(clean.to_json(), clean)
    folder = new_folder(root, "zoo")
    saved = grid.run_experiments(list(specs.values()), folder, progress=progress, desc="zoo")
    by_spec = dict(zip(specs, saved, strict=True))
    rows: list[dict[str, Any]] = []
    for variant, clean, broken in pairs:
        rows.append(_row(variant.name, variant.checker, by_spec[broken.to_json()]))
        rows.append(_row("production", variant.checker, by_spec[clean.to_json()]))
    # one production row per distinct run: R9's comparison (behind the lossy layer, retrying
    # with a key) is not the plain many-sessions run other variants share
    table = pd.DataFrame(rows).drop_duplicates(subset=[*_RUN_COLUMNS])
    table.to_csv(folder / "zoo.csv", index=False)
    (folder / "grid.json").write_text(
        json.dumps({"variants": names, "concurrency": list(concurrency)})
    )
    failure_rate_vs_concurrency(table, by="variant", rate="anomaly_rate", path=folder / "zoo.png")
    return folder
