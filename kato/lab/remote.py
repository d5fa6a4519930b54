"""The ``url`` target: a KATO deployment the workbench did not start, and what it can check there.

Any KATO-compatible server speaks the session API of the spec (create, observe, STM, learn,
predictions, session info, delete). Three things only this project's server offers:

- ``X-Kato-Worker`` on every response (which worker served an operation);
- ``unique_id`` replay on observe (an idempotency key: a retried observe is applied once);
- ``GET /sessions/count`` (exact live-session count).

:func:`probe` finds out up front which of them a target has — from ``/openapi.json`` when it is
served, the headers of its first responses, and a probe session (created, observed into twice
with one ``unique_id``, read, deleted) — and the run uses each only where present: the plan
drops its ``count`` steps without ``/sessions/count`` (:func:`adapt`), and a retrying client
(``client_retries``) is refused without replay. A check that cannot run is named by
:meth:`Capabilities.skipped`; the verdict then lists it and reads ``"partial"``, never plain
``valid`` (see :func:`kato.lab.checkers.check`).

A url target's store may hold sessions the run did not create, so a run that counts sessions
first reads the count (a ``count`` step with ``args {"baseline": true}``) and the ``counts``
checker judges every later count relative to it: the target must have no other traffic during
the run. Every session the run created is deleted afterwards (:func:`delete_sessions`).

A target file (``--target-file``) names a deployment::

    urls: [http://10.0.0.5:8000, http://10.0.0.6:8000]
    faults:                      # optional: commands run at a fault window's start and end
      redis-pause: {start: "docker pause redis", stop: "docker unpause redis"}
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kato.lab.scenarios import Plan, Step

__all__ = [
    "FULL",
    "Capabilities",
    "adapt",
    "delete_sessions",
    "load_target_file",
    "probe",
    "skipped_checks",
]

#: The node the probe's session belongs to.
PROBE_NODE = "kato-lab-probe"


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a target serves beyond the session API, and whether its store may hold sessions
    the run did not create (``foreign``: a url target)."""

    worker_header: bool = True
    idempotency: bool = True
    session_count: bool = True
    openapi: bool = True
    foreign: bool = False

    def skipped(self) -> dict[str, str]:
        """The checks this target cannot run, each with the reason (empty: everything runs)."""
        skipped = {}
        if not self.session_count:
            skipped["counts: session counts"] = (
                "the target does not serve GET /sessions/count, so no count was read"
            )
        if not self.worker_header:
            skipped["worker attribution"] = (
                "the target sends no X-Kato-Worker header: operations and anomalies cannot be "
                "attributed to the worker process that served them"
            )
        return skipped

    def to_dict(self) -> dict[str, bool]:
        return asdict(self)


#: A server this workbench starts itself: everything, and a store that starts empty.
FULL = Capabilities()


def skipped_checks(target: Mapping[str, Any]) -> dict[str, str]:
    """The checks skipped on the target a run's metadata describes (``metadata["target"]``)."""
    recorded = target.get("capabilities")
    return Capabilities(**recorded).skipped() if isinstance(recorded, dict) else {}


def load_target_file(path: Path) -> dict[str, Any]:
    """A target file as experiment fields: ``{"target": "url", "urls": [...], "fault_hooks":
    {...}}``; ``ValueError`` naming what is wrong in it."""
    import yaml

    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"target file {path}: {exc}") from None
    if not isinstance(document, dict) or not document.get("urls"):
        raise ValueError(f"target file {path}: needs urls: [http://host:port, ...]")
    unknown = set(document) - {"urls", "faults"}
    if unknown:
        raise ValueError(f"target file {path}: unknown keys {', '.join(sorted(unknown))}")
    urls = document["urls"]
    return {
        "target": "url",
        "urls": [urls] if isinstance(urls, str) else list(urls),
        "fault_hooks": dict(document.get("faults") or {}),
    }


class _Answer:
    def __init__(self, status: int, headers: Mapping[str, str], body: Any) -> None:
        self.status, self.headers, self.body = status, headers, body


def _request(
    url: str, method: str = "GET", body: dict[str, Any] | None = None, timeout: float = 10.0
) -> _Answer:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, headers, raw = response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        status, headers, raw = exc.code, exc.headers, exc.read()
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = None
    return _Answer(status, dict(headers.items()), parsed)


