"""A hostile-input campaign against a running service: send, tally, and check the store.

:func:`campaign` sends the hand-written cases, then generated ones, in batches of
``batch_size`` (``concurrency`` at a time), and tallies every answer by status and by error
code. Every answer from the app must be below 500 and every error must carry the error shape
with a stable code; the HTTP server's own answers to requests it cannot parse (before the app
runs; they carry no ``X-Request-ID``) are tallied as ``(http-server)``.

Store checks: the service's Redis keyspace and LTM are fingerprinted
(:mod:`~kato.lab.fuzz.fingerprint`) before and after each batch. A batch whose requests were all
rejected, or accepted only as reads (GET), must leave the fingerprint as it was; each such
batch is one comparison, and its rejected requests are *checked*. A batch in which a write was
accepted (2xx) is accounted for separately: the canary sessions are restored (sessions it
created are deleted, deleted canaries recreated, TTLs restored) and a new fingerprint taken.
With ``batch_size=1`` every rejected request is compared on its own.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain, islice
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import redis
from yarl import URL

from kato.lab.fuzz.cases import Case, CaseGenerator, Targets, nasty_cases, operations
from kato.lab.fuzz.fingerprint import Fingerprint, difference, fingerprint

__all__ = ["Answer", "FuzzReport", "Service", "campaign", "error_code"]

CANARY_NODE = "fuzz-canary"
CANARIES = 3
_SAFE_METHODS = frozenset({"GET"})
_EXAMPLES = 5
_RESENDS = 3


@dataclass(frozen=True, slots=True)
class Service:
    """A running service to attack: its URL, its Redis, and its SQLite LTM file (if any)."""

    url: str
    redis_url: str
    ltm_path: Path | None = None
    max_body_bytes: int = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Answer:
    """What came back: ``status`` is ``None`` when nothing did (the connection was dropped)."""

    status: int | None
    body: Any = None
    from_app: bool = True
    error: str | None = None


def error_code(answer: Answer) -> str | None:
    """The stable code of an error answer in the service's shape, else ``None``."""
    body = answer.body
    if not isinstance(body, dict) or not isinstance(body.get("detail"), str):
        return None
    error = body.get("error")
    if not isinstance(error, dict) or not {"code", "message", "layer", "request_id"} <= set(error):
        return None
    code = error["code"]
    return code if isinstance(code, str) and code.isupper() else None


@dataclass
class FuzzReport:
    """The campaign's counts (the content of ``fuzz.json``)."""

    seed: int
    requests: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    by_code: Counter[str] = field(default_factory=Counter)
    by_kind: dict[str, Counter[str]] = field(default_factory=dict)
    server_errors: int = 0
    server_error_examples: list[dict[str, Any]] = field(default_factory=list)
    bad_shape: int = 0
    bad_shape_examples: list[dict[str, Any]] = field(default_factory=list)
    dropped: int = 0
    dropped_examples: list[dict[str, Any]] = field(default_factory=list)
    accepted: int = 0
    accepted_writes: int = 0
    comparisons: int = 0
    checked: int = 0
    changed: int = 0
    changed_examples: list[dict[str, Any]] = field(default_factory=list)
    batch_size: int = 1
    duration_s: float = 0.0

    def tally(self, case: Case, answer: Answer) -> None:
        self.requests += 1
        status = "none" if answer.status is None else str(answer.status)
        self.by_status[status] += 1
        kind = self.by_kind.setdefault(case.kind, Counter())
        kind[status] += 1
        example = {**case.describe(), "status": answer.status, "error": answer.error}
        if answer.status is None:
            self.dropped += 1
            _keep(self.dropped_examples, example)
            return
        if answer.status >= 500:
            self.server_errors += 1
            _keep(self.server_error_examples, {**example, "body": repr(answer.body)[:300]})
        if answer.status < 400:
            self.accepted += 1
            self.accepted_writes += case.method not in _SAFE_METHODS
            return
        code = error_code(answer) if answer.from_app else "(http-server)"
        if code is None:
            self.bad_shape += 1
            _keep(self.bad_shape_examples, {**example, "body": repr(answer.body)[:300]})
            code = "(no error shape)"
        self.by_code[code] += 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "by_status": dict(sorted(self.by_status.items())),
            "by_code": dict(sorted(self.by_code.items())),
            "by_kind": {k: dict(sorted(v.items())) for k, v in sorted(self.by_kind.items())},
            "server_errors": {"count": self.server_errors, "examples": self.server_error_examples},
            "bad_shape": {"count": self.bad_shape, "examples": self.bad_shape_examples},
            "dropped": {"count": self.dropped, "examples": self.dropped_examples},
            "accepted": {"count": self.accepted, "writes": self.accepted_writes},
            "store_checks": {
                "method": "fingerprint before and after each batch without an accepted write "
                "(rejected requests of other batches are sent again alone, after a restore)",
                "batch_size": self.batch_size,
                "comparisons": self.comparisons,
                "checked": self.checked,
                "changed": self.changed,
                "examples": self.changed_examples,
            },
            "seed": self.seed,
            "duration": round(self.duration_s, 3),
        }


