"""The written-out matcher of predictions gives exactly difflib's matching blocks.

engine.md §4 names difflib's ``SequenceMatcher`` without junk heuristics as the reference;
:func:`kato.engine.predictions._matching_blocks` repeats its algorithm without the matcher
object, so every block, and so every prediction, must be the same.
"""

from __future__ import annotations

from difflib import SequenceMatcher

from hypothesis import given, settings
from hypothesis import strategies as st

from kato.engine.predictions import _matching_blocks

symbols = st.lists(st.sampled_from("abcde"), max_size=24)


def reference(a: list[str], b: list[str]) -> list[tuple[int, int, int]]:
    matcher = SequenceMatcher(None, a, b, autojunk=False)
    return [tuple(block) for block in matcher.get_matching_blocks() if block.size > 0]  # type: ignore[misc]


def positions(b: list[str]) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for j, symbol in enumerate(b):
        found.setdefault(symbol, []).append(j)
    return found


@settings(max_examples=2000, deadline=None)
@given(symbols, symbols)
def test_the_blocks_are_difflibs(a: list[str], b: list[str]) -> None:
    assert _matching_blocks(a, len(b), positions(b)) == reference(a, b)


def test_long_sequences_with_many_repeats_match_too() -> None:
    """Past 200 elements difflib's autojunk would treat popular elements as junk: with it off,
    as the engine uses it, long repetitive sequences still match exactly."""
    a = list("ab" * 150 + "c" + "ba" * 120)
    b = list("a" * 40 + "ab" * 90 + "cc" + "b" * 300)
    assert _matching_blocks(a, len(b), positions(b)) == reference(a, b)
