"""Worked examples of engine.md §8 (E1-E10), the name examples of §1.3 / §1.6 and the
§9.A3 / §9.A4 / §9.A10 cases, run against the in-process ``kato.KatoClient``.

Every test uses its own fresh node id: nodes of one process share their LTM across clients.
Floats are compared with abs=1e-9 where the spec gives full precision (or an exact fraction) and
with abs=1e-6 where the spec prints 6 decimals.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from kato.exceptions import (
    EmptySTMError,
    KatoError,
    NotFoundError,
    VectorDimensionError,
)

REPO_ROOT = Path(__file__).resolve().parents[2]

# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def F9(x: float) -> Any:
    """Full-precision value from the spec (or an exact fraction): tolerance 1e-9."""
    return pytest.approx(x, abs=1e-9)


def F6(x: float) -> Any:
    """Value printed with 6 decimals in the spec: tolerance 1e-6."""
    return pytest.approx(x, abs=1e-6)


PREDICTION_FIELDS = {
    "type",
    "name",
    "frequency",
    "sequence",
    "similarity",
    "matches",
    "missing",
    "extras",
    "past",
    "present",
    "future",
    "evidence",
    "confidence",
    "fragmentation",
    "snr",
    "entropy",
    "emotives",
    "normalized_entropy",
    "global_normalized_entropy",
    "itfdf_similarity",
    "confluence",
    "pattern_probability",
    "weighted_strength",
    "predictive_information",
    "potential",
}


def ev(*symbols: str) -> list[list[str]]:
    """One symbol per event: ev('a','b') == [['a'], ['b']]."""
    return [[s] for s in symbols]


def ptrn_hash(pattern: Sequence[Sequence[str]]) -> str:
    """§1.3: lowercase SHA-1 hex of the UTF-8 bytes of repr(pattern as list of lists of str)."""
    canonical = [list(e) for e in pattern]
    return hashlib.sha1(repr(canonical).encode("utf-8")).hexdigest()


def vctr_name(text: str) -> str:
    """§1.6: 'VCTR|' + SHA-1 hex of the numpy text rendering of the summed vector."""
    return "VCTR|" + hashlib.sha1(text.encode("utf-8")).hexdigest()


def obs(k: Any, *strings: str, **kwargs: Any) -> dict[str, Any]:
    """obs(x, y) of the spec: one observe with strings=[x, y]."""
    return k.observe(strings=list(strings), **kwargs)


def learn_sequence(k: Any, events: Sequence[Sequence[str]]) -> str:
    """Observe each event in turn, then learn; returns the learned pattern name."""
    for event in events:
        k.observe(strings=list(event))
    result = k.learn()
    assert result["status"] == "learned"
    return str(result["pattern_name"])


def stm(k: Any) -> list[list[str]]:
    return k.get_stm()["stm"]


def preds(k: Any) -> list[dict[str, Any]]:
    return k.get_predictions()["predictions"]


def only_prediction(k: Any) -> dict[str, Any]:
    predictions = preds(k)
    assert len(predictions) == 1, predictions
    return predictions[0]


def pattern_record(k: Any, name: str) -> dict[str, Any]:
    answer = k.get_pattern(name)
    assert answer["pattern"]["status"] == "okay"
    return answer["pattern"]["pattern"]


def symbol_stats(k: Any) -> dict[str, dict[str, Any]]:
    stats = k.get_symbol_stats()
    names = [s["name"] for s in stats["symbols"]]
    assert names == sorted(names)
    return {s["name"]: s for s in stats["symbols"]}


def assert_fields(pred: dict[str, Any], expected: dict[str, Any]) -> None:
    for key, value in expected.items():
        assert key in pred, f"missing field {key!r}"
        assert pred[key] == value, f"field {key!r}: got {pred[key]!r}, expected {value!r}"


def assert_float_dict(actual: dict[str, float], expected: dict[str, float]) -> None:
    assert set(actual) == set(expected), (actual, expected)
    for key, value in expected.items():
        assert actual[key] == F9(value), (key, actual[key], value)


# --------------------------------------------------------------------------------------------
# §1.3 pattern names
# --------------------------------------------------------------------------------------------

H_HELLO_WORLD = "7d0678ba6305341ce0d25133ab086208656a562f"
H_ABC = "b98534b32c1d7489d4ce1a48724aa65aeecbdba9"
H_HW_BF = "0405596c4d7172818bfeb508925e83226d4c4971"
H_ITS = "d4cfde952d0558ee0e1a8444978a16a1c4ecbfb3"


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        (ev("hello", "world"), H_HELLO_WORLD),
        (ev("a", "b", "c"), H_ABC),
        ([["hello", "world"], ["bar", "foo"]], H_HW_BF),
    ],
    ids=["hello-world", "a-b-c", "hello,world-bar,foo"],
)
def test_s1_3_pattern_name_examples(make_client: Any, events: Any, expected: str) -> None:
    k = make_client()
    name = learn_sequence(k, events)
    assert name == "PTRN|" + expected
    record = pattern_record(k, name)
    assert record["name"] == "PTRN|" + expected
    assert record["pattern_data"] == events


def test_s1_3_hash_definition_matches_spec_examples() -> None:
    # The §1.3 examples pin the repr-based definition used as oracle below, including the
    # double-quote rule of [["it's"]] (a 1-symbol pattern cannot be learned, §3).
    assert ptrn_hash([["hello"], ["world"]]) == H_HELLO_WORLD
    assert ptrn_hash([["a"], ["b"], ["c"]]) == H_ABC
    assert ptrn_hash([["hello", "world"], ["bar", "foo"]]) == H_HW_BF
    assert ptrn_hash([["it's"]]) == H_ITS


@pytest.mark.parametrize(
    "events",
    [
        ev("it's", "x"),
        ev('say "hi"', 'it\'s "both"'),
        ev("back\\slash", "tab\there"),
        ev("line\nbreak", "cr\rx"),
        ev("café", "日本"),
        ev("", "empty-before"),
        ev("bell\x07", "del\x7f"),
    ],
    ids=[
        "single-quote",
        "double-quotes",
        "backslash-tab",
        "newline-cr",
        "non-ascii",
        "empty",
        "nonprintable",
    ],
)
def test_s1_3_pattern_name_is_sha1_of_python_repr(make_client: Any, events: Any) -> None:
    k = make_client()
    name = learn_sequence(k, events)
    assert name == "PTRN|" + ptrn_hash(events)
    assert pattern_record(k, name)["pattern_data"] == events


def test_s1_3_name_ignores_emotives_metadata_node_and_session(make_client: Any) -> None:
    k1 = make_client()
    k1.observe(strings=["hello"], emotives={"joy": 1.0}, metadata={"src": "x"})
    k1.observe(strings=["world"])
    name1 = k1.learn()["pattern_name"]
    k2 = make_client()
    name2 = learn_sequence(k2, ev("hello", "world"))
    assert name1 == name2 == "PTRN|" + H_HELLO_WORLD


def test_s1_3_order_inside_event_changes_name_without_sorting(make_client: Any) -> None:
    k = make_client(sort_symbols=False)
    n1 = learn_sequence(k, [["world", "hello"], ["foo", "bar"]])
    n2 = learn_sequence(k, [["hello", "world"], ["bar", "foo"]])
    assert n2 == "PTRN|" + H_HW_BF
    assert n1 == "PTRN|" + ptrn_hash([["world", "hello"], ["foo", "bar"]])
    assert n1 != n2


def test_s1_3_get_pattern_accepts_both_forms_and_404(make_client: Any) -> None:
    k = make_client()
    name = learn_sequence(k, ev("hello", "world"))
    assert pattern_record(k, name)["name"] == "PTRN|" + H_HELLO_WORLD
    assert pattern_record(k, H_HELLO_WORLD)["name"] == "PTRN|" + H_HELLO_WORLD
    with pytest.raises(NotFoundError) as info:
        k.get_pattern("PTRN|" + "0" * 40)
    assert info.value.code == "NOT_FOUND"
    assert info.value.status == 404


# --------------------------------------------------------------------------------------------
# §1.6 VCTR names
# --------------------------------------------------------------------------------------------

VCTR_123 = "VCTR|fe5de4472f7e4d5c9cdd19cadebfa06fe3da8e43"
VCTR_SUM = "VCTR|f11daefdddee30b6a7a043c084fad802f0553a99"


def test_s1_6_vctr_single_vector(make_client: Any) -> None:
    k = make_client()
    k.observe(vectors=[[1.0, 2.0, 3.0]])
    assert stm(k) == [[VCTR_123]]
    assert vctr_name("[1. 2. 3.]") == VCTR_123


def test_s1_6_vctr_sum_of_vectors(make_client: Any) -> None:
    k = make_client()
    k.observe(vectors=[[0.5, 0.5], [1.0, 0.0]])
    assert stm(k) == [[VCTR_SUM]]
    assert vctr_name("[1.5 0.5]") == VCTR_SUM


def test_s1_6_vctr_ints_are_floats(make_client: Any) -> None:
    k = make_client()
    k.observe(vectors=[[1, 2, 3]])
    assert stm(k) == [[VCTR_123]]


def test_s1_6_vctr_eight_decimals(make_client: Any) -> None:
    # `0.000123456789` → text `[0.00012346]`
    k = make_client()
    k.observe(vectors=[[0.000123456789]])
    assert stm(k) == [[vctr_name("[0.00012346]")]]


# --------------------------------------------------------------------------------------------
# E1
# --------------------------------------------------------------------------------------------


def test_e1_learn_name_relearn_first_predictions(make_client: Any) -> None:
    k = make_client()

    # 1.
    r = obs(k, "hello")
    assert r["status"] == "okay"
    assert r["time"] == 1
    assert r["stm_length"] == 1
    assert r["auto_learned_pattern"] is None
    assert re.fullmatch(r"obs-[0-9a-f]{32}", r["unique_id"]), r["unique_id"]
    assert stm(k) == [["hello"]]
    assert preds(k) == []

    # 2.
    r = obs(k, "world")
    assert r["time"] == 2
    assert r["stm_length"] == 2
    assert stm(k) == [["hello"], ["world"]]
    assert preds(k) == []

    # 3.
    r = k.learn()
    assert r["status"] == "learned"
    assert r["pattern_name"] == "PTRN|" + H_HELLO_WORLD
    assert stm(k) == []
    record = pattern_record(k, r["pattern_name"])
    assert record == {
        "name": "PTRN|" + H_HELLO_WORLD,
        "pattern_data": [["hello"], ["world"]],
        "length": 2,
        "frequency": 1,
        "emotives": [],
        "metadata": {},
    }

    # 4.
    assert learn_sequence(k, ev("hello", "world")) == "PTRN|" + H_HELLO_WORLD
    assert pattern_record(k, H_HELLO_WORLD)["frequency"] == 2
    symbols = symbol_stats(k)
    assert set(symbols) == {"hello", "world"}
    for s in ("hello", "world"):
        assert symbols[s]["frequency"] == 2
        assert symbols[s]["pattern_member_frequency"] == 2
        assert symbols[s]["emotives"] == {}
    totals = k.get_symbol_stats()["totals"]
    assert totals["total_pattern_frequencies"] == 2
    assert totals["total_symbol_frequencies"] == 4
    assert totals["total_symbols_in_patterns_frequencies"] == 4
    assert totals["K"] == 2

    # 5.
    k.clear_stm()
    obs(k, "hello")
    assert preds(k) == []

    # 6.
    r = obs(k, "world")
    answer = k.get_predictions()
    assert answer["future_potentials"] == []
    assert len(answer["predictions"]) == 1
    p = answer["predictions"][0]
    assert set(p) == PREDICTION_FIELDS
    assert_fields(
        p,
        {
            "name": H_HELLO_WORLD,
            "frequency": 2,
            "sequence": [["hello"], ["world"]],
            "similarity": F9(1.0),
            "matches": ["hello", "world"],
            "past": [],
            "present": [["hello"], ["world"]],
            "future": [],
            "missing": [[], []],
            "extras": [[], []],
            "evidence": F9(1.0),
            "confidence": F9(1.0),
            "fragmentation": F9(0.0),
            "snr": F9(1.0),
            "normalized_entropy": F9(1.0),
            "global_normalized_entropy": F9(1.0),
            "itfdf_similarity": F9(1.0),
            "pattern_probability": F9(1.0),
            "weighted_strength": F9(1.0),
            "predictive_information": F9(0.0),
            "potential": F9(0.0),
            "confluence": F9(0.75),
            "emotives": {},
            "entropy": F9(0.0),
            "type": "prototypical",
        },
    )
    assert isinstance(p["fragmentation"], float)


# --------------------------------------------------------------------------------------------
# E2
# --------------------------------------------------------------------------------------------


def test_e2_prefix_of_a_sequence(make_client: Any) -> None:
    k = make_client()
    assert learn_sequence(k, ev("a", "b", "c")) == "PTRN|" + H_ABC
    obs(k, "a")
    assert preds(k) == []
    obs(k, "b")
    answer = k.get_predictions()
    assert len(answer["predictions"]) == 1
    p = answer["predictions"][0]
    assert set(p) == PREDICTION_FIELDS
    assert_fields(
        p,
        {
            "name": H_ABC,
            "frequency": 1,
            "similarity": F9(2 * 2 / (3 + 2)),
            "matches": ["a", "b"],
            "past": [],
            "present": [["a"], ["b"]],
            "future": [["c"]],
            "missing": [[], []],
            "extras": [[], []],
            "evidence": F6(0.666667),
            "confidence": F9(1.0),
            "fragmentation": F9(0.0),
            "snr": F9(1.0),
            "normalized_entropy": F9(0.6309297535714574),
            "global_normalized_entropy": F6(0.666667),
            "itfdf_similarity": F9(1.0),
            "predictive_information": F9(0.8),
            "potential": F9(0.64),
            "confluence": F6(0.888889),
        },
    )
    fps = answer["future_potentials"]
    assert len(fps) == 1
    assert fps[0] == {
        "future": [["c"]],
        "aggregate_potential": F9(1.0),
        "supporting_patterns": 1,
        "total_weighted_frequency": F9(0.8),
    }


# --------------------------------------------------------------------------------------------
# E3
# --------------------------------------------------------------------------------------------


def _e3_learn(k: Any) -> None:
    obs(k, "world", "hello")
    assert stm(k) == [["hello", "world"]]
    obs(k, "foo", "bar")
    r = k.learn()
    assert r["pattern_name"] == "PTRN|" + H_HW_BF
    assert pattern_record(k, H_HW_BF)["pattern_data"] == [["hello", "world"], ["bar", "foo"]]


def test_e3_learn_sorted_multi_symbol_events(make_client: Any) -> None:
    k = make_client()
    _e3_learn(k)


def test_e3a_missing_symbols(make_client: Any) -> None:
    k = make_client()
    _e3_learn(k)
    k.clear_stm()
    obs(k, "hello")
    obs(k, "foo")
    p = only_prediction(k)
    assert_fields(
        p,
        {
            "name": H_HW_BF,
            "similarity": F9(4 / 6),
            "matches": ["hello", "foo"],
            "past": [],
            "present": [["hello", "world"], ["bar", "foo"]],
            "future": [],
            "missing": [["world"], ["bar"]],
            "extras": [[], []],
            "evidence": F9(0.5),
            "confidence": F9(0.5),
            "fragmentation": F9(1.0),
            "snr": F9(1.0),
            "itfdf_similarity": F9(0.7071067811865475),
            "normalized_entropy": F9(0.5),
            "global_normalized_entropy": F9(0.5),
            "potential": F9(0.0),
            "confluence": F9(0.99609375),
        },
    )


def test_e3b_missing_and_extras(make_client: Any) -> None:
    k = make_client()
    _e3_learn(k)
    k.clear_stm()
    obs(k, "hello", "x")
    obs(k, "foo", "bar", "y")
    assert stm(k) == [["hello", "x"], ["bar", "foo", "y"]]
    p = only_prediction(k)
    assert_fields(
        p,
        {
            "name": H_HW_BF,
            "similarity": F9(6 / 9),
            "matches": ["hello", "bar", "foo"],
            "missing": [["world"], []],
            "extras": [["x"], ["y"]],
            "snr": F9((9 - 5) / (3 + 5)),
            "confidence": F9(0.75),
            "evidence": F9(0.75),
            "normalized_entropy": F9(1.160964047443681),
            "global_normalized_entropy": F9(0.75),
            "itfdf_similarity": F9(0.8660254037844387),
            # derived from §4.3 / §4.6 (not tabulated in E3b)
            "past": [],
            "present": [["hello", "world"], ["bar", "foo"]],
            "future": [],
            "predictive_information": F9(0.0),
            "potential": F9(0.0),
        },
    )


# --------------------------------------------------------------------------------------------
# E4
# --------------------------------------------------------------------------------------------

H_1234 = "1b1b6f08"
H_1256 = "c52d7c60"


def _e4_setup(k: Any) -> None:
    assert learn_sequence(k, ev("one", "two", "three", "four")).startswith("PTRN|" + H_1234)
    assert learn_sequence(k, ev("one", "two", "five", "six")).startswith("PTRN|" + H_1256)
    learn_sequence(k, ev("seven", "eight", "nine", "ten"))
    obs(k, "one")
    obs(k, "two")


@pytest.mark.parametrize("threshold", [0.1, 0.5, 0.0], ids=["t0.1", "t0.5", "t0.0"])
def test_e4_recall_threshold_two_predictions(make_client: Any, threshold: float) -> None:
    k = make_client(recall_threshold=threshold)
    _e4_setup(k)
    answer = k.get_predictions()
    ps = answer["predictions"]
    assert len(ps) == 2
    for p in ps:
        assert p["similarity"] == F9(4 / 6)
        assert p["predictive_information"] == F6(0.666667)
        assert p["potential"] == F6(0.444444)
    assert ps[0]["name"].startswith(H_1234)
    assert ps[1]["name"].startswith(H_1256)
    assert ps[0]["future"] == [["three"], ["four"]]
    assert ps[1]["future"] == [["five"], ["six"]]
    seven = ptrn_hash(ev("seven", "eight", "nine", "ten"))
    assert seven not in {p["name"] for p in ps}

    fps = answer["future_potentials"]
    assert len(fps) == 2
    for fp in fps:
        assert fp["aggregate_potential"] == F9(0.5)
        assert fp["total_weighted_frequency"] == F6(0.666667)
        assert fp["supporting_patterns"] == 1
    # §4.6 tie-break: JSON text of `future` ascending
    assert [fp["future"] for fp in fps] == [[["five"], ["six"]], [["three"], ["four"]]]


def test_e4_recall_threshold_0_7_filters_all(make_client: Any) -> None:
    k = make_client(recall_threshold=0.7)
    _e4_setup(k)
    answer = k.get_predictions()
    assert answer["predictions"] == []
    assert answer["future_potentials"] == []


def test_e4_threshold_0_0_equals_0_1(make_client: Any) -> None:
    k0 = make_client(recall_threshold=0.0)
    _e4_setup(k0)
    k1 = make_client(recall_threshold=0.1)
    _e4_setup(k1)
    a0 = k0.get_predictions()
    a1 = k1.get_predictions()
    assert a0["predictions"] == a1["predictions"]
    assert a0["future_potentials"] == a1["future_potentials"]


@pytest.mark.parametrize(("threshold", "returned"), [(0.6, True), (0.7, False)])
def test_e4_boundary_four_symbol_pattern(
    make_client: Any, threshold: float, returned: bool
) -> None:
    k = make_client(recall_threshold=threshold)
    learn_sequence(k, ev("boundary", "test", "case", "here"))
    obs(k, "boundary")
    obs(k, "test")
    ps = preds(k)
    if returned:
        assert len(ps) == 1
        assert ps[0]["name"] == ptrn_hash(ev("boundary", "test", "case", "here"))
        assert ps[0]["similarity"] == F9(4 / 6)
    else:
        assert ps == []


def test_e4_boundary_similarity_exactly_threshold_is_inclusive(make_client: Any) -> None:
    k = make_client(recall_threshold=0.6)
    pattern = ev("m1", "m2", "m3", "m4", "m5", "m6", "m7")
    learn_sequence(k, pattern)
    obs(k, "m1")
    obs(k, "m2")
    obs(k, "m3")
    p = only_prediction(k)
    assert p["name"] == ptrn_hash(pattern)
    assert p["similarity"] == F9(0.6)


def test_e4_boundary_just_above_exact_similarity_excludes(make_client: Any) -> None:
    k = make_client(recall_threshold=0.61)
    learn_sequence(k, ev("m1", "m2", "m3", "m4", "m5", "m6", "m7"))
    obs(k, "m1")
    obs(k, "m2")
    obs(k, "m3")
    assert preds(k) == []


# --------------------------------------------------------------------------------------------
# E5
# --------------------------------------------------------------------------------------------

P_ABC = "PTRN|5b93697e1e591a765dd0b3c91ae7b57fa44589d9"
P_BCD = "PTRN|c47f928fc5bc01bb5ff056f238105c8920fde7bf"
P_CDE = "PTRN|500395bcec5d10db5cdcfd0c86e887d956be1f09"

E5_TABLE = {
    "CLEAR": [
        (None, ev("A")),
        (None, ev("A", "B")),
        (P_ABC, []),
        (None, ev("D")),
        (None, ev("D", "E")),
    ],
    "ROLLING": [
        (None, ev("A")),
        (None, ev("A", "B")),
        (P_ABC, ev("B", "C")),
        (P_BCD, ev("C", "D")),
        (P_CDE, ev("D", "E")),
    ],
}


@pytest.mark.parametrize("mode", ["CLEAR", "ROLLING"])
def test_e5_auto_learn_table(make_client: Any, mode: str) -> None:
    k = make_client(max_pattern_length=3, stm_mode=mode)
    for symbol, (learned, stm_after) in zip("ABCDE", E5_TABLE[mode], strict=True):
        r = obs(k, symbol)
        assert r["auto_learned_pattern"] == learned, (mode, symbol)
        assert stm(k) == stm_after, (mode, symbol)
        assert r["stm_length"] == len(stm_after)
    assert pattern_record(k, P_ABC)["frequency"] == 1


def test_e5_rolling_window_2(make_client: Any) -> None:
    k = make_client(max_pattern_length=2, stm_mode="ROLLING")
    for s in "ABC":
        obs(k, s)
    assert stm(k) == [["C"]]


def test_e5_rolling_window_4(make_client: Any) -> None:
    k = make_client(max_pattern_length=4, stm_mode="ROLLING")
    for s in "ABCDE":
        obs(k, s)
    assert stm(k) == [["C"], ["D"], ["E"]]


def test_e5_max_pattern_length_0_rolling_never_learns(make_client: Any) -> None:
    k = make_client(max_pattern_length=0, stm_mode="ROLLING")
    for s in "ABCDE":
        assert obs(k, s)["auto_learned_pattern"] is None
    assert stm(k) == ev("A", "B", "C", "D", "E")
    assert k.get_symbol_stats()["symbols"] == []


def test_e5_invalid_mode_behaves_as_clear(make_client: Any) -> None:
    k = make_client(max_pattern_length=3, stm_mode="INVALID_MODE")
    assert k.get_session_config()["config"]["stm_mode"] == "CLEAR"
    obs(k, "A")
    obs(k, "B")
    r = obs(k, "C")
    assert r["auto_learned_pattern"] == P_ABC
    assert stm(k) == []


# --------------------------------------------------------------------------------------------
# E6
# --------------------------------------------------------------------------------------------

H_HWT = "386fbb12926e8e015a1483990df913e8410f94ce"


def _e6_round(k: Any, hello_emotives: dict[str, float] | None, all_emotives: bool = False) -> str:
    if all_emotives:
        k.observe(strings=["hello"], emotives={"happiness": 0.8, "confidence": 0.6})
        k.observe(strings=["world"], emotives={"happiness": 0.9, "confidence": 0.7})
        k.observe(strings=["test"], emotives={"happiness": 0.7, "confidence": 0.8})
    else:
        k.observe(strings=["hello"], emotives=hello_emotives)
        k.observe(strings=["world"])
        k.observe(strings=["test"])
    return str(k.learn()["pattern_name"])


def test_e6_emotives_averaging_and_persistence(make_client: Any) -> None:
    k = make_client(persistence=2)
    first = {"happiness": 0.8000000000000002, "confidence": 0.6999999999999998}

    # 1.
    name = _e6_round(k, None, all_emotives=True)
    assert name == "PTRN|" + H_HWT
    rec = pattern_record(k, name)
    assert rec["frequency"] == 1
    assert len(rec["emotives"]) == 1
    assert_float_dict(rec["emotives"][0], first)

    # 2.
    assert _e6_round(k, {"happiness": 0.0}) == name
    rec = pattern_record(k, name)
    assert rec["frequency"] == 2
    assert len(rec["emotives"]) == 2
    assert_float_dict(rec["emotives"][0], first)
    assert rec["emotives"][1] == {}

    # 3.
    assert _e6_round(k, {"happiness": 0.2, "x": 1}) == name
    rec = pattern_record(k, name)
    assert rec["frequency"] == 3
    assert len(rec["emotives"]) == 2
    assert rec["emotives"][0] == {}
    assert_float_dict(rec["emotives"][1], {"happiness": 0.2, "x": 1.0})

    # 4.
    obs(k, "hello")
    obs(k, "world")
    p = only_prediction(k)
    assert p["name"] == H_HWT
    assert_float_dict(p["emotives"], {"happiness": 0.2, "x": 1.0})

    hello = symbol_stats(k)["hello"]
    assert_float_dict(
        hello["emotives"],
        {"happiness": 1.0000000000000002, "confidence": 0.6999999999999998, "x": 1.0},
    )


# --------------------------------------------------------------------------------------------
# E7
# --------------------------------------------------------------------------------------------


def test_e7_first_match_in_middle_of_event(make_client: Any) -> None:
    k = make_client()
    name = learn_sequence(k, [["a", "b"], ["c"], ["d"]])
    assert name.startswith("PTRN|d31a36e9")
    obs(k, "b")
    obs(k, "c")
    p = only_prediction(k)
    assert_fields(
        p,
        {
            "name": name[len("PTRN|") :],
            "similarity": F6(0.666667),
            "matches": ["b", "c"],
            "past": [],
            "present": [["a", "b"], ["c"]],
            "future": [["d"]],
            "missing": [["a"], []],
            "extras": [[], []],
            "confidence": F6(0.666667),
            "evidence": F9(0.5),
            "fragmentation": F9(0.0),
            "predictive_information": F6(0.666667),
            "potential": F6(0.444444),
        },
    )


# --------------------------------------------------------------------------------------------
# E8
# --------------------------------------------------------------------------------------------


def _e8_setup(k: Any) -> None:
    assert learn_sequence(k, ev("a", "b", "c")) == "PTRN|" + H_ABC
    assert learn_sequence(k, ev("a", "b", "c")) == "PTRN|" + H_ABC
    assert learn_sequence(k, ev("a", "b", "d")).startswith("PTRN|71c480f9")
    assert learn_sequence(k, ev("x", "a", "b", "c")).startswith("PTRN|0dbbab71")
    obs(k, "a")
    obs(k, "b")


def test_e8_branching_futures(make_client: Any) -> None:
    k = make_client()
    _e8_setup(k)
    answer = k.get_predictions()
    ps = answer["predictions"]
    assert len(ps) == 3

    # F = 4: pattern_probability = frequency / 4
    expected = [
        ("71c480f9", 1, F9(0.8), [], [["d"]], F9(0.2), F6(0.766667), F6(0.613333)),
        (H_ABC[:8], 2, F9(0.8), [], [["c"]], F9(0.4), F6(0.541176), F6(0.432941)),
        ("0dbbab71", 1, F6(0.666667), [["x"]], [["c"]], F6(0.166667), F6(0.225490), F6(0.150327)),
    ]
    for p, (prefix, freq, sim, past, future, ws, pi, pot) in zip(ps, expected, strict=True):
        assert p["name"].startswith(prefix)
        assert p["frequency"] == freq
        assert p["similarity"] == sim
        assert p["past"] == past
        assert p["present"] == [["a"], ["b"]]
        assert p["future"] == future
        assert p["pattern_probability"] == F9(freq / 4)
        assert p["weighted_strength"] == ws
        assert p["predictive_information"] == pi
        assert p["potential"] == pot
        assert p["normalized_entropy"] == F6(0.430677)
        assert p["global_normalized_entropy"] == F6(0.450670)
        assert p["itfdf_similarity"] == F9(1.0)

    fps = answer["future_potentials"]
    assert len(fps) == 2
    assert fps[0]["future"] == [["c"]]
    assert fps[0]["total_weighted_frequency"] == F6(2.266667)
    assert fps[0]["aggregate_potential"] == F6(0.739130)
    assert fps[0]["supporting_patterns"] == 2
    assert fps[1]["future"] == [["d"]]
    assert fps[1]["total_weighted_frequency"] == F6(0.8)
    assert fps[1]["aggregate_potential"] == F6(0.260870)
    assert fps[1]["supporting_patterns"] == 1

    # P(a) = P(b) = 4/13, K = 5
    stats = k.get_symbol_stats()
    assert stats["totals"]["K"] == 5
    assert stats["totals"]["total_symbols_in_patterns_frequencies"] == 13
    symbols = symbol_stats(k)
    assert symbols["a"]["pattern_member_frequency"] == 4
    assert symbols["b"]["pattern_member_frequency"] == 4


_DETERMINISM_SCRIPT = r"""
import json, sys
import kato

