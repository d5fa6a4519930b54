"""R9 — a client retries an observe whose response was lost, without an idempotency key.

**What users saw:** observations doubled in the STM after a client retry.

**Mechanism:** the service applied a ``POST /observe`` but the response never reached the client
(a proxy timeout, a dropped connection); the client retried the same POST with no ``unique_id``,
and the service, having no way to tell a retry from a new observation, applied it again. The bug
lives in the client, so this variant serves the production app unchanged and the lab's HTTP client
plays the broken client: ``client_retries=2, idempotency=False``. The lost responses are the
exposure, like R8's injected faults: :class:`LoseResponses`, an ASGI layer the zoo server puts in
front of any app with ``--lose-responses FRACTION`` (``Experiment.lost_responses``), applies a
fraction of observe requests and then answers 503 ``RESPONSE_LOST`` instead of their response.
It never drops a retried request (``X-Kato-Retry``), so every step's outcome is decided.

Design: the production comparison runs the *same* lossy layer (the zoo server serves
``--variant production`` behind it) and the same retrying client, with the fix — an idempotency
key per step, reused on every retry (:attr:`Variant.fix`: ``idempotency=True``).

**Why production does not have it:** an observe carrying a ``unique_id`` is applied at most once:
the store records the reply under the id in the same compare-and-set that applies it, and a retry
with that id gets the recorded reply back (sessions.md: the session's applied observation ids).

Exposed by ``many-sessions`` with 20 % of observe responses lost: ``linearizable_stm`` reports a
``duplicate-event`` (an observe sent once, seen twice in the STM).
"""

from __future__ import annotations

import json
import os
import random
from typing import Any

from kato.lab.clients import RETRY_HEADER
from kato.lab.zoo._variant import Variant

__all__ = ["LOST_CODE", "VARIANT", "LoseResponses"]

#: The error code of a response the lossy layer dropped.
LOST_CODE = "RESPONSE_LOST"
_RETRY = RETRY_HEADER.lower().encode()


class LoseResponses:
    """ASGI layer: applies a ``fraction`` of observe requests, then loses their response (503)."""

    def __init__(self, app: Any, fraction: float, *, seed: int | None = None) -> None:
        self.app = app
        self.fraction = fraction
        self._dice = random.Random(os.getpid() if seed is None else seed)

    def _loses(self, scope: Any) -> bool:
        if scope["type"] != "http" or scope["method"] != "POST":
            return False
        if not str(scope["path"]).rstrip("/").endswith("/observe"):
            return False
        if any(name.lower() == _RETRY for name, _ in scope.get("headers", [])):
            return False
        return self._dice.random() < self.fraction

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if not self._loses(scope):
            await self.app(scope, receive, send)
            return

        async def discard(message: Any) -> None:  # the real response: applied, never delivered
            return None

        await self.app(scope, receive, discard)
        body = json.dumps(
            {"error": {"code": LOST_CODE, "message": "the response was lost (bug zoo, R9)"}}
        ).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})


VARIANT = Variant.of(
    __name__, "many-sessions", "linearizable_stm", workers=1, concurrency=4, operations=160,
    lost_responses=0.2, client_retries=2, idempotency=False, fix={"idempotency": True},
)
