"""R7 — the STM copied through a processor object shared by all sessions of a node.

**What users saw:** a new session of a node showed the short-term memory of another session
of the same node — even one that had just been deleted.

**Mechanism:** each process kept one processor object per node and ran every session's operation on
it: load the session's STM into the processor, run the step, copy the processor's STM back into the
session. The load skipped an empty STM ("nothing to restore"), so a fresh session (or one whose STM
had just been learned) inherited whatever the processor held from the node's previous session, and a
delete never cleared it. :class:`SharedProcessor`, a layer over the production store, runs each
update's ``change`` through such a per-node processor.

**Why production does not have it:** the engine is a pure function of the session's own
record (``engine.observe(record.state, …)``); no object outlives a request or is shared by two
sessions, and keys derive from the session id only (sessions.md guarantee 7).

Exposed by ``lifecycle`` (sessions of one node created, observed and deleted one after
another): ``isolation`` reports reads showing another session's symbols.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TypeVar

from kato.engine.state import Event
from kato.lab.zoo._variant import StoreLayer, Variant, redis_store
from kato.sessions import Change, ChangeFn, Outcome, SessionRecord
from kato.sessions.redis import RedisSessionStore

__all__ = ["VARIANT", "SharedProcessor"]

T = TypeVar("T")


@dataclass(slots=True)
class _Processor:
    """The node's processor: one STM, whichever session used it last."""

    stm: tuple[Event, ...] = ()


class SharedProcessor(StoreLayer):
    """Production's store, with every update run through its node's shared processor (R7)."""

    def __init__(self, inner: RedisSessionStore) -> None:
        super().__init__(inner)
        self._processors: dict[str, _Processor] = {}

    async def update(
        self, session_id: str, change: ChangeFn[T], *, unique_id: str | None = None
    ) -> Outcome[T]:
        def through_processor(record: SessionRecord) -> Change[T]:
            processor = self._processors.setdefault(record.node_id, _Processor())
            if record.state.stm:  # the old load: an empty STM had "nothing to restore"
                processor.stm = record.state.stm
            loaded = replace(record, state=replace(record.state, stm=processor.stm))
            changed = change(loaded)
            processor.stm = changed.record.state.stm
            return changed

        return await self.inner.update(session_id, through_processor, unique_id=unique_id)


VARIANT = Variant.of(
    __name__, "lifecycle", "isolation", workers=1, concurrency=4, operations=112,
    store=redis_store(SharedProcessor),
)
