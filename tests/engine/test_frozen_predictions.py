"""Predictions over seeded 1,000-pattern nodes, frozen as SHA-256 digests of their JSON.

Why: the predictor is optimised for speed, and no optimisation may change a single prediction,
future potential, their order or any float. The digests were computed with the straightforward
implementation before it was optimised; every later version must reproduce them byte for byte,
from an in-memory node and from the SQLite store (whose cached patterns are decoded, not built
by ``apply``), while the node learns along the way.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

import pytest

from kato.engine import EngineConfig, LTMStore, MemoryLTM, Observation, SessionState, learn, observe
from kato.ltm.sqlite import SQLiteNodes

VOCABULARY = [f"w{i}" for i in range(40)]


def _bench_patterns(rng: random.Random) -> list[tuple[tuple[str, ...], ...]]:
    """The benchmark's node: 1,000 patterns of 2–5 sorted two-word events, a few relearnt."""
    patterns = []
    for n in range(1000):
        patterns.append(tuple(tuple(sorted(rng.sample(VOCABULARY, 2))) for _ in range(2 + n % 4)))
    patterns += [rng.choice(patterns) for _ in range(150)]  # frequencies above 1
    return patterns


def _mixed_patterns(rng: random.Random) -> list[tuple[tuple[str, ...], ...]]:
    """1,000 patterns of 1–8 events of 1–4 symbols, repeats and unsorted events included."""
    words = VOCABULARY[:24]
    patterns = []
    for _ in range(1000):
        events = []
        for _ in range(rng.randint(1, 8)):
            event = [rng.choice(words) for _ in range(rng.randint(1, 4))]
            events.append(tuple(event if rng.random() < 0.3 else sorted(event)))
        patterns.append(tuple(events))
    patterns += [rng.choice(patterns) for _ in range(200)]
    return patterns


ODD = ["a", "a b", " a", "!", "a!", '"q', "\\", "é", "ab", "Z", "PTRN|x", "VCTR|y"]


def _odd_patterns(rng: random.Random) -> list[tuple[tuple[str, ...], ...]]:
    """1,000 patterns over symbols that JSON escapes or that sort before its quote, with empty
    events and patterns of one symbol per event among them."""
    patterns = []
    for _ in range(1000):
        events = []
        for _ in range(rng.randint(1, 6)):
            size = rng.choice([0, 1, 1, 1, 2, 3]) if rng.random() < 0.2 else rng.randint(1, 3)
            event = [rng.choice(ODD) for _ in range(size)]
            events.append(tuple(event if rng.random() < 0.5 else sorted(event)))
        patterns.append(tuple(events))
    return patterns


def _teach(ltm: LTMStore, patterns: list[tuple[tuple[str, ...], ...]], rng: random.Random) -> None:
    effects = []
    for events in patterns:
        emotives: tuple[dict[str, float], ...] = ()
        if rng.random() < 0.2:
            emotives = ({"joy": round(rng.uniform(-1, 1), 3)},)
        state = SessionState(stm=events, emotives_accumulator=emotives)
        effects.extend(learn(state, EngineConfig()).effects)
    ltm.apply(effects)


def _observations(rng: random.Random, words: list[str], count: int) -> list[Observation]:
    found = []
    for _ in range(count):
        strings = tuple(rng.choice(words) for _ in range(rng.randint(1, 3)))
        emotives = {"joy": 0.5} if rng.random() < 0.1 else {}
        found.append(Observation(strings=strings, emotives=emotives))
    return found


SCENARIOS: dict[str, tuple[str, dict[str, Any]]] = {
    "bench": ("bench", {"max_pattern_length": 5}),
    "rolling": ("bench", {"max_pattern_length": 4, "stm_mode": "ROLLING"}),
    "mixed": ("mixed", {"max_pattern_length": 6, "recall_threshold": 0.05}),
    "mixed-unsorted": ("mixed", {"max_pattern_length": 5, "sort_symbols": False}),
    "similarity-top-7": (
        "mixed",
        {"max_pattern_length": 5, "rank_sort_algo": "similarity", "max_predictions": 7},
    ),
    "confluence-threshold": (
        "bench",
        {"max_pattern_length": 3, "rank_sort_algo": "confluence", "recall_threshold": 0.4},
    ),
    "odd": ("odd", {"max_pattern_length": 4, "recall_threshold": 0.0}),
    "odd-snr": ("odd", {"max_pattern_length": 3, "rank_sort_algo": "snr", "max_predictions": 30}),
    "itfdf-all": (
        "mixed",
        {"max_pattern_length": 4, "rank_sort_algo": "itfdf_similarity", "max_predictions": 10_000},
    ),
}

#: Computed with the implementation before its optimisation (see the module's docstring).
DIGESTS = {
    "bench": "eec637ac5a0641163c7203b3825420d39d82873f0da1a222d12b177ef4784c3d",
    "rolling": "2c530d2bda52134357c17cf04737603fc99586aee508dac5bccccc987982ddab",
    "mixed": "db843991b7fd9474dcb87f973c2294e5402933ef028e7ad159fc4ea37a2a6d56",
    "mixed-unsorted": "2cc48627be75549cdac82123d1b9c75f2115c609e793b73ff740508d3a161d1b",
    "similarity-top-7": "276c66a34909510aafa68e152ea7868d1e09f453d655218b0c02a70aa0b9710c",
    "confluence-threshold": "b6ee4e8f9fbb2f304ddb40cd925623c767e543ef4010c1fd197e6767935925f2",
    "odd": "67be16ebcd0ea8152712a4e7f5d0034fcb187e8323c6658f30bb5a767b968651",
    "odd-snr": "cb03863470214af94c2a67d48b1bcf4eee462a83d1cded448c685fbee9482e4f",
    "itfdf-all": "3e9a455c355bf66d26875f49e5aaac736f42c8f7468b9b6d23d5a3069390b0c6",
}


def _digest(scenario: str, ltm: LTMStore) -> str:
    node, overrides = SCENARIOS[scenario]
    rng = random.Random(f"{scenario}-teach")
    patterns = {"bench": _bench_patterns, "mixed": _mixed_patterns, "odd": _odd_patterns}[node](rng)
    _teach(ltm, patterns, rng)
    config = EngineConfig(**overrides)
    words = {"bench": VOCABULARY, "mixed": VOCABULARY[:24], "odd": ODD}[node]
    digest = hashlib.sha256()
    state = SessionState()
    rng = random.Random(f"{scenario}-observe")
    for n, observation in enumerate(_observations(rng, words, 40)):
        with ltm.snapshot() as view:
            step = observe(state, observation, config, view, node_id="n", unique_id=str(n))
        ltm.apply(step.effects)
        state = step.state
        text = json.dumps([step.result, state.predictions, state.future_potentials])
        digest.update(text.encode())
    return digest.hexdigest()


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_memory_node_predictions_are_frozen(scenario: str) -> None:
    assert _digest(scenario, MemoryLTM()) == DIGESTS[scenario]


@pytest.mark.parametrize("scenario", ["bench", "mixed", "odd"])
def test_sqlite_node_predictions_are_frozen(scenario: str, tmp_path: Path) -> None:
    nodes = SQLiteNodes(tmp_path / "ltm.sqlite3")
    try:
        assert _digest(scenario, nodes.ltm("n")) == DIGESTS[scenario]
    finally:
        nodes.close()
