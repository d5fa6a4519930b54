"""Durability: how many acknowledged operations each fault loses, per Redis persistence.

``durability(root)`` runs one experiment per cell of Redis persistence {``none`` (no AOF, no
RDB), AOF ``everysec``, AOF ``always``} × fault {``redis-restart`` (SIGTERM, restart),
``redis-kill`` (SIGKILL, restart on the same port and data directory), ``worker-kill`` (SIGKILL
one uvicorn worker), ``service-restart`` (stop ``kato serve`` and start it again with the same
``--data-dir``, its own embedded Redis keeping the AOF there), ``ltm-lock`` (another process
holds the SQLite LTM's write lock), ``ltm-pause`` (SIGSTOP the MongoDB LTM's ``nx-27017`` server,
SIGCONT), ``ltm-kill`` (SIGKILL it, start it again on the same port and data folder)}. The
``ltm-pause`` and ``ltm-kill`` cells run the service on the MongoDB LTM (``ltm="mongo"``); all
others on SQLite.

Session faults run :data:`DURABILITY`, ``many-sessions`` in open loop, so observes are
acknowledged before, during and after the fault, and every session is read at the end
(retried while the service recovers). The ``no_lost_updates`` checker then decides, for every
acknowledged observation, whether it survived: a session Redis forgot is read as
``SESSION_NOT_FOUND`` and all its acknowledged observations count as lost. LTM faults run
:data:`LTM_DURABILITY`, ``learn-race`` (learns round after round, across the fault window), and
the ``ltm_effects`` checker counts the learns that happened (acknowledged, or shown by their
session) and how many of them each pattern's final frequency lacks.

Beside them, per cluster fault × ``cluster_waits`` entry ``n``: the same experiment on an
embedded Redis Cluster (3 masters, 3 replicas, no persistence) with ``redis-failover`` (a master
SIGKILLed, its replica promoted) or ``redis-master-pause`` (a master SIGSTOPped for
:data:`MASTER_PAUSE_S`, long enough to be failed over, then resumed: until it learns it was
demoted it still accepts writes, which it then drops), the service waiting for ``n`` replicas
after each write (``KATO_REDIS_WAIT_REPLICAS``): what asynchronous replication loses, and what
``WAIT`` saves.

It writes ``root/durability-<stamp>/``: ``durability.csv`` (``redis`` — ``single`` or
``cluster`` —, ``persistence``, ``fault``, ``wait_replicas``, ``operation`` — what is counted:
``observe`` or ``learn`` —, ``acknowledged``, ``lost``, ``verdict`` — the checker's validity —
and ``run``, the cell's run folder beside it, which ``kato lab check`` can judge again) and
``durability.md`` (the same as a Markdown table). The cells run through :mod:`kato.lab.grid`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kato.lab import grid
from kato.lab.folders import new_folder
from kato.lab.spec import LTM_FAULTS, Experiment
from kato.stores.redis_server import PERSISTENCE_MODES

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CLUSTER_FAULTS",
    "CLUSTER_MASTERS",
    "CLUSTER_WAITS",
    "DURABILITY",
    "FAULTS",
    "LTM_DURABILITY",
    "MASTER_PAUSE_S",
    "SERVICE_RESTART_AT",
    "durability",
    "markdown",
]

#: Each cell's experiment: 3 s of schedule at 200 ops/s; the fault starts 0.9 s in (see
#: :data:`SERVICE_RESTART_AT`), lasts 1 s.
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
FAULTS = (
    "redis-restart", "redis-kill", "worker-kill", "service-restart", "ltm-lock", "ltm-pause",
    "ltm-kill",
)  # fmt: skip
#: Where in the schedule ``service-restart`` starts: later than the others (30 %), because
#: ``kato serve`` takes seconds to come back, longer than the rest of the schedule, so only the
#: observes acknowledged before the stop are there to be lost.
SERVICE_RESTART_AT = 0.6
#: The cluster rows: these faults on a cluster of this many masters, with these WAITs.
CLUSTER_MASTERS = 3
CLUSTER_FAULTS = ("redis-failover", "redis-master-pause")
CLUSTER_WAITS = (0, 1)
#: How long ``redis-master-pause`` freezes a master: past its failover (about 2 s).
MASTER_PAUSE_S = 2.5

#: LTM faults' experiment: eight clients learning in rounds; the lock starts 0.5 s in, for 1 s.
LTM_DURABILITY = DURABILITY.with_(scenario="learn-race", rate=None, fault="ltm-lock")


def _cell(fault: str, operations: int, persistence: str) -> Experiment:
    base = LTM_DURABILITY if fault.startswith("ltm-") else DURABILITY
    restart_at = (
        SERVICE_RESTART_AT * operations / DURABILITY.rate
        if fault == "service-restart" and DURABILITY.rate
        else None
    )
    return base.with_(
        operations=operations,
        redis_persistence=persistence,
        fault=fault,
        fault_at_s=restart_at,
        ltm=next((ltm for ltm, faults in LTM_FAULTS.items() if fault in faults), "sqlite"),
    )


def _losses(checker: dict[str, Any]) -> tuple[str, int, int]:
    """What a cell counts: the operation, how many were acknowledged, how many were lost."""
    counts = checker["counts"]
    if checker["name"] == "no_lost_updates":
        return "observe", counts["acknowledged"], counts["lost"]
    return "learn", counts["acknowledged"] + counts["inferred"], counts["lost_learns"]


def durability(
    root: Path,
    *,
    operations: int = DURABILITY.plan_operations,
    persistence: Sequence[str] = PERSISTENCE_MODES,
    faults: Sequence[str] = FAULTS,
    cluster_waits: Sequence[int] = CLUSTER_WAITS,
    progress: bool = True,
) -> tuple[Path, pd.DataFrame]:
    """Run the matrix; write its folder (see the module docstring); return it and the table."""
    import pandas as pd

    specs = [
        _cell(fault, operations, mode) for mode in persistence for fault in faults
    ] + [
        DURABILITY.with_(
            operations=operations,
            fault=fault,
            fault_for_s=MASTER_PAUSE_S if fault == "redis-master-pause" else DURABILITY.fault_for_s,
            redis_cluster=CLUSTER_MASTERS,
            redis_wait_replicas=wait,
        )
        for fault in CLUSTER_FAULTS
        for wait in cluster_waits
    ]  # validated before anything starts
    folder = new_folder(root, "durability")
    rows = []
    for saved in grid.run_experiments(specs, folder, progress=progress, desc="durability"):
        spec, verdicts = saved.run.spec, saved.run.verdicts
        judge = "ltm_effects" if spec.fault.startswith("ltm-") else "no_lost_updates"
        checker = next(c for c in verdicts["checkers"] if c["name"] == judge)
        operation, acknowledged, lost = _losses(checker)
        rows.append(
            {
                "redis": "cluster" if spec.redis_cluster else "single",
                "persistence": spec.redis_persistence,
                "fault": spec.fault,
                "wait_replicas": spec.redis_wait_replicas,
                "operation": operation,
                "acknowledged": acknowledged,
                "lost": lost,
                "verdict": checker["valid"],
                "run": saved.folder.name,
            }
        )
    table = pd.DataFrame(rows)
    table.to_csv(folder / "durability.csv", index=False)
    (folder / "durability.md").write_text(markdown(table) + "\n")
    return folder, table


def markdown(table: pd.DataFrame) -> str:
    """The table as README shows it: Redis, persistence, fault, WAIT, operation, acknowledged,
    lost, verdict."""
    columns = [
        "redis", "persistence", "fault", "wait_replicas", "operation", "acknowledged", "lost",
        "verdict",
    ]  # fmt: skip
    shown = table[columns].rename(
        columns={
            "redis": "Redis",
            "persistence": "Redis persistence",
            "wait_replicas": "WAIT replicas",
        }
    )
    return str(shown.to_markdown(index=False))
