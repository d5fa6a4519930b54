"""Lab clients: issue one step and say how it ended — ``ok``, ``fail`` or ``unknown``.

A client answers ``fail`` only when the operation certainly did not happen: the service refused
it with a 4xx and a stable code. A 5xx, a timeout or a dropped connection is ``unknown`` (it may
have happened), with the error kept, as in Jepsen's interpreter. The HTTP client speaks the API
directly (aiohttp; by default no retries, no generated ``unique_id``): the workbench must see
exactly what the service did. Asked for ``retries`` (``Experiment.client_retries``), it retries an
``observe`` whose response was lost (a 503 or a dropped connection) like a production client
would, with an idempotency key (``unique_id``: ``obs-<hex>``, one per step, reused on every
retry) unless ``idempotency=False`` (R9); the step's outcome is its last attempt's. Given several
base URLs (the ``url`` target: several hosts of one deployment) it sends each request to the next
one, round robin, as a load balancer would. The engine client calls :class:`~kato.core.Kato` in
this process.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from kato.api import Operation, operation
from kato.client._http import IDLE_EXPIRY_S
from kato.core import Kato
from kato.engine import pattern_name
from kato.exceptions import KatoError
from kato.lab.scenarios import Step

__all__ = ["RETRY_HEADER", "EngineClient", "HttpClient", "LabClient", "Result", "operation_of"]

#: Sent (with the attempt number) on a retried request; the zoo's lossy layer never drops those.
RETRY_HEADER = "X-Kato-Retry"


@dataclass(slots=True)
class Result:
    outcome: str
    value: dict[str, Any] = field(default_factory=dict)
    error_code: str | None = None
    http_status: int | None = None
    worker_pid: int | None = None


class LabClient(Protocol):
    async def call(self, step: Step, session_id: str | None) -> Result: ...

    async def close(self) -> None: ...


def _value(f: str, body: dict[str, Any]) -> dict[str, Any]:
    """The part of a response body the history keeps (see ``history.OPERATIONS``)."""
    if f == "create":
        return {"session_id": body["session_id"]}
    if f == "observe":
        value = {"time": body["time"], "stm_length": body["stm_length"]}
        if body.get("auto_learned_pattern"):
            value["auto_learned_pattern"] = body["auto_learned_pattern"]
        return value
    if f == "read_stm":
        return {"stm": body["stm"]}
    if f == "read_session":
        return {"ttl_seconds": body["ttl_seconds"]}
    if f == "learn":
        return {"pattern_name": body["pattern_name"]}
    if f == "get_pattern":
        return {"frequency": body["pattern"]["pattern"]["frequency"]}
    if f == "count":
        return {"count": body["active_session_count"]}
    return {}


def _pattern(step: Step) -> str:
    return pattern_name([[symbol] for symbol in step.args["sequence"]])


#: The API operation each step (``history.OPERATIONS``) issues.
_ENDPOINT = {
    "create": "create_session",
    "count": "count_sessions",
    "get_pattern": "get_pattern",
    "observe": "observe",
    "read_stm": "get_stm",
    "read_session": "get_session",
    "delete": "delete_session",
    "learn": "learn",
}


def operation_of(step: Step, session_id: str | None) -> Operation:
    """The API operation ``step`` issues on ``session_id``."""
    f, args = step.f, step.args
    if f not in _ENDPOINT:
        raise ValueError(f"unknown operation {f!r}")
    name = _ENDPOINT[f]
    if f == "create":
        body = {"node_id": args["node_id"], "ttl_seconds": args.get("ttl_seconds")}
        return operation(name, body=body)
    if f == "count":
        return operation(name)
    if f == "get_pattern":
        return operation(name, node_id=args["node_id"], pattern_name=_pattern(step))
    assert session_id is not None, step
    observation = {"strings": args.get("strings", [])} if f == "observe" else None
    return operation(name, session_id=session_id, body=observation)


class EngineClient:
    """Runs steps on an in-process deployment (the ``engine`` target)."""

    def __init__(self, kato: Kato) -> None:
        self.kato = kato

    async def call(self, step: Step, session_id: str | None) -> Result:
        try:
            body = await operation_of(step, session_id).call(self.kato)
        except KatoError as exc:
            return Result("fail" if exc.status < 500 else "unknown", error_code=exc.code)
        return Result("ok", _value(step.f, body))

    async def close(self) -> None:
        return None


class HttpClient:
    """Runs steps against a KATO service with aiohttp, over its own connection pool.

    ``base_url``: one URL, or several used round robin (``rotation`` numbers the requests; share
    one between the clients of a run to spread them all). ``created`` collects the id of every
    session it creates (so a run can remove them from a deployment that is not its own).
    """

    def __init__(
        self,
        base_url: str | Sequence[str],
        *,
        timeout_s: float,
        connections: int = 4,
        retries: int = 0,
        idempotency: bool = True,
        rotation: Iterator[int] | None = None,
        created: set[str] | None = None,
    ) -> None:
        import aiohttp

        self._aiohttp = aiohttp
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        self.base_urls = [url.rstrip("/") for url in urls]
        self._rotation = rotation if rotation is not None else itertools.count()
        self.created = created
        self.retries, self.idempotency = retries, idempotency
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        # two pools: ``other_connection`` steps go through the second one
        self._sessions = [
            aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=connections, keepalive_timeout=IDLE_EXPIRY_S)
            )
            for _ in range(2)
        ]

    @staticmethod
    def _request(step: Step, op: Operation) -> tuple[str, str, dict[str, Any]]:
        options: dict[str, Any] = {}
        if op.body is not None:
            options["json"] = dict(op.body)
        if op.params:
            options["params"] = op.params
        # ``trailing_slash``: the same route, spelled ``/sessions/count/`` (R10)
        path = op.path + "/" if step.args.get("trailing_slash") else op.path
        return op.method, path, options

    async def call(self, step: Step, session_id: str | None) -> Result:
        result = await self._call(step, session_id)
        if step.f == "create" and result.outcome == "ok" and self.created is not None:
            self.created.add(result.value["session_id"])
        return result

    async def _call(self, step: Step, session_id: str | None) -> Result:
        op = operation_of(step, session_id)
        method, path, options = self._request(step, op)
        key = op.endpoint.idempotency_key  # only writes that can carry a key are retried
        if key is None or self.retries == 0:
            return await self._attempt(step, method, path, options)
        if self.idempotency:  # one key per step, the same on every retry
            options["json"] = {**options["json"], key: f"obs-{uuid.uuid4().hex}"}
        result = await self._attempt(step, method, path, options)
        for attempt in range(1, self.retries + 1):
            if not _lost(result):
                break
            headers = {RETRY_HEADER: str(attempt)}
            result = await self._attempt(step, method, path, {**options, "headers": headers})
            result.value["attempts"] = attempt + 1
        return result

    async def _attempt(self, step: Step, method: str, path: str, options: dict[str, Any]) -> Result:
        session = self._sessions[1 if step.other_connection else 0]
        base_url = self.base_urls[next(self._rotation) % len(self.base_urls)]
        try:
            async with session.request(
                method, base_url + path, timeout=self._timeout, **options
            ) as response:
                status = response.status
                worker = response.headers.get("X-Kato-Worker")
                body = await response.json(content_type=None)
        except (self._aiohttp.ClientError, TimeoutError, ValueError) as exc:
            return Result("unknown", {"error": f"{type(exc).__name__}: {exc}"[:300]})
        pid = int(worker) if worker and worker.isdigit() else None
        if status < 300:
            return Result("ok", _value(step.f, body), http_status=status, worker_pid=pid)
        code = body.get("error", {}).get("code") if isinstance(body, dict) else None
        outcome = "fail" if status < 500 else "unknown"
        return Result(outcome, {}, error_code=code, http_status=status, worker_pid=pid)

    async def close(self) -> None:
        await asyncio.gather(*(s.close() for s in self._sessions))


def _lost(result: Result) -> bool:
    """Whether an attempt's response was lost (a retrying client tries again): 503 or no answer."""
    if result.outcome != "unknown":
        return False
    return result.http_status == 503 or (
        result.http_status is None and "Timeout" not in result.value.get("error", "")
    )
