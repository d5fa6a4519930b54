"""The engine's operations: pure functions from (session state, input, config, LTM view) to a step.

Each operation returns a :class:`Step`: the new session state, the result the caller reports,
and the node effects to apply *after* the session write commits (sessions.md guarantee 3).
Nothing here reads a clock, a random source, the network or a file, so the same inputs give the
same step, byte for byte, in any process.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from kato.engine.accumulators import average_emotives, drop_zero_emotives, reduce_metadata
from kato.engine.config import EngineConfig
from kato.engine.limits import check_stm
from kato.engine.ltm import ClearNode, Effect, LearnPattern, LTMView, MemoryLTM, RegisterVector
from kato.engine.naming import pattern_hash, vector_symbol
from kato.engine.predictions import predict
from kato.engine.state import Observation, SessionState
from kato.exceptions import EmptySTMError

__all__ = [
    "Step",
    "clear_all",
    "clear_stm",
    "learn",
    "observe",
    "observe_sequence",
]


@dataclass(frozen=True, slots=True)
class Step:
    """The outcome of one engine operation."""

    state: SessionState
    result: dict[str, Any]
    effects: tuple[Effect, ...] = ()


def _processing_label(node_id: str) -> str:
    return f"Node-{node_id}-PatternProcessor-unknown-process"


def observe(
    state: SessionState,
    observation: Observation,
    config: EngineConfig,
    ltm: LTMView,
    *,
    node_id: str,
    unique_id: str,
) -> Step:
    """engine.md §2: one observation, its predictions, and auto-learn.

    Raises ``StmFullError`` or ``LimitExceededError`` (:mod:`kato.engine.limits`) before
    anything changes when the observation would take the work over the config's bounds.

    ``unique_id`` is the id to report when the observation carries none (the caller makes it,
    so the engine stays free of randomness).
    """
    uid = observation.unique_id or unique_id
    effects: list[Effect] = []
    vector_symbols: tuple[str, ...] = ()
    if observation.vectors:
        name = vector_symbol(observation.vectors)
        vector_symbols = (name,)
        summed = tuple(float(sum(column)) for column in zip(*observation.vectors, strict=True))
        effects.append(RegisterVector(name, summed))
    strings = tuple(sorted(observation.strings)) if config.sort_symbols else observation.strings
    symbols = vector_symbols + strings

    cap = config.accumulator_max_entries
    emotives_acc = state.emotives_accumulator
    current_emotives = state.current_emotives
    if observation.emotives:
        emotives_acc = (*emotives_acc, dict(observation.emotives))[-cap:]
        current_emotives = average_emotives(emotives_acc)
    metadata_acc = state.metadata_accumulator
    if observation.metadata:
        metadata_acc = (*metadata_acc, dict(observation.metadata))[-cap:]

    new = replace(
        state,
        percept_data={
            "strings": list(observation.strings),
            "vectors": [list(vector) for vector in observation.vectors],
            "emotives": dict(observation.emotives),
            "metadata": dict(observation.metadata),
            "path": [_processing_label(node_id)],
        },
        time=state.time + 1,
        emotives_accumulator=emotives_acc,
        metadata_accumulator=metadata_acc,
        current_emotives=current_emotives,
        symbols=symbols,
        last_unique_id=uid,
    )
    learned: str | None = None
    if observation.is_empty:
        new = replace(new, predictions=(), future_potentials=())
    else:
        stm = (*new.stm, symbols)
        check_stm(stm, config)
        predictions, futures = predict(stm, ltm, config)
        new = replace(
            new, stm=stm, predictions=tuple(predictions), future_potentials=tuple(futures)
        )
        new, learned = _auto_learn(new, config, effects)
    new = _cap_stm(new, config)
    result = {
        "status": "observed",
        "unique_id": uid,
        "auto_learned_pattern": learned,
        "symbols": list(symbols),
        "time": new.time,
        "stm_length": len(new.stm),
    }
    return Step(new, result, tuple(effects))


def _auto_learn(
    state: SessionState, config: EngineConfig, effects: list[Effect]
) -> tuple[SessionState, str | None]:
    """§2.3: learn when STM reaches ``max_pattern_length`` (N) events.

    CLEAR leaves STM empty; ROLLING keeps its last N−1 events.
    """
    limit = config.max_pattern_length
    count = len(state.stm)
    if limit <= 0 or count < limit:
        return state, None
    keep = state.stm[count - (limit - 1) :] if config.stm_mode == "ROLLING" and limit > 1 else ()
    state, name = _learn(state, config, effects)
    return replace(state, stm=keep), name or None


def _learn(
    state: SessionState, config: EngineConfig, effects: list[Effect]
) -> tuple[SessionState, str]:
    """§3 steps 1–4 on a non-empty STM: the pattern's name (``""`` if < 2 symbols)."""
    events = state.stm
    cleared = replace(state, stm=(), emotives_accumulator=(), metadata_accumulator=())
    if sum(len(event) for event in events) < 2:
        return cleared, ""
    averaged = average_emotives(state.emotives_accumulator)
    name = pattern_hash(events)
    effects.append(
        LearnPattern(
            name=name,
            events=events,
            emotives=drop_zero_emotives(averaged) if averaged else None,
            metadata={k: tuple(v) for k, v in reduce_metadata(state.metadata_accumulator).items()},
            persistence=config.persistence,
        )
    )
    return cleared, "PTRN|" + name


