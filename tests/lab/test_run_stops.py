"""A run that a client crash or a Ctrl-C stops part-way still leaves a history to judge.

The crash is a real client (the engine target's) wrapped to raise on every Nth call, as a
client bug would; the interruption is a SIGINT to a real ``kato lab run``.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from kato.lab.clients import LabClient, Result
from kato.lab.history import JOURNAL, History
from kato.lab.run import run
from kato.lab.runner import execute, run_blocking
from kato.lab.scenarios import Step, plan
from kato.lab.spec import Experiment
from kato.lab.targets import deploy


class CrashingClient:
    """A real client that raises instead of issuing every ``every``-th call its run makes."""

    def __init__(self, inner: LabClient, calls: list[int], every: int) -> None:
        self.inner, self.calls, self.every = inner, calls, every

    async def call(self, step: Step, session_id: str | None) -> Result:
        self.calls[0] += 1
        if self.calls[0] % self.every == 0:
            raise RuntimeError(f"client bug on call {self.calls[0]}")
        return await self.inner.call(step, session_id)

    async def close(self) -> None:
        await self.inner.close()


def _check(path: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kato", "lab", "check", str(path), *flags],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_a_crashing_client_costs_its_operations_not_the_run(tmp_path: Path) -> None:
    spec = Experiment(scenario="lifecycle", concurrency=4, operations=200)
    steps = plan(spec)
    calls = [0]
    with deploy(spec) as deployment:
        history = run_blocking(
            lambda: execute(
                spec,
                steps,
                lambda: CrashingClient(deployment.make_client(), calls, every=7),
                node="crash",
                journal=tmp_path / JOURNAL,
            )
        )
    crashed = [op for op in history if op.value.get("error", "").startswith("RuntimeError")]
    assert len(crashed) == calls[0] // 7 > 5, "every raising call is an op of its own"
    assert all(op.outcome == "unknown" and op.complete_ns is not None for op in crashed)
    assert "client bug on call 7" in crashed[0].value["error"]
    assert len(history) == sum(1 for s in [*steps.setup, *steps.final] if s.f != "sleep") + sum(
        1 for p in steps.programs for s in p if s.f != "sleep"
    ), "the run went on to its last step"

    journalled, metadata = History.read(tmp_path)
    assert list(journalled) == list(history)
    assert Experiment.from_dict(metadata["params"]) == spec
    judged = _check(tmp_path, "--fail-on-anomaly")
    assert judged.returncode == 0, judged.stdout + judged.stderr
    assert "no_lost_updates" in judged.stdout and "overall" in judged.stdout


def _ctrl_c_as_in_a_terminal() -> None:
    """SIGINT's default action in the run, whatever this suite inherited: a shell ignores it in
    what it starts in the background, and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_an_interrupted_run_leaves_its_journal_for_kato_lab_check(tmp_path: Path) -> None:
    running = subprocess.Popen(
        [sys.executable, "-m", "kato", "lab", "run", "lifecycle", "--target", "http",
         "--store", "memory", "--workers", "1", "--concurrency", "8", "--ops", "200000",
         "--out", str(tmp_path), "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_ctrl_c_as_in_a_terminal,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        journals: list[Path] = []
        while not journals or len(journals[0].read_text().splitlines()) < 200:
            assert running.poll() is None, running.communicate()
            assert time.monotonic() < deadline, "the run journalled nothing"
            time.sleep(0.1)
            journals = list(tmp_path.glob(f"*/{JOURNAL}"))
        running.send_signal(signal.SIGINT)
        _, err = running.communicate(timeout=60)
    finally:
        running.kill()
    assert running.returncode == 130, err
    assert f"kato lab check {journals[0].parent}" in err
    folder = journals[0].parent
    assert sorted(p.name for p in folder.iterdir()) == [JOURNAL], "nothing but the journal"
    history, metadata = History.read(folder)
    assert 200 <= len(history) < 200000
    assert metadata["params"]["operations"] == 200000
    stopped = [op for op in history if op.complete_ns is None]
    assert stopped and all(op.outcome == "unknown" for op in stopped), "in flight: kept, unknown"
    lines = journals[0].read_text().splitlines()
    assert all(json.loads(line) for line in lines), "every line whole: the run stopped cleanly"
    judged = _check(folder)
    assert judged.returncode == 0, judged.stdout + judged.stderr
    # judged, and nothing wrong: some verdicts are unknown (the final reads never ran)
    verdicts = {line.split()[0]: line.split()[1] for line in judged.stdout.splitlines()[1:-1]}
    assert "no_lost_updates" in verdicts and "False" not in verdicts.values(), judged.stdout


def test_stop_ends_a_time_based_run_in_its_round_and_still_judges_it() -> None:
    """The Stop event and the rounds of a ``duration_s`` run: the round under way stops, its
    final reads run, and no further round starts."""
    spec = Experiment(scenario="shared-session", concurrency=4, duration_s=60, operations=None)
    stop = threading.Event()
    timer = threading.Timer(1.0, stop.set)
    timer.start()
    begun = time.monotonic()
    try:
        result = run(spec, stop=stop)
    finally:
        timer.cancel()
    assert time.monotonic() - begun < 20, "stopped long before its 60 s"
    final = [op for op in result.history if op.client == "final"]
    assert final and final[-1].outcome == "ok"  # the stopped round's final read still ran
    assert result.valid is True, result.verdicts