def _openapi_paths(url: str, timeout: float) -> set[str] | None:
    """The paths ``/openapi.json`` lists, or ``None`` when the target serves none."""
    try:
        answer = _request(url + "/openapi.json", timeout=timeout)
    except OSError:
        return None
    if answer.status != 200 or not isinstance(answer.body, dict):
        return None
    paths = answer.body.get("paths")
    return set(paths) if isinstance(paths, dict) else None


def _create(url: str, timeout: float) -> tuple[str, _Answer]:
    try:
        answer = _request(url + "/sessions", "POST", {"node_id": PROBE_NODE}, timeout)
    except OSError as exc:
        raise ValueError(f"the url target {url} cannot be reached: {exc}") from None
    session = answer.body.get("session_id") if isinstance(answer.body, dict) else None
    if answer.status != 200 or not isinstance(session, str):
        raise ValueError(
            f"the url target {url} does not speak the KATO session API: POST /sessions answered "
            f"{answer.status} {str(answer.body)[:200]}"
        )
    return session, answer


def _replays(url: str, session: str, timeout: float) -> bool:
    """Whether an observe repeated with one ``unique_id`` is applied once (the STM holds one)."""
    observation = {"strings": ["kato-lab-probe"], "unique_id": "kato-lab-probe-replay"}
    for _ in range(2):
        answer = _request(f"{url}/sessions/{session}/observe", "POST", observation, timeout)
        if answer.status != 200:
            return False
    stm = _request(f"{url}/sessions/{session}/stm", timeout=timeout).body
    return isinstance(stm, dict) and stm.get("stm") == [["kato-lab-probe"]]


def _counts(url: str, paths: set[str] | None, timeout: float) -> bool:
    if paths is not None and "/sessions/count" not in paths:
        return False
    answer = _request(url + "/sessions/count", timeout=timeout)
    count = answer.body.get("active_session_count") if isinstance(answer.body, dict) else None
    return answer.status == 200 and isinstance(count, int) and not isinstance(count, bool)


def probe(urls: Iterable[str], *, timeout: float = 10.0) -> Capabilities:
    """What the deployment behind ``urls`` serves (see the module docstring); ``ValueError`` if
    some URL does not answer the session API. Leaves no session behind."""
    bases = [url.rstrip("/") for url in urls]
    paths = _openapi_paths(bases[0], timeout)
    sessions: list[tuple[str, str]] = []
    try:
        headers = []
        for base in bases:
            session, answer = _create(base, timeout)
            sessions.append((base, session))
            headers.append(answer.headers)
        worker = all(any(k.lower() == "x-kato-worker" for k in h) for h in headers)
        return Capabilities(
            worker_header=worker,
            idempotency=_replays(bases[0], sessions[0][1], timeout),
            session_count=_counts(bases[0], paths, timeout),
            openapi=paths is not None,
            foreign=True,
        )
    finally:
        for base, session in sessions:
            _request(f"{base}/sessions/{session}", "DELETE", timeout=timeout)


def adapt(plan: Plan, capabilities: Capabilities) -> Plan:
    """``plan`` as the target can run it: without ``count`` steps if it has no
    ``/sessions/count``; with a baseline count first if its store may hold other sessions."""
    if not capabilities.session_count:

        def keep(steps: list[Step]) -> list[Step]:
            return [step for step in steps if step.f != "count"]

        return Plan(keep(plan.setup), [keep(p) for p in plan.programs], keep(plan.final))
    if capabilities.foreign:
        baseline = Step("count", args={"baseline": True})
        return Plan([baseline, *plan.setup], plan.programs, plan.final)
    return plan


def delete_sessions(urls: list[str], sessions: Iterable[str], *, timeout: float = 10.0) -> int:
    """Delete ``sessions`` on the url target (round robin over ``urls``); how many answered 200.

    Run after the history is complete: what the run created should not outlive it on a
    deployment that is not the workbench's."""
    deleted = 0
    for i, session in enumerate(sessions):
        base = urls[i % len(urls)].rstrip("/")
        try:
            answer = _request(f"{base}/sessions/{session}", "DELETE", timeout=timeout)
        except OSError:
            continue
        deleted += answer.status == 200
    return deleted
