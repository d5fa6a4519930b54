"""One KATO deployment: session operations over a session store and the nodes' LTM stores.

Every operation of the HTTP API is a method here and returns exactly the API's response body,
so the HTTP service and the in-process client are both thin shells over this class and cannot
drift apart. A state-changing operation is one atomic read-modify-write of the session
(``SessionStore.update``) around a pure engine step.

**Effects exactly once** (sessions.md guarantee 3). The step's LTM effects are committed inside
the session record, in its outbox (:mod:`kato.sessions.outbox`), under the id
``<session id>:<version>``; after the commit they are drained: applied to the node's LTM, which
records the id in the same transaction and never applies an id twice. The request that
committed them waits for that at most ``EFFECTS_WAIT_S`` and answers anyway: its effects are as
durable as its session write. Whatever is still pending is drained by the next request on the
session (which, meanwhile, computes against the LTM *plus* its own pending effects, so it reads
its own learns) and by :meth:`Kato.drain_forever`, the background drainer each worker runs. A
retry with the same ``unique_id`` replays the first reply and drains, never applies again.

**Nothing blocks the event loop.** Engine steps (LTM snapshot reads, predictions) run in worker
threads (``kato.sessions.compute``); LTM writes run on this object's own bounded executor, so a
locked or stalled LTM holds up only the requests that wait for their own effects; node reads
run in threads; the health probe has its own thread and answers within ``PROBE_WAIT_S``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from kato import engine
from kato.engine import (
    Effect,
    EngineConfig,
    LTMView,
    MemoryLTM,
    Observation,
    SessionState,
    Step,
    WouldWait,
)
from kato.engine.state import json_problem
from kato.exceptions import (
    InvalidConfigError,
    KatoError,
    NotFoundError,
    PatternNotFoundError,
    SessionNotFoundError,
    StoreUnavailableError,
    ValidationError,
    echo,
)
from kato.nodes import NodeStores
from kato.sessions import (
    Change,
    ChangeFn,
    Lease,
    Outcome,
    Pending,
    SessionRecord,
    SessionStore,
    codec,
    effect_id,
    looks_like_session_id,
    new_session_id,
)
from kato.sessions.codec import StoredPredictions
from kato.sessions.store import AtOnce
from kato.settings import MIN_SESSION_TTL, Settings, ttl_problem

__all__ = [
    "DRAIN_INTERVAL_S",
    "EFFECTS_WAIT_S",
    "LTM_WRITERS",
    "NODE_ID_PATTERN",
    "PROBE_FRESH_S",
    "PROBE_STALE_S",
    "PROBE_WAIT_S",
    "Kato",
    "check_node_id",
]

log = logging.getLogger("kato")
T = TypeVar("T")
#: Seconds a request waits for its own LTM effects to be applied before it answers anyway.
EFFECTS_WAIT_S = 2.0
#: Seconds between two passes of the background drainer.
DRAIN_INTERVAL_S = 0.5
#: Threads that apply LTM effects (per process); more waiting applies queue.
LTM_WRITERS = 4
#: Seconds ``/health`` waits for the LTM probe before it calls the LTM stalled.
PROBE_WAIT_S = 0.25
#: Seconds between two LTM probes, at most (``/health`` may be polled often).
PROBE_FRESH_S = 0.5
#: Seconds a finished probe's verdict may answer ``/health`` while the next probe runs.
PROBE_STALE_S = 2.0
#: Distinct session configurations kept built (``Kato._config``); more start the cache afresh.
CONFIGS_KEPT = 1024
NODE_ID_PATTERN = re.compile(r"[A-Za-z0-9_.\-]{1,128}")
#: What can name a pattern: ``PTRN|<hash>`` or ``<hash>`` (lower-case hex); anything else
#: is answered 404 ``PATTERN_NOT_FOUND`` without asking the store.
PATTERN_NAME = re.compile(r"(PTRN\|)?[0-9a-f]{1,64}")
Body = dict[str, Any]


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat()


@contextlib.contextmanager
def _about(session_id: str) -> Iterator[None]:
    """Errors raised inside name the session they concern."""
    try:
        yield
    except KatoError as exc:
        exc.session_id = exc.session_id or session_id
        raise


def _parse_sequence(
    payload: Mapping[str, Any], limits: EngineConfig
) -> tuple[list[Observation], dict[str, bool]]:
    if not isinstance(payload, Mapping) or not isinstance(payload.get("observations", []), list):
        raise ValidationError("observations must be a list of observation objects")
    observations = [Observation.parse(item, limits) for item in payload.get("observations", [])]
    flags = {}
    for flag in ("learn_after_each", "learn_at_end", "clear_stm_between"):
        value = payload.get(flag, False)
        if not isinstance(value, bool):
            raise ValidationError(f"{flag} must be true or false")
        flags[flag] = value
    return observations, flags


def _cognition(state: SessionState, stored: StoredPredictions) -> Body:
    """KATO's cognition data of ``state`` with its ``stored`` predictions (engine.md §6)."""
    return {
        "predictions": stored.predictions,
        "emotives": dict(state.current_emotives),
        "symbols": list(state.symbols),
        "command": "",
        "metadata": {},
        "path": [],
        "strings": [],
        "vectors": [],
        "short_term_memory": [list(e) for e in state.stm],
    }


