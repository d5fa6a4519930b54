"""The bug zoo: each historical failure of sessions.md (R1–R11) rebuilt on purpose.

A variant is the production service with one broken part put back — a session store, an
ASGI layer in front of the app — named after the failure it reproduces. ``kato lab`` serves one
with ``python -m kato.lab.zoo serve --variant NAME`` (the ``http`` target, when
``Experiment.variant`` is not ``"production"``), runs the scenario that exposes it, and the
checker named beside it reports the anomaly; the same scenario against the production store
reports none. Nothing in ``kato.service`` or ``kato.cli`` imports this package.

============================  ====  ==================  ================
variant                       row   exposing scenario   flagged by
============================  ====  ==================  ================
r1-read-writeback             R1    shared-session      no_lost_updates
r2-process-lock               R2    shared-session ×4   no_lost_updates
r3-per-worker-memory          R3    read-after-create   read_your_writes
r4-resurrect-on-delete        R4    delete-race         resurrection
r5-stale-expires-at           R5    ttl                 read_your_writes
r6-keys-count                 R6    ttl                 counts
r7-shared-processor           R7    lifecycle           isolation
r8-swallowed-errors           R8    many-sessions       read_your_writes
r9-retry-without-idempotency  R9    many-sessions †     linearizable_stm
r10-path-middleware           R10   lifecycle           counts
r11-effects-after-commit      R11   learn-race ×4 ‡     ltm_effects
============================  ====  ==================  ================

(×4: four workers. †: 20 % of observe responses lost and a retrying client, in both runs; the
production comparison's client sends an idempotency key. ‡: under the ``ltm-lock`` fault, in
both runs.) Each variant's module docstring states
the failure, its mechanism, and why the production store does not have it. Variants change the
production store only through its documented seams (``commit``, ``refresh``, ``queue_writers``;
see :mod:`kato.sessions.redis`) or a :class:`~kato.lab.zoo._variant.StoreLayer` in front of it,
or switch off the core's outbox (R11).
"""

from __future__ import annotations

from importlib import import_module

from kato.lab.zoo._variant import Variant

__all__ = ["VARIANTS", "Variant"]

#: Every variant by its ``--variant`` name, in failure-table order (one module each).
VARIANTS: dict[str, Variant] = {
    variant.name: variant
    for variant in (
        import_module(f"{__name__}.{module}").VARIANT
        for module in (
            "r1_read_writeback",
            "r2_process_lock",
            "r3_per_worker_memory",
            "r4_resurrect_on_delete",
            "r5_stale_expires_at",
            "r6_keys_count",
            "r7_shared_processor",
            "r8_swallowed_errors",
            "r9_retry_without_idempotency",
            "r10_path_middleware",
            "r11_effects_after_commit",
        )
    )
}
