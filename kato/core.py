"""One KATO deployment: session operations over a session store and the nodes' LTM stores.

Every operation of the HTTP API is a method here and returns exactly the API's response body,
so the HTTP service and the in-process client are both thin shells over this class and cannot
drift apart. A state-changing operation is one atomic read-modify-write of the session
(``SessionStore.update``) around a pure engine step; the step's node effects are applied after
the session write has committed, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from kato import engine
from kato.engine import EngineConfig, LTMView, Observation, SessionState, Step
from kato.engine.state import json_problem
from kato.exceptions import (
    InvalidConfigError,
    KatoError,
    NotFoundError,
    PatternNotFoundError,
    SessionNotFoundError,
    ValidationError,
    echo,
)
from kato.nodes import NodeStores
from kato.sessions import (
    Change,
    ChangeFn,
    Lease,
    Outcome,
    SessionRecord,
    SessionStore,
    looks_like_session_id,
    new_session_id,
)
from kato.settings import MIN_SESSION_TTL, Settings, ttl_problem

__all__ = ["NODE_ID_PATTERN", "Kato", "check_node_id"]

T = TypeVar("T")
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


def _cognition(state: SessionState) -> Body:
    """KATO's cognition data of ``state`` (engine.md §6)."""
    return {
        "predictions": [dict(p) for p in state.predictions],
        "emotives": dict(state.current_emotives),
        "symbols": list(state.symbols),
        "command": "",
        "metadata": {},
        "path": [],
        "strings": [],
        "vectors": [],
        "short_term_memory": [list(e) for e in state.stm],
    }


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

    def __init__(self, settings: Settings, sessions: SessionStore, nodes: NodeStores) -> None:
        self.settings = settings
        self.sessions = sessions
        self.nodes = nodes

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
        self._check_id(session_id)
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
        """``GET /health``: the stores the service uses (sessions, LTM), each ``ok`` or
        ``down``; ``unhealthy`` if one is down, else ``degraded`` if there are ``issues`` (the
        monitor's, e.g. a full disk), else ``healthy``. ``issues`` lists every problem, in
        words. ``started`` is the service's monotonic start."""
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
            await asyncio.to_thread(self.nodes.ping)
        except KatoError as exc:
            checks["ltm"].update(status="down", error=exc.code)
        down = any(check["status"] != "ok" for check in checks.values())
        problems = [
            f"{name} ({check['backend']}) down: {check['error']}"
            for name, check in checks.items()
            if check["status"] != "ok"
        ] + list(issues)
        return {
            "status": "unhealthy" if down else "degraded" if problems else "healthy",
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

    async def close(self) -> None:
        """Close the session store and the node stores (the service's shutdown)."""
        try:
            await self.sessions.close()
        finally:
            await asyncio.to_thread(self.nodes.close)

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
        lease = await self._get(session_id)
        state = lease.record.state
        return {
            "predictions": [dict(p) for p in state.predictions],
            "future_potentials": [dict(f) for f in state.future_potentials],
            "session_id": session_id,
            "processor_id": lease.record.node_id,
            "count": len(state.predictions),
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
        lease = await self._get(session_id)
        return {
            "cognition_data": _cognition(lease.record.state),
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
            "cognition_data": _cognition(SessionState()),
            "processor_id": node_id,
            "node_id": node_id,
        }

    async def get_pattern(self, node_id: str, name: str) -> Body:
        check_node_id(node_id)
        if PATTERN_NAME.fullmatch(name) is None:
            raise PatternNotFoundError(
                f"Pattern {echo(name)} not found: a pattern name is PTRN|<hex> or <hex>"
            )
        pattern = self.nodes.ltm(node_id).pattern(engine.bare_pattern_name(name))
        if pattern is None:
            raise NotFoundError(f"Pattern {echo(name)} not found")
        return {"pattern": {"status": "okay", "pattern": pattern.to_document()}, "node_id": node_id}

    async def list_patterns(self, node_id: str, *, offset: int = 0, limit: int = 100) -> Body:
        ltm = self.nodes.ltm(check_node_id(node_id))
        page = ltm.patterns(offset=offset, limit=limit)
        return {
            "node_id": node_id,
            "patterns": [p.to_document() for p in page],
            "offset": offset,
            "limit": limit,
            "total": ltm.pattern_count(),
        }

    async def symbol_stats(self, node_id: str) -> Body:
        ltm = self.nodes.ltm(check_node_id(node_id))
        return {
            "node_id": node_id,
            "symbols": [s.to_dict() for s in ltm.all_symbol_stats()],
            "totals": ltm.totals().to_dict(),
        }

    # -- helpers -----------------------------------------------------------------------------
    def _config(self, record: SessionRecord) -> EngineConfig:
        return replace(self.settings.engine, **record.config)

    @staticmethod
    def _check_id(session_id: str) -> None:
        if not looks_like_session_id(session_id):
            raise SessionNotFoundError(session_id)

    async def _get(self, session_id: str) -> Lease:
        self._check_id(session_id)
        return await self.sessions.get(session_id)

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
        """One engine step as one atomic session update, then its node effects, once.

        The step reads the node's LTM through one consistent snapshot. With a ``unique_id``
        that was applied before, nothing is computed or applied, and the first reply returns.
        """

        def change(record: SessionRecord) -> Change[Step]:
            with self.nodes.ltm(record.node_id).snapshot() as ltm:
                step = compute(record, ltm)
            body = reply(record, step) if reply is not None else None
            return Change(replace(record, state=step.state), step, body)

        outcome = await self._update(session_id, change, unique_id=unique_id)
        record = outcome.lease.record
        if outcome.value is None:
            return record, None, dict(outcome.replayed or {})
        self.nodes.ltm(record.node_id).apply(outcome.value.effects)
        return record, outcome.value, {}

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