def _with_pending(view: LTMView, pending: tuple[Pending, ...]) -> LTMView:
    """``view`` as it will be once ``pending`` is applied (an overlay; ``view`` is untouched)."""
    if not pending:
        return view
    overlay = MemoryLTM(base=view)
    for entry in pending:
        overlay.apply(entry.effects)
    return overlay


class _NothingPending(Exception):
    """Raised by :func:`_without`'s change when the record holds none of the entries: a settle
    then writes nothing (no version bump for a record another write already settled)."""


def _without(applied: set[str]) -> ChangeFn[None]:
    """The change that drops the pending entries in ``applied`` from a record."""

    def change(record: SessionRecord) -> Change[None]:
        left = tuple(entry for entry in record.pending if entry.effect_id not in applied)
        if len(left) == len(record.pending):
            raise _NothingPending
        return Change(replace(record, pending=left), None)

    return change


def check_node_id(node_id: object) -> str:
    """Return ``node_id`` if it is 1–128 characters of ``A-Z a-z 0-9 _ . -``; else raise."""
    if not isinstance(node_id, str) or NODE_ID_PATTERN.fullmatch(node_id) is None:
        raise ValidationError(
            "node_id must be 1-128 characters of letters, digits, '_', '.' or '-'",
            details={"errors": [{"field": "node_id", "problem": "invalid node id"}]},
        )
    return node_id


