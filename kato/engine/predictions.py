"""Predictions (engine.md §4): match every candidate pattern against the STM and score it.

The candidate set is exact: every pattern sharing a symbol with the state, from the store's
symbol index, in name order (so float sums are always added in the same order). Matching uses
difflib's ``SequenceMatcher`` without junk heuristics, which is the reference algorithm; its
index of the state is built once per call and reused for every candidate.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from difflib import Match, SequenceMatcher
from typing import Any

from kato.engine.accumulators import average_emotives
from kato.engine.config import EngineConfig
from kato.engine.limits import check_match_pairs
from kato.engine.ltm import LTMView, Pattern, Totals

__all__ = ["predict"]

Event = tuple[str, ...]


@dataclass(slots=True)
class _Candidate:
    """One kept pattern and the parts of its match that the ensemble quantities need."""

    pattern: Pattern
    blocks: list[Match]
    matched: int
    similarity: float
    past: tuple[Event, ...]
    present: tuple[Event, ...]
    future: tuple[Event, ...]
    matches: list[str]
    missing: list[list[str]]
    extras: list[list[str]]
    pattern_probability: float = 0.0
    weighted_strength: float = 0.0
    information: float = 0.0
    potential: float = 0.0


def predict(
    stm: Sequence[Event], ltm: LTMView, config: EngineConfig
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Return ``(predictions, future_potentials)`` for ``stm`` against the node's LTM.

    Both are ``[]`` when the state has fewer than 2 symbols or nothing matches.
    """
    state = [symbol for event in stm for symbol in event]
    if len(state) < 2:
        return [], []
    state_counts = Counter(state)
    ensemble = _match_candidates(stm, state, state_counts, ltm, config)
    if not ensemble:
        return [], []
    scored = _Ensemble(ensemble, state, state_counts, ltm)
    return scored.ranked(config.rank_sort_algo, config.max_predictions), scored.future_potentials()


def _match_candidates(
    stm: Sequence[Event],
    state: list[str],
    state_counts: Counter[str],
    ltm: LTMView,
    config: EngineConfig,
) -> list[_Candidate]:
    candidates = ltm.candidates(state_counts.keys())
    check_match_pairs(state_counts, (pattern.flat for pattern in candidates), config)
    threshold = config.recall_threshold
    matcher: SequenceMatcher[str] = SequenceMatcher(None, autojunk=False)
    matcher.set_seq2(state)
    kept = []
    for pattern in candidates:
        flat = pattern.flat
        matcher.set_seq1(flat)
        blocks = [block for block in matcher.get_matching_blocks() if block.size > 0]
        matched = sum(block.size for block in blocks)
        if matched == 0:
            continue
        similarity = 2.0 * matched / (len(flat) + len(state))
        if similarity < threshold:
            continue
        kept.append(_split(pattern, flat, blocks, matched, similarity, stm, state))
    return kept


def _split(
    pattern: Pattern,
    flat: tuple[str, ...],
    blocks: list[Match],
    matched: int,
    similarity: float,
    stm: Sequence[Event],
    state: list[str],
) -> _Candidate:
    """past/present/future (§4.3) and matches/missing/extras (§4.4) of one match."""
    events = pattern.events
    event_of: list[int] = []
    starts: list[int] = []
    for index, event in enumerate(events):
        starts.append(len(event_of))
        event_of.extend([index] * len(event))
    first = blocks[0].a
    last = blocks[-1].a + blocks[-1].size - 1
    s, t = event_of[first], event_of[last]
    if s >= 1 and first == starts[s] and flat[first] in events[s - 1]:  # one scan, O(n)
        s -= 1
    present = events[s : t + 1]
    missing, extras = [], []
    for i, stm_event in enumerate(stm):
        expected = present[i] if i < len(present) else ()
        # Membership in sets, not in the event tuples: a tuple scan made one n-symbol event
        # cost n² (64k symbols: 35 s); the lists keep pattern and STM order all the same.
        observed, wanted = frozenset(stm_event), frozenset(expected)
        missing.append([symbol for symbol in expected if symbol not in observed])
        extras.append([symbol for symbol in stm_event if symbol not in wanted])
    return _Candidate(
        pattern=pattern,
        blocks=blocks,
        matched=matched,
        similarity=similarity,
        past=events[:s],
        present=present,
        future=events[t + 1 :],
        matches=[symbol for b in blocks for symbol in state[b.b : b.b + b.size]],
        missing=missing,
        extras=extras,
    )


def _entropy_term(p: float, k: int) -> float:
    return -p * math.log(p, k) if p > 0 and k > 1 else 0.0


