"""``kato.nodes.open_nodes`` picks a store from a location; importing one stays cheap."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kato.nodes import MemoryNodes, open_nodes


def test_locations_name_their_store(tmp_path: Path) -> None:
    from kato.ltm.mongo import MongoNodes
    from kato.ltm.sqlite import SQLiteNodes

    assert isinstance(open_nodes("memory"), MemoryNodes)
    relative = open_nodes("sqlite:ltm.sqlite3")
    absolute = open_nodes(f"sqlite://{tmp_path}/ltm.sqlite3")
    assert isinstance(relative, SQLiteNodes) and relative.path == Path("ltm.sqlite3")
    assert isinstance(absolute, SQLiteNodes) and absolute.path == tmp_path / "ltm.sqlite3"
    mongo = open_nodes("mongodb://127.0.0.1:9")  # nothing connects before first use
    assert isinstance(mongo, MongoNodes)
    for bad in ("redis://x", "sqlite:", "", "/tmp/ltm.sqlite3"):
        with pytest.raises(ValueError, match="LTM location"):
            open_nodes(bad)


def test_importing_the_embedded_stores_imports_no_client_library() -> None:
    code = (
        "import sys, threading, kato, kato.nodes, kato.ltm, kato.ltm.sqlite, kato.ltm.vectors; "
        "kato.ltm.sqlite.SQLiteNodes('unused.sqlite3'); "
        "assert not {'pymongo', 'qdrant_client'} & set(sys.modules), sorted(sys.modules); "
        "assert threading.active_count() == 1"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
