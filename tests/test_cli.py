"""The ``kato`` command: the service never loads the workbench; ``lab`` and ``bench`` load on use.

Each check runs in a fresh interpreter, since this one has long since imported everything.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

_WORKBENCH = "('kato.lab', 'kato.bench')"


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )


@pytest.mark.parametrize("module", ["kato.cli", "kato.service", "kato.core"])
def test_importing_the_service_loads_no_workbench(module: str) -> None:
    _python(
        f"import sys, {module}; "
        f"loaded = [m for m in sys.modules if m.startswith({_WORKBENCH})]; "
        "assert not loaded, loaded"
    )


def test_parsing_serve_loads_no_workbench() -> None:
    _python(
        "import sys; from kato.cli import parse_args; "
        "args = parse_args(['serve', '--workers', '2', '--redis-persistence', 'always']); "
        "assert (args.workers, args.redis_persistence) == (2, 'always'); "
        f"loaded = [m for m in sys.modules if m.startswith({_WORKBENCH})]; "
        "assert not loaded, loaded"
    )


def _help(*argv: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "kato", *argv, "--help"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return done.stdout


def test_help_lists_the_commands_loaded_on_use() -> None:
    top = _help()
    for command in ("serve", "lab", "bench"):
        assert command in top
    lab = _help("lab")
    for verb in ("run", "check", "report", "sweep", "zoo", "soak", "durability", "fuzz"):
        assert verb in lab
    assert "--persistence" in _help("lab", "durability")
    assert "--quick" in _help("bench") and "--only" in _help("bench")


def test_the_workbench_parses_through_kato() -> None:
    from kato.cli import parse_args

    args = parse_args(["lab", "durability", "--persistence", "everysec", "always"])
    assert args.persistence == ["everysec", "always"]
    assert parse_args(["bench", "--quick", "--only", "engine"]).only == ["engine"]
