"""Service benchmark: store round trips per observe and observe throughput at 1, 2, 4 workers.

    python -m kato.bench.service [--quick]

Each row starts ``kato serve --workers W`` on an embedded Redis (shared SQLite LTM), drives it
with the workbench's load generator (``many-sessions``: every client observes into its own
session), and reads the store's own counters from ``/metrics``: round trips and bytes per
observe. The load generator's own ceiling is printed beside it: it must be far above what the
server does. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import urllib.request
from collections.abc import Sequence

from prometheus_client.parser import text_string_to_metric_families

from kato.lab.runner import execute, generator_ceiling
from kato.lab.scenarios import plan
from kato.lab.spec import Experiment
from kato.lab.targets import deploy


def _metric_sum(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def measure(workers: int, *, concurrency: int, operations: int) -> dict[str, float]:
    spec = Experiment(
        scenario="many-sessions",
        target="http",
        store="redis",
        workers=workers,
        concurrency=concurrency,
        operations=operations,
    )
    steps = plan(spec)
    with deploy(spec) as deployment:
        assert deployment.server is not None
        began = time.perf_counter()
        history = asyncio.run(execute(spec, steps, deployment.make_client, node="bench"))
        elapsed = time.perf_counter() - began
        with urllib.request.urlopen(deployment.server.url + "/metrics", timeout=10) as response:
            text = response.read().decode()
    observes = sum(op.f == "observe" and op.outcome == "ok" for op in history)
    requests = _metric_sum(text, "kato_http_requests_total")
    trips = _metric_sum(text, "kato_store_round_trips_total")
    sent = _metric_sum(text, "kato_store_bytes_total", direction="sent")
    received = _metric_sum(text, "kato_store_bytes_total", direction="received")
    observe_requests = _metric_sum(
        text, "kato_http_requests_total", route="/sessions/{session_id}/observe"
    )
    # every other request (create, read, count, health) costs one round trip
    observe_trips = trips - (requests - observe_requests)
    return {
        "workers": workers,
        "observes": observes,
        "observe_per_s": observes / elapsed,
        "round_trips_per_observe": observe_trips / observe_requests if observe_requests else 0.0,
        "bytes_per_request": (sent + received) / requests if requests else 0.0,
        "conflicts": _metric_sum(text, "kato_store_conflicts_total"),
        "ceiling": generator_ceiling(spec, steps),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m kato.bench.service", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer operations")
    args = parser.parse_args(argv)
    operations = 600 if args.quick else 4000
    header = (
        f"{'workers':>7} {'observes':>8} {'observe/s':>9} {'trips/obs':>9} "
        f"{'bytes/req':>9} {'conflicts':>9} {'generator ceiling/s':>19}"
    )
    print(header)
    print("-" * len(header))
    for workers in (1, 2, 4):
        row = measure(workers, concurrency=32, operations=operations)
        print(
            f"{row['workers']:>7} {row['observes']:>8} {row['observe_per_s']:>9.0f} "
            f"{row['round_trips_per_observe']:>9.2f} {row['bytes_per_request']:>9.0f} "
            f"{row['conflicts']:>9.0f} {row['ceiling']:>19.0f}"
        )
    print(
        "trips/obs: session-store round trips per observe, from the store's counters (the other "
        "requests of the run, one round trip each, subtracted)"
    )


if __name__ == "__main__":
    main()