def _keep(examples: list[dict[str, Any]], example: dict[str, Any]) -> None:
    if len(examples) < _EXAMPLES:
        examples.append(example)


async def _send(http: aiohttp.ClientSession, base: str, case: Case) -> Answer:
    if case.raw is not None:
        return await _send_raw(base, case.raw)
    headers = dict(case.headers)
    skip = () if "Content-Type" in headers else ("Content-Type",)
    try:
        async with http.request(
            case.method,
            URL(base + case.target, encoded=True),
            data=None if case.body is None else io.BytesIO(case.body),
            headers=headers,
            skip_auto_headers=skip,
        ) as response:
            raw = await response.read()
            from_app = "X-Request-ID" in response.headers
            return Answer(response.status, _json(raw), from_app)
    except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
        return Answer(None, error=f"{type(exc).__name__}: {exc}"[:300])


async def _send_raw(base: str, raw: bytes) -> Answer:
    """Send ``raw`` bytes as the whole request and read the answer until the server closes."""
    parts = urlsplit(base)
    try:
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            writer.write(raw)
            await writer.drain()
            data = await asyncio.wait_for(reader.read(), timeout=60)
        finally:
            writer.close()
    except (TimeoutError, OSError) as exc:
        data = b""
        error = f"{type(exc).__name__}: {exc}"
    else:
        error = "connection closed without an answer"
    head, _, body = data.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].split()
    if len(status_line) < 2 or not status_line[1].isdigit():
        return Answer(None, error=error)
    from_app = b"\r\nx-request-id:" in head.lower()
    return Answer(int(status_line[1]), _json(body), from_app)


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw[:300].decode(errors="replace")


class _Canaries:
    """The sessions requests aim at, with known state."""

    def __init__(self, http: aiohttp.ClientSession, service: Service) -> None:
        self.http = http
        self.url = service.url
        self.targets = Targets([], CANARY_NODE, "", service.max_body_bytes)

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        async with self.http.request(method, self.url + path, json=body) as response:
            payload = await response.json()
            if response.status >= 400:
                raise RuntimeError(f"{method} {path}: {response.status} {payload}")
            return payload

    async def _canary(self, number: int) -> str:
        body = {"node_id": CANARY_NODE, "metadata": {"canary": number}, "ttl_seconds": 86400}
        sid: str = (await self._call("POST", "/sessions", body))["session_id"]
        observation = {"strings": ["canary", f"c{number}"], "emotives": {"calm": 0.5}}
        await self._call("POST", f"/sessions/{sid}/observe", observation)
        return sid

    async def create(self) -> None:
        """A learned pattern on the canary node, then the canaries, which fill the node."""
        teacher = await self._canary(-1)
        await self._call("POST", f"/sessions/{teacher}/observe", {"strings": ["canary", "z"]})
        learned = await self._call("POST", f"/sessions/{teacher}/learn")
        await self._call("DELETE", f"/sessions/{teacher}")
        self.targets.pattern_name = learned["pattern_name"]
        self.targets.session_ids[:] = [await self._canary(n) for n in range(CANARIES)]


async def _drained(store: redis.Redis, *, timeout_s: float = 10.0, prefix: str = "kato") -> None:
    """Wait until the service's outbox drainer has applied every pending LTM effect (its index
    is empty) and no writer holds a session's lease (a request's own drain and a worker's
    drainer may both settle one session: the second can still be between its read and its
    write when the first empties the index), so that no background settle changes a session
    record while the store is snapshotted, restored or fingerprinted."""
    deadline = time.monotonic() + timeout_s
    leases = f"{prefix}:*:lease"
    while time.monotonic() < deadline and (
        store.zcard(f"{prefix}:outbox") or next(store.scan_iter(leases, count=1000), None)
    ):
        await asyncio.sleep(0.02)


