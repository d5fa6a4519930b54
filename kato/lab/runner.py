"""The runner: the one part of the workbench that owns tasks and clocks.

It plays a :class:`~kato.lab.scenarios.Plan` through one client per program, concurrently,
binding session slots to real ids as creates complete, and records every operation as an
:class:`~kato.lab.history.Op` with ``time.monotonic_ns()`` stamps. Closed loop: each client
issues its next step when the previous one completes. Open loop (``spec.rate``): step *i* of
client *c* is *intended* at ``t0 + (i·concurrency + c) / rate`` whatever happened before; if it
starts late its latency still counts from the intended time (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

from kato.engine import pattern_name
from kato.lab.clients import LabClient, Result
from kato.lab.history import History, Op
from kato.lab.scenarios import Plan, Step
from kato.lab.spec import Experiment

__all__ = ["NoopClient", "execute", "generator_ceiling"]

_NEEDS_SESSION = {"observe", "read_stm", "read_session", "delete", "learn"}


class _Recorder:
    def __init__(self, on_op: Callable[[Op], None] | None) -> None:
        self.ops: list[Op] = []
        self.next_id = 0
        self.on_op = on_op

    def new(self, client: str, f: str, session_id: str | None, args: dict[str, Any]) -> Op:
        op = Op(self.next_id, client, f, session_id, args, time.monotonic_ns())
        self.next_id += 1
        return op

    def done(self, op: Op, result: Result) -> None:
        op.complete_ns = time.monotonic_ns()
        op.outcome = result.outcome  # type: ignore[assignment]
        op.value = result.value
        op.error_code = result.error_code
        op.http_status = result.http_status
        op.worker_pid = result.worker_pid
        self.ops.append(op)
        if self.on_op is not None:
            self.on_op(op)


def _args(step: Step, node: str) -> dict[str, Any]:
    args = {k: (node if v == "{node}" else v) for k, v in step.args.items()}
    if step.f == "get_pattern":
        args["pattern_name"] = pattern_name([[s] for s in args["sequence"]])
    return args


async def _issue(
    step: Step,
    client: LabClient,
    name: str,
    slots: dict[str, str],
    recorder: _Recorder,
    node: str,
    timeout_s: float,
    intended_ns: int | None = None,
) -> None:
    if step.f == "sleep":
        await asyncio.sleep(float(step.args["s"]))
        return
    sid = slots.get(step.slot) if step.slot else None
    args = _args(step, node)
    op = recorder.new(name, step.f, sid, args)
    op.intended_ns = intended_ns
    if step.f in _NEEDS_SESSION and sid is None:  # its create failed: nothing to act on
        recorder.done(op, Result("fail", error_code="NO_SESSION"))
        return
    issued = Step(step.f, step.slot, args, step.other_connection)
    try:
        result = await asyncio.wait_for(client.call(issued, sid), timeout_s)
    except TimeoutError:
        result = Result("unknown", {"error": f"no answer within {timeout_s} s"})
    if step.f == "create" and result.outcome == "ok" and step.slot:
        slots[step.slot] = op.session_id = result.value["session_id"]
    recorder.done(op, result)


async def execute(
    spec: Experiment,
    plan: Plan,
    make_client: Callable[[], LabClient],
    *,
    node: str,
    on_op: Callable[[Op], None] | None = None,
) -> History:
    """Run ``plan`` (setup, then every program concurrently, then final) and return its history."""
    recorder = _Recorder(on_op)
    slots: dict[str, str] = {}
    control = make_client()
    clients = [make_client() for _ in plan.programs]
    try:
        for step in plan.setup:
            await _issue(step, control, "setup", slots, recorder, node, spec.timeout_s)
        started = time.monotonic_ns()

        async def program(c: int, steps: Sequence[Step]) -> None:
            for i, step in enumerate(steps):
                intended = None
                if spec.rate is not None:
                    intended = started + int((i * len(plan.programs) + c) / spec.rate * 1e9)
                    delay = (intended - time.monotonic_ns()) / 1e9
                    if delay > 0:
                        await asyncio.sleep(delay)
                await _issue(
                    step, clients[c], f"c{c}", slots, recorder, node, spec.timeout_s, intended
                )

        await asyncio.gather(*(program(c, steps) for c, steps in enumerate(plan.programs)))
        for step in plan.final:
            await _issue(step, control, "final", slots, recorder, node, spec.timeout_s)
    finally:
        await asyncio.gather(*(c.close() for c in [control, *clients]))
    return History(recorder.ops)


class NoopClient:
    """Answers every step at once: measures the runner's own ceiling, not a server's."""

    async def call(self, step: Step, session_id: str | None) -> Result:
        if step.f == "create":
            return Result("ok", {"session_id": f"noop-{step.slot}"})
        return Result("ok")

    async def close(self) -> None:
        return None


def generator_ceiling(spec: Experiment, plan: Plan) -> float:
    """Operations per second the runner issues against :class:`NoopClient` for this plan."""
    quiet = Plan(
        [s for s in plan.setup if s.f != "sleep"],
        [[s for s in p if s.f != "sleep"] for p in plan.programs],
        [s for s in plan.final if s.f != "sleep"],
    )
    closed = spec.with_(rate=None)
    begun = time.perf_counter()
    history = asyncio.run(execute(closed, quiet, NoopClient, node="noop"))
    elapsed = time.perf_counter() - begun
    return len(history) / elapsed if elapsed > 0 else float("inf")
