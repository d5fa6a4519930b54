"""R11 — LTM effects applied after the session commit, with nothing kept if that apply fails.

**What users saw:** an acknowledged learn missing from the node's patterns; the retry of an
auto-learning observe answered 200 with its ``auto_learned_pattern``, yet the pattern was 404.

**Mechanism:** a step committed the session (its STM cleared by the learn, its idempotency reply
recorded) and only then applied the learn's effects to the long-term memory. When that apply
failed — another process held SQLite's write lock past the busy timeout, a slow or stopped
MongoDB — the request answered 503, and the effects existed nowhere any more: the session had
moved on, a retry with the same ``unique_id`` replayed the recorded reply, and nothing ever
applied them. This variant is the production service with the core's outbox switched off
(``Kato(outbox=False)``, through :func:`~kato.service.app.create_app`): exactly that code path.

**Why production does not have it:** the committed session record carries the step's pending
effects (its outbox) under the id ``<session id>:<version>``; the LTM records the id in the
same transaction as the effects and never applies an id twice, and pending effects are drained
by the request, by the next request on the session and by each worker's background drainer
(sessions.md guarantee 3).

Exposed by ``learn-race`` under ``ltm-lock`` (20 rounds, the lock 0.5 s in for 2 s, so rounds
fall inside it however loaded the machine): ``ltm_effects`` reports patterns whose final
frequency lacks learns that took effect in their sessions (a learn answered 503 whose session's
next read shows the STM it emptied).
"""

from __future__ import annotations

from kato.lab.zoo._variant import Variant

__all__ = ["VARIANT"]

VARIANT = Variant.of(
    __name__, "learn-race", "ltm_effects", workers=4, concurrency=8, operations=800,
    fault="ltm-lock", fault_for_s=2.0, outbox=False,
)  # fmt: skip
