"""The service factory: ``create_app(settings)`` builds a FastAPI app for one deployment.

Nothing happens at import. Stores are opened in the app's lifespan and closed at shutdown; the
app, its routes, metrics and stores all belong to the one ``create_app`` call, so tests can build
as many independent apps as they like. ``create_app_from_env`` is the factory ``kato serve``
hands to uvicorn (each worker process calls it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from kato._version import __version__
from kato.collector import settle
from kato.core import Kato
from kato.nodes import open_nodes
from kato.observability import Metrics, ObservedSessionStore, configure_logging
from kato.service.errors import install_error_handlers
from kato.service.fastpath import FastPath
from kato.service.middleware import RequestObserver
from kato.service.monitoring import Monitor
from kato.service.ratelimit import RateLimiter
from kato.service.routes import build_router
from kato.sessions import MemorySessionStore, SessionStore
from kato.settings import Settings

log = logging.getLogger(__name__)

__all__ = ["create_app", "create_app_from_env"]


def _open_session_store(settings: Settings, metrics: Metrics) -> SessionStore:
    """The session store the settings name."""
    if settings.store == "redis":
        assert settings.redis_url is not None  # Settings refuses redis without a URL
        from kato.sessions.redis import RedisSessionStore

        return RedisSessionStore(
            settings.redis_url,
            auto_extend=settings.auto_extend,
            applied_limit=settings.applied_ids_limit,
            socket_timeout=settings.redis_timeout,
            observer=metrics,
            max_sessions=settings.max_sessions,
            max_sessions_per_node=settings.max_sessions_per_node,
            wait_replicas=settings.redis_wait_replicas,
        )
    return MemorySessionStore(
        auto_extend=settings.auto_extend,
        applied_limit=settings.applied_ids_limit,
        max_sessions=settings.max_sessions,
        max_sessions_per_node=settings.max_sessions_per_node,
    )


def create_app(
    settings: Settings | None = None,
    *,
    session_store: SessionStore | None = None,
    outbox: bool = True,
) -> FastAPI:
    """A KATO service app for ``settings`` (defaults: in-memory store, one worker).

    ``session_store`` replaces the store the settings name (tests use it to put a store that
    fails on purpose behind the service); ``outbox=False`` is the bug zoo's R11 (see
    :class:`~kato.core.Kato`). The lifespan runs this worker's outbox drainer.
    """
    settings = settings or Settings()
    metrics = Metrics()
    inner = session_store if session_store is not None else _open_session_store(settings, metrics)
    store = ObservedSessionStore(inner, metrics, settings.store)
    nodes = open_nodes(settings.ltm_location, timeout=settings.ltm_timeout)
    kato = Kato(settings, store, nodes, outbox=outbox)
    disk = os.path.dirname(os.path.abspath(settings.ltm_path)) if settings.ltm == "sqlite" else "."
    monitor = Monitor(
        metrics,
        interval=settings.sample_seconds,
        disk_path=disk,
        limit=settings.health_limit_percent,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            monitor.sample()
        except Exception:  # as every later sample: logged, never the worker's end
            log.exception("monitoring sample failed at start-up")
        sampling = asyncio.create_task(monitor.run(), name="kato-monitor")
        drainer = asyncio.create_task(kato.drain_forever(), name="kato-outbox-drainer")
        try:
            yield
        finally:
            for task in (sampling, drainer):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await kato.close()

    app = FastAPI(
        title="KATO",
        version=__version__,
        description="Deterministic pattern learning served through per-user sessions.",
        lifespan=lifespan,
        redirect_slashes=False,
    )
    app.state.kato = kato
    app.state.metrics = metrics
    install_error_handlers(app)
    router = build_router(kato, metrics, monitor, started=time.monotonic())
    app.state.routes = router.routes  # what a 405's ``Allow`` is computed from
    app.include_router(router)
    app.add_middleware(FastPath, routes=router.routes, operations=router.operations, kato=kato)
    if settings.rate_limit > 0:  # inside the observer, so a 429 is logged and counted too
        app.add_middleware(RateLimiter, rate=settings.rate_limit, burst=settings.burst)
    app.add_middleware(
        RequestObserver,
        metrics=metrics,
        max_body_bytes=settings.max_body_bytes,
        max_bodies_in_flight=settings.max_bodies_in_flight,
        body_timeout_s=settings.body_timeout_s,
    )
    return app


def create_app_from_env() -> FastAPI:
    """The app for the settings in ``KATO_*`` variables, with JSON logs (used by ``kato serve``)."""
    import os

    configure_logging(os.environ.get("KATO_LOG_LEVEL", "info"))
    app = create_app(Settings.from_env())
    settle()  # what exists now lives as long as the worker (see kato.collector)
    return app
