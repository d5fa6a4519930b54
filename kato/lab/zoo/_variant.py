"""What a bug-zoo variant is: a named failure, how to build it, and how to expose it.

A variant's store is production's, changed only through its documented seams
(:mod:`kato.sessions.redis`: ``commit``, ``refresh``, ``queue_writers``) or wrapped in a
:class:`StoreLayer` that overrides public calls; no variant reaches into the store's internals.
A variant may also switch off the core's outbox (:class:`~kato.core.Kato`'s ``outbox`` seam).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from kato.lab.spec import Experiment
from kato.sessions import ChangeFn, Lease, Outcome, SessionRecord, SessionStore
from kato.sessions.redis import RedisSessionStore
from kato.settings import Settings

__all__ = ["VARIANT_ENV", "AppWrapper", "StoreFactory", "StoreLayer", "Variant", "redis_store"]

T = TypeVar("T")

#: The environment variable naming the variant each worker process builds.
VARIANT_ENV = "KATO_ZOO_VARIANT"

StoreFactory = Callable[[Settings], SessionStore]
#: Wraps the service app (an ASGI app) in the variant's broken layer.
AppWrapper = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class Variant:
    """One historical failure, rebuilt on purpose beside the production service.

    ``failure`` is its row of the failure table (sessions.md); ``scenario`` and ``spec`` (changes
    to the :class:`~kato.lab.spec.Experiment`) expose it; ``checker`` is the verdict expected to
    flag it. ``store`` replaces the session store, ``app`` wraps the service app; either may be
    ``None`` (then production's is used). ``fix`` is what the production comparison changes
    besides the variant, when the failure lives outside the service (R9's client).
    ``outbox=False`` applies LTM effects after the session commit with nothing kept (R11).
    """

    name: str
    failure: str
    description: str
    scenario: str
    checker: str
    spec: Mapping[str, Any] = field(default_factory=dict)
    store: StoreFactory | None = None
    app: AppWrapper | None = None
    fix: Mapping[str, Any] = field(default_factory=dict)
    outbox: bool = True

    @classmethod
    def of(
        cls,
        module: str,
        scenario: str,
        checker: str,
        *,
        store: StoreFactory | None = None,
        app: AppWrapper | None = None,
        fix: Mapping[str, Any] | None = None,
        outbox: bool = True,
        **spec: Any,
    ) -> Variant:
        """The variant zoo module ``module`` defines: its name is the module's
        (``r1_read_writeback`` → ``r1-read-writeback``), its failure and description the title
        of the module's docstring (``R1 — …``); ``spec``: the exposing experiment's fields."""
        failure, _, title = (sys.modules[module].__doc__ or "").partition("\n")[0].partition(" — ")
        name = module.rsplit(".", 1)[-1].replace("_", "-")
        return cls(name, failure, title, scenario, checker, spec, store, app, fix or {}, outbox)

    def experiment(self, **changes: Any) -> Experiment:
        """The experiment that exposes this variant (http target, Redis), with ``changes``."""
        base: dict[str, Any] = {
            "scenario": self.scenario,
            "target": "http",
            "store": "redis",
            "variant": self.name,
        }
        merged = {**base, **self.spec, **changes}
        if merged["scenario"] == "ttl" and "operations" not in changes:
            # ttl's reads per kept-alive session come from operations per client: keep three,
            # so one read falls past a stale expiry (R5) at any concurrency, 32 included
            merged["operations"] = max(merged["operations"], 6 * merged["concurrency"])
        return Experiment(**merged)

    def production(self, spec: Experiment) -> Experiment:
        """The production comparison of ``spec``: the same run on production, with the fix."""
        return spec.with_(**{**self.fix, "variant": "production"})

    def build(self, settings: Settings) -> Any:
        """The variant's ASGI app for ``settings`` (what each worker process serves)."""
        from kato.service.app import create_app

        store = self.store(settings) if self.store is not None else None
        app = create_app(settings, session_store=store, outbox=self.outbox)
        return self.app(app) if self.app is not None else app


def redis_store(
    layer: Callable[[RedisSessionStore], SessionStore] | None = None, **options: Any
) -> StoreFactory:
    """A variant's store: production's ``RedisSessionStore`` for the settings, changed through
    its seams (``options``: ``commit``, ``refresh``, ``queue_writers``, ``leases``) and wrapped in
    ``layer`` (a :class:`StoreLayer`), if given."""

    def build(settings: Settings) -> SessionStore:
        if settings.redis_url is None:
            raise ValueError("this bug-zoo variant runs on Redis: use --store redis")
        store = RedisSessionStore(
            settings.redis_url,
            auto_extend=settings.auto_extend,
            applied_limit=settings.applied_ids_limit,
            socket_timeout=settings.redis_timeout,
            **options,
        )
        return store if layer is None else layer(store)

    return build


class StoreLayer:
    """A session store in front of production's: every call goes to ``inner`` unchanged; a
    variant overrides the calls its failure changes (composition, not a copy of the store)."""

    def __init__(self, inner: RedisSessionStore) -> None:
        self.inner = inner

    async def create(self, record: SessionRecord) -> Lease:
        return await self.inner.create(record)

    async def get(self, session_id: str, *, touch: bool = True, predictions: bool = True) -> Lease:
        return await self.inner.get(session_id, touch=touch, predictions=predictions)

    async def update(
        self, session_id: str, change: ChangeFn[T], *, unique_id: str | None = None
    ) -> Outcome[T]:
        return await self.inner.update(session_id, change, unique_id=unique_id)

    async def delete(self, session_id: str) -> None:
        await self.inner.delete(session_id)

    async def exists(self, session_id: str) -> bool:
        return await self.inner.exists(session_id)

    async def extend(self, session_id: str, ttl_seconds: int) -> Lease:
        return await self.inner.extend(session_id, ttl_seconds)

    async def count(self) -> int:
        return await self.inner.count()

    async def outbox(self, limit: int) -> list[tuple[str, float]]:
        return await self.inner.outbox(limit)

    async def settled(self, session_id: str, mark: float) -> None:
        await self.inner.settled(session_id, mark)

    async def close(self) -> None:
        await self.inner.close()
