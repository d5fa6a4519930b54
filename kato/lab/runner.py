"""The runner: the one part of the workbench that owns tasks and clocks.

It plays a :class:`~kato.lab.scenarios.Plan` through one client per program, concurrently,
binding session slots to real ids as creates complete, and records every operation as an
:class:`~kato.lab.history.Op` with ``time.monotonic_ns()`` stamps. Closed loop: each client
issues its next step when the previous one completes. Open loop (``spec.rate``): step *i* of
client *c* is *intended* at ``t0 + (i·concurrency + c) / rate`` whatever happened before; if it
starts late its latency still counts from the intended time (no coordinated omission).

A time-based run (``spec.duration_s``) plays the scenario in rounds: each round is a fresh plan
(:func:`~kato.lab.scenarios.plan` with ``round_``: new sessions, new symbols) with its own setup
and final steps, and rounds follow each other until ``duration_s`` after the clients started;
a client stops issuing the moment that deadline passes, and the round's final steps close it.

With a :class:`~kato.lab.nemesis.Nemesis` it also plays the fault window concurrently with the
clients: ``fault.start()`` at ``at_s`` after the clients start (``None``: once a third of the
first round's operations have completed), ``fault.stop()`` ``for_s`` after that (each in a
thread), both recorded as ``f="fault"`` ops of client ``"nemesis"`` with
``args {name, phase}``; the final steps run only after the fault has ended. A final ``read_stm``
whose outcome is unknown (the service may still be recovering) is issued again, as a new op, for
up to :data:`FINAL_RETRY_S` seconds, so that what was lost is decided.

A client that raises (anything but a cancellation) does not stop the run: its operation is
recorded as ``unknown``, with the exception, and the program goes on. With a ``journal`` path
every op is also appended to a :class:`~kato.lab.history.Journal` as it completes; if the run
is cancelled (Ctrl-C) or fails, the ops still in flight are written there as ``unknown`` with no
completion, so what was done up to then can be judged with ``kato lab check``. Setting the
``stop`` event (the explorer's Stop button, from any thread) ends the programs early the same
way — their ops in flight become ``unknown`` — but then still plays the final steps, so the
shortened history is judged like a whole one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from kato.engine import pattern_name
from kato.lab.clients import LabClient, Result
from kato.lab.history import History, Journal, Op
from kato.lab.nemesis import Nemesis
from kato.lab.scenarios import Plan, Step
from kato.lab.scenarios import plan as plan_round
from kato.lab.spec import Experiment

__all__ = [
    "FINAL_RETRY_S",
    "NoopClient",
    "execute",
    "generator_ceiling",
    "run_blocking",
]

T = TypeVar("T")

log = logging.getLogger("kato.lab")

#: Runs with a fault: how long an unknown final read is retried (seconds).
FINAL_RETRY_S = 15.0

_NEEDS_SESSION = {"observe", "read_stm", "read_session", "delete", "learn"}


class _Recorder:
    """Numbers ops, keeps the completed ones, and hands each to the journal and ``on_op``."""

    def __init__(self, on_op: Callable[[Op], None] | None, journal: Journal | None) -> None:
        self.ops: list[Op] = []
        self.next_id = 0
        self.on_op = on_op
        self.journal = journal
        self.in_flight: dict[int, Op] = {}

    def new(self, client: str, f: str, session_id: str | None, args: dict[str, Any]) -> Op:
        op = Op(self.next_id, client, f, session_id, args, time.monotonic_ns())
        self.next_id += 1
        self.in_flight[op.op_id] = op
        return op

    def done(self, op: Op, result: Result) -> None:
        op.complete_ns = time.monotonic_ns()
        op.outcome = result.outcome  # type: ignore[assignment]
        op.value = result.value
        op.error_code = result.error_code
        op.http_status = result.http_status
        op.worker_pid = result.worker_pid
        self._keep(op)
        if self.on_op is not None:
            self.on_op(op)

    def abandon(self, why: str) -> None:
        """Keep the ops still in flight as ``unknown`` and never completed (the run stopped)."""
        for op in list(self.in_flight.values()):
            op.value = {"error": why}
            self._keep(op)

    def _keep(self, op: Op) -> None:
        if self.in_flight.pop(op.op_id, None) is None:
            return  # abandoned already: a shielded fault stop that finished after the run
        self.ops.append(op)
        if self.journal is not None:
            self.journal.write(op)


def _crashed(exc: BaseException) -> Result:
    """What a call that raised leaves: it may or may not have happened (``unknown``)."""
    return Result("unknown", {"error": f"{type(exc).__name__}: {exc}"[:300]})


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
) -> Op | None:
    if step.f == "sleep":
        await asyncio.sleep(float(step.args["s"]))
        return None
    sid = slots.get(step.slot) if step.slot else None
    args = _args(step, node)
    op = recorder.new(name, step.f, sid, args)
    op.intended_ns = intended_ns
    if step.f in _NEEDS_SESSION and sid is None:  # its create failed: nothing to act on
        recorder.done(op, Result("fail", error_code="NO_SESSION"))
        return op
    issued = Step(step.f, step.slot, args, step.other_connection)
    try:
        # asyncio.timeout, not wait_for: 3.11's wait_for returns a result that was ready when
        # its task was cancelled and drops the cancellation, so a Ctrl-C ran the plan to its end
        async with asyncio.timeout(timeout_s):
            result = await client.call(issued, sid)
    except TimeoutError:
        result = Result("unknown", {"error": f"no answer within {timeout_s} s"})
    except Exception as exc:  # a client's bug costs its operation, never the run's history
        log.warning("%s %s: the client raised %r", name, step.f, exc)
        result = _crashed(exc)
    if step.f == "create" and result.outcome == "ok" and step.slot:
        slots[step.slot] = op.session_id = result.value["session_id"]
    recorder.done(op, result)
    return op


async def _fault_op(nemesis: Nemesis, phase: str, recorder: _Recorder) -> Op:
    """Call the fault's ``start`` or ``stop`` in a thread and record it as a nemesis op."""
    fault = nemesis.fault
    op = recorder.new("nemesis", "fault", None, {"name": fault.name, "phase": phase})
    try:
        value = await asyncio.to_thread(fault.start if phase == "start" else fault.stop)
        result = Result("ok", dict(value))
    except Exception as exc:  # recorded as indeterminate, with the error: never hidden
        log.warning("fault %s %s failed: %r", fault.name, phase, exc)
        result = _crashed(exc)
    recorder.done(op, result)
    return op


