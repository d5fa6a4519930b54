"""What a bug-zoo variant is: a named failure, how to build it, and how to expose it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kato.lab.spec import Experiment
from kato.sessions import SessionStore
from kato.settings import Settings

__all__ = ["VARIANT_ENV", "AppWrapper", "StoreFactory", "Variant", "redis_options"]

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

    def experiment(self, **changes: Any) -> Experiment:
        """The experiment that exposes this variant (http target, Redis), with ``changes``."""
        base: dict[str, Any] = {
            "scenario": self.scenario,
            "target": "http",
            "store": "redis",
            "variant": self.name,
        }
        return Experiment(**{**base, **self.spec, **changes})

    def production(self, spec: Experiment) -> Experiment:
        """The production comparison of ``spec``: the same run on production, with the fix."""
        return spec.with_(**{**self.fix, "variant": "production"})

    def build(self, settings: Settings) -> Any:
        """The variant's ASGI app for ``settings`` (what each worker process serves)."""
        from kato.service.app import create_app

        store = self.store(settings) if self.store is not None else None
        app = create_app(settings, session_store=store)
        return self.app(app) if self.app is not None else app


def redis_options(settings: Settings) -> dict[str, Any]:
    """The arguments production gives ``RedisSessionStore`` for ``settings`` (no observer)."""
    if settings.redis_url is None:
        raise ValueError("this bug-zoo variant runs on Redis: use --store redis")
    return {
        "url": settings.redis_url,
        "auto_extend": settings.auto_extend,
        "applied_limit": settings.applied_ids_limit,
        "socket_timeout": settings.redis_timeout,
    }
