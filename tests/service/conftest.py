"""Service tests go through the ASGI app over httpx (Starlette's TestClient)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest

with warnings.catch_warnings():
    # Starlette 1.x asks for httpx2 in its TestClient; httpx works and is what we ship with.
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

from kato.service import create_app


@pytest.fixture
def http() -> Iterator[TestClient]:
    with TestClient(create_app(), raise_server_exceptions=True) as client:
        yield client


@pytest.fixture
def session_id(http: TestClient, node_id: str) -> str:
    response = http.post("/sessions", json={"node_id": node_id})
    assert response.status_code == 200, response.text
    return str(response.json()["session_id"])
