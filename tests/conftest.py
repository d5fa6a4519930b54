"""Shared test configuration: benchmarks (``@pytest.mark.perf``) run only with ``-m perf``."""

from __future__ import annotations

import uuid

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "perf" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="benchmark: run with -m perf")
    for item in items:
        if "perf" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def node_id() -> str:
    """A node id no other test uses (nodes of one process share their learned patterns)."""
    return f"test-{uuid.uuid4().hex}"
