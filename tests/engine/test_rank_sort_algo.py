"""``rank_sort_algo``: the default reproduces engine.md §4.7; another field ranks first."""

from __future__ import annotations

import pytest

from kato.engine import EngineConfig, MemoryLTM, SessionState, learn, predict
from kato.exceptions import InvalidConfigError


def ltm_of(*sequences: str) -> MemoryLTM:
    ltm = MemoryLTM()
    for sequence in sequences:
        stm = tuple((symbol,) for symbol in sequence.split())
        ltm.apply(learn(SessionState(stm=stm), EngineConfig()).effects)
    return ltm


LTM = ltm_of("a b c", "a b c", "a b d", "x a b c", "a b", "b z z z z z z")
STM = (("a",), ("b",))


def test_default_is_potential_then_similarity_frequency_name() -> None:
    ranked, _ = predict(STM, LTM, EngineConfig())
    keys = [(-p["potential"], -p["similarity"], -p["frequency"], p["name"]) for p in ranked]
    assert keys == sorted(keys)
    assert ranked == predict(STM, LTM, EngineConfig(rank_sort_algo="potential"))[0]


@pytest.mark.parametrize("field", ["similarity", "evidence", "confluence", "frequency"])
def test_another_field_ranks_first_and_potential_breaks_ties(field: str) -> None:
    ranked, futures = predict(STM, LTM, EngineConfig(rank_sort_algo=field))
    keys = [
        (-p[field], -p["potential"], -p["similarity"], -p["frequency"], p["name"]) for p in ranked
    ]
    assert keys == sorted(keys)
    default, default_futures = predict(STM, LTM, EngineConfig())
    assert sorted(p["name"] for p in ranked) == sorted(p["name"] for p in default)
    assert futures == default_futures, "ranking never changes the ensemble's futures"


def test_cut_applies_after_ranking() -> None:
    top = predict(STM, LTM, EngineConfig(rank_sort_algo="similarity", max_predictions=2))[0]
    full = predict(STM, LTM, EngineConfig(rank_sort_algo="similarity"))[0]
    assert top == full[:2]


def test_unknown_algorithm_is_rejected_with_the_choices() -> None:
    with pytest.raises(InvalidConfigError) as info:
        EngineConfig().with_overrides({"rank_sort_algo": "vibes"})
    assert "similarity" in info.value.field_errors["rank_sort_algo"]