async def _play(nemesis: Nemesis, started_ns: int, recorder: _Recorder, planned: int) -> None:
    """One fault window, ``at_s`` after ``started_ns`` (``None``: once a third of the ``planned``
    operations have completed); ``stop`` even if cancelled meanwhile."""
    if nemesis.at_s is None:
        before = len(recorder.ops)
        while len(recorder.ops) - before < planned / 3:
            await asyncio.sleep(0.002)
    else:
        await _sleep_until(started_ns + int(nemesis.at_s * 1e9))
    begun = await _fault_op(nemesis, "start", recorder)
    try:
        await _sleep_until(begun.invoke_ns + int(nemesis.for_s * 1e9))
    finally:
        await asyncio.shield(_fault_op(nemesis, "stop", recorder))


async def _cancel_on(stop: threading.Event, programs: asyncio.Future[Any]) -> None:
    """Cancel ``programs`` once ``stop`` is set (polled: the event is set from another thread)."""
    while not stop.is_set() and not programs.done():
        await asyncio.sleep(0.05)
    programs.cancel()


async def _sleep_until(at_ns: int) -> None:
    delay = (at_ns - time.monotonic_ns()) / 1e9
    if delay > 0:
        await asyncio.sleep(delay)


async def execute(
    spec: Experiment,
    plan: Plan,
    make_client: Callable[[], LabClient],
    *,
    node: str,
    on_op: Callable[[Op], None] | None = None,
    nemesis: Nemesis | None = None,
    journal: Path | None = None,
    context: Mapping[str, Any] | None = None,
    stop: threading.Event | None = None,
) -> History:
    """Run ``plan`` (setup, then every program concurrently — and the ``nemesis``'s fault window,
    if any — then final) and return its history, also written to ``journal`` as it goes (a new
    JSON-lines file, its first line the spec and ``context``, e.g. the target it ran on)."""
    with contextlib.ExitStack() as stack:
        writer = None
        if journal is not None:
            params = {"params": json.loads(spec.to_json()), **(context or {})}
            writer = stack.enter_context(contextlib.closing(Journal(journal, params)))
        recorder = _Recorder(on_op, writer)
        try:
            await _execute(spec, plan, make_client, recorder, node, nemesis, stop)
        except BaseException as exc:
            recorder.abandon(f"in flight when the run stopped ({type(exc).__name__})")
            raise
    return History(recorder.ops)


