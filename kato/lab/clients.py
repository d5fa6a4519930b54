"""Lab clients: issue one step and say how it ended — ``ok``, ``fail`` or ``unknown``.

A client answers ``fail`` only when the operation certainly did not happen: the service refused
it with a 4xx and a stable code. A 5xx, a timeout or a dropped connection is ``unknown`` (it may
have happened), with the error kept, as in Jepsen's interpreter. The HTTP client speaks the API
directly (aiohttp; by default no retries, no generated ``unique_id``): the workbench must see
exactly what the service did. Asked for ``retries`` (``Experiment.client_retries``), it retries an
``observe`` whose response was lost (a 503 or a dropped connection) like a production client
would, with an idempotency key (``unique_id``: ``obs-<hex>``, one per step, reused on every
retry) unless ``idempotency=False`` (R9); the step's outcome is its last attempt's. The engine
client calls :class:`~kato.core.Kato` in this process.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

from kato.core import Kato
from kato.engine import pattern_name
from kato.exceptions import KatoError
from kato.lab.scenarios import Step

__all__ = ["RETRY_HEADER", "EngineClient", "HttpClient", "LabClient", "Result"]

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


class EngineClient:
    """Runs steps on an in-process deployment (the ``engine`` target)."""

    def __init__(self, kato: Kato) -> None:
        self.kato = kato

    async def call(self, step: Step, session_id: str | None) -> Result:
        try:
            body = await self._dispatch(step, session_id)
        except KatoError as exc:
            return Result("fail" if exc.status < 500 else "unknown", error_code=exc.code)
        return Result("ok", _value(step.f, body))

    async def _dispatch(self, step: Step, sid: str | None) -> dict[str, Any]:
        k, f, args = self.kato, step.f, step.args
        if f == "create":
            return await k.create_session(args["node_id"], ttl_seconds=args.get("ttl_seconds"))
        if f == "count":
            return await k.count_sessions()
        if f == "get_pattern":
            return await k.get_pattern(args["node_id"], _pattern(step))
        assert sid is not None, step
        if f == "observe":
            return await k.observe(sid, {"strings": args["strings"]})
        if f == "read_stm":
            return await k.get_stm(sid)
        if f == "read_session":
            return await k.get_session(sid)
        if f == "delete":
            return await k.delete_session(sid)
        if f == "learn":
            return await k.learn(sid)
        raise ValueError(f"unknown operation {f!r}")

    async def close(self) -> None:
        return None


class HttpClient:
    """Runs steps against a KATO service with aiohttp, over its own connection pool."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float,
        connections: int = 4,
        retries: int = 0,
        idempotency: bool = True,
    ) -> None:
        import aiohttp

        self.retries = retries
        self.idempotency = idempotency
        self._aiohttp = aiohttp
        self.base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        # two pools: ``other_connection`` steps go through the second one
        self._sessions = [
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections))
            for _ in range(2)
        ]

    def _request(self, step: Step, sid: str | None) -> tuple[str, str, dict[str, Any]]:
        f, args = step.f, step.args
        if f == "create":
            body = {"node_id": args["node_id"], "ttl_seconds": args.get("ttl_seconds")}
            return "POST", "/sessions", {"json": body}
        if f == "count":  # ``trailing_slash``: the same route, spelled ``/sessions/count/`` (R10)
            return (
                "GET",
                "/sessions/count/" if args.get("trailing_slash") else "/sessions/count",
                {},
            )
        if f == "get_pattern":
            return "GET", f"/pattern/{_pattern(step)}", {"params": {"node_id": args["node_id"]}}
        routes = {
            "observe": ("POST", "/observe", {"json": {"strings": args.get("strings", [])}}),
            "read_stm": ("GET", "/stm", {}),
            "read_session": ("GET", "", {}),
            "delete": ("DELETE", "", {}),
            "learn": ("POST", "/learn", {}),
        }
        method, suffix, options = routes[f]
        return method, f"/sessions/{sid}{suffix}", options

    async def call(self, step: Step, session_id: str | None) -> Result:
        method, path, options = self._request(step, session_id)
        if step.f != "observe" or self.retries == 0:
            return await self._attempt(step, method, path, options)
        if self.idempotency:  # one key per step, the same on every retry
            options["json"] = {**options["json"], "unique_id": f"obs-{uuid.uuid4().hex}"}
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
        try:
            async with session.request(
                method, self.base_url + path, timeout=self._timeout, **options
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