def learn(k, events):
    for e in events:
        k.observe(strings=e)
    k.learn()

def ev(*xs):
    return [[x] for x in xs]

out = {}
with kato.KatoClient(node_id=sys.argv[1] + "-e8") as k:
    learn(k, ev("a", "b", "c"))
    learn(k, ev("a", "b", "c"))
    learn(k, ev("a", "b", "d"))
    learn(k, ev("x", "a", "b", "c"))
    k.observe(strings=["a"])
    k.observe(strings=["b"])
    r = k.get_predictions()
    out["e8"] = json.dumps(r["predictions"], sort_keys=False)
    out["e8_fp"] = json.dumps(r["future_potentials"], sort_keys=False)
with kato.KatoClient(node_id=sys.argv[1] + "-e4") as k:
    learn(k, ev("one", "two", "three", "four"))
    learn(k, ev("one", "two", "five", "six"))
    learn(k, ev("seven", "eight", "nine", "ten"))
    k.observe(strings=["one"])
    k.observe(strings=["two"])
    r = k.get_predictions()
    out["e4"] = json.dumps(r["predictions"], sort_keys=False)
    out["e4_fp"] = json.dumps(r["future_potentials"], sort_keys=False)
sys.stdout.write("@@RESULT@@" + json.dumps(out) + "\n")
"""


def _run_determinism_script(seed: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONHASHSEED"] = seed
    proc = subprocess.run(
        [sys.executable, "-c", _DETERMINISM_SCRIPT, f"t-wx-det-{uuid.uuid4().hex}"],
        cwd=str(REPO_ROOT),
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("@@RESULT@@")]
    assert len(lines) == 1, proc.stdout
    result: dict[str, str] = json.loads(lines[0][len("@@RESULT@@") :])
    return result


def test_e8_deterministic_across_processes() -> None:
    runs = [_run_determinism_script(seed) for seed in ("0", "1", "987654321")]
    assert len(json.loads(runs[0]["e8"])) == 3
    assert len(json.loads(runs[0]["e4"])) == 2
    for other in runs[1:]:
        assert other["e8"] == runs[0]["e8"]
        assert other["e8_fp"] == runs[0]["e8_fp"]
        assert other["e4"] == runs[0]["e4"]
        assert other["e4_fp"] == runs[0]["e4_fp"]


# --------------------------------------------------------------------------------------------
# E9
# --------------------------------------------------------------------------------------------


def test_e9_vectors_event_and_order(make_client: Any) -> None:
    k = make_client()
    r = k.observe(strings=["multi", "modal"], vectors=[[0.5, 0.5], [1.0, 0.0]])
    assert r["stm_length"] == 1
    assert stm(k) == [[VCTR_SUM, "modal", "multi"]]
    r = k.observe(vectors=[[1.0, 2.0, 3.0]])
    assert r["stm_length"] == 2
    assert stm(k) == [[VCTR_SUM, "modal", "multi"], [VCTR_123]]


def test_e9_vector_symbol_counts_for_predictions_on_single_observe(make_client: Any) -> None:
    k = make_client()
    k.observe(strings=["multi", "modal"], vectors=[[0.5, 0.5], [1.0, 0.0]])
    k.observe(vectors=[[1.0, 2.0, 3.0]])
    pattern = [[VCTR_SUM, "modal", "multi"], [VCTR_123]]
    assert k.learn()["pattern_name"] == "PTRN|" + ptrn_hash(pattern)
    # a single observe with 3 symbols (VCTR counts) predicts
    k.observe(strings=["multi", "modal"], vectors=[[0.5, 0.5], [1.0, 0.0]])
    p = only_prediction(k)
    assert p["name"] == ptrn_hash(pattern)
    assert p["similarity"] == F9(2 * 3 / (4 + 3))
    assert p["matches"] == [VCTR_SUM, "modal", "multi"]
    assert p["present"] == [[VCTR_SUM, "modal", "multi"]]
    assert p["future"] == [[VCTR_123]]


def test_e9_vector_symbol_before_sorted_strings(make_client: Any) -> None:
    k = make_client()
    # 'A' sorts before 'VCTR|...' by code point, but the vector symbol still comes first.
    k.observe(strings=["zz", "A"], vectors=[[1.0, 2.0, 3.0]])
    assert stm(k) == [[VCTR_123, "A", "zz"]]


@pytest.mark.parametrize(
    "vectors",
    [[[1.0, 2.0], [1.0]], [[1.0], [1.0, 2.0]], [[1.0, 2.0, 3.0], [1.0, 2.0]], [[]]],
    ids=["2-vs-1", "1-vs-2", "3-vs-2", "empty-vector"],
)
def test_e9_vector_dimension_mismatch_changes_nothing(make_client: Any, vectors: Any) -> None:
    k = make_client()
    obs(k, "x")
    with pytest.raises(VectorDimensionError) as info:
        k.observe(strings=["y"], vectors=vectors)
    assert isinstance(info.value, KatoError)
    assert info.value.code == "VECTOR_DIMENSION"
    assert info.value.status == 400
    assert stm(k) == [["x"]]
    r = obs(k, "z")
    assert r["time"] == 2
    assert stm(k) == [["x"], ["z"]]


# --------------------------------------------------------------------------------------------
# E10
# --------------------------------------------------------------------------------------------


def test_e10a_single_symbol_learn_returns_empty_name(make_client: Any) -> None:
    k = make_client()
    obs(k, "lonely")
    r = k.learn()
    assert r["status"] == "learned"
    assert r["pattern_name"] == ""
    assert stm(k) == []
    stats = k.get_symbol_stats()
    assert stats["symbols"] == []
    assert stats["totals"]["total_pattern_frequencies"] == 0
    assert stats["totals"]["total_symbol_frequencies"] == 0
    assert stats["totals"]["total_symbols_in_patterns_frequencies"] == 0
    assert stats["totals"]["K"] == 0


def test_e10b_learn_empty_stm_raises(make_client: Any) -> None:
    k = make_client()
    with pytest.raises(EmptySTMError) as info:
        k.learn()
    exc = info.value
    assert isinstance(exc, KatoError)
    assert exc.code == "EMPTY_STM"
    assert exc.status == 400
    assert exc.message == "Cannot learn from empty STM"
    assert "Cannot learn from empty STM" in str(exc)
    assert stm(k) == []


def test_e10c_empty_observe(make_client: Any) -> None:
    k = make_client()
    assert obs(k, "first")["time"] == 1
    r = k.observe(strings=[])
    assert r["time"] == 2
    assert r["stm_length"] == 1
    assert r["auto_learned_pattern"] is None
    assert preds(k) == []
    r = obs(k, "second")
    assert r["time"] == 3
    assert stm(k) == [["first"], ["second"]]


def test_e10c_empty_observe_resets_predictions(make_client: Any) -> None:
    k = make_client()
    learn_sequence(k, ev("first", "second", "third"))
    obs(k, "first")
    r = k.observe(strings=[])
    assert r["time"] == 5
    r = obs(k, "second")
    assert r["time"] == 6
    assert stm(k) == [["first"], ["second"]]
    assert len(preds(k)) == 1
    k.observe(strings=[])
    answer = k.get_predictions()
    assert answer["predictions"] == []
    assert answer["future_potentials"] == []
    assert stm(k) == [["first"], ["second"]]


def test_e10d_index_alignment(make_client: Any) -> None:
    k = make_client()
    learn_sequence(k, ev("a", "b", "c"))
    obs(k, "b", "a")
    assert stm(k) == [["a", "b"]]
    p = only_prediction(k)
    assert_fields(
        p,
        {
            "name": H_ABC,
            "similarity": F9(0.8),
            "present": [["a"], ["b"]],
            "future": [["c"]],
            "missing": [[]],
            "extras": [["b"]],
            "snr": F9(1.0),
        },
    )


@pytest.mark.parametrize(
    ("strings", "event"),
    [
        (["test_2", "test_1", "test_10"], ["test_1", "test_10", "test_2"]),
        (["Zoo", "Apple", "apple"], ["Apple", "Zoo", "apple"]),
        (["z", "", "a", "middle"], ["", "a", "middle", "z"]),
    ],
    ids=["numeric-suffix", "case", "empty-string"],
)
def test_e10e_sorting(make_client: Any, strings: list[str], event: list[str]) -> None:
    k = make_client()
    k.observe(strings=strings)
    assert stm(k) == [event]


def test_e10f_metadata(make_client: Any) -> None:
    k = make_client()
    k.observe(strings=["A"], metadata={"book": "title1", "author": "Smith"})
    k.observe(strings=["B"], metadata={"book": "title2", "chapter": "1"})
    k.observe(strings=["C"], metadata={"book": "title1", "chapter": "2"})
    name = k.learn()["pattern_name"]
    assert name == "PTRN|" + ptrn_hash(ev("A", "B", "C"))
    assert pattern_record(k, name)["metadata"] == {
        "book": ["title1", "title2"],
        "author": ["Smith"],
        "chapter": ["1", "2"],
    }


def test_e10f_metadata_relearn_merges(make_client: Any) -> None:
    k = make_client()
    k.observe(strings=["X"], metadata={"version": "v1"})
    k.observe(strings=["Y"])
    n1 = k.learn()["pattern_name"]
    k.observe(strings=["X"], metadata={"version": "v2"})
    k.observe(strings=["Y"])
    n2 = k.learn()["pattern_name"]
    assert n1 == n2 == "PTRN|" + ptrn_hash(ev("X", "Y"))
    rec = pattern_record(k, n1)
    assert rec["frequency"] == 2
    assert rec["metadata"] == {"version": ["v1", "v2"]}


# --------------------------------------------------------------------------------------------
# §9.A3 exhaustive search, §9.A4 zero overlap, §9.A10 ROLLING with N = 1
# --------------------------------------------------------------------------------------------


def test_a3_exhaustive_search_finds_long_pattern(make_client: Any) -> None:
    k = make_client()
    long_pattern = ev(*[f"L{i}" for i in range(25)])
    learn_sequence(k, long_pattern)
    learn_sequence(k, ev("q", "r"))
    obs(k, "L0")
    obs(k, "L1")
    p = only_prediction(k)
    assert p["name"] == ptrn_hash(long_pattern)
    assert p["similarity"] == F9(2 * 2 / (25 + 2))
    assert p["similarity"] == pytest.approx(0.148, abs=1e-3)
    obs(k, "L2")
    p = only_prediction(k)
    assert p["name"] == ptrn_hash(long_pattern)
    assert p["similarity"] == F9(2 * 3 / (25 + 3))
    assert p["similarity"] == pytest.approx(0.214, abs=1e-3)
    assert p["matches"] == ["L0", "L1", "L2"]
    assert p["future"] == long_pattern[3:]


def test_a4_threshold_zero_never_returns_zero_overlap(make_client: Any) -> None:
    k = make_client(recall_threshold=0.0)
    _e4_setup(k)
    ps = preds(k)
    assert len(ps) == 2
    for p in ps:
        assert p["similarity"] > 0
        assert p["predictive_information"] == F6(0.666667)  # not the original's 0.444444
        assert p["potential"] == F6(0.444444)  # not the original's 0.296296


def test_a4_threshold_zero_only_unrelated_patterns(make_client: Any) -> None:
    k = make_client(recall_threshold=0.0)
    learn_sequence(k, ev("p", "q"))
    learn_sequence(k, ev("r", "s", "t"))
    obs(k, "a")
    obs(k, "b")
    answer = k.get_predictions()
    assert answer["predictions"] == []
    assert answer["future_potentials"] == []


def test_a10_rolling_window_one_single_symbol_events(make_client: Any) -> None:
    # N = 1, n = 1 → learn (1 symbol: nothing learned) → STM empty
    k = make_client(max_pattern_length=1, stm_mode="ROLLING")
    for s in "ABC":
        r = obs(k, s)
        assert r["auto_learned_pattern"] is None
        assert r["stm_length"] == 0
        assert stm(k) == []
    assert k.get_symbol_stats()["symbols"] == []


def test_a10_rolling_window_one_multi_symbol_event(make_client: Any) -> None:
    k = make_client(max_pattern_length=1, stm_mode="ROLLING")
    r = obs(k, "b", "a")
    assert r["auto_learned_pattern"] == "PTRN|" + ptrn_hash([["a", "b"]])
    assert r["stm_length"] == 0
    assert stm(k) == []
    r = obs(k, "b", "a")
    assert r["auto_learned_pattern"] == "PTRN|" + ptrn_hash([["a", "b"]])
    assert pattern_record(k, ptrn_hash([["a", "b"]]))["frequency"] == 2


def test_a10_rolling_lowered_to_one_keeps_no_events(make_client: Any) -> None:
    k = make_client(max_pattern_length=0, stm_mode="ROLLING")
    for s in "abc":
        obs(k, s)
    assert stm(k) == ev("a", "b", "c")
    r = k.update_session_config({"max_pattern_length": 1})
    assert r["status"] == "okay"
    assert k.get_session_config()["config"]["max_pattern_length"] == 1
    r = obs(k, "d")
    assert r["auto_learned_pattern"] == "PTRN|" + ptrn_hash(ev("a", "b", "c", "d"))
    assert r["stm_length"] == 0
    assert stm(k) == []
    r = obs(k, "e")
    assert r["auto_learned_pattern"] is None
    assert stm(k) == []
    assert pattern_record(k, ptrn_hash(ev("a", "b", "c", "d")))["frequency"] == 1
