"""Property-based tests (hypothesis) of the pure engine, against engine.md §1-§5.

Every test drives ``kato.engine`` directly: a list of operations (observe / learn / clear_stm /
clear_all) is applied to a fresh ``SessionState`` and ``MemoryLTM``, and the effects of each
step are applied to the store by the driver, as the session layer would. Strings come from a
small alphabet so that learned patterns overlap and predictions actually appear.

The module doubles as a script: ``python test_properties.py`` reads ``{"ops": ..., "config": ...}``
as JSON on stdin and prints the driver's JSON dump; the determinism test runs it in a second
process with another ``PYTHONHASHSEED``.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from kato.engine import (
    ClearNode,
    EngineConfig,
    LearnPattern,
    MemoryLTM,
    Observation,
    SessionState,
    Step,
    clear_all,
    clear_stm,
    learn,
    observe,
    pattern_hash,
    pattern_name,
    validate_overrides,
    vector_symbol,
)
from kato.exceptions import EmptySTMError, InvalidConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]
TOL = 1e-9

# Shared settings: no deadline (subprocesses, long op lists), no example database on disk.
BASE = settings(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

Op = list[Any]  # ["observe", payload] | ["learn"] | ["clear_stm"] | ["clear_all"]
OnStep = Callable[[Op, SessionState, "Step | None", MemoryLTM], None]

# --------------------------------------------------------------------------------------------
# strategies
# --------------------------------------------------------------------------------------------

ALPHABET = ["a", "b", "c", "d", "e"]
TRICKY = [
    "",
    "'",
    '"',
    "\\",
    "\n",
    "\r\t",
    "it's",
    'say "hi"',
    "both'\"",
    "café",
    "\x00",
    "\x7f",
    "\u2028",
    "\U0001f600",
    "Zoo",
    "apple",
    "10",
    "2",
]

symbols_small = st.sampled_from(ALPHABET)
symbols_any = st.one_of(st.sampled_from(TRICKY), st.text(max_size=6))

emotives_st = st.one_of(
    st.just({}),
    st.dictionaries(
        st.sampled_from(["joy", "fear"]),
        st.one_of(st.integers(-3, 3), st.floats(-2.0, 2.0, allow_nan=False)),
        max_size=2,
    ),
)
metadata_st = st.one_of(
    st.just({}),
    st.dictionaries(
        st.sampled_from(["src", "tag"]),
        st.one_of(st.sampled_from(["x", "y"]), st.integers(0, 3), st.booleans(), st.none()),
        max_size=2,
    ),
)
vectors_st = st.integers(1, 3).flatmap(
    lambda dim: st.lists(
        st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.0]), min_size=dim, max_size=dim),
        min_size=1,
        max_size=2,
    )
)


@st.composite
def observe_payloads(draw: st.DrawFn, symbols: st.SearchStrategy[str] = symbols_small) -> Op:
    payload: dict[str, Any] = {"strings": draw(st.lists(symbols, max_size=3))}
    if draw(st.integers(0, 9)) == 0:
        payload["vectors"] = draw(vectors_st)
    if draw(st.integers(0, 3)) == 0:
        payload["emotives"] = draw(emotives_st)
    if draw(st.integers(0, 4)) == 0:
        payload["metadata"] = draw(metadata_st)
    return ["observe", payload]


@st.composite
def operations(draw: st.DrawFn, symbols: st.SearchStrategy[str] = symbols_small) -> Op:
    roll = draw(st.integers(0, 19))
    if roll < 13:
        return draw(observe_payloads(symbols))
    if roll < 18:
        return ["learn"]
    if roll < 19:
        return ["clear_stm"]
    return ["clear_all"]


def op_lists(max_size: int = 25, min_size: int = 0) -> st.SearchStrategy[list[Op]]:
    return st.lists(operations(), min_size=min_size, max_size=max_size)


@st.composite
def configs(draw: st.DrawFn, **fixed: Any) -> dict[str, Any]:
    """Keyword arguments for ``EngineConfig`` (JSON-ready); ``fixed`` pins some of them."""
    config = {
        "max_pattern_length": draw(st.sampled_from([0, 0, 0, 1, 2, 3, 4])),
        "stm_mode": draw(st.sampled_from(["CLEAR", "ROLLING", "ROLLING", "rolling", "BOGUS"])),
        "recall_threshold": draw(
            st.one_of(st.sampled_from([0.0, 0.1, 0.3, 0.5, 0.6]), st.floats(0.0, 1.0))
        ),
        "max_predictions": draw(st.sampled_from([1, 2, 3, 100])),
        "sort_symbols": draw(st.booleans()),
        "persistence": draw(st.integers(1, 4)),
    }
    config.update(fixed)
    return config


# --------------------------------------------------------------------------------------------
# the driver
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Run:
    state: SessionState
    ltm: MemoryLTM
    results: list[dict[str, Any]]
    text: str


def _effect_json(effect: Any) -> list[Any]:
    return [type(effect).__name__, dataclasses.asdict(effect)]


def ltm_document(ltm: MemoryLTM) -> dict[str, Any]:
    return {
        "patterns": [p.to_document() for p in ltm.patterns()],
        "symbols": [s.to_dict() for s in ltm.all_symbol_stats()],
        "totals": ltm.totals().to_dict(),
    }


def run(ops: Sequence[Op], config: Mapping[str, Any], on_step: OnStep | None = None) -> Run:
    """Apply ``ops`` to a fresh session and node; ``on_step`` sees each step before its effects
    are applied (``step`` is ``None`` for a learn rejected with EMPTY_STM)."""
    cfg = EngineConfig(**config)
    state, ltm = SessionState(), MemoryLTM()
    results: list[dict[str, Any]] = []
    for index, op in enumerate(ops):
        kind = op[0]
        step: Step | None
        if kind == "observe":
            observation = Observation.parse(op[1])
            step = observe(state, observation, cfg, ltm, node_id="props", unique_id=f"obs-{index}")
        elif kind == "learn":
            try:
                step = learn(state, cfg)
            except EmptySTMError as error:
                step = None
                results.append({"op": kind, "error": error.code, "state": state.to_dict()})
        elif kind == "clear_stm":
            step = clear_stm(state)
        elif kind == "clear_all":
            step = clear_all(state)
        else:  # pragma: no cover - the strategies make only these
            raise ValueError(kind)
        if on_step is not None:
            on_step(op, state, step, ltm)
        if step is None:
            continue
        ltm.apply(step.effects)
        state = step.state
        results.append(
            {
                "op": kind,
                "result": step.result,
                "effects": [_effect_json(e) for e in step.effects],
                "state": state.to_dict(),
            }
        )
    text = json.dumps({"results": results, **ltm_document(ltm)})
    return Run(state, ltm, results, text)


def flat(events: Sequence[Sequence[str]]) -> list[str]:
    return [symbol for event in events for symbol in event]


def new_stm(before: SessionState, step: Step) -> tuple[tuple[str, ...], ...]:
    """The STM a non-empty observe predicted on: the old STM plus the new event."""
    return (*before.stm, tuple(step.result["symbols"]))


# --------------------------------------------------------------------------------------------
# 1. determinism
# --------------------------------------------------------------------------------------------


@settings(BASE, max_examples=60)
@given(ops=op_lists(30), config=configs())
def test_same_ops_give_byte_identical_json(ops: list[Op], config: dict[str, Any]) -> None:
    first = run(ops, config).text
    second = run(json.loads(json.dumps(ops)), dict(config)).text
    assert first == second


@settings(BASE, max_examples=5)
@given(ops=op_lists(30), config=configs(), seed=st.integers(0, 2**32 - 1))
def test_other_process_and_hash_seed_give_byte_identical_json(
    ops: list[Op], config: dict[str, Any], seed: int
) -> None:
    expected = run(ops, config).text
    env = {**os.environ, "PYTHONHASHSEED": str(seed)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    answer = subprocess.run(
        [sys.executable, str(Path(__file__).resolve())],
        input=json.dumps({"ops": ops, "config": config}),
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=env,
        timeout=120,
        check=False,
    )
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.rstrip("\n") == expected


# --------------------------------------------------------------------------------------------
# 2. symbol order within an event
# --------------------------------------------------------------------------------------------


@settings(BASE, max_examples=150)
@given(
    prefix=op_lists(8),
    strings=st.lists(symbols_any, max_size=6),
    vectors=st.one_of(st.just([]), vectors_st),
    sort_symbols=st.booleans(),
)
def test_event_symbol_order(
    prefix: list[Op], strings: list[str], vectors: list[list[float]], sort_symbols: bool
) -> None:
    config = {"sort_symbols": sort_symbols, "max_pattern_length": 0}
    before = run(prefix, config)
    payload: dict[str, Any] = {"strings": strings, "vectors": vectors}
    step = observe(
        before.state,
        Observation.parse(payload),
        EngineConfig(**config),
        before.ltm,
        node_id="props",
        unique_id="obs-x",
    )
    expected_strings = sorted(strings) if sort_symbols else list(strings)
    vector_part = [vector_symbol(vectors)] if vectors else []
    assert all(s.startswith("VCTR|") for s in vector_part)
    expected = vector_part + expected_strings
    assert step.result["symbols"] == expected
    assert list(step.state.symbols) == expected
    assert step.state.percept_data["strings"] == strings  # raw, as received
    if strings or vectors:
        assert step.state.stm == (*before.state.stm, tuple(expected))
    else:
        assert step.state.stm == before.state.stm
        assert step.state.predictions == () and step.state.future_potentials == ()
    assert step.state.time == before.state.time + 1


# --------------------------------------------------------------------------------------------
# 3. STM bounds
# --------------------------------------------------------------------------------------------


@settings(BASE, max_examples=120)
@given(ops=op_lists(30), config=configs(), cap=st.integers(1, 5))
def test_stm_never_exceeds_cap_or_pattern_length(
    ops: list[Op], config: dict[str, Any], cap: int
) -> None:
    config = {**config, "stm_max_events": cap}
    limit = config["max_pattern_length"]

    def check(op: Op, before: SessionState, step: Step | None, ltm: MemoryLTM) -> None:
        if step is None:
            return
        after = step.state
        assert len(after.stm) <= cap
        assert step.result.get("stm_length", len(after.stm)) == len(after.stm)
        if op[0] != "observe":
            return
        if limit > 0:
            assert len(after.stm) < limit
            assert len(after.stm) <= limit - 1
        elif not Observation.parse(op[1]).is_empty:
            # No auto-learn: the oldest events beyond the cap are dropped.
            assert after.stm == new_stm(before, step)[-cap:]

    run(ops, config, check)


# --------------------------------------------------------------------------------------------
# 4. auto-learn: CLEAR vs ROLLING
# --------------------------------------------------------------------------------------------


def check_auto_learn(
    op: Op, before: SessionState, step: Step | None, limit: int, mode: str
) -> None:
    """§2.3 for one observe step with ``max_pattern_length = limit`` and raw ``stm_mode``."""
    if step is None or op[0] != "observe" or Observation.parse(op[1]).is_empty:
        return
    rolling = mode == "ROLLING"  # any other string behaves as CLEAR
    full = new_stm(before, step)
    learned = step.result["auto_learned_pattern"]
    learn_effects = [e for e in step.effects if isinstance(e, LearnPattern)]
    if len(full) < limit:
        assert learned is None and not learn_effects
        assert step.state.stm == full
        return
    event("auto-learn " + ("ROLLING" if rolling else "CLEAR"))
    if len(flat(full)) >= 2:
        assert learned == pattern_name(full)
        assert [e.events for e in learn_effects] == [full]
    else:
        assert learned is None and not learn_effects
    if rolling and limit > 1:
        assert step.state.stm == full[-(limit - 1) :]
    else:
        assert step.state.stm == ()
    assert step.result["stm_length"] == len(step.state.stm)
    # The learn emptied the accumulators; ROLLING does not restore the kept events' ones.
    assert step.state.emotives_accumulator == ()
    assert step.state.metadata_accumulator == ()


@settings(BASE, max_examples=150)
@given(ops=op_lists(30, min_size=4), config=configs(), limit=st.integers(1, 4))
def test_auto_learn_clear_and_rolling(ops: list[Op], config: dict[str, Any], limit: int) -> None:
    config = {**config, "max_pattern_length": limit}
    mode = config["stm_mode"]
    run(ops, config, lambda op, before, step, ltm: check_auto_learn(op, before, step, limit, mode))


@settings(BASE, max_examples=100)
@given(
    prefix=op_lists(20, min_size=4),
    last=observe_payloads(),
    config=configs(max_pattern_length=0),
    limit=st.integers(1, 4),
)
def test_auto_learn_after_pattern_length_is_lowered(
    prefix: list[Op], last: Op, config: dict[str, Any], limit: int
) -> None:
    """STM grown with N = 0, then N lowered below its length: the next observe learns it all
    (CLEAR) or rolls it to N - 1 events (ROLLING)."""
    done = run(prefix, config)
    cfg = EngineConfig(**{**config, "max_pattern_length": limit})
    step = observe(
        done.state, Observation.parse(last[1]), cfg, done.ltm, node_id="props", unique_id="x"
    )
    check_auto_learn(last, done.state, step, limit, config["stm_mode"])


# --------------------------------------------------------------------------------------------
# 5. learn on a too-short STM
# --------------------------------------------------------------------------------------------

side_only = st.builds(
    lambda e, m: ["observe", {"strings": [], "emotives": e, "metadata": m}],
    emotives_st,
    metadata_st,
)


@settings(BASE, max_examples=100)
@given(
    prefix=op_lists(15),
    side_before=st.lists(side_only, max_size=3),
    single=st.one_of(
        st.builds(lambda s: {"strings": [s]}, symbols_any),
        st.builds(lambda v: {"vectors": v}, vectors_st),
    ),
    side_after=st.lists(side_only, max_size=3),
)
def test_learn_single_symbol_learns_nothing(
    prefix: list[Op],
    side_before: list[Op],
    single: dict[str, Any],
    side_after: list[Op],
) -> None:
    ops = [*prefix, ["clear_stm"], *side_before, ["observe", single], *side_after]
    done = run(ops, {"max_pattern_length": 0})
    state = done.state
    assert len(flat(state.stm)) == 1
    ltm_before = json.dumps(ltm_document(done.ltm))
    step = learn(state, EngineConfig())
    assert step.result == {"status": "learned", "pattern_name": ""}
    assert step.effects == ()
    assert step.state.stm == ()
    assert step.state.emotives_accumulator == ()
    assert step.state.metadata_accumulator == ()
    # learn keeps current_emotives, time and the last predictions (§1.7, §3, B8).
    assert step.state.current_emotives == state.current_emotives
    assert step.state.time == state.time
    assert step.state.predictions == state.predictions
    assert step.state.future_potentials == state.future_potentials
    done.ltm.apply(step.effects)
    assert json.dumps(ltm_document(done.ltm)) == ltm_before


@settings(BASE, max_examples=100)
@given(prefix=op_lists(15), side=st.lists(side_only, max_size=3))
def test_learn_on_empty_stm_raises_and_changes_nothing(prefix: list[Op], side: list[Op]) -> None:
    done = run([*prefix, ["clear_stm"], *side], {"max_pattern_length": 0})
    state = done.state
    assert state.stm == ()
    snapshot = json.dumps(state.to_dict())
    ltm_before = json.dumps(ltm_document(done.ltm))
    with pytest.raises(EmptySTMError):
        learn(state, EngineConfig())
    assert json.dumps(state.to_dict()) == snapshot
    assert json.dumps(ltm_document(done.ltm)) == ltm_before


# --------------------------------------------------------------------------------------------
# 6 + 7. predictions: reconstruction, matches, ranking, futures
# --------------------------------------------------------------------------------------------


def _is_subsequence(part: Sequence[str], whole: Sequence[str]) -> bool:
    items = iter(whole)
    return all(any(x == y for y in items) for x in part)


def _matched(pattern_flat: Sequence[str], state: Sequence[str]) -> int:
    matcher = difflib.SequenceMatcher(None, pattern_flat, state, autojunk=False)
    return sum(block.size for block in matcher.get_matching_blocks())


def check_predictions(
    op: Op, before: SessionState, step: Step | None, ltm: MemoryLTM, cfg: EngineConfig
) -> None:
    if step is None or op[0] != "observe":
        return
    predictions = step.state.predictions
    futures = step.state.future_potentials
    if Observation.parse(op[1]).is_empty:
        assert predictions == () and futures == ()
        return
    stm = new_stm(before, step)
    state = flat(stm)
    if len(state) < 2:
        assert predictions == () and futures == ()
        return

    # Exhaustive candidate rule (§4.2), brute force over the whole node.
    ensemble = {}
    for pattern in ltm.patterns():
        if not set(pattern.flat) & set(state):
            continue
        m = _matched(pattern.flat, state)
        if m >= 1 and 2.0 * m / (len(pattern.flat) + len(state)) >= cfg.recall_threshold:
            ensemble[pattern.name] = pattern
    names = [p["name"] for p in predictions]
    assert len(names) == len(set(names))
    assert set(names) <= set(ensemble)
    assert len(predictions) == min(len(ensemble), cfg.max_predictions)
    event(f"predictions: {min(len(predictions), 3)}{'+' if len(predictions) > 3 else ''}")

    for p in predictions:
        record = ensemble[p["name"]]
        sequence = p["sequence"]
        # 6. reconstruction and match bookkeeping
        assert p["past"] + p["present"] + p["future"] == sequence
        assert sequence == [list(e) for e in record.events]
        assert p["name"] == pattern_hash(sequence)
        assert p["frequency"] == record.frequency
        pattern_flat = flat(sequence)
        m = _matched(pattern_flat, state)
        assert len(p["matches"]) == m
        assert _is_subsequence(p["matches"], state)
        assert _is_subsequence(p["matches"], pattern_flat)
        assert p["similarity"] == pytest.approx(2 * m / (len(pattern_flat) + len(state)), abs=TOL)
        assert -TOL <= p["similarity"] <= 1 + TOL
        assert p["similarity"] >= cfg.recall_threshold
        assert p["evidence"] == pytest.approx(m / len(pattern_flat), abs=TOL)
        assert p["present"], "a kept pattern has at least one matched event"
        assert len(p["missing"]) == len(stm) and len(p["extras"]) == len(stm)
        for i, stm_event in enumerate(stm):
            expected = p["present"][i] if i < len(p["present"]) else []
            assert all(s in expected and s not in stm_event for s in p["missing"][i])
            assert all(s in stm_event and s not in expected for s in p["extras"][i])
        # 7. per-prediction ranges
        assert -TOL <= p["predictive_information"] <= 1 + TOL
        assert p["potential"] == pytest.approx(
            p["similarity"] * p["predictive_information"], abs=TOL
        )
        if not p["future"]:
            assert p["predictive_information"] == 0 and p["potential"] == 0

    # 7. ranking (§4.7)
    keys = [(-p["potential"], -p["similarity"], -p["frequency"], p["name"]) for p in predictions]
    assert keys == sorted(keys)
    # Entropies are properties of the state, the same for every prediction (B4).
    assert len({p["normalized_entropy"] for p in predictions}) <= 1
    assert len({p["global_normalized_entropy"] for p in predictions}) <= 1

    # 7. future_potentials (§4.6)
    if not predictions:
        assert futures == ()
        return
    if futures:
        total = sum(f["aggregate_potential"] for f in futures)
        assert total == pytest.approx(1.0, abs=TOL)
        fkeys = [
            (-f["aggregate_potential"], -f["total_weighted_frequency"], json.dumps(f["future"]))
            for f in futures
        ]
        assert fkeys == sorted(fkeys)
        assert all(f["future"] and f["supporting_patterns"] >= 1 for f in futures)
    if len(ensemble) <= cfg.max_predictions:  # every ensemble member was returned
        with_future = [p for p in predictions if p["future"]]
        assert sum(f["supporting_patterns"] for f in futures) == len(with_future)
        groups = {json.dumps([sorted(e) for e in p["future"]]) for p in with_future}
        assert len(futures) == len(groups)


@settings(BASE, max_examples=200)
@given(ops=op_lists(30, min_size=6), config=configs())
def test_prediction_invariants(ops: list[Op], config: dict[str, Any]) -> None:
    cfg = EngineConfig(**config)
    run(ops, config, lambda op, before, step, ltm: check_predictions(op, before, step, ltm, cfg))


@st.composite
def teach_then_probe(draw: st.DrawFn) -> list[Op]:
    """Learn a few patterns, then observe: predictions are common, not incidental."""
    ops: list[Op] = []
    for _ in range(draw(st.integers(1, 4))):
        events = draw(
            st.lists(st.lists(symbols_small, min_size=1, max_size=2), min_size=2, max_size=4)
        )
        ops += [["observe", {"strings": e}] for e in events] + [["learn"]]
        if draw(st.booleans()):
            ops += [["observe", {"strings": e}] for e in events] + [["learn"]]
    ops += draw(st.lists(observe_payloads(), min_size=2, max_size=5))
    return ops


@settings(BASE, max_examples=200)
@given(ops=teach_then_probe(), config=configs(max_pattern_length=0))
def test_prediction_invariants_after_teaching(ops: list[Op], config: dict[str, Any]) -> None:
    cfg = EngineConfig(**config)
    run(ops, config, lambda op, before, step, ltm: check_predictions(op, before, step, ltm, cfg))


# --------------------------------------------------------------------------------------------
# 8. pattern names
# --------------------------------------------------------------------------------------------


def spec_symbol_repr(symbol: str) -> str:
    """§1.3's description of a symbol's repr, written out independently of ``repr``."""
    quote = '"' if "'" in symbol and '"' not in symbol else "'"
    out = [quote]
    for ch in symbol:
        if ch == "\\":
            out.append("\\\\")
        elif ch == quote:
            out.append("\\" + quote)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) <= 0xFF:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append(quote)
    return "".join(out)


def spec_pattern_text(events: Sequence[Sequence[str]]) -> str:
    inner = ", ".join("[" + ", ".join(spec_symbol_repr(s) for s in e) + "]" for e in events)
    return "[" + inner + "]"


pattern_events = st.lists(st.lists(symbols_any, min_size=1, max_size=4), min_size=1, max_size=4)


@pytest.mark.parametrize(
    ("events", "digest"),
    [
        ([["hello"], ["world"]], "7d0678ba6305341ce0d25133ab086208656a562f"),
        ([["a"], ["b"], ["c"]], "b98534b32c1d7489d4ce1a48724aa65aeecbdba9"),
        ([["hello", "world"], ["bar", "foo"]], "0405596c4d7172818bfeb508925e83226d4c4971"),
        ([["it's"]], "d4cfde952d0558ee0e1a8444978a16a1c4ecbfb3"),
    ],
)
def test_pattern_hash_spec_examples(events: list[list[str]], digest: str) -> None:
    assert pattern_hash(events) == digest
    assert hashlib.sha1(spec_pattern_text(events).encode("utf-8")).hexdigest() == digest


@settings(BASE, max_examples=300)
@given(events=pattern_events)
def test_pattern_hash_is_sha1_of_repr(events: list[list[str]]) -> None:
    text = repr([list(e) for e in events])
    assert text == spec_pattern_text(events)
    digest = hashlib.sha1(text.encode("utf-8")).hexdigest()
    assert pattern_hash(events) == digest
    assert pattern_hash(tuple(tuple(e) for e in events)) == digest
    assert pattern_name(events) == "PTRN|" + digest


@settings(BASE, max_examples=100)
@given(events=pattern_events)
def test_learned_name_is_hash_of_stm(events: list[list[str]]) -> None:
    assume(len(flat(events)) >= 2)
    ops: list[Op] = [["observe", {"strings": e}] for e in events] + [["learn"]]
    done = run(ops, {"sort_symbols": False})
    digest = hashlib.sha1(repr(events).encode("utf-8")).hexdigest()
    assert done.results[-1]["result"]["pattern_name"] == "PTRN|" + digest
    [document] = [p.to_document() for p in done.ltm.patterns()]
    assert document["name"] == "PTRN|" + digest
    assert document["pattern_data"] == events


# --------------------------------------------------------------------------------------------
# 9. configuration validation
# --------------------------------------------------------------------------------------------

INDEXERS = ["VI", "LSH", "ANNOY", "FAISS"]
any_text = st.text(max_size=8)

VALID: dict[str, st.SearchStrategy[Any]] = {
    "max_pattern_length": st.integers(0, 1000),
    "stm_mode": st.one_of(st.sampled_from(["CLEAR", "ROLLING"]), any_text),
    "persistence": st.integers(1, 100),
    "recall_threshold": st.one_of(st.floats(0.0, 1.0), st.sampled_from([0, 1])),
    "max_predictions": st.integers(1, 10000),
    "sort_symbols": st.booleans(),
    "process_predictions": st.booleans(),
    "indexer_type": st.sampled_from(INDEXERS),
}
not_bool = st.one_of(
    st.integers(),
    st.sampled_from(["true", "false", "True", ""]),
    st.floats(allow_nan=False),
    st.lists(st.booleans(), max_size=2),
)
non_integral = st.one_of(
    st.sampled_from([0.5, -2.25, 3.0000001, math.nan, math.inf, -math.inf]),
    st.floats(-1e6, 1e6).map(lambda x: x + 0.5 if x.is_integer() else x),
)
wrong_for_int = st.one_of(
    st.booleans(), any_text, non_integral, st.lists(st.integers(), max_size=2)
)
INVALID: dict[str, st.SearchStrategy[Any]] = {
    "max_pattern_length": st.one_of(st.integers(max_value=-1), wrong_for_int),
    "stm_mode": st.one_of(st.integers(), st.booleans(), st.lists(any_text, max_size=2)),
    "persistence": st.one_of(
        st.sampled_from([0, 101]),
        st.integers(max_value=0),
        st.integers(min_value=101),
        wrong_for_int,
    ),
    "recall_threshold": st.one_of(
        st.floats(max_value=-1e-9),
        st.floats(min_value=1 + 1e-9),
        st.sampled_from([math.nan, math.inf, -math.inf, -1, 2, "0.5", ""]),
        st.booleans(),
        st.lists(st.floats(0, 1), max_size=2),
        any_text,
    ),
    "max_predictions": st.one_of(
        st.integers(max_value=0), st.integers(min_value=10001), wrong_for_int
    ),
    "sort_symbols": not_bool,
    "process_predictions": not_bool,
    "indexer_type": st.one_of(
        any_text.filter(lambda s: s not in INDEXERS),
        st.sampled_from(["vi", "lsh", " VI"]),
        st.integers(),
        st.booleans(),
    ),
}
FIELDS = sorted(VALID)


@st.composite
def config_changes(
    draw: st.DrawFn, with_bad: bool
) -> tuple[dict[str, Any], set[str], dict[str, Any]]:
    """(changes as sent, the bad canonical field names, the good canonical values)."""
    bad = draw(st.sets(st.sampled_from(FIELDS), min_size=1)) if with_bad else set()
    rest = [f for f in FIELDS if f not in bad]
    good = draw(st.sets(st.sampled_from(rest))) if rest else set()
    changes: dict[str, Any] = {}
    good_values: dict[str, Any] = {}
    for name in sorted(bad | good):
        value = draw(INVALID[name] if name in bad else VALID[name])
        key = "sort" if name == "sort_symbols" and draw(st.booleans()) else name
        changes[key] = value
        if name in good:
            good_values[name] = value
    unknown = draw(
        st.dictionaries(
            any_text.filter(lambda k: k not in VALID and k not in ("sort", "rank_sort_algo")),
            st.one_of(st.integers(), any_text, st.none()),
            max_size=2,
        )
    )
    changes.update(unknown)
    changes.update({"stm_max_events": draw(st.integers(-5, 5))} if draw(st.booleans()) else {})
    return changes, bad, good_values


@settings(BASE, max_examples=300)
@given(case=config_changes(with_bad=True))
def test_invalid_config_rejected_naming_exactly_the_bad_fields(
    case: tuple[dict[str, Any], set[str], dict[str, Any]],
) -> None:
    changes, bad, _ = case
    with pytest.raises(InvalidConfigError) as caught:
        validate_overrides(changes)
    assert set(caught.value.field_errors) == bad
    base = EngineConfig()
    with pytest.raises(InvalidConfigError) as caught_again:
        base.with_overrides(changes)
    assert set(caught_again.value.field_errors) == bad
    assert base == EngineConfig()  # nothing applied
    canonical = {
        ("sort_symbols" if k == "sort" else k): v
        for k, v in changes.items()
        if k in VALID or k == "sort"
    }
    with pytest.raises(InvalidConfigError) as caught_direct:
        EngineConfig(**canonical)
    assert set(caught_direct.value.field_errors) == bad


@settings(BASE, max_examples=300)
@given(case=config_changes(with_bad=False))
def test_valid_config_is_applied_and_normalised(
    case: tuple[dict[str, Any], set[str], dict[str, Any]],
) -> None:
    changes, _, good = case
    overrides = validate_overrides(changes)
    assert set(overrides) == set(good)  # unknown keys and stm_max_events are ignored
    config = EngineConfig().with_overrides(changes)
    for name, value in good.items():
        if name == "stm_mode":
            expected = value if value in ("CLEAR", "ROLLING") else "CLEAR"
            assert overrides[name] == expected and config.stm_mode == expected
        elif name == "recall_threshold":
            assert type(overrides[name]) is float and overrides[name] == value
            assert config.recall_threshold == value
        else:
            assert overrides[name] == value and getattr(config, name) == value
    assert config.stm_max_events == EngineConfig().stm_max_events


@settings(BASE, max_examples=100)
@given(mode=any_text, ops=op_lists(20))
def test_unknown_stm_mode_behaves_as_clear(mode: str, ops: list[Op]) -> None:
    assume(mode not in ("CLEAR", "ROLLING"))
    assert EngineConfig(stm_mode=mode).stm_mode == "CLEAR"
    assert validate_overrides({"stm_mode": mode}) == {"stm_mode": "CLEAR"}
    as_mode = run(ops, {"stm_mode": mode, "max_pattern_length": 2})
    as_clear = run(ops, {"stm_mode": "CLEAR", "max_pattern_length": 2})
    assert as_mode.text == as_clear.text


# --------------------------------------------------------------------------------------------
# 10. statistics after random learns
# --------------------------------------------------------------------------------------------


def _average(entries: Sequence[Mapping[str, float]]) -> dict[str, float]:
    sums: dict[str, list[float]] = {}
    for entry in entries:
        for key, value in entry.items():
            sums.setdefault(key, []).append(float(value))
    return {key: sum(values) / len(values) for key, values in sums.items()}


class NodeModel:
    """A from-scratch model of §1.4-§1.8 fed with (pattern events, accumulators) per learn."""

    def __init__(self) -> None:
        self.patterns: dict[str, dict[str, Any]] = {}
        self.symbols: dict[str, list[int]] = {}  # name -> [frequency, pattern_member_frequency]
        self.totals = Counter[str]()

    def learn(
        self,
        events: Sequence[Sequence[str]],
        emotives: Sequence[Mapping[str, float]],
        metadata: Sequence[Mapping[str, Any]],
        persistence: int,
    ) -> None:
        name = pattern_hash(events)
        record = self.patterns.setdefault(
            name,
            {
                "pattern_data": [list(e) for e in events],
                "frequency": 0,
                "emotives": [],
                "metadata": {},
            },
        )
        record["frequency"] += 1
        averaged = _average(emotives)
        if averaged:
            kept = {k: v for k, v in averaged.items() if v != 0}
            record["emotives"] = (record["emotives"] + [kept])[-persistence:]
        reduced: dict[str, set[str]] = {}
        for entry in metadata:
            for key, value in entry.items():
                reduced.setdefault(key, set()).add(str(value))
        for key in reduced:
            values = record["metadata"].setdefault(key, [])
            values += [v for v in sorted(reduced[key]) if v not in values]
        counts = Counter(flat(events))
        for symbol, count in counts.items():
            entry = self.symbols.setdefault(symbol, [0, 0])
            entry[0] += count
            entry[1] += 1
        self.totals["total_pattern_frequencies"] += 1
        self.totals["total_symbol_frequencies"] += sum(counts.values())
        self.totals["total_symbols_in_patterns_frequencies"] += len(counts)


@settings(BASE, max_examples=150)
@given(ops=op_lists(40, min_size=10), config=configs())
def test_statistics_match_a_model_of_every_learn(ops: list[Op], config: dict[str, Any]) -> None:
    persistence = config["persistence"]
    models = [NodeModel()]

    def check(op: Op, before: SessionState, step: Step | None, ltm: MemoryLTM) -> None:
        if step is None:
            assert op[0] == "learn" and before.stm == ()
            return
        if any(isinstance(e, ClearNode) for e in step.effects):
            models.append(NodeModel())
        emotives, metadata = list(before.emotives_accumulator), list(before.metadata_accumulator)
        name = None
        if op[0] == "learn":
            events = before.stm
            name = step.result["pattern_name"]
        elif op[0] == "observe":
            observation = Observation.parse(op[1])
            events = new_stm(before, step)
            emotives += [observation.emotives] if observation.emotives else []
            metadata += [observation.metadata] if observation.metadata else []
            name = step.result["auto_learned_pattern"]
        if name:  # a learned pattern: "PTRN|<hash of the STM>"
            assert name == pattern_name(events)
            models[-1].learn(events, emotives, metadata, persistence)
        elif op[0] == "learn":
            assert name == "" and len(flat(events)) < 2

    done = run(ops, config, check)
    ltm, model = done.ltm, models[-1]
    totals = ltm.totals().to_dict()
    stats = ltm.all_symbol_stats()
    patterns = ltm.patterns()

    # The invariants of §1.5.
    assert (
        sum(s.pattern_member_frequency for s in stats)
        == totals["total_symbols_in_patterns_frequencies"]
    )
    assert sum(p.frequency for p in patterns) == totals["total_pattern_frequencies"]
    assert sum(s.frequency for s in stats) == totals["total_symbol_frequencies"]
    assert sum(p.frequency * p.length for p in patterns) == totals["total_symbol_frequencies"]
    assert totals["K"] == len(stats)
    event(f"patterns: {min(len(patterns), 5)}")

    # And the exact values, from the model.
    assert totals == {
        **{
            k: model.totals[k]
            for k in (
                "total_pattern_frequencies",
                "total_symbol_frequencies",
                "total_symbols_in_patterns_frequencies",
            )
        },
        "K": len(model.symbols),
    }
    assert {s.name: [s.frequency, s.pattern_member_frequency] for s in stats} == model.symbols
    documents = {p.to_document()["name"]: p.to_document() for p in patterns}
    assert set(documents) == {"PTRN|" + name for name in model.patterns}
    for name, expected in model.patterns.items():
        document = documents["PTRN|" + name]
        assert document["pattern_data"] == expected["pattern_data"]
        assert document["length"] == len(flat(expected["pattern_data"]))
        assert document["frequency"] == expected["frequency"]
        assert document["metadata"] == expected["metadata"]
        assert len(document["emotives"]) == len(expected["emotives"]) <= persistence
        for got, want in zip(document["emotives"], expected["emotives"], strict=True):
            assert got.keys() == want.keys()
            assert all(got[k] == pytest.approx(want[k], abs=TOL) for k in want)


# --------------------------------------------------------------------------------------------
# script mode, for the second-process determinism test
# --------------------------------------------------------------------------------------------

if __name__ == "__main__":
    request = json.load(sys.stdin)
    sys.stdout.write(run(request["ops"], request["config"]).text + "\n")


def test_lone_surrogates_are_refused_everywhere_a_store_would_keep_them() -> None:
    """A string UTF-8 cannot carry would fail in SQLite or BSON later: refuse it up front."""
    from kato.exceptions import ValidationError as KatoValidationError

    for payload in (
        {"strings": ["ok", "\ud800"]},
        {"strings": ["a"], "emotives": {"\udfff": 1.0}},
        {"strings": ["a"], "metadata": {"k": "\ud83d"}},
        {"strings": ["a"], "metadata": {"\ud800": "v"}},
        {"strings": ["a"], "unique_id": "\udc00"},
    ):
        with pytest.raises(KatoValidationError):
            Observation.parse(payload)
    assert Observation.parse({"strings": ["\U0001f600", "é"]}).strings == ("\U0001f600", "é")
