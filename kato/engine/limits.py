"""The work bounds of one request: what an observation may carry and what a prediction may cost.

The engine's work is near-linear in the sizes of the state and of the candidate patterns, except
for difflib's matcher, whose first pass visits every pair of equal symbols (one in the pattern,
one in the state): ``"a"`` repeated 3,000 times on both sides is 9 M pairs, about a second. The
bounds below (service-level fields of :class:`~kato.engine.EngineConfig`, never per session)
turn the sizes a hostile client controls into a clear refusal before anything changes, instead
of minutes of one worker's time. Every check is a pure function of its inputs, so a refused
request is refused the same way everywhere, and every accepted input gives the same bytes as
before the bounds existed.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from itertools import repeat
from typing import Any

from kato.engine.config import EngineConfig
from kato.exceptions import LimitExceededError, StmFullError

__all__ = ["check_match_pairs", "check_metadata", "check_observation_size", "check_stm"]


def check_observation_size(payload: Mapping[str, Any], config: EngineConfig) -> None:
    """Refuse too many strings or emotive keys, before any item of them is validated.

    Only ``len()`` is taken, so a 4 MiB list of symbols is refused in microseconds.
    """
    strings, emotives = payload.get("strings"), payload.get("emotives")
    count = len(strings) if isinstance(strings, list | tuple) else 0
    if count > config.max_event_symbols:
        raise LimitExceededError.over(
            "event_symbols", config.max_event_symbols, count, "send fewer strings"
        )
    if isinstance(emotives, Mapping) and len(emotives) > config.max_emotive_keys:
        raise LimitExceededError.over("emotive_keys", config.max_emotive_keys, len(emotives))


def check_metadata(metadata: Mapping[str, Any], config: EngineConfig) -> None:
    """Refuse an observation's metadata over ``max_metadata_bytes`` as compact UTF-8 JSON
    (``metadata`` has been validated as JSON already)."""
    size = len(json.dumps(metadata, ensure_ascii=False, separators=(",", ":")).encode())
    if size > config.max_metadata_bytes:
        raise LimitExceededError.over("metadata_bytes", config.max_metadata_bytes, size)


def check_stm(stm: Sequence[Sequence[str]], config: EngineConfig) -> None:
    """Refuse an STM (the session's, with the new event) over ``max_stm_symbols`` symbols or
    ``max_stm_chars`` characters of symbols."""
    symbols = sum(len(event) for event in stm)
    if symbols > config.max_stm_symbols:
        raise StmFullError.over(
            "stm_symbols", config.max_stm_symbols, symbols, "learn or clear the STM first"
        )
    chars = sum(len(symbol) for event in stm for symbol in event)
    if chars > config.max_stm_chars:
        raise StmFullError.over(
            "stm_chars", config.max_stm_chars, chars, "learn or clear the STM first"
        )


def check_match_pairs(
    state_counts: Counter[str], patterns: Iterable[Sequence[str]], config: EngineConfig
) -> None:
    """Refuse a prediction whose matcher would visit more than ``max_match_pairs`` pairs of
    equal symbols in its first pass over every candidate (``patterns``, flattened)."""
    pairs = 0
    count = state_counts.get
    for flat in patterns:
        pairs += sum(map(count, flat, repeat(0, len(flat))))
    if pairs > config.max_match_pairs:
        raise LimitExceededError.over(
            "match_pairs", config.max_match_pairs, pairs, "too many repeated symbols to match"
        )
