"""Futures tied on weight are ordered by their JSON text, written without ``json.dumps``:
the text must be ``json.dumps``'s for any symbols, and the texts kept across calls bounded."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from kato.engine import predictions
from kato.engine.predictions import _json

symbols = st.text(st.characters(blacklist_categories=("Cs",)), max_size=6)
futures = st.lists(st.lists(symbols, max_size=4).map(tuple), min_size=1, max_size=5).map(tuple)


@settings(max_examples=1000, deadline=None)
@given(futures)
def test_the_text_is_json_dumps(future: tuple[tuple[str, ...], ...]) -> None:
    assert _json(future) == json.dumps(future)


def test_the_texts_kept_are_bounded() -> None:
    for n in range(3 * predictions.EVENT_TEXTS):
        _json(((f"s{n}",),))
    assert len(predictions._EVENT_TEXTS) <= predictions.EVENT_TEXTS
    huge = tuple(f"symbol-{n}" for n in range(100_000))
    assert _json((huge,)) == json.dumps((huge,))
    assert _json((("a",),)) == '[["a"]]'
    assert predictions._EVENT_TEXTS.chars <= predictions.EVENT_TEXT_CHARS
