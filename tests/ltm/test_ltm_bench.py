"""The LTM benchmark runs end to end at a toy size (its figures are not checked)."""

from __future__ import annotations

import pytest

from kato.bench import ltm as bench


def test_the_benchmark_prints_a_row_per_store_and_size(
    nx_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bench.run((20, 40), vocabulary=15, stm_events=2, reps=3, mongo_url=nx_url, use_mongo=True)
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[3:]]
    assert [(row[0], row[1]) for row in rows] == [
        (store, size) for size in ("20", "40") for store in ("memory", "sqlite", "mongo")
    ]
