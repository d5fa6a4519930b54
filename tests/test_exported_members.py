"""The public surface is itself under test: ``kato.__all__`` names exactly the public API."""

from __future__ import annotations

import importlib
import subprocess
import sys
import types

import kato
import kato.engine
import kato.exceptions


def test_kato_all_is_sorted_and_complete() -> None:
    public = {
        name
        for name in dir(kato)
        if not name.startswith("_") and not isinstance(getattr(kato, name), types.ModuleType)
    }
    assert kato.__all__ == sorted(kato.__all__)
    assert public <= set(kato.__all__) | {"__version__"}
    for name in kato.__all__:
        assert hasattr(kato, name), name


def test_engine_and_exceptions_export_what_they_name() -> None:
    for module in (kato.engine, kato.exceptions):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"


def test_importing_has_no_side_effects() -> None:
    """Importing the package starts no thread and reads no KATO_* variable."""
    code = (
        "import threading, kato, kato.engine, kato.client, kato.core; "
        "assert threading.active_count() == 1, threading.enumerate(); "
        "assert kato.client._local._default is None"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={"PATH": ""})


def test_every_module_imports() -> None:
    for name in (
        "kato.engine.predictions",
        "kato.sessions.memory",
        "kato.demo",
        "kato.bench.engine",
    ):
        importlib.import_module(name)