def _cap_stm(state: SessionState, config: EngineConfig) -> SessionState:
    if len(state.stm) <= config.stm_max_events:
        return state
    return replace(state, stm=state.stm[-config.stm_max_events :])


def learn(state: SessionState, config: EngineConfig) -> Step:
    """§3: learn the STM as a pattern. Raises ``EmptySTMError`` (and changes nothing) if empty."""
    if not state.stm:
        raise EmptySTMError()
    effects: list[Effect] = []
    new, name = _learn(state, config, effects)
    return Step(new, {"status": "learned", "pattern_name": name}, tuple(effects))


def clear_stm(state: SessionState) -> Step:
    """§6 clear_stm: STM, accumulators, emotives, symbols, percept and predictions emptied."""
    new = replace(
        state,
        stm=(),
        emotives_accumulator=(),
        metadata_accumulator=(),
        current_emotives={},
        symbols=(),
        percept_data={},
        predictions=(),
        future_potentials=(),
    )
    return Step(new, {"status": "cleared"})


def clear_all(state: SessionState) -> Step:
    """§6 clear_all: clear_stm for this session, and wipe the node's whole LTM."""
    cleared = clear_stm(state)
    return Step(cleared.state, {"status": "cleared", "scope": "all"}, (ClearNode(),))


def observe_sequence(
    state: SessionState,
    observations: Sequence[Observation],
    config: EngineConfig,
    ltm: LTMView,
    *,
    node_id: str,
    make_unique_id: Callable[[int], str],
    learn_after_each: bool = False,
    learn_at_end: bool = False,
    clear_stm_between: bool = False,
) -> Step:
    """§6 observe-sequence: a composition of operations applied as one step.

    Later items see what earlier items learned: the engine reads through an overlay that holds
    this step's own effects, while the real store stays untouched until the step commits.
    """
    if not observations:
        empty = {
            "status": "completed",
            "observations_processed": 0,
            "initial_stm_length": len(state.stm),
            "final_stm_length": len(state.stm),
            "results": [],
            "auto_learned_patterns": [],
            "final_learned_pattern": None,
        }
        return Step(state, empty)
    overlay = MemoryLTM(base=ltm)
    effects: list[Effect] = []
    learned: list[str] = []
    results: list[dict[str, Any]] = []
    initial_length = len(state.stm)

    def run(step: Step) -> SessionState:
        overlay.apply(step.effects)
        effects.extend(step.effects)
        return step.state

    for position, observation in enumerate(observations):
        if clear_stm_between and position > 0:
            state = run(clear_stm(state))
        step = observe(
            state, observation, config, overlay, node_id=node_id, unique_id=make_unique_id(position)
        )
        state = run(step)
        if learn_after_each and state.stm:
            learn_step = learn(state, config)
            state = run(learn_step)
            learned.append(learn_step.result["pattern_name"])
        if step.result["auto_learned_pattern"]:
            learned.append(step.result["auto_learned_pattern"])
        results.append(
            {
                "status": "okay",
                "sequence_position": position,
                "stm_length": len(state.stm),
                "time": state.time,
                "unique_id": step.result["unique_id"],
                "auto_learned_pattern": step.result["auto_learned_pattern"],
            }
        )
    final_name = None
    if learn_at_end and state.stm:
        final = learn(state, config)
        state = run(final)
        final_name = final.result["pattern_name"]
        learned.append(final_name)
    result = {
        "status": "completed",
        "observations_processed": len(results),
        "initial_stm_length": initial_length,
        "final_stm_length": len(state.stm),
        "results": results,
        "auto_learned_patterns": learned,
        "final_learned_pattern": final_name,
    }
    return Step(state, result, tuple(effects))
