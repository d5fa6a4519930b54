"""``kato lab zoo``: every variant beside the production store, over a concurrency grid.

For each variant and concurrency the variant's exposing experiment runs twice: against the
variant and against ``production`` with the same spec (production runs are shared between
variants that use the same spec). The result is ``zoo.csv`` — one row per variant ×
concurrency, production rows included — and ``zoo.png``: anomalies per operation vs
concurrency, a line per variant and one for production, which should lie flat on zero.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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


def _row(
    variant: str, checker: str, spec: Experiment, verdicts: dict[str, Any], ops: int
) -> dict[str, Any]:
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
    }


def zoo(
    root: Path,
    *,
    variants: Sequence[str] | None = None,
    concurrency: Sequence[int] = DEFAULT_CONCURRENCY,
    progress: bool = True,
) -> Path:
    """Run the zoo grid and write ``zoo.csv`` and ``zoo.png`` into a new folder under ``root``."""
    import pandas as pd

    from kato.lab.plots import failure_rate_vs_concurrency
    from kato.lab.run import run

    names = list(variants or VARIANTS)
    unknown = [name for name in names if name not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    folder = new_folder(root, "zoo")
    jobs = [(VARIANTS[name], c) for name in names for c in concurrency]
    iterator: Any = jobs
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(jobs, desc="zoo", unit="variant×concurrency")
    rows: list[dict[str, Any]] = []
    production: dict[str, dict[str, Any]] = {}
    for variant, clients in iterator:
        spec = variant.experiment(concurrency=clients)
        broken = run(spec)
        rows.append(_row(variant.name, variant.checker, spec, broken.verdicts, len(broken.history)))
        clean_spec = variant.production(spec)
        key = clean_spec.to_json()
        if key not in production:
            clean = run(clean_spec)
            production[key] = _row(
                "production", variant.checker, clean_spec, clean.verdicts, len(clean.history)
            )
        rows.append(production[key] | {"checker": variant.checker})
    # one production row per distinct run: R9's comparison (behind the lossy layer, retrying
    # with a key) is not the plain many-sessions run other variants share
    table = pd.DataFrame(rows).drop_duplicates(subset=[*_RUN_COLUMNS])
    table.to_csv(folder / "zoo.csv", index=False)
    (folder / "grid.json").write_text(
        json.dumps({"variants": names, "concurrency": list(concurrency)})
    )
    failure_rate_vs_concurrency(table, by="variant", rate="anomaly_rate", path=folder / "zoo.png")
    return folder