async def _execute(
    spec: Experiment,
    plan: Plan,
    make_client: Callable[[], LabClient],
    recorder: _Recorder,
    node: str,
    nemesis: Nemesis | None,
    stop: threading.Event | None = None,
) -> None:
    slots: dict[str, str] = {}
    control = make_client()
    clients = [make_client() for _ in plan.programs]
    playing: asyncio.Task[None] | None = None
    try:
        for step in plan.setup:
            await _issue(step, control, "setup", slots, recorder, node, spec.timeout_s)
        started = time.monotonic_ns()
        deadline = None if spec.duration_s is None else started + int(spec.duration_s * 1e9)
        if nemesis is not None:
            planned = sum(step.f != "sleep" for steps in plan.programs for step in steps)
            playing = asyncio.create_task(_play(nemesis, started, recorder, planned))

        async def program(c: int, steps: Sequence[Step], begun: int) -> None:
            for i, step in enumerate(steps):
                intended = None
                if spec.rate is not None:
                    intended = begun + int((i * len(clients) + c) / spec.rate * 1e9)
                    await _sleep_until(intended)
                if deadline is not None and time.monotonic_ns() >= deadline:
                    return
                await _issue(
                    step, clients[c], f"c{c}", slots, recorder, node, spec.timeout_s, intended
                )

        round_, round_started = 0, started
        while True:
            programs = asyncio.gather(
                *(program(c, steps, round_started) for c, steps in enumerate(plan.programs))
            )
            watching = None if stop is None else asyncio.create_task(_cancel_on(stop, programs))
            try:
                await programs
            except asyncio.CancelledError:
                if stop is None or not stop.is_set():
                    raise
                if playing is not None:  # its stop() still runs (shielded)
                    playing.cancel()
                    await asyncio.gather(playing, return_exceptions=True)
                recorder.abandon("in flight when the run was stopped")
            finally:
                if watching is not None:
                    watching.cancel()
            stopped = stop is not None and stop.is_set()
            last = stopped or deadline is None or time.monotonic_ns() >= deadline
            if last and playing is not None and not playing.done():
                await playing
            await _final(spec, plan, control, slots, recorder, node, nemesis)
            if last:
                break
            round_ += 1
            plan = plan_round(spec, round_=round_)
            for step in plan.setup:
                await _issue(step, control, "setup", slots, recorder, node, spec.timeout_s)
            round_started = time.monotonic_ns()
    finally:
        if playing is not None and not playing.done():
            playing.cancel()
            await asyncio.gather(playing, return_exceptions=True)
        closed = await asyncio.gather(
            *(c.close() for c in [control, *clients]), return_exceptions=True
        )
        for error in closed:
            if error is not None:
                log.warning("closing a client failed: %r", error)


async def _final(
    spec: Experiment,
    plan: Plan,
    control: LabClient,
    slots: dict[str, str],
    recorder: _Recorder,
    node: str,
    nemesis: Nemesis | None,
) -> None:
    """A round's final steps; with a nemesis an unknown final read is issued again."""
    for step in plan.final:
        op = await _issue(step, control, "final", slots, recorder, node, spec.timeout_s)
        deadline = time.monotonic() + FINAL_RETRY_S
        while (
            nemesis is not None
            and op is not None
            and op.f == "read_stm"
            and op.outcome == "unknown"
            and time.monotonic() < deadline
        ):
            await asyncio.sleep(0.1)
            op = await _issue(step, control, "final", slots, recorder, node, spec.timeout_s)


def run_blocking(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """``asyncio.run(make())`` — from a thread of its own when this thread already runs an
    event loop (a Jupyter kernel), so the workbench works the same in a script and a notebook."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = asyncio.run(make())
        except BaseException as exc:  # re-raised in the caller's thread below
            box["error"] = exc

    thread = threading.Thread(target=target, name="kato-lab-run")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["result"]  # type: ignore[no-any-return]


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
    closed = spec.with_(rate=None, operations=spec.plan_operations, duration_s=None)
    begun = time.perf_counter()
    history = run_blocking(lambda: execute(closed, quiet, NoopClient, node="noop"))
    elapsed = time.perf_counter() - begun
    return len(history) / elapsed if elapsed > 0 else float("inf")
