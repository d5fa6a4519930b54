"""Logs at INFO carry at most a short prefix of a session id (the id is the only credential)."""

from __future__ import annotations

import json
from typing import Any

import httpx

from kato.observability import session_prefix
from kato.service.middleware import loggable_path


def test_a_real_request_flow_logs_only_id_prefixes(start_server: Any) -> None:
    with start_server("--store", "memory", "--ltm", "memory", "--log-level", "info") as server:
        with httpx.Client(base_url=server.url) as http:
            created = http.post("/sessions", json={"node_id": "logs"}).json()
            sid = created["session_id"]
            http.post(f"/sessions/{sid}/observe", json={"strings": ["a", "b"]})
            http.post(f"/sessions/{sid}/observe", json={"strings": [7]})  # 422
            http.get(f"/sessions/{sid}/stm/")
            http.post(f"/sessions/{sid}/learn")
            http.get(f"/sessions/{sid}x/predictions")  # a malformed id, echoed in the path
            http.request("PATCH", f"/sessions/{sid}")
            http.delete(f"/sessions/{sid}")
            http.get(f"/sessions/{sid}")  # 404
        log = server.log_path.read_text()
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    requests = [line for line in lines if line.get("msg") == "request"]
    assert len(requests) >= 9, log[-2000:]
    secret = sid.split("-")[1]
    assert secret not in log, "a full session id reached the log"
    assert any(line["session"] == session_prefix(sid) for line in requests)
    assert len(session_prefix(sid) or "") <= 17 and secret[:8] in (session_prefix(sid) or "")


def test_paths_in_logs_are_cut_to_prefixes_and_bounded() -> None:
    sid = "session-" + "ab" * 16 + "-1700000000000"
    assert loggable_path(f"/sessions/{sid}/stm") == f"/sessions/{session_prefix(sid)}/stm"
    assert "ab" * 16 not in loggable_path(f"/x/{sid}{sid}")
    assert len(loggable_path("/" + "y" * 100_000)) <= 201
