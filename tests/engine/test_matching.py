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


def blocks(a: list[str], b: list[str]) -> list[tuple[int, int, int]]:
    """The engine's blocks, from the hits it gives the matcher: each index of ``a`` whose
    symbol is in ``b``, with that symbol's indexes in ``b``."""
    positions: dict[str, list[int]] = {}
    for j, symbol in enumerate(b):
        positions.setdefault(symbol, []).append(j)
    hits = [(i, positions[symbol]) for i, symbol in enumerate(a) if symbol in positions]
    return _matching_blocks(hits, len(a), len(b))


@settings(max_examples=2000, deadline=None)
@given(symbols, symbols)
def test_the_blocks_are_difflibs(a: list[str], b: list[str]) -> None:
    assert blocks(a, b) == reference(a, b)


def test_long_sequences_with_many_repeats_match_too() -> None:
    """Past 200 elements difflib's autojunk would treat popular elements as junk: with it off,
    as the engine uses it, long repetitive sequences still match exactly."""
    a = list("ab" * 150 + "c" + "ba" * 120)
    b = list("a" * 40 + "ab" * 90 + "cc" + "b" * 300)
    assert blocks(a, b) == reference(a, b)


@settings(max_examples=1000, deadline=None)
@given(
    st.lists(st.sampled_from("abxyz"), max_size=8).filter(lambda a: sum(s in "ab" for s in a) == 2),
    st.lists(st.sampled_from("abc"), max_size=12),
)
def test_two_hits_are_difflibs(a: list[str], b: list[str]) -> None:
    """Two symbols of ``a`` in ``b`` take a shortcut of their own."""
    assert blocks(a, b) == reference(a, b)
