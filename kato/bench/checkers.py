"""Checker benchmark: how long each checker takes to judge 10k and 100k-operation histories.

    python -m kato.bench.checkers            # 10k and 100k operations
    python -m kato.bench.checkers --quick    # 10k only

The histories come from :func:`simulate`, a seeded simulation of a correct store: concurrent
clients append to shared sessions, read them, run create → observe → read → delete lifecycles,
learn and look up patterns and count sessions, with a few operations of unknown outcome (which
took effect or not). No checker may find them invalid; some say "unknown", because an op of
unknown outcome can leave a session undecided (never read). For each size it prints the time of
each checker on its own (indexing the history included), and of ``check`` as a whole (one index
shared by all), the best of ``--repeat`` runs. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kato.bench.rows import Goal, Row, size_label
from kato.lab.checkers import ALL, as_index, check
from kato.lab.history import History, Op, Outcome

__all__ = ["simulate"]

_THINK_NS = 50_000
_LATENCY_NS = 800_000
_TIMEOUT_NS = 20_000_000


@dataclass(slots=True)
class _Step:
    """A planned operation: who, what, when, and the instant it takes effect (if it does)."""

    client: str
    f: str
    session_id: str | None
    args: dict[str, Any]
    invoke: int
    complete: int | None
    at: int
    outcome: Outcome
    applies: bool
    value: dict[str, Any] = field(default_factory=dict)
    error_code: str | None = None


class _Client:
    """One client's plan: its own clock and random source, never another client's state."""

    def __init__(self, name: str, rng: random.Random, unknown_rate: float) -> None:
        self.name = name
        self.rng = rng
        self.unknown_rate = unknown_rate
        self.clock = 0
        self.steps: list[_Step] = []
        self.sent = 0

    def step(
        self, f: str, sid: str | None, args: dict[str, Any] | None = None, *, certain: bool = False
    ) -> _Step:
        rng = self.rng
        invoke = self.clock + rng.randint(0, _THINK_NS)
        latency = max(1_000, int(rng.lognormvariate(math.log(_LATENCY_NS), 0.6)))
        if not certain and rng.random() < self.unknown_rate:
            complete: int | None = invoke + _TIMEOUT_NS
            step = _Step(
                self.name,
                f,
                sid,
                args or {},
                invoke,
                complete if rng.random() < 0.9 else None,
                invoke + rng.randint(0, _TIMEOUT_NS),
                "unknown",
                rng.random() < 0.5,
            )
            self.clock = invoke + _TIMEOUT_NS
        else:
            at = invoke + rng.randint(0, latency)
            step = _Step(self.name, f, sid, args or {}, invoke, invoke + latency, at, "ok", True)
            self.clock = invoke + latency
        self.steps.append(step)
        return step

    def event(self) -> list[str]:
        self.sent += 1
        symbol = f"{self.name}.{self.sent}"
        return [symbol] if self.rng.random() < 0.9 else [f"{symbol}a", f"{symbol}b"]


def simulate(
    *,
    ops: int,
    seed: int = 0,
    clients: int = 32,
    unknown_rate: float = 0.01,
    events_per_session: int = 40,
) -> History:
    """A valid history of about ``ops`` operations from a simulated correct store.

    Each client's plan depends only on its own random source (seeded from ``seed``) and on what
    it was told; effects are applied in the order of their linearization points, each inside its
    op's ``[invoke, complete]`` (unknown ops: anywhere in their timeout, or never).
    """
    team = [_Client(f"c{n}", random.Random(f"{seed}/{n}"), unknown_rate) for n in range(clients)]
    shared = [f"shared-{k}" for k in range(max(1, int(0.45 * ops / events_per_session)))]
    for k, sid in enumerate(shared):
        team[k % clients].step("create", sid, {"node_id": "n0", "ttl_seconds": 3600}, certain=True)
    _barrier(team)
    budget = max(1, (ops - 2 * len(shared)) // clients)
    for client in team:
        while len(client.steps) < budget:
            _act(client, shared)
    _barrier(team)
    for k, sid in enumerate(shared):
        team[k % clients].step("read_stm", sid, certain=True)
    return _apply([step for client in team for step in client.steps])


def _barrier(team: Sequence[_Client]) -> None:
    latest = max(client.clock for client in team)
    for client in team:
        client.clock = latest


def _act(client: _Client, shared: list[str]) -> None:
    choice = client.rng.random()
    if choice < 0.45:
        sid = client.rng.choice(shared)
        client.step("observe", sid, {"strings": client.event()})
    elif choice < 0.65:
        client.step("read_stm", client.rng.choice(shared))
    elif choice < 0.70:
        client.step("count", None)
    elif choice < 0.95:
        _lifecycle(client)
    else:
        _learn(client)


def _lifecycle(client: _Client) -> None:
    sid = f"{client.name}-s{len(client.steps)}"
    node = f"n{client.rng.randint(0, 3)}"
    if client.step("create", sid, {"node_id": node, "ttl_seconds": 600}).outcome != "ok":
        return  # no reply, no session id: the client cannot use it
    for _ in range(client.rng.randint(1, 4)):
        client.step("observe", sid, {"strings": client.event()})
    client.step("read_stm", sid)
    client.step("delete", sid)


def _learn(client: _Client) -> None:
    sid = f"{client.name}-l{len(client.steps)}"
    if client.step("create", sid, {"node_id": "learners"}).outcome != "ok":
        return
    client.step("observe", sid, {"strings": ["x"]})
    client.step("observe", sid, {"strings": ["y"]})
    if client.step("learn", sid, {"node_id": "learners"}).outcome == "ok":
        args = {"node_id": "learners", "pattern_name": "PTRN|x_y"}
        client.step("get_pattern", None, args)
    client.step("delete", sid)


@dataclass(slots=True)
class _Store:
    """The correct store the simulation models: atomic operations, one at a time."""

    sessions: dict[str, list[tuple[str, ...]]] = field(default_factory=dict)
    patterns: dict[tuple[str, str], int] = field(default_factory=dict)

    def apply(self, step: _Step) -> tuple[dict[str, Any], str | None]:
        """The value of ``step`` at its linearization point, or the error code it fails with."""
        sid, f = step.session_id, step.f
        if f == "create":
            assert sid is not None
            self.sessions[sid] = []
            return {"session_id": sid}, None
        if f == "count":
            return {"count": len(self.sessions)}, None
        if f == "get_pattern":
            key = (step.args["node_id"], step.args["pattern_name"])
            if key not in self.patterns:
                return {}, "PATTERN_NOT_FOUND"
            return {"frequency": self.patterns[key]}, None
        if sid not in self.sessions:
            return {}, "SESSION_NOT_FOUND"
        stm = self.sessions[sid]
        if f == "observe":
            stm.append(tuple(sorted(step.args["strings"])))
            return {"time": len(stm), "stm_length": len(stm)}, None
        if f == "read_stm":
            return {"stm": [list(event) for event in stm]}, None
        if f == "delete":
            del self.sessions[sid]
            return {}, None
        if f == "learn":
            if not stm:
                return {}, "STM_EMPTY"
            name = "PTRN|" + "_".join(symbol for event in stm for symbol in event)
            key = (step.args["node_id"], name)
            self.patterns[key] = self.patterns.get(key, 0) + 1
            stm.clear()
            return {"pattern_name": name}, None
        raise ValueError(f"the simulated store has no operation {f!r}")


def _apply(steps: list[_Step]) -> History:
    store = _Store()
    for step in sorted((s for s in steps if s.applies), key=lambda s: s.at):
        value, error = store.apply(step)
        if step.outcome == "ok":
            step.value, step.error_code = value, error
            if error is not None:
                step.outcome = "fail"
    ordered = sorted(steps, key=lambda s: (s.invoke, s.client))
    return History(
        Op(
            op_id=n,
            client=step.client,
            f=step.f,
            session_id=None if step.f == "create" and step.outcome != "ok" else step.session_id,
            args=step.args,
            invoke_ns=step.invoke,
            complete_ns=step.complete,
            outcome=step.outcome,
            value=step.value,
            error_code=step.error_code,
        )
        for n, step in enumerate(ordered)
    )


def _timed(label: str, run: Any, repeat: int) -> tuple[str, float, Any]:
    """The best of ``repeat`` runs (the others are the machine's noise) and the result."""
    best, result = math.inf, None
    for _ in range(repeat):
        started = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - started)
    return label, best, result


