"""Worker metrics go to a folder of their own, never into the working directory.

Six ``counter_<pid>.db``-like files were once committed at the repository's root: an empty
``PROMETHEUS_MULTIPROC_DIR`` turns prometheus_client's multi-process mode on with the working
directory as its folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kato.observability import MULTIPROC_ENV, metrics_folder

WRITE_METRICS = """
import os, sys
from kato.observability import Metrics, metrics_folder
with metrics_folder(int(sys.argv[1])) as folder:
    Metrics().requests.labels("GET", "/", "200").inc()
    print(sorted(os.listdir(folder)))
"""


@pytest.mark.parametrize("workers", [1, 2])
def test_an_empty_multiproc_dir_writes_into_a_temporary_folder(
    tmp_path: Path, workers: int
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", WRITE_METRICS, str(workers)],
        cwd=tmp_path, env={**os.environ, MULTIPROC_ENV: ""},
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert "counter_" in done.stdout, "the metrics were written, in their own folder"
    assert list(tmp_path.iterdir()) == [], "nothing in the working directory"


def test_several_workers_get_a_folder_one_worker_none_and_a_named_one_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    with metrics_folder(1) as folder:
        assert folder is None and MULTIPROC_ENV not in os.environ
    with metrics_folder(4) as folder:
        assert folder is not None and os.environ[MULTIPROC_ENV] == folder
        assert Path(folder).is_dir()
    assert MULTIPROC_ENV not in os.environ and not Path(folder).exists()
    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path))
    with metrics_folder(4) as folder:
        assert folder == str(tmp_path)
    assert os.environ[MULTIPROC_ENV] == str(tmp_path) and tmp_path.is_dir()


READ_WHILE_A_WORKER_STARTS = """
import os, struct, sys
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from kato.observability import Metrics, metrics_folder
with metrics_folder(2) as folder:
    metrics = Metrics()
    metrics.requests.labels("GET", "/", "200").inc()
    # another worker's files at the instant prometheus_client creates them: empty, then sized
    open(os.path.join(folder, "counter_999999.db"), "wb").close()
    with open(os.path.join(folder, "gauge_livesum_999999.db"), "wb") as half:
        half.write(b"\\0\\0")
    try:
        list(MultiProcessCollector(CollectorRegistry(), path=folder).collect())
    except struct.error:
        print("plain collector fails")
    text = metrics.exposition().decode()
    print([line for line in text.splitlines() if line.startswith("kato_http_requests_total")])
"""


def test_a_file_another_worker_is_creating_is_skipped_not_fatal(tmp_path: Path) -> None:
    """A worker's start-up sample once read another worker's metric file in the instant it was
    empty, raised ``struct.error`` and failed that worker's start (and ``kato serve``)."""
    folder = tmp_path / "metrics"  # named before the worker starts, as ``kato serve`` does
    folder.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", READ_WHILE_A_WORKER_STARTS],
        cwd=tmp_path, env={**os.environ, MULTIPROC_ENV: str(folder)},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "plain collector fails" in done.stdout, "the files reproduce the race"
    assert 'route="/",status="200"} 1.0' in done.stdout
