"""One contract for every node store: MemoryLTM (the reference), SQLite and MongoDB.

Each test runs once per backend (``backend`` fixture). Where a value is not given by a worked
example of engine.md §8, the test computes it with a :class:`MemoryLTM` fed the same effects and
demands the same answer, down to the bytes of ``json.dumps`` for predictions.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from kato.engine import (
    ClearNode,
    EngineConfig,
    LearnPattern,
    LTMStore,
    MemoryLTM,
    RegisterVector,
    SessionState,
    learn,
    predict,
)
from kato.ltm.vectors import StoreVectors
from kato.nodes import NodeStores

HELLO_WORLD = "7d0678ba6305341ce0d25133ab086208656a562f"
E6_PATTERN = "386fbb12926e8e015a1483990df913e8410f94ce"
ODD_SYMBOLS = [
    "",
    "a.b",
    "$x",
    "café",
    "it's",
    '"q"',
    "back\\slash",
    "line\nbreak",
    "VCTR|f11d",
    "_id",
]


def new_node() -> str:
    return f"n-{uuid.uuid4().hex[:12]}"


def learn_into(
    stores: Sequence[LTMStore],
    events: Sequence[Sequence[str]],
    *,
    emotives: Sequence[Mapping[str, float]] = (),
    metadata: Sequence[Mapping[str, Any]] = (),
    persistence: int = 5,
) -> str:
    """Learn ``events`` (with these accumulators) into every store; the ``PTRN|`` name."""
    state = SessionState(
        stm=tuple(tuple(event) for event in events),
        emotives_accumulator=tuple(emotives),
        metadata_accumulator=tuple(metadata),
    )
    step = learn(state, EngineConfig(persistence=persistence))
    for store in stores:
        store.apply(step.effects)
    return str(step.result["pattern_name"])


def docs(store: LTMStore) -> list[dict[str, object]]:
    return [pattern.to_document() for pattern in store.patterns()]


def stats(store: LTMStore) -> list[dict[str, object]]:
    return [record.to_dict() for record in store.all_symbol_stats()]


def test_learn_and_relearn_count_every_learn(nodes: NodeStores) -> None:
    """E1 steps 3-4: the record, then +1 frequency, symbol statistics and totals."""
    ltm = nodes.ltm(new_node())
    assert learn_into([ltm], [["hello"], ["world"]]) == "PTRN|" + HELLO_WORLD
    first = ltm.pattern(HELLO_WORLD)
    assert first is not None
    assert first.to_document() == {
        "name": "PTRN|" + HELLO_WORLD,
        "pattern_data": [["hello"], ["world"]],
        "length": 2,
        "frequency": 1,
        "emotives": [],
        "metadata": {},
    }
    learn_into([ltm], [["hello"], ["world"]])
    again = ltm.pattern(HELLO_WORLD)
    assert again is not None and again.frequency == 2
    assert stats(ltm) == [
        {"name": "hello", "frequency": 2, "pattern_member_frequency": 2, "emotives": {}},
        {"name": "world", "frequency": 2, "pattern_member_frequency": 2, "emotives": {}},
    ]
    assert ltm.totals().to_dict() == {
        "total_pattern_frequencies": 2,
        "total_symbol_frequencies": 4,
        "total_symbols_in_patterns_frequencies": 4,
        "K": 2,
    }


def test_repeated_symbols_count_occurrences_and_learns(nodes: NodeStores) -> None:
    """§1.5: ``frequency += c`` per occurrence, ``pattern_member_frequency += 1`` per learn."""
    ltm = nodes.ltm(new_node())
    learn_into([ltm], [["dup", "dup", "u"], ["dup"]])
    assert ltm.symbol_stats(["dup", "u", "absent"]) == {
        "dup": ltm.symbol_stats(["dup"])["dup"],
        "u": ltm.symbol_stats(["u"])["u"],
    }
    dup = ltm.symbol_stats(["dup"])["dup"]
    assert (dup.frequency, dup.pattern_member_frequency) == (3, 1)
    assert ltm.totals().to_dict() == {
        "total_pattern_frequencies": 1,
        "total_symbol_frequencies": 4,
        "total_symbols_in_patterns_frequencies": 2,
        "K": 2,
    }


def test_emotive_window_and_persistence_trim(nodes: NodeStores) -> None:
    """E6 with ``persistence = 2``: append, drop zeros, trim; sums on the symbol records."""
    ltm = nodes.ltm(new_node())
    events = [["hello"], ["world"], ["test"]]
    learn_into(
        [ltm],
        events,
        emotives=[
            {"happiness": 0.8, "confidence": 0.6},
            {"happiness": 0.9, "confidence": 0.7},
            {"happiness": 0.7, "confidence": 0.8},
        ],
        persistence=2,
    )
    first = {"happiness": 0.8000000000000002, "confidence": 0.6999999999999998}
    pattern = ltm.pattern(E6_PATTERN)
    assert pattern is not None and list(pattern.emotives) == [first]
    learn_into([ltm], events, emotives=[{"happiness": 0.0}], persistence=2)
    pattern = ltm.pattern(E6_PATTERN)
    assert pattern is not None and list(pattern.emotives) == [first, {}]
    learn_into([ltm], events, emotives=[{"happiness": 0.2, "x": 1}], persistence=2)
    pattern = ltm.pattern(E6_PATTERN)
    assert pattern is not None
    assert (pattern.frequency, list(pattern.emotives)) == (3, [{}, {"happiness": 0.2, "x": 1.0}])
    learn_into([ltm], events, persistence=2)  # no emotives: the window is left as it is
    pattern = ltm.pattern(E6_PATTERN)
    assert pattern is not None
    assert (pattern.frequency, list(pattern.emotives)) == (4, [{}, {"happiness": 0.2, "x": 1.0}])
    hello = ltm.symbol_stats(["hello"])["hello"]
    # Sums within 1e-9 (engine.md conventions): nx-27017 rounds what ``$inc`` writes to 15
    # significant digits; SQLite, MemoryLTM and a real MongoDB add IEEE doubles exactly.
    assert list(hello.emotives) == ["happiness", "confidence", "x"]
    assert hello.emotives == pytest.approx(
        {"happiness": 1.0000000000000002, "confidence": 0.6999999999999998, "x": 1.0}, abs=1e-9
    )
    with ltm.snapshot() as view:
        predictions, _ = predict((("hello",), ("world",)), view, EngineConfig())
    assert predictions[0]["emotives"] == {"happiness": 0.2, "x": 1.0}


def test_metadata_union_keeps_first_seen_order(nodes: NodeStores) -> None:
    """E10f, then values and keys added by later learns go after the existing ones."""
    ltm = nodes.ltm(new_node())
    name = learn_into(
        [ltm],
        [["A"], ["B"], ["C"]],
        metadata=[
            {"book": "title1", "author": "Smith"},
            {"book": "title2", "chapter": "1"},
            {"book": "title1", "chapter": "2"},
        ],
    )
    pattern = ltm.pattern(name.removeprefix("PTRN|"))
    assert pattern is not None
    assert json.dumps(pattern.to_document()["metadata"]) == json.dumps(
        {"book": ["title1", "title2"], "author": ["Smith"], "chapter": ["1", "2"]}
    )
    xy = [["X"], ["Y"]]
    name = learn_into([ltm], xy, metadata=[{"version": "v1"}])
    learn_into([ltm], xy, metadata=[{"version": "v2"}])
    learn_into([ltm], xy)  # no metadata: unchanged
    learn_into([ltm], xy, metadata=[{"version": "v0"}, {"version": 1, "a.b": None}])
    pattern = ltm.pattern(name.removeprefix("PTRN|"))
    assert pattern is not None
    assert json.dumps(pattern.to_document()["metadata"]) == json.dumps(
        {"version": ["v1", "v2", "1", "v0"], "a.b": ["None"]}
    )


def _random_corpus(rng: random.Random, count: int) -> list[list[list[str]]]:
    words = [f"w{i}" for i in range(12)] + ODD_SYMBOLS
    corpus = []
    for _ in range(count):
        events = [
            sorted(rng.choice(words) for _ in range(rng.randint(1, 3)))
            for _ in range(rng.randint(2, 5))
        ]
        corpus.append(events)
    return corpus


def test_candidates_are_exactly_the_patterns_sharing_a_symbol(nodes: NodeStores) -> None:
    """Every pattern sharing a symbol, nothing else, sorted by name, records complete."""
    ltm, reference = nodes.ltm(new_node()), MemoryLTM()
    rng = random.Random(4)
    for events in _random_corpus(rng, 60):
        learn_into([ltm, reference], events, emotives=[{"e.k": rng.random()}], persistence=3)
    everything = reference.patterns()
    words = sorted({symbol for pattern in everything for symbol in pattern.flat})
    for query in [[], ["nope"], *([rng.sample(words, k) for k in (1, 2, 4, 9)]), words]:
        expected = sorted((p for p in everything if set(p.flat) & set(query)), key=lambda p: p.name)
        found = ltm.candidates(set(query))
        assert [p.name for p in found] == [p.name for p in expected]
        assert found == expected
        with ltm.snapshot() as view:
            assert view.candidates(query) == expected


def test_odd_symbols_keys_and_values_round_trip(nodes: NodeStores) -> None:
    """Symbols, emotive keys and metadata keys with dots, dollars, quotes, "" and non-ASCII."""
    ltm, reference = nodes.ltm(new_node()), MemoryLTM()
    emotives = [{key: float(i + 1) for i, key in enumerate(ODD_SYMBOLS)}]
    metadata = [{key: f"value of {key}" for key in ODD_SYMBOLS}]
    events = [[symbol] for symbol in ODD_SYMBOLS]
    for _ in range(2):
        learn_into([ltm, reference], events, emotives=emotives, metadata=metadata)
    assert json.dumps(docs(ltm)) == json.dumps(docs(reference))
    assert json.dumps(stats(ltm)) == json.dumps(stats(reference))
    assert ltm.symbol_stats(ODD_SYMBOLS) == reference.symbol_stats(ODD_SYMBOLS)
    assert ltm.totals() == reference.totals()


def test_nothing_of_one_node_is_visible_in_another(nodes: NodeStores) -> None:
    a, b = nodes.ltm(new_node()), nodes.ltm(new_node())
    learn_into([a], [["hello"], ["world"]], emotives=[{"joy": 1.0}], metadata=[{"k": "v"}])
    a.apply([RegisterVector("VCTR|one", (1.0, 2.0))])
    assert b.candidates({"hello", "world"}) == []
    assert b.pattern(HELLO_WORLD) is None
    assert b.symbol_stats(["hello", "world"]) == {}
    assert b.totals().to_dict() == dict.fromkeys(a.totals().to_dict(), 0)
    assert (b.patterns(), b.pattern_count(), b.all_symbol_stats()) == ([], 0, [])
    assert b.vector("VCTR|one") is None
    with b.snapshot() as view:
        assert view.candidates({"hello"}) == [] and view.pattern(HELLO_WORLD) is None
    assert a.pattern_count() == 1 and a.vector("VCTR|one") == (1.0, 2.0)


def test_clear_all_empties_exactly_one_node(nodes: NodeStores) -> None:
    a, b = nodes.ltm(new_node()), nodes.ltm(new_node())
    for store in (a, b):
        learn_into([store], [["hello"], ["world"]], emotives=[{"joy": 1.0}])
        learn_into([store], [["a"], ["b"], ["c"]])
        store.apply([RegisterVector("VCTR|v", (0.5,))])
    before_b = (docs(b), stats(b), b.totals(), b.vector("VCTR|v"))
    a.apply([ClearNode()])
    assert (docs(a), stats(a), a.pattern_count(), a.vector("VCTR|v")) == ([], [], 0, None)
    assert a.candidates({"hello", "a"}) == [] and a.pattern(HELLO_WORLD) is None
    assert a.totals().to_dict() == dict.fromkeys(b.totals().to_dict(), 0)
    assert (docs(b), stats(b), b.totals(), b.vector("VCTR|v")) == before_b
    learn_into([a], [["hello"], ["world"]])  # a cleared node learns from scratch
    assert [p.frequency for p in a.patterns()] == [1]
    assert a.totals().to_dict() == {
        "total_pattern_frequencies": 1,
        "total_symbol_frequencies": 2,
        "total_symbols_in_patterns_frequencies": 2,
        "K": 2,
    }
    assert a.symbol_stats(["hello"])["hello"].emotives == {}


def test_one_step_applies_all_its_effects_in_order(nodes: NodeStores) -> None:
    """A step (say an observe-sequence) may carry several learns, a vector and a clear."""
    ltm, reference = nodes.ltm(new_node()), MemoryLTM()
    learn_into([ltm, reference], [["old"], ["stuff"]])
    step = [
        ClearNode(),
        LearnPattern("p1", (("a",), ("b",)), {"k": 1.0}, {"m": ("1",)}, 2),
        RegisterVector("VCTR|x", (3.0,)),
        LearnPattern("p1", (("a",), ("b",)), {"k": 3.0}, {"m": ("0",)}, 2),
        LearnPattern("p2", (("b",), ("c",)), None, {}, 2),
    ]
    ltm.apply(step)
    reference.apply(step)
    assert json.dumps(docs(ltm)) == json.dumps(docs(reference))
    assert json.dumps(stats(ltm)) == json.dumps(stats(reference))
    assert ltm.totals() == reference.totals()
    assert ltm.vector("VCTR|x") == (3.0,)
    ltm.apply([])  # nothing to apply is fine


def test_vector_registry(nodes: NodeStores) -> None:
    ltm = nodes.ltm(new_node())
    exact = (0.1, -2.5, 1e-300, 0.8000000000000002, 123456789.123456789)
    ltm.apply([RegisterVector("VCTR|a", (9.0,)), RegisterVector("VCTR|b", (1.0,))])
    ltm.apply([RegisterVector("VCTR|a", exact)])  # registering again replaces, exactly
    assert ltm.vector("VCTR|a") == exact
    assert ltm.vector("VCTR|missing") is None
    index = StoreVectors(ltm)
    index.add("VCTR|b", [2.0, 3.0])  # adding again replaces
    assert index.get("VCTR|b") == (2.0, 3.0) and index.get("VCTR|a") == exact
    ltm.apply([ClearNode()])
    index.clear()
    assert index.get("VCTR|a") is None and index.get("VCTR|b") is None


def test_listing_and_pagination(nodes: NodeStores) -> None:
    ltm, reference = nodes.ltm(new_node()), MemoryLTM()
    for events in _random_corpus(random.Random(7), 25):
        learn_into([ltm, reference], events)
    count = reference.pattern_count()
    assert ltm.pattern_count() == count
    names = [p.name for p in ltm.patterns()]
    assert names == sorted(names) == [p.name for p in reference.patterns()]
    pages = [ltm.patterns(offset=offset, limit=7) for offset in range(0, count, 7)]
    assert [p for page in pages for p in page] == reference.patterns()
    assert ltm.patterns(offset=3, limit=0) == []
    assert ltm.patterns(offset=count) == []
    assert ltm.patterns(offset=count - 2) == reference.patterns()[-2:]
    assert json.dumps(stats(ltm)) == json.dumps(stats(reference))
    symbols = [record["name"] for record in stats(ltm)]
    assert symbols == sorted(symbols)


def test_an_empty_node_reads_as_empty(nodes: NodeStores) -> None:
    ltm = nodes.ltm(new_node())
    with ltm.snapshot() as view:
        assert view.candidates({"a", "b"}) == [] and view.symbol_stats(["a"]) == {}
        assert view.totals().to_dict() == {
            "total_pattern_frequencies": 0,
            "total_symbol_frequencies": 0,
            "total_symbols_in_patterns_frequencies": 0,
            "K": 0,
        }
        assert predict((("a",), ("b",)), view, EngineConfig()) == ([], [])
    assert (ltm.patterns(), ltm.pattern_count(), ltm.all_symbol_stats()) == ([], 0, [])
    ltm.apply([ClearNode()])  # clearing an empty node is fine
    assert ltm.pattern_count() == 0


# Sequences of the worked examples (E1-E8) plus a seeded random corpus with emotives.
WORKED = [
    [["hello"], ["world"]],
    [["hello"], ["world"]],
    [["a"], ["b"], ["c"]],
    [["hello", "world"], ["bar", "foo"]],
    [["one"], ["two"], ["three"], ["four"]],
    [["one"], ["two"], ["five"], ["six"]],
    [["seven"], ["eight"], ["nine"], ["ten"]],
    [["a", "b"], ["c"], ["d"]],
    [["a"], ["b"], ["c"]],
    [["a"], ["b"], ["d"]],
    [["x"], ["a"], ["b"], ["c"]],
]
STMS = [
    [["hello"], ["world"]],
    [["a"], ["b"]],
    [["hello"], ["foo"]],
    [["hello", "x"], ["bar", "foo", "y"]],
    [["one"], ["two"]],
    [["b"], ["c"]],
    [["b", "a"]],
    [["x"], ["a"], ["b"]],
    [["w1"], ["w2"], ["a.b"]],
    [["w3", "w4"], [""], ["café", "w5"]],
]


def test_predictions_are_byte_identical_to_memory_ltm(nodes: NodeStores) -> None:
    ltm, reference = nodes.ltm(new_node()), MemoryLTM()
    rng = random.Random(11)
    for events in WORKED:
        learn_into([ltm, reference], events)
    for events in _random_corpus(rng, 80):
        emotives = [{"joy": rng.choice([0.0, 0.5, 1.25]), "fear": rng.random()}]
        learn_into([ltm, reference], events, emotives=emotives, persistence=3)
    configs = [
        EngineConfig(),
        EngineConfig(recall_threshold=0.0, max_predictions=5),
        EngineConfig(rank_sort_algo="confidence"),
    ]
    compared = 0
    for config in configs:
        for stm in STMS:
            events = tuple(tuple(event) for event in stm)
            with ltm.snapshot() as view:
                got = predict(events, view, config)
            expected = predict(events, reference, config)
            assert json.dumps(got) == json.dumps(expected), (config, stm)
            compared += len(expected[0])
    assert compared > 50  # the comparison is about real predictions, not empty lists


def test_an_effect_id_is_applied_once(backend: Any) -> None:
    """Two stores of one backend (two processes, for the shared ones) drain the same outbox
    entry: the id recorded with the effects makes the second apply a no-op."""
    node = new_node()
    first, second = backend.make().ltm(node), backend.make().ltm(node)
    effects = learn(SessionState(stm=(("a",), ("b",))), EngineConfig()).effects
    assert first.applied(["s:1"]) == set()
    assert first.apply(effects, effect_id="s:1") is True
    assert second.apply(effects, effect_id="s:1") is False
    assert first.apply([ClearNode()], effect_id="s:2") is True
    assert second.apply(effects, effect_id="s:3") is True
    assert second.apply([ClearNode()], effect_id="s:2") is False
    assert second.applied(["s:1", "s:2", "s:3", "s:4"]) == {"s:1", "s:2", "s:3"}
    [pattern] = first.patterns()
    assert pattern.frequency == 1