def _snapshot(store: redis.Redis) -> dict[bytes, tuple[int, bytes]]:
    """Every key's serialized value and remaining TTL (ms; 0 for none)."""
    keys = list(store.scan_iter(count=1000))
    with store.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.pttl(key)
            pipe.dump(key)
        replies = pipe.execute()
    return {key: (max(int(replies[2 * i]), 0), replies[2 * i + 1]) for i, key in enumerate(keys)}


def _restore(store: redis.Redis, snapshot: dict[bytes, tuple[int, bytes]]) -> None:
    """Put the keyspace back as :func:`_snapshot` saw it (the service keeps no other state)."""
    extra = [key for key in store.scan_iter(count=1000) if key not in snapshot]
    with store.pipeline(transaction=True) as pipe:
        if extra:
            pipe.delete(*extra)
        for key, (ttl, value) in snapshot.items():
            pipe.restore(key, ttl, value, replace=True)
        pipe.execute()


def _rejected(answer: Answer) -> bool:
    return answer.status is None or answer.status >= 400


def _wrote(batch: list[Case], answers: list[Answer]) -> bool:
    """Whether a request other than a read was accepted."""
    return any(
        not _rejected(answer) and case.method not in _SAFE_METHODS
        for case, answer in zip(batch, answers, strict=True)
    )


def _compare(
    store: redis.Redis,
    service: Service,
    report: FuzzReport,
    baseline: Fingerprint,
    batch: list[Case],
    answers: list[Answer],
) -> Fingerprint:
    """Compare the store with ``baseline`` after a batch without accepted writes; return the
    fingerprint now."""
    after = fingerprint(store, service.ltm_path)
    report.comparisons += 1
    report.checked += sum(map(_rejected, answers))
    if after != baseline:
        report.changed += 1
        _keep(
            report.changed_examples,
            {"difference": difference(baseline, after), "batch": [c.describe() for c in batch[:8]]},
        )
    return after


def _batches(cases: Iterable[Case], size: int, total: int) -> Iterator[list[Case]]:
    stream = islice(cases, total)
    while batch := list(islice(stream, size)):
        yield batch


async def campaign(
    service: Service,
    *,
    requests: int,
    seed: int = 0,
    concurrency: int = 16,
    batch_size: int = 64,
    progress: Any = None,
) -> FuzzReport:
    """Send ``requests`` bad requests to ``service`` and judge the answers (module docstring).

    ``progress``, if given, is called with the number of requests just answered.
    """
    report = FuzzReport(seed=seed, batch_size=batch_size)
    started = time.perf_counter()
    store = redis.Redis.from_url(service.redis_url)
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=120)
    limit = asyncio.Semaphore(concurrency)
    try:
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            async with http.get(service.url + "/openapi.json") as response:
                ops = operations(await response.json())
            canaries = _Canaries(http, service)
            await canaries.create()
            generator = CaseGenerator(ops, canaries.targets, seed)
            cases = chain(nasty_cases(canaries.targets), generator)
            await _drained(store)
            snapshot = _snapshot(store)

            async def send(batch: list[Case]) -> list[Answer]:
                async def one(case: Case) -> Answer:
                    async with limit:
                        return await _send(http, service.url, case)

                return list(await asyncio.gather(*(one(case) for case in batch)))

            baseline = fingerprint(store, service.ltm_path)
            for batch in _batches(cases, batch_size, requests):
                answers = await send(batch)
                for case, answer in zip(batch, answers, strict=True):
                    report.tally(case, answer)
                if progress is not None:
                    progress(len(batch))
                for _ in range(_RESENDS):
                    if not _wrote(batch, answers):
                        break
                    # Accepted writes are accounted for apart: put the store back, then send
                    # the rejected requests again, alone, and check those. (A rejection that
                    # depended on a write of its batch may be accepted now: round again.)
                    await _drained(store)
                    _restore(store, snapshot)
                    baseline = fingerprint(store, service.ltm_path)
                    batch = [c for c, a in zip(batch, answers, strict=True) if _rejected(a)]
                    answers = await send(batch)
                if _wrote(batch, answers):
                    await _drained(store)
                    _restore(store, snapshot)
                    baseline = fingerprint(store, service.ltm_path)
                elif batch:
                    baseline = _compare(store, service, report, baseline, batch, answers)
    finally:
        store.close()
    report.duration_s = time.perf_counter() - started
    return report
