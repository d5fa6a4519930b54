"""The per-client rate limit (``KATO_RATE_LIMIT``): no one client can take a worker for itself.

Each worker process keeps a token bucket per client address (the peer uvicorn reports; behind a
proxy, uvicorn's ``--forwarded-allow-ips`` decides whether ``X-Forwarded-For`` is believed). A
bucket holds ``burst`` tokens and refills at ``rate`` per second; each request takes one, and a
request that finds none is answered 429 ``RATE_LIMITED`` with ``Retry-After`` before it is routed
or its body is read. The table is bounded: past ``max_clients`` addresses the least recently seen
is forgotten (it comes back full, which errs towards serving). ``/health`` and ``/metrics`` are
never limited, so probes and scrapers keep working while a client is throttled.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from kato.exceptions import RateLimitedError
from kato.service.errors import error_response

__all__ = ["RateLimiter", "TokenBuckets"]

_EXEMPT = frozenset({"/health", "/health/", "/metrics", "/metrics/"})


class TokenBuckets:
    """Token buckets by key: ``take(key)`` is ``None`` when a token was taken, else the seconds
    until one is back."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        max_clients: int = 65536,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.max_clients = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str) -> float | None:
        now = self._clock()
        tokens, then = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * self.rate)
        waited = None
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            waited = (1.0 - tokens) / self.rate
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return waited


class RateLimiter:
    """ASGI middleware answering 429 to a client whose bucket is empty (module docstring)."""

    def __init__(self, app: ASGIApp, *, rate: float, burst: int) -> None:
        self.app = app
        self.buckets = TokenBuckets(rate, burst)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in _EXEMPT:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        wait = self.buckets.take(str(client[0]) if client else "")
        if wait is None:
            await self.app(scope, receive, send)
            return
        error = RateLimitedError(
            f"Too many requests from this client; retry in {wait:.2f} s",
            details={"retry_after_s": round(wait, 3)},
        )
        response = error_response(error, scope.get("state", {}).get("request_id"))
        response.headers["Retry-After"] = str(max(1, math.ceil(wait)))
        await response(scope, receive, send)