def _measure(history: History, repeat: int) -> list[tuple[str, float, Any]]:
    """Each checker alone (indexing included), then ``check`` (one index for all)."""
    rows = [_timed("index", lambda: as_index(history), repeat)]
    for name, checker in ALL.items():
        rows.append(_timed(name, lambda checker=checker: checker(history), repeat))
    rows.append(_timed("check (all)", lambda: check(history), repeat))
    return rows


def checker_rows(sizes: Sequence[int], *, repeat: int = 1, seed: int = 1) -> list[Row]:
    """``kato bench``'s checker rows: ``check`` (every checker) beside indexing the history alone
    (the one pass every checker needs), for histories of each size."""
    rows = []
    for size in sizes:
        history = simulate(ops=size, seed=seed)
        _, indexing, _ = _timed("index", lambda history=history: as_index(history), repeat)
        _, checking, verdicts = _timed("check", lambda history=history: check(history), repeat)
        rows.append(
            Row(
                section="workbench",
                name=f"checkers.{size_label(size)}_ops",
                ours=checking,
                reference=indexing,
                unit="s",
                reference_is="indexing the history once",
                goal=Goal("ours", "<=", 2.0) if size >= 100_000 else None,
                note=f"{len(history):,} ops, every checker; valid: {verdicts['valid']}",
            )
        )
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="10k operations only")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (best is shown)")
    args = parser.parse_args(argv)
    sizes = [10_000] if args.quick else [10_000, 100_000]
    for size in sizes:
        history = simulate(ops=size, seed=args.seed)
        sessions = len(history.by_session())
        print(f"\n{len(history):,} ops, {sessions:,} sessions (seed {args.seed})")
        print(f"  {'checker':<20} {'seconds':>8}  valid   (best of {args.repeat})")
        rows = _measure(history, args.repeat)
        for label, seconds, result in rows:
            valid = getattr(result, "valid", None)
            if isinstance(result, dict):
                valid = result["valid"]
            shown = "" if valid is None else str(valid)
            print(f"  {label:<20} {seconds:>8.3f}  {shown}")


if __name__ == "__main__":
    main()
