"""Scenarios: pure, seeded generators of the operations an experiment issues.

A scenario turns an :class:`~kato.lab.spec.Experiment` and an explicit ``random.Random(seed)``
into a :class:`Plan`: setup steps, one program (a list of steps) per client, and final steps run
after every client is done. It never touches the module-level ``random``, a clock or the network;
sessions are named by *slots* (``"shared"``, ``"c3-1"``) that the runner binds to real session
ids as creates complete. Every observed symbol is unique in the run, so checkers can tell exactly
which observation a symbol came from.

========================  =====================================================================
scenario                  each client …                                reveals
========================  =====================================================================
``lifecycle``             create → observe ×3 → read STM → delete, ...  SESSION_NOT_FOUND, success
``shared-session``        observes into ONE session; then one read     lost updates
``many-sessions``         observes into its own session                isolation, order
``read-after-create``     creates, reads on another connection         write→read visibility
``ttl``                   keeps some short-TTL sessions alive, idles   expiry, sliding extension
``learn-race``            learns the round's sequence in its own        LTM frequency == learns
                          session, round after round (R11)
``mixed``                 a weighted mix of everything                 throughput and latency
``delete-race``           observes into each session while one deletes  resurrection (R4)
                          it mid-burst; every session read at the end
========================  =====================================================================
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kato.lab.spec import Experiment

__all__ = ["LEARNED_SEQUENCE", "STM_BUDGET", "Plan", "Step", "learned_sequence", "plan"]

#: The sequence every client of ``learn-race`` learns in its first round.
LEARNED_SEQUENCE = ("alpha", "beta", "gamma")
#: Operations of one ``learn-race`` round (three observes, the learn, a read of the STM).
LEARN_ROUND_OPS = 5
#: The pause after each ``learn-race`` round, so the rounds span a fault window.
LEARN_ROUND_PAUSE_S = 0.1


def learned_sequence(round_number: int) -> tuple[str, ...]:
    """The sequence every client of ``learn-race`` learns in round ``round_number``."""
    if round_number == 0:
        return LEARNED_SEQUENCE
    return tuple(f"{symbol}{round_number}" for symbol in LEARNED_SEQUENCE)


@dataclass(frozen=True, slots=True)
class Step:
    """One operation to issue: ``f`` on the session bound to ``slot``, with ``args``.

    ``f`` is an operation of :data:`kato.lab.history.OPERATIONS`, or ``"sleep"`` (``args.s``
    seconds; not recorded). ``other_connection`` asks the client to use a different connection
    (and so, behind several workers, most likely another worker) than its previous operation.
    """

    f: str
    slot: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    other_connection: bool = False


@dataclass(frozen=True, slots=True)
class Plan:
    setup: list[Step]
    programs: list[list[Step]]
    final: list[Step]

    @property
    def size(self) -> int:
        return len(self.setup) + sum(len(p) for p in self.programs) + len(self.final)


def plan(spec: Experiment, rng: random.Random | None = None, *, round_: int = 0) -> Plan:
    """The operations of ``spec``; the same spec (and seed) always gives the same plan.

    ``round_`` > 0: a further round of a time-based run, drawn from its own seed, with its slots,
    observed symbols and learned sequences prefixed ``r<round>.`` (fresh sessions, and every
    symbol still unique in the run)."""
    if round_ == 0:
        return _SCENARIOS[spec.scenario](spec, rng or random.Random(spec.seed))
    first = _SCENARIOS[spec.scenario](spec, rng or random.Random(f"{spec.seed}/{round_}"))
    prefix = f"r{round_}."
    return Plan(
        [_renamed(s, prefix) for s in first.setup],
        [[_renamed(s, prefix) for s in program] for program in first.programs],
        [_renamed(s, prefix) for s in first.final],
    )


def _renamed(step: Step, prefix: str) -> Step:
    args = dict(step.args)
    for name in ("strings", "sequence"):
        if name in args:
            args[name] = [prefix + symbol for symbol in args[name]]
    slot = None if step.slot is None else prefix + step.slot
    return Step(step.f, slot, args, step.other_connection)


def _per_client(spec: Experiment, cost: int) -> int:
    """How many repetitions of a ``cost``-step cycle each client runs to spend the budget."""
    return max(1, spec.plan_operations // (cost * spec.concurrency))


def _observe(slot: str, symbol: str) -> Step:
    return Step("observe", slot, {"strings": [symbol]})


def _create(slot: str, **args: Any) -> Step:
    return Step("create", slot, {"node_id": "{node}", **args})


def _lifecycle(spec: Experiment, rng: random.Random) -> Plan:
    programs = []
    for c in range(spec.concurrency):
        steps: list[Step] = []
        for i in range(_per_client(spec, 7)):
            slot = f"c{c}-{i}"
            steps.append(_create(slot))
            steps += [_observe(slot, f"{slot}-o{k}") for k in range(3)]
            steps.append(Step("read_stm", slot))
            if rng.random() < 0.2:  # every other one spelled ``/sessions/count/`` (R10)
                steps.append(Step("count", args={"trailing_slash": True} if i % 2 else {}))
            steps.append(Step("delete", slot))
        programs.append(steps)
    return Plan([], programs, [Step("count"), Step("count", args={"trailing_slash": True})])


#: STM keeps at most ``stm_max_events`` (1000) events: scenarios that read a whole STM back stay
#: below it, so every acknowledged observation must still be there at the end.
STM_BUDGET = 900


def _shared_session(spec: Experiment, rng: random.Random) -> Plan:
    each = max(1, min(spec.plan_operations - 2, STM_BUDGET) // spec.concurrency)
    programs = [
        [_observe("shared", f"c{c}-o{i}") for i in range(each)] for c in range(spec.concurrency)
    ]
    return Plan([_create("shared")], programs, [Step("read_stm", "shared")])


def _many_sessions(spec: Experiment, rng: random.Random) -> Plan:
    setup = [_create(f"s{c}") for c in range(spec.concurrency)]
    budget = spec.plan_operations - 2 * spec.concurrency
    each = max(1, min(budget // spec.concurrency, STM_BUDGET))
    programs = []
    for c in range(spec.concurrency):
        steps = []
        for i in range(each):
            steps.append(_observe(f"s{c}", f"s{c}-o{i}"))
            if rng.random() < 0.1:
                steps.append(Step("read_stm", f"s{c}", other_connection=True))
        programs.append(steps)
    final = [Step("read_stm", f"s{c}") for c in range(spec.concurrency)]
    return Plan(setup, programs, final)


def _read_after_create(spec: Experiment, rng: random.Random) -> Plan:
    programs = []
    for c in range(spec.concurrency):
        steps: list[Step] = []
        for i in range(_per_client(spec, 3)):
            slot = f"c{c}-{i}"
            steps += [
                _create(slot),
                Step("read_session", slot, other_connection=True),
                Step("delete", slot),
            ]
        programs.append(steps)
    return Plan([], programs, [])


def _ttl(spec: Experiment, rng: random.Random) -> Plan:
    ttl = spec.ttl_seconds
    setup = [_create(f"s{c}", ttl_seconds=ttl) for c in range(spec.concurrency)]
    touches = max(1, min(6, spec.plan_operations // (2 * spec.concurrency)))
    programs = []
    for c in range(spec.concurrency):
        slot = f"s{c}"
        if c % 2 == 0:  # kept alive: touched well within every TTL window
            steps = []
            for _ in range(touches):
                steps += [Step("sleep", args={"s": ttl / 3}), Step("read_stm", slot)]
        else:  # left idle past its TTL
            steps = [Step("sleep", args={"s": ttl / 3 * touches + ttl * 1.5})]
        programs.append(steps)
    final = [Step("read_stm", f"s{c}") for c in range(spec.concurrency)] + [Step("count")]
    return Plan(setup, programs, final)


def _learn_race(spec: Experiment, rng: random.Random) -> Plan:
    """Every client learns round ``r``'s sequence in its own session, then reads its STM (which
    shows whether a learn that got no answer took effect), then pauses; at the end every
    session is read (which drains what it still has pending) and every round's pattern."""
    rounds = max(1, spec.plan_operations // (spec.concurrency * LEARN_ROUND_OPS))
    setup = [_create(f"s{c}") for c in range(spec.concurrency)]
    programs = []
    for c in range(spec.concurrency):
        slot, steps = f"s{c}", []
        for r in range(rounds):
            steps += [_observe(slot, symbol) for symbol in learned_sequence(r)]
            steps += [Step("learn", slot, {"node_id": "{node}"}), Step("read_stm", slot)]
            steps.append(Step("sleep", args={"s": LEARN_ROUND_PAUSE_S}))
        programs.append(steps)
    final = [Step("read_stm", f"s{c}") for c in range(spec.concurrency)]
    final += [
        Step("get_pattern", None, {"node_id": "{node}", "sequence": list(learned_sequence(r))})
        for r in range(rounds)
    ]
    return Plan(setup, programs, final)


_MIX: list[tuple[str, float]] = [
    ("observe", 0.55),
    ("read_stm", 0.15),
    ("create", 0.08),
    ("delete", 0.05),
    ("learn", 0.07),
    ("count", 0.05),
    ("read_session", 0.05),
]


def _mixed(spec: Experiment, rng: random.Random) -> Plan:
    names = [name for name, _ in _MIX]
    weights = [weight for _, weight in _MIX]
    each = max(1, spec.plan_operations // spec.concurrency)
    programs = []
    still_live: list[str] = []  # read once more at the end, so every session is judged
    for c in range(spec.concurrency):
        live: list[str] = []
        made = 0
        steps: list[Step] = []
        while len(steps) < each:
            f = rng.choices(names, weights)[0]
            if f == "create" or not live:
                slot = f"c{c}-{made}"
                made += 1
                live.append(slot)
                steps.append(_create(slot))
            elif f == "observe":
                slot = rng.choice(live)
                steps.append(_observe(slot, f"{slot}-o{len(steps)}"))
            elif f == "delete":
                slot = live.pop(rng.randrange(len(live)))
                steps.append(Step("delete", slot))
            elif f == "count":
                steps.append(Step("count"))
            elif f == "learn":
                steps.append(Step("learn", rng.choice(live), {"node_id": "{node}"}))
            else:
                steps.append(Step(f, rng.choice(live), other_connection=f == "read_session"))
        programs.append(steps)
        still_live.extend(live)
    final = [Step("read_stm", slot) for slot in still_live] + [Step("count")]
    return Plan([], programs, final)


#: Observes each client sends into each session of ``delete-race`` (its deleter sends half).
DELETE_RACE_BURST = 4


def _delete_race(spec: Experiment, rng: random.Random) -> Plan:
    burst, clients = DELETE_RACE_BURST, spec.concurrency
    sessions = max(1, (spec.plan_operations - 1) // (clients * burst + 3))
    slots = [f"d{j}" for j in range(sessions)]
    programs = []
    for c in range(clients):
        steps: list[Step] = []
        for j, slot in enumerate(slots):
            observes = [_observe(slot, f"{slot}-c{c}-o{i}") for i in range(burst)]
            if j % clients == c:  # the deleter: half its burst, then the delete, mid-burst
                steps += [*observes[: burst // 2], Step("delete", slot)]
            else:
                steps += observes
        programs.append(steps)
    final = [Step(f, slot) for slot in slots for f in ("read_session", "read_stm")]
    return Plan([_create(slot) for slot in slots], programs, [*final, Step("count")])


_SCENARIOS: dict[str, Callable[[Experiment, random.Random], Plan]] = {
    "lifecycle": _lifecycle,
    "shared-session": _shared_session,
    "many-sessions": _many_sessions,
    "read-after-create": _read_after_create,
    "ttl": _ttl,
    "learn-race": _learn_race,
    "mixed": _mixed,
    "delete-race": _delete_race,
}