class _Ensemble:
    """The quantities shared by one observe's predictions (§4.6) and the renderer of each.

    Ranking by ``potential`` (the default) needs only the cheap fields, so every field of a
    prediction is computed only for the predictions that survive the ``max_predictions`` cut.
    """

    def __init__(
        self, members: list[_Candidate], state: list[str], state_counts: Counter[str], ltm: LTMView
    ) -> None:
        self.members = members
        universe: dict[str, None] = {}
        for cand in members:
            universe.update(dict.fromkeys(cand.matches))
            for sub in cand.missing:
                universe.update(dict.fromkeys(sub))
        stats = ltm.symbol_stats(list(universe))
        self.totals = totals = ltm.totals()
        tsip = totals.total_symbols_in_patterns_frequencies
        k = totals.symbol_count
        self.prob = {
            symbol: (stats[symbol].pattern_member_frequency / tsip if tsip else 0.0)
            for symbol in universe
            if symbol in stats
        }
        self.size = size = len(state)
        self.state_counts = state_counts
        self.normalized_entropy = sum(
            _entropy_term(self.state_counts[symbol] / size, k) for symbol in state
        )
        self.global_entropy = sum(
            _entropy_term(self.prob.get(symbol, 0.0), k) for symbol in self.state_counts
        )
        self.total_frequency = sum(cand.pattern.frequency for cand in members)
        self.groups: dict[tuple[Event, ...], _FutureGroup] = {}
        for cand in members:
            if cand.future:
                group = self.groups.setdefault(_future_key(cand.future), _FutureGroup())
                group.weight += cand.pattern.frequency * cand.similarity
                group.members += 1
        self.weight_total = sum(group.weight for group in self.groups.values())
        for cand in members:
            agg = 0.0
            if cand.future and self.weight_total:
                agg = self.groups[_future_key(cand.future)].weight / self.weight_total
            cand.pattern_probability = cand.pattern.frequency / self.total_frequency
            cand.weighted_strength = cand.similarity * cand.pattern_probability
            cand.information = cand.weighted_strength / agg if agg else 0.0
            cand.potential = cand.similarity * cand.information

    def ranked(self, algo: str, limit: int) -> list[dict[str, Any]]:
        """The first ``limit`` predictions in §4.7 order (``algo`` first if not ``potential``)."""
        if algo == "potential":
            order = sorted(
                self.members,
                key=lambda c: (-c.potential, -c.similarity, -c.pattern.frequency, c.pattern.name),
            )
            return [self.render(cand) for cand in order[:limit]]
        rendered = [self.render(cand) for cand in self.members]
        rendered.sort(
            key=lambda p: (-p[algo], -p["potential"], -p["similarity"], -p["frequency"], p["name"])
        )
        return rendered[:limit]

    def render(self, cand: _Candidate) -> dict[str, Any]:
        """Every field of §4.5, in a fixed order."""
        pattern = cand.pattern
        flat_present = [symbol for event in cand.present for symbol in event]
        unmatched = self.size - cand.matched
        return {
            "type": "prototypical",
            "name": pattern.name,
            "frequency": pattern.frequency,
            "sequence": [list(event) for event in pattern.events],
            "similarity": cand.similarity,
            "matches": cand.matches,
            "missing": cand.missing,
            "extras": cand.extras,
            "past": [list(event) for event in cand.past],
            "present": [list(event) for event in cand.present],
            "future": [list(event) for event in cand.future],
            "evidence": cand.matched / pattern.length if pattern.length else 0.0,
            "confidence": cand.matched / len(flat_present) if flat_present else 0.0,
            "fragmentation": float(len(cand.blocks) - 1),
            "snr": (2 * cand.matched - unmatched) / (2 * cand.matched + unmatched),
            "entropy": 0.0,
            "emotives": average_emotives(pattern.emotives),
            "normalized_entropy": self.normalized_entropy,
            "global_normalized_entropy": self.global_entropy,
            "itfdf_similarity": _itfdf(
                self.state_counts,
                Counter(flat_present),
                self.prob,
                pattern.frequency,
                self.total_frequency,
            ),
            "confluence": _confluence(flat_present, self.prob, pattern.frequency, self.totals),
            "pattern_probability": cand.pattern_probability,
            "weighted_strength": cand.weighted_strength,
            "predictive_information": cand.information,
            "potential": cand.potential,
        }

    def future_potentials(self) -> list[dict[str, Any]]:
        """One entry per future group, by aggregate potential, weight, then future's JSON."""
        ordered = sorted(
            self.groups.items(),
            key=lambda item: (-item[1].weight, json.dumps([list(event) for event in item[0]])),
        )
        return [
            {
                "future": [list(event) for event in key],
                "aggregate_potential": group.weight / self.weight_total
                if self.weight_total
                else 0.0,
                "supporting_patterns": group.members,
                "total_weighted_frequency": group.weight,
            }
            for key, group in ordered
        ]


@dataclass(slots=True)
class _FutureGroup:
    """Patterns predicting the same future (events compared with their symbols sorted)."""

    weight: float = 0.0
    members: int = 0


def _future_key(future: tuple[Event, ...]) -> tuple[Event, ...]:
    return tuple(tuple(sorted(event)) for event in future)


def _itfdf(
    state_counts: Counter[str],
    present_counts: Counter[str],
    prob: Mapping[str, float],
    frequency: int,
    total_frequency: int,
) -> float:
    dot = norm_u = norm_w = 0.0
    for symbol in sorted(state_counts.keys() | present_counts.keys()):
        p = prob.get(symbol, 0.0)
        u = p * state_counts[symbol]
        w = p * present_counts[symbol]
        dot += u * w
        norm_u += u * u
        norm_w += w * w
    if norm_u == 0 or norm_w == 0:
        distance = 1.0
    else:
        distance = 1 - dot / (math.sqrt(norm_u) * math.sqrt(norm_w))
    return 1 - distance * frequency / total_frequency


def _confluence(
    flat_present: list[str], prob: Mapping[str, float], frequency: int, totals: Totals
) -> float:
    total = totals.total_pattern_frequencies
    if not total:
        return 0.0
    log_product = sum(math.log10(prob.get(symbol, 0.0) or 1e-10) for symbol in flat_present)
    return frequency / total * (1.0 - math.pow(10.0, log_product))
