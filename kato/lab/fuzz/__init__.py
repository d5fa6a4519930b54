"""The hostile-input campaign (``kato lab fuzz``): bad requests against a real ``kato serve``.

:func:`run_fuzz` starts ``kato serve --store redis --ltm sqlite`` with ``workers`` processes on
an embedded Redis the workbench starts itself, runs a :func:`~kato.lab.fuzz.campaign.campaign`
against it, and writes ``fuzz.json`` into ``out/<run-id>/``. The canary node is limited to its
canary sessions (``KATO_MAX_SESSIONS_PER_NODE``), so creates there exercise ``SESSION_LIMIT``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from kato.lab.folders import new_folder
from kato.lab.fuzz.campaign import CANARIES, FuzzReport, Service, campaign
from kato.lab.targets import serve
from kato.stores.redis_server import RedisServer

__all__ = ["FuzzReport", "Service", "campaign", "run_fuzz"]


def run_fuzz(
    requests: int = 10_000,
    *,
    seed: int = 0,
    workers: int = 2,
    concurrency: int = 16,
    batch_size: int = 64,
    out: Path = Path("results"),
    progress: bool = True,
) -> tuple[Path, FuzzReport]:
    """Run a campaign of ``requests`` bad requests; return the run folder and the report."""
    bar: Any = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=requests, desc="fuzz", unit="req", file=sys.stderr)
    with (
        tempfile.TemporaryDirectory(prefix="kato-fuzz-") as data_dir,
        RedisServer() as redis_server,
    ):
        env = {"KATO_REDIS_URL": redis_server.url, "KATO_MAX_SESSIONS_PER_NODE": str(CANARIES)}
        args = ("--workers", str(workers), "--store", "redis", "--ltm", "sqlite")
        with serve(*args, "--data-dir", data_dir, "--log-level", "warning", env=env) as server:
            service = Service(server.url, redis_server.url, Path(data_dir) / "ltm.sqlite3")
            report = asyncio.run(
                campaign(
                    service,
                    requests=requests,
                    seed=seed,
                    concurrency=concurrency,
                    batch_size=batch_size,
                    progress=bar.update if bar is not None else None,
                )
            )
    if bar is not None:
        bar.close()
    folder = new_folder(out, "fuzz")
    document = {**report.to_dict(), "workers": workers, "concurrency": concurrency}
    (folder / "fuzz.json").write_text(json.dumps(document, indent=2) + "\n")
    return folder, report
