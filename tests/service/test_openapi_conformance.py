"""``/openapi.json`` tells the truth: schemathesis ``--checks all`` against a real ``kato serve``
finds no violation, beyond the exclusions ``schemathesis.toml`` beside this file lists and
justifies; and the parts it relies on (the error shape, ``Allow``, media types) hold."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from kato.api import ENDPOINTS
from kato.service import create_app
from kato.service.openapi import ErrorBody
from kato.settings import Settings

CONFIG = Path(__file__).with_name("schemathesis.toml")


def test_schemathesis_checks_all_find_no_violation(start_server: Any, tmp_path: Path) -> None:
    """The run is bounded (about 30 s on one core): 15 examples per operation, every phase
    (coverage, fuzzing, stateful). CI replays one seed; locally each run explores new cases."""
    seed = ["--seed", "16"] if os.environ.get("CI") else []
    with start_server() as server:  # embedded Redis sessions, SQLite LTM: the defaults
        result = subprocess.run(
            [
                sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG),
                "run", server.url + "/openapi.json", "--checks", "all",
                "--max-examples", "15", "--request-timeout", "10", *seed,
                "--generation-database", "none", "--no-color",
            ],
            capture_output=True, text=True, timeout=240, cwd=tmp_path,
        )  # fmt: skip
    failures = result.stdout.find("FAILURES")
    summary = result.stdout[failures:][:8000] if failures >= 0 else result.stdout[-4000:]
    assert result.returncode == 0, summary
    operations = sum(len(methods) for methods in create_app().openapi()["paths"].values())
    assert f"{operations} selected / {operations} total" in result.stdout, summary


def test_a_405_allows_every_method_of_its_path(http: TestClient, node_id: str) -> None:
    sid = http.post("/sessions", json={"node_id": node_id}).json()["session_id"]
    for method, path, allowed in [
        ("OPTIONS", f"/sessions/{sid}", "DELETE, GET"),
        ("PUT", f"/sessions/{sid}/", "DELETE, GET"),
        ("GET", f"/sessions/{sid}/observe", "POST"),
        ("PUT", "/sessions/count", "GET"),
        ("DELETE", "/sessions/count", "GET"),
        ("POST", "/sessions/count/", "GET"),
        ("DELETE", "/sessions", "POST"),
        ("POST", "/metrics", "GET"),
    ]:
        response = http.request(method, path)
        assert response.status_code == 405, (method, path)
        assert response.headers["allow"] == allowed, (method, path)
        assert response.json()["error"]["code"] == "METHOD_NOT_ALLOWED"


def test_every_error_response_is_documented_with_the_one_error_shape() -> None:
    document = create_app().openapi()
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            for status, response in operation["responses"].items():
                if status == "200" or (path, status) == ("/health", "503"):
                    continue
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (method, path)
    metrics = document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    # KATO's JSON by default, the Prometheus text for scrapers (content negotiation)
    assert sorted(metrics) == ["application/json", "text/plain; version=0.0.4"]


def test_a_real_422_and_404_match_the_documented_error_body(http: TestClient) -> None:
    refused = http.post("/sessions", json={"node_id": 5})
    missing = http.get("/sessions/no-such-session")
    assert (refused.status_code, missing.status_code) == (422, 404)
    for response in (refused, missing):
        body = ErrorBody.model_validate(response.json())
        assert body.detail == body.error.message


def test_rate_limited_service_documents_429_everywhere_it_limits() -> None:
    paths = create_app(Settings(rate_limit=5.0)).openapi()["paths"]
    assert "429" in paths["/sessions/{session_id}/stm"]["get"]["responses"]
    assert "429" not in paths["/health"]["get"]["responses"]
    assert "429" not in create_app().openapi()["paths"]["/sessions/count"]["get"]["responses"]


def test_each_operation_documents_what_its_table_entry_says_it_refuses() -> None:
    paths = create_app().openapi()["paths"]
    for ep in ENDPOINTS:
        documented = set(paths[ep.path][ep.method.lower()]["responses"])
        assert {str(error.status) for error in ep.refusals} <= documented, ep.name
    observe = paths["/sessions/{session_id}/observe"]["post"]["responses"]
    assert "VECTOR_DIMENSION" in observe["400"]["description"]
    assert {"404", "409", "413", "422", "500", "503"} <= set(observe)
    assert "404" in paths["/sessions/{session_id}"]["get"]["responses"]
    assert "404" not in paths["/sessions/{session_id}/exists"]["get"]["responses"]
