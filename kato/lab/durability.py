"""Durability: how many acknowledged observations each fault loses, per Redis persistence.

``durability(root)`` runs one experiment per cell of Redis persistence {``none`` (no AOF, no
RDB), AOF ``everysec``, AOF ``always``} × fault {``redis-restart`` (SIGTERM, restart),
``redis-kill`` (SIGKILL, restart on the same port and data directory), ``worker-kill`` (SIGKILL
one uvicorn worker)}: :data:`DURABILITY`, ``many-sessions`` in open loop, so observes are
acknowledged before, during and after the fault, and every session is read at the end
(retried while the service recovers). The ``no_lost_updates`` checker then decides, for every
acknowledged observation, whether it survived: a session Redis forgot is read as
``SESSION_NOT_FOUND`` and all its acknowledged observations count as lost.

It writes ``root/durability-<stamp>/``: ``durability.csv`` (``persistence``, ``fault``,
``acknowledged``, ``lost``, ``verdict`` — the checker's validity — and ``run``, the cell's run
folder beside it, which ``kato lab check`` can judge again) and ``durability.md`` (the same as a
Markdown table). The cells run through :mod:`kato.lab.grid`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from kato.lab import grid
from kato.lab.folders import new_folder
from kato.lab.spec import Experiment
from kato.stores.redis_server import PERSISTENCE_MODES

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DURABILITY", "FAULTS", "durability", "markdown"]

#: Each cell's experiment: 3 s of schedule at 200 ops/s; the fault starts 0.9 s in, lasts 1 s.
DURABILITY = Experiment(
    scenario="many-sessions",
    target="http",
    store="redis",
    workers=2,
    concurrency=8,
    operations=600,
    rate=200,
    fault_for_s=1.0,
    timeout_s=5,
)
FAULTS = ("redis-restart", "redis-kill", "worker-kill")


def durability(
    root: Path,
    *,
    operations: int = DURABILITY.plan_operations,
    persistence: Sequence[str] = PERSISTENCE_MODES,
    faults: Sequence[str] = FAULTS,
    progress: bool = True,
) -> tuple[Path, pd.DataFrame]:
    """Run the matrix; write its folder (see the module docstring); return it and the table."""
    import pandas as pd

    specs = [
        DURABILITY.with_(operations=operations, redis_persistence=mode, fault=fault)
        for mode in persistence
        for fault in faults
    ]  # validated before anything starts
    folder = new_folder(root, "durability")
    rows = []
    for saved in grid.run_experiments(specs, folder, progress=progress, desc="durability"):
        spec, verdicts = saved.run.spec, saved.run.verdicts
        lost = next(c for c in verdicts["checkers"] if c["name"] == "no_lost_updates")
        rows.append(
            {
                "persistence": spec.redis_persistence,
                "fault": spec.fault,
                "acknowledged": lost["counts"]["acknowledged"],
                "lost": lost["counts"]["lost"],
                "verdict": lost["valid"],
                "run": saved.folder.name,
            }
        )
    table = pd.DataFrame(rows)
    table.to_csv(folder / "durability.csv", index=False)
    (folder / "durability.md").write_text(markdown(table) + "\n")
    return folder, table


def markdown(table: pd.DataFrame) -> str:
    """The table as README shows it: persistence, fault, acknowledged, lost, verdict."""
    shown = table[["persistence", "fault", "acknowledged", "lost", "verdict"]].rename(
        columns={"persistence": "Redis persistence", "acknowledged": "acknowledged observes"}
    )
    return str(shown.to_markdown(index=False))