class Kato:
    """Sessions and nodes of one deployment.

    kato = Kato(Settings(), MemorySessionStore(), MemoryNodes())
    session = await kato.create_session("demo")
    await kato.observe(session["session_id"], {"strings": ["hello"]})
    """

    def __init__(
        self,
        settings: Settings,
        sessions: SessionStore,
        nodes: NodeStores,
        *,
        outbox: bool = True,
    ) -> None:
        """``outbox=False`` applies a step's effects after the commit with nothing kept if that
        fails: the earlier system's R11, for the bug zoo only."""
        self.settings = settings
        self.sessions = sessions
        self.nodes = nodes
        self.outbox = outbox
        self._writer = ThreadPoolExecutor(LTM_WRITERS, thread_name_prefix="kato-ltm-write")
        self._prober = ThreadPoolExecutor(1, thread_name_prefix="kato-ltm-probe")
        #: Applies in flight in this process, by effect id (a second drainer joins the first).
        self._applying: dict[str, asyncio.Future[bool]] = {}
        #: Drains that outlived their request's wait (kept referenced until they end).
        self._draining: set[asyncio.Task[None]] = set()
        self._probe: asyncio.Future[str | None] | None = None
        self._probed_at = 0.0
        #: When the last probe finished, and what it found (an error code, or what it raised).
        self._verdict: tuple[float, str | BaseException | None] | None = None
        #: The error code of the last LTM write, if it failed (``None`` once one succeeds).
        self._write_error: str | None = None
        #: Effective configurations by session overrides (``_config``).
        self._configs: dict[tuple[tuple[str, str, Any], ...], EngineConfig] = {}

    # -- session lifecycle -------------------------------------------------------------------
    async def create_session(
        self,
        node_id: str,
        *,
        metadata: Mapping[str, Any] | None = None,
        ttl_seconds: int | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> Body:
        """``POST /sessions``: always a new session, visible everywhere once this returns."""
        check_node_id(node_id)
        if ttl_seconds is None:
            ttl_seconds = self.settings.session_ttl
        problem = ttl_problem(ttl_seconds, MIN_SESSION_TTL)
        if problem:
            raise InvalidConfigError({"ttl_seconds": problem})
        if metadata is not None and not isinstance(metadata, Mapping):
            raise ValidationError("metadata must be an object")
        problem = json_problem(metadata or {})
        if problem is not None:
            raise ValidationError(
                f"metadata: {problem}",
                details={"errors": [{"field": "metadata", "problem": problem}]},
            )
        overrides = engine.validate_overrides(config or {})
        now = time.time()
        record = SessionRecord(
            session_id=new_session_id(int(now * 1000)),
            node_id=node_id,
            created_at=now,
            ttl_seconds=ttl_seconds,
            metadata=dict(metadata or {}),
            config=overrides,
        )
        return self._session_body(await self.sessions.create(record))

    async def get_session(self, session_id: str) -> Body:
        return self._session_body(await self._get(session_id))

    async def session_exists(self, session_id: str) -> Body:
        """``GET /sessions/{id}/exists``: never raises for a missing session, never extends.

        ``expired`` is always false: an expired session is gone like a deleted one (see
        ``SessionStore.exists``); the field stays for the clients that read it.
        """
        exists = looks_like_session_id(session_id) and await self.sessions.exists(session_id)
        return {"exists": exists, "expired": False, "session_id": session_id}

    async def delete_session(self, session_id: str) -> Body:
        """Delete a session once its pending LTM effects are applied (503 while they cannot be:
        deleting it then would lose acknowledged learns)."""
        self._check_id(session_id)
        record = (await self.sessions.get(session_id, touch=False, predictions=False)).record
        if record.pending:
            with _about(session_id):
                await self._drain(record)
        await self.sessions.delete(session_id)
        return {"status": "deleted", "session_id": session_id}

    async def extend_session(self, session_id: str, ttl_seconds: int) -> Body:
        problem = ttl_problem(ttl_seconds, MIN_SESSION_TTL)
        if problem:
            raise InvalidConfigError({"ttl_seconds": problem}, session_id=session_id)
        self._check_id(session_id)
        lease = await self.sessions.extend(session_id, ttl_seconds)
        return {
            "status": "extended",
            "session_id": session_id,
            "ttl_seconds": lease.record.ttl_seconds,
        }

    async def count_sessions(self) -> Body:
        return {"active_session_count": await self.sessions.count()}

    # -- service -----------------------------------------------------------------------------
    async def health(self, *, started: float, issues: Sequence[str] = ()) -> Body:
        """``GET /health``: the stores the service uses (sessions, LTM), each ``ok``,
        ``degraded`` or ``down``; ``unhealthy`` if one is down, else ``degraded`` if one is
        degraded or there are ``issues`` (the monitor's, e.g. a full disk), else ``healthy``.
        ``issues`` in the answer lists every problem, in words. ``started`` is the service's
        monotonic start.

        The LTM is ``degraded`` while it answers reads but cannot be written (a held write lock:
        ``LTM_NOT_WRITABLE``; a failed last write: its code) or does not answer the probe
        within ``PROBE_WAIT_S`` (``LTM_STALLED``); learns then wait in their sessions' outboxes.
        The probe runs in its own thread, so an LTM stall never delays the session store's
        check, nor blames it.
        """
        checks: Body = {
            "store": {"status": "ok", "backend": self.settings.store},
            "ltm": {"status": "ok", "backend": self.settings.ltm},
        }
        active: int | None = None
        try:
            active = await self.sessions.count()
        except KatoError as exc:
            checks["store"].update(status="down", error=exc.code)
        try:
            problem = await self._probe_ltm() or self._write_error
        except KatoError as exc:
            checks["ltm"].update(status="down", error=exc.code)
        else:
            if problem is not None:
                checks["ltm"].update(status="degraded", error=problem)
        statuses = {check["status"] for check in checks.values()}
        problems = [
            f"{name} ({check['backend']}) {check['status']}: {check['error']}"
            for name, check in checks.items()
            if check["status"] != "ok"
        ] + list(issues)
        return {
            "status": "unhealthy" if "down" in statuses else "degraded" if problems else "healthy",
            "checks": checks,
            "active_sessions": active,
            "uptime_seconds": round(time.monotonic() - started, 3),
            "timestamp": datetime.now(UTC).isoformat(),
            # The original KATO's fields: its processors are the nodes' LTM here.
            "processor_id": self.settings.processor_id,
            "service_name": "KATO",
            "processor_status": "healthy" if checks["ltm"]["status"] == "ok" else "unhealthy",
            "issues": problems,
        }

    async def _probe_ltm(self) -> str | None:
        """``None`` if the LTM answers and takes writes, else why not (see :meth:`health`);
        raises ``StoreUnavailableError`` if it does not answer at all.

        The probe runs in its own thread, at most one at a time and at most every
        ``PROBE_FRESH_S``; a call answers with the last probe's verdict while it is younger than
        ``PROBE_STALE_S`` (the next one runs meanwhile), else waits for the running one up to
        ``PROBE_WAIT_S``. So ``/health`` never waits on the LTM while it is polled often.
        """

        def probe() -> str | None:
            self.nodes.ping()
            try:
                self.nodes.check_writable()
            except StoreUnavailableError:
                return "LTM_NOT_WRITABLE"
            return None

        now = time.monotonic()
        idle = self._probe is None or self._probe.done()
        if idle and now - self._probed_at >= PROBE_FRESH_S:
            self._probe = asyncio.get_running_loop().run_in_executor(self._prober, probe)
            self._probe.add_done_callback(self._probed)
            self._probed_at = now
        if self._verdict is not None and now - self._verdict[0] < PROBE_STALE_S:
            return self._verdict_of(self._verdict[1])
        assert self._probe is not None
        try:
            return await asyncio.wait_for(asyncio.shield(self._probe), PROBE_WAIT_S)
        except TimeoutError:
            return "LTM_STALLED"

    def _probed(self, probe: asyncio.Future[str | None]) -> None:
        if not probe.cancelled():
            error = probe.exception()
            self._verdict = (time.monotonic(), error if error is not None else probe.result())

    @staticmethod
    def _verdict_of(verdict: str | BaseException | None) -> str | None:
        if isinstance(verdict, BaseException):
            raise verdict
        return verdict

    async def close(self) -> None:
        """Close the session store and the node stores (the service's shutdown).

        Applies still waiting on the LTM are abandoned: their effects stay in their sessions'
        outboxes for another worker's drainer or the sessions' next requests.
        """
        self._writer.shutdown(wait=False, cancel_futures=True)
        self._prober.shutdown(wait=False, cancel_futures=True)
        try:
            await self.sessions.close()
        finally:
            await asyncio.to_thread(self.nodes.close)

    # -- the outbox --------------------------------------------------------------------------
    async def drain_forever(self, interval: float = DRAIN_INTERVAL_S) -> None:
        """The background drainer each worker runs: :meth:`drain_outbox` every ``interval``
        seconds, until cancelled, so effects of a session nobody touches again are applied."""
        while True:
            try:
                await self.drain_outbox()
            except KatoError as exc:
                log.warning("outbox drain stopped: %s (%s)", exc.code, exc)
            except Exception:
                log.exception("outbox drain failed")
            await asyncio.sleep(interval)

    async def drain_outbox(self, limit: int = 100) -> int:
        """One pass over the sessions the store's outbox index names (oldest first): apply
        each one's pending effects, drop them from its record, and drop it from the index.
        Returns how many sessions were settled. Raises if the LTM or the store fails."""
        settled = 0
        for session_id, mark in await self.sessions.outbox(limit):
            try:
                lease = await self.sessions.get(session_id)  # restarts the TTL while pending
                if lease.record.pending:
                    await self._drain(lease.record)
                    applied = {entry.effect_id for entry in lease.record.pending}
                    try:
                        outcome = await self._update(session_id, _without(applied))
                    except _NothingPending:
                        pass  # settled meanwhile (by the session's own request): nothing to write
                    else:
                        if outcome.lease.record.pending:
                            continue  # a newer write committed more; the next pass takes them
            except SessionNotFoundError:
                pass  # deleted or expired: its pending effects went with it (see delete)
            await self.sessions.settled(session_id, mark)
            settled += 1
        if settled:
            log.info("outbox drainer settled %d sessions", settled)
        return settled

    async def _drain(self, record: SessionRecord) -> None:
        """Apply the record's pending effects, in order, each under its id (at most once)."""
        ltm = self.nodes.ltm(record.node_id)
        for entry in record.pending:
            applying = self._applying.get(entry.effect_id)
            if applying is None:
                apply = functools.partial(ltm.apply, entry.effects, effect_id=entry.effect_id)
                applying = asyncio.get_running_loop().run_in_executor(self._writer, apply)
                self._applying[entry.effect_id] = applying
                applying.add_done_callback(functools.partial(self._applied, entry.effect_id))
            await asyncio.shield(applying)

    def _applied(self, key: str, done: asyncio.Future[bool]) -> None:
        self._applying.pop(key, None)
        error = None if done.cancelled() else done.exception()
        if error is None:
            self._write_error = None
        elif isinstance(error, KatoError):
            self._write_error = error.code
            log.warning("LTM effects %s not applied yet: %s", key, error)

    async def _settle(self, record: SessionRecord) -> None:
        """Drain ``record``'s pending effects, waiting at most ``EFFECTS_WAIT_S``; what is not
        applied by then stays pending (the drain goes on, and the drainer retries a failure)."""
        if not record.pending:
            return
        task = asyncio.ensure_future(self._drain(record))
        self._draining.add(task)
        task.add_done_callback(self._drained)
        with contextlib.suppress(TimeoutError, StoreUnavailableError):
            await asyncio.wait_for(asyncio.shield(task), EFFECTS_WAIT_S)

    def _drained(self, task: asyncio.Task[None]) -> None:
        self._draining.discard(task)
        if not task.cancelled() and task.exception() is not None:
            error = task.exception()
            if not isinstance(error, StoreUnavailableError):
                log.error("draining an outbox failed", exc_info=error)

    async def get_session_config(self, session_id: str) -> Body:
        lease = await self._get(session_id)
        return {"session_id": session_id, "config": self._config(lease.record).session_view()}

    async def update_session_config(self, session_id: str, config: Mapping[str, Any]) -> Body:
        """Merge validated overrides into the session's; an invalid update applies nothing."""
        with _about(session_id):
            changes = engine.validate_overrides(config)

        def change(record: SessionRecord) -> Change[None]:
            return Change(replace(record, config={**record.config, **changes}), None)

        await self._update(session_id, change)
        return {"status": "okay", "message": "Configuration updated", "session_id": session_id}

    # -- engine operations -------------------------------------------------------------------
    async def observe(self, session_id: str, payload: Mapping[str, Any]) -> Body:
        """Observe once; an observation whose ``unique_id`` was applied before is not re-applied."""
        with _about(session_id):
            observation = Observation.parse(payload, self.settings.engine)
        fallback_id = "obs-" + uuid.uuid4().hex

        def compute(record: SessionRecord, ltm: LTMView) -> Step:
            return engine.observe(
                record.state,
                observation,
                self._config(record),
                ltm,
                node_id=record.node_id,
                unique_id=fallback_id,
            )

        record, step, replayed = await self._step(
            session_id, compute, unique_id=observation.unique_id, reply=self._observe_body
        )
        return replayed if step is None else self._observe_body(record, step)

    async def observe_sequence(self, session_id: str, payload: Mapping[str, Any]) -> Body:
        with _about(session_id):
            observations, flags = _parse_sequence(payload, self.settings.engine)
        prefix = "seq-obs-" + uuid.uuid4().hex[:24]

        def compute(record: SessionRecord, ltm: LTMView) -> Step:
            return engine.observe_sequence(
                record.state,
                observations,
                self._config(record),
                ltm,
                node_id=record.node_id,
                make_unique_id=lambda position: f"{prefix}-{position}",
                **flags,
            )

        record, step = await self._apply_step(session_id, compute)
        return {
            **step.result,
            "processor_id": record.node_id,
            "session_id": session_id,
            "isolated": True,
        }

    async def learn(self, session_id: str) -> Body:
        record, step = await self._apply_step(
            session_id, lambda record, _: engine.learn(record.state, self._config(record))
        )
        name = step.result["pattern_name"]
        message = f"Learned pattern {name}" if name else "Nothing learned: fewer than 2 symbols"
        return {
            "status": "learned",
            "pattern_name": name,
            "session_id": session_id,
            "processor_id": record.node_id,
            "message": message,
        }

    async def clear_stm(self, session_id: str) -> Body:
        await self._apply_step(session_id, lambda record, _: engine.clear_stm(record.state))
        return {"status": "cleared", "session_id": session_id}

    async def clear_all(self, session_id: str) -> Body:
        await self._apply_step(session_id, lambda record, _: engine.clear_all(record.state))
        return {"status": "cleared", "session_id": session_id, "scope": "all"}

    # -- session reads -----------------------------------------------------------------------
    async def get_stm(self, session_id: str) -> Body:
        state = await self._state(session_id)
        return {
            "stm": [list(e) for e in state.stm],
            "session_id": session_id,
            "length": len(state.stm),
        }

    async def get_predictions(self, session_id: str) -> Body:
        """The predictions as stored, not decoded (``msgspec.Raw``, see
        :mod:`kato.sessions.codec`)."""
        lease = await self._get(session_id, predictions=True)
        state = lease.record.state
        stored = codec.stored_predictions(lease)
        return {
            "predictions": stored.predictions,
            "future_potentials": stored.futures,
            "session_id": session_id,
            "processor_id": lease.record.node_id,
            "count": stored.count,
            "time": state.time,
            "unique_id": state.last_unique_id,
        }

    async def get_percept_data(self, session_id: str) -> Body:
        lease = await self._get(session_id)
        return {
            "percept_data": dict(lease.record.state.percept_data),
            "session_id": session_id,
            "node_id": lease.record.node_id,
        }

    async def get_cognition_data(self, session_id: str) -> Body:
        lease = await self._get(session_id, predictions=True)
        return {
            "cognition_data": _cognition(lease.record.state, codec.stored_predictions(lease)),
            "session_id": session_id,
            "node_id": lease.record.node_id,
        }

    # -- node operations ---------------------------------------------------------------------
    async def node_percept_data(self, node_id: str) -> Body:
        """``GET /percept-data?node_id=``: the original KATO's node-level percept.

        Percepts, like STM, belong to sessions here, never to a node (engine.md §9 A1: a
        node-shared processor leaked one session's data into another's), so a node's own view
        is a fresh processor's: empty. ``processor_id`` is the node, as KATO answered.
        """
        check_node_id(node_id)
        return {"percept_data": {}, "processor_id": node_id, "node_id": node_id}

    async def node_cognition_data(self, node_id: str) -> Body:
        """``GET /cognition-data?node_id=``: the original KATO's node-level cognition data,
        a fresh processor's (see :meth:`node_percept_data`)."""
        check_node_id(node_id)
        return {
            "cognition_data": _cognition(SessionState(), StoredPredictions.of(SessionState())),
            "processor_id": node_id,
            "node_id": node_id,
        }

    async def get_pattern(self, node_id: str, name: str) -> Body:
        """A pattern as the node's LTM holds it now: a learn still pending in a session's
        outbox is not counted yet (see the module docstring)."""
        ltm = self.nodes.ltm(check_node_id(node_id))
        if PATTERN_NAME.fullmatch(name) is None:
            raise PatternNotFoundError(
                f"Pattern {echo(name)} not found: a pattern name is PTRN|<hex> or <hex>"
            )
        pattern = await asyncio.to_thread(ltm.pattern, engine.bare_pattern_name(name))
        if pattern is None:
            raise NotFoundError(f"Pattern {echo(name)} not found")
        return {"pattern": {"status": "okay", "pattern": pattern.to_document()}, "node_id": node_id}

    async def list_patterns(self, node_id: str, *, offset: int = 0, limit: int = 100) -> Body:
        ltm = self.nodes.ltm(check_node_id(node_id))

        def read() -> Body:
            page = ltm.patterns(offset=offset, limit=limit)
            return {
                "node_id": node_id,
                "patterns": [p.to_document() for p in page],
                "offset": offset,
                "limit": limit,
                "total": ltm.pattern_count(),
            }

        return await asyncio.to_thread(read)

    async def symbol_stats(self, node_id: str) -> Body:
        ltm = self.nodes.ltm(check_node_id(node_id))

        def read() -> Body:
            return {
                "node_id": node_id,
                "symbols": [s.to_dict() for s in ltm.all_symbol_stats()],
                "totals": ltm.totals().to_dict(),
            }

        return await asyncio.to_thread(read)

    # -- helpers -----------------------------------------------------------------------------
    def _config(self, record: SessionRecord) -> EngineConfig:
        """The session's effective configuration. Building one validates every field (a
        ``difflib`` suggestion included), which was a tenth of a bare observe; sessions share a
        handful of override sets, so each is built once (overrides are validated scalars)."""
        # the type too: 1 and 1.0 are equal keys, but answer as different JSON
        key = tuple(
            sorted((name, type(value).__name__, value) for name, value in record.config.items())
        )
        config = self._configs.get(key)
        if config is None:
            if len(self._configs) >= CONFIGS_KEPT:
                self._configs.clear()
            config = self._configs[key] = replace(self.settings.engine, **record.config)
        return config

    @staticmethod
    def _check_id(session_id: str) -> None:
        if not looks_like_session_id(session_id):
            raise SessionNotFoundError(session_id)

    async def _get(self, session_id: str, *, predictions: bool = False) -> Lease:
        """Read a session (a read drains its pending effects too); its predictions only when
        asked (they are most of a session's bytes)."""
        self._check_id(session_id)
        lease = await self.sessions.get(session_id, predictions=predictions)
        await self._settle(lease.record)
        return lease

    async def _state(self, session_id: str) -> SessionState:
        return (await self._get(session_id)).record.state

    async def _update(
        self, session_id: str, change: ChangeFn[T], *, unique_id: str | None = None
    ) -> Outcome[T]:
        self._check_id(session_id)
        with _about(session_id):
            return await self.sessions.update(session_id, change, unique_id=unique_id)

    async def _step(
        self,
        session_id: str,
        compute: Callable[[SessionRecord, LTMView], Step],
        *,
        unique_id: str | None = None,
        reply: Callable[[SessionRecord, Step], Body] | None = None,
    ) -> tuple[SessionRecord, Step | None, Body]:
        """One engine step as one atomic session update whose record carries the step's LTM
        effects (the outbox), then a drain of them (see the module docstring).

        The step reads the node's LTM through one consistent snapshot, plus the session's own
        effects that are still pending; pending entries the LTM has recorded are dropped from
        the record. With a ``unique_id`` that was applied before, nothing is computed, the
        session's pending effects are drained, and the first reply returns.
        """

        def change(record: SessionRecord, at_once: bool) -> Change[Step]:
            pending = record.pending
            if at_once and pending:  # asking the LTM which it recorded is a read of its own
                raise WouldWait("the session has pending effects")
            ltm = self.nodes.ltm(record.node_id)
            with ltm.snapshot(at_once=at_once) as view:
                if pending:
                    done = ltm.applied([entry.effect_id for entry in pending])
                    pending = tuple(p for p in pending if p.effect_id not in done)
                step = compute(record, _with_pending(view, pending))
            if step.effects and self.outbox:
                entry = Pending(effect_id(record.session_id, record.version + 1), step.effects)
                pending = (*pending, entry)
            body = reply(record, step) if reply is not None else None
            return Change(replace(record, state=step.state, pending=pending), step, body)

        outcome = await self._update(session_id, AtOnce(change), unique_id=unique_id)
        record = outcome.lease.record
        await self._settle(record)
        if outcome.value is None:
            return record, None, dict(outcome.replayed or {})
        if not self.outbox:  # R11: nothing kept if this fails
            await self._apply_now(record.node_id, outcome.value.effects)
        return record, outcome.value, {}

    async def _apply_now(self, node_id: str, effects: tuple[Effect, ...]) -> None:
        ltm = self.nodes.ltm(node_id)
        await asyncio.get_running_loop().run_in_executor(self._writer, ltm.apply, effects)

    async def _apply_step(
        self, session_id: str, compute: Callable[[SessionRecord, LTMView], Step]
    ) -> tuple[SessionRecord, Step]:
        record, step, _ = await self._step(session_id, compute)
        assert step is not None  # no unique_id, so never a replay
        return record, step

    def _session_body(self, lease: Lease) -> Body:
        record = lease.record
        return {
            "session_id": record.session_id,
            "node_id": record.node_id,
            "created_at": _iso(record.created_at),
            "expires_at": _iso(lease.expires_at),
            "ttl_seconds": record.ttl_seconds,
            "metadata": dict(record.metadata),
            "session_config": self._config(record).session_view(),
        }

    @staticmethod
    def _observe_body(record: SessionRecord, step: Step) -> Body:
        return {
            "status": "okay",
            "session_id": record.session_id,
            "processor_id": record.node_id,
            "stm_length": step.result["stm_length"],
            "time": step.result["time"],
            "unique_id": step.result["unique_id"],
            "auto_learned_pattern": step.result["auto_learned_pattern"],
        }
