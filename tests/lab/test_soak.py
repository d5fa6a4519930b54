"""The soak: ``kato lab soak --quick`` (60 s of mixed load on ``kato serve --workers 4`` and the
embedded Redis) holds every verdict — no RSS growth past the bound after warm-up, no connection
leak, every acknowledged write present at the end — and the verdicts do flag growth and leaks
when the samples show them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from kato.lab.soak import MIB, SoakLimits, judge

WORKERS = {f"worker-{n}" for n in range(1, 5)}


def test_quick_soak_holds_every_verdict(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "kato", "lab", "soak", "--quick", "--quiet", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    folder = Path(done.stdout.strip().splitlines()[-1])
    assert folder.parent == tmp_path
    assert "verdict: PASS" in done.stdout
    for name in ("samples.csv", "samples.parquet", "soak.png", "soak.json"):
        assert (folder / name).exists(), name
    document = json.loads((folder / "soak.json").read_text())
    dump = json.dumps(document, indent=1)
    assert document["valid"] is True, dump
    assert (document["spec"]["workers"], document["load_s"]) == (4, 60)
    assert document["limits"] == {"warmup_s": 15, "rss_growth_mib": 10, "connection_slack": 4}

    # every process of the tree and redis-server, each within the bound after warm-up
    rss = {row["process"]: row for row in document["rss"]}
    assert set(rss) >= {"master", "redis-server", *WORKERS}, dump
    assert all(row["valid"] and row["growth_mib"] <= 10 for row in rss.values()), dump
    assert document["processes"]["valid"] and not document["processes"]["gone"], dump

    # the connection counts measure something: clients' connections close once they are done
    connections = {row["series"]: row for row in document["connections"]}
    service = connections["service"]
    assert service["valid"] and service["idle"] < service["end_max"], dump
    assert connections["redis connected_clients"]["end_max"] >= 4  # a pool per worker, at least

    writes = document["acknowledged_writes"]
    assert writes["valid"] is True and writes["acknowledged"] > 100, dump
    assert (writes["lost"], writes["never_read_sessions"]) == (0, 0)

    samples = pd.read_parquet(folder / "samples.parquet")
    assert samples["t_s"].nunique() >= 25  # one sample every 2 s for 60 s
    assert set(samples["phase"]) == {"load", "idle"}
    assert samples.loc[samples["process"] == "redis-server", "used_memory"].notna().all()


def _samples(
    *,
    worker_growth_mib: float = 0.0,
    new_connections: int = 0,
    replace_worker_at: float | None = None,
) -> pd.DataFrame:
    """21 samples, one a second, of a master, a worker and redis-server: steady, unless asked
    to grow the worker's RSS or the service's connections per sample, or to replace the worker
    (a new pid) from ``replace_worker_at`` on."""
    rows: list[dict[str, Any]] = []
    for i in range(21):
        t, phase = float(i), "load" if i < 20 else "idle"
        worker_pid = 11 if replace_worker_at is not None and t >= replace_worker_at else 10
        worker_mib = 70 + worker_growth_mib * i
        growing = new_connections * i
        rows += [
            {"t_s": t, "phase": phase, "process": "master", "pid": 1, "rss_bytes": 40 * MIB,
             "connections": 0},
            {"t_s": t, "phase": phase, "process": "worker-1", "pid": worker_pid,
             "rss_bytes": int(worker_mib * MIB),
             "connections": 1 + growing + (6 + i % 3 if phase == "load" else 0)},
            {"t_s": t, "phase": phase, "process": "redis-server", "pid": 2, "rss_bytes": 5 * MIB,
             "connections": 2, "used_memory": MIB, "connected_clients": 2},
        ]  # fmt: skip
    return pd.DataFrame(rows)


VALID_CHECKERS = {
    "valid": True,
    "checkers": [
        {"name": "no_lost_updates", "valid": True,
         "counts": {"acknowledged": 10, "lost": 0, "never_read_sessions": 0}},
        {"name": "isolation", "valid": True, "counts": {}},
    ],
}  # fmt: skip
LIMITS = SoakLimits(warmup_s=5, rss_growth_mib=10, connection_slack=4)


def test_steady_samples_pass() -> None:
    verdicts = judge(_samples(), LIMITS, load_s=20, checkers=VALID_CHECKERS)
    assert verdicts["valid"] is True, verdicts


def test_rss_growth_after_warmup_past_the_bound_fails_that_process_only() -> None:
    verdicts = judge(_samples(worker_growth_mib=1.0), LIMITS, load_s=20, checkers=VALID_CHECKERS)
    rss = {row["process"]: row for row in verdicts["rss"]}
    assert verdicts["valid"] is False
    assert rss["worker-1"]["valid"] is False and rss["worker-1"]["growth_mib"] == 14
    assert rss["worker-1"]["slope_mib_per_min"] == 60
    assert rss["master"]["valid"] and rss["redis-server"]["valid"]
    within = judge(_samples(worker_growth_mib=0.5), LIMITS, load_s=20, checkers=VALID_CHECKERS)
    assert within["valid"] is True  # +7 MiB after warm-up: within 10


def test_connection_leak_fails() -> None:
    verdicts = judge(_samples(new_connections=1), LIMITS, load_s=20, checkers=VALID_CHECKERS)
    service = next(row for row in verdicts["connections"] if row["series"] == "service")
    assert (service["valid"], service["idle"]) == (False, 21), service
    assert verdicts["valid"] is False


def test_a_replaced_worker_and_a_lost_write_fail() -> None:
    replaced = judge(_samples(replace_worker_at=10), LIMITS, load_s=20, checkers=VALID_CHECKERS)
    assert replaced["processes"]["gone"] == ["worker-1 (10)"]
    assert replaced["processes"]["new"] == ["worker-1 (11)"]
    assert replaced["valid"] is False
    lost = json.loads(json.dumps(VALID_CHECKERS))
    lost["valid"] = False
    lost["checkers"][0].update(valid=False, counts={"acknowledged": 10, "lost": 1,
                                                    "never_read_sessions": 0})  # fmt: skip
    verdicts = judge(_samples(), LIMITS, load_s=20, checkers=lost)
    assert verdicts["acknowledged_writes"]["lost"] == 1
    assert verdicts["valid"] is False
