"""Predictions (engine.md §4): match every candidate pattern against the STM and score it.

The candidate set is exact: every pattern sharing a symbol with the state, from the store's
symbol index, in name order (so float sums are always added in the same order). Matching is
difflib's ``SequenceMatcher`` without junk heuristics (the reference algorithm), written out in
:func:`_matching_blocks` over an index of the state built once per call: the same blocks, without
a matcher object, named tuples and method calls per candidate.

Allocation is kept low because with a large LTM it is what costs (engine rows of ``kato bench``):
every candidate is matched, but only the few symbols and numbers the ensemble needs are kept
for it; its past, present, future, matches, missing and extras are built only for the
predictions that are rendered.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kato.engine.accumulators import average_emotives
from kato.engine.config import EngineConfig
from kato.engine.limits import check_match_pairs
from kato.engine.ltm import LTMView, Pattern, Totals

__all__ = ["predict"]

Event = tuple[str, ...]
Block = tuple[int, int, int]
"""A matching block ``(i, j, size)``: ``pattern.flat[i:i+size] == state[j:j+size]``."""


@dataclass(slots=True)
class _Candidate:
    """One kept pattern, where it matched, and its ensemble quantities.

    ``start`` and ``end`` bound its present (§4.3): ``pattern.events[start:end]``.
    """

    pattern: Pattern
    blocks: list[Block]
    matched: int
    similarity: float
    start: int
    end: int
    group: _FutureGroup | None = None
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
    observed = [frozenset(event) for event in stm]
    members, universe = _match_candidates(stm, observed, state, state_counts, ltm, config)
    if not members:
        return [], []
    scored = _Ensemble(members, universe, stm, observed, state, state_counts, ltm)
    return scored.ranked(config.rank_sort_algo, config.max_predictions), scored.future_potentials()


def _match_candidates(
    stm: Sequence[Event],
    observed: list[frozenset[str]],
    state: list[str],
    state_counts: Counter[str],
    ltm: LTMView,
    config: EngineConfig,
) -> tuple[list[_Candidate], set[str]]:
    """The candidates at or above the recall threshold, and the symbols whose statistics the
    ensemble reads: every member's matches and missing symbols (§4.4)."""
    candidates = ltm.candidates(state_counts.keys())
    check_match_pairs(state_counts, (pattern.flat for pattern in candidates), config)
    threshold = config.recall_threshold
    positions: dict[str, list[int]] = {}
    for j, symbol in enumerate(state):
        positions.setdefault(symbol, []).append(j)
    size = len(state)
    window = len(stm)
    kept = []
    universe: set[str] = set()
    for pattern in candidates:
        flat = pattern.flat
        blocks = _matching_blocks(flat, size, positions)
        matched = 0
        for block in blocks:
            matched += block[2]
        if matched == 0:
            continue
        similarity = 2.0 * matched / (len(flat) + size)
        if similarity < threshold:
            continue
        events = pattern.events
        start, end = _present(events, flat, blocks)
        for _, j, length in blocks:
            universe.update(state[j : j + length])
        for i in range(min(window, end - start)):
            seen = observed[i]
            for symbol in events[start + i]:
                if symbol not in seen:
                    universe.add(symbol)
        kept.append(_Candidate(pattern, blocks, matched, similarity, start, end))
    return kept, universe


def _matching_blocks(a: Sequence[str], size_b: int, positions: dict[str, list[int]]) -> list[Block]:
    """``SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks()`` without the final
    empty block, as plain tuples; ``positions`` maps each symbol of ``b`` (of length ``size_b``)
    to its ascending indexes.

    The same algorithm step for step: the longest matching block of a range (earliest in ``a``,
    then in ``b``, among the longest), then the ranges on each side of it, last pushed first;
    blocks sorted and adjacent ones joined. difflib then extends each block over equal
    neighbours, which never changes a block when there is no junk: the longest run found is
    already maximal within its range.
    """
    hits = [(i, js) for i, symbol in enumerate(a) if (js := positions.get(symbol))]
    if len(hits) == 1 and len(hits[0][1]) == 1:  # one pair of equal symbols: one block
        return [(hits[0][0], hits[0][1][0], 1)]
    found: list[Block] = []
    queue = [(0, len(a), 0, size_b)]
    while queue:
        alo, ahi, blo, bhi = queue.pop()
        best_i, best_j, best = alo, blo, 0
        runs: dict[int, int] = {}
        last = -2
        for i, js in hits:  # the i whose symbol is not in b: no runs there, none carried on
            if i < alo:
                continue
            if i >= ahi:
                break
            previous = runs if i == last + 1 else _NO_RUNS
            runs = {}
            for j in js:
                if j < blo:
                    continue
                if j >= bhi:
                    break
                k = runs[j] = previous.get(j - 1, 0) + 1
                if k > best:
                    best_i, best_j, best = i - k + 1, j - k + 1, k
            last = i
        if best:
            found.append((best_i, best_j, best))
            if alo < best_i and blo < best_j:
                queue.append((alo, best_i, blo, best_j))
            if best_i + best < ahi and best_j + best < bhi:
                queue.append((best_i + best, ahi, best_j + best, bhi))
    if len(found) < 2:
        return found
    found.sort()
    blocks: list[Block] = []
    i1, j1, k1 = found[0]
    for i2, j2, k2 in found[1:]:
        if i1 + k1 == i2 and j1 + k1 == j2:
            k1 += k2
        else:
            blocks.append((i1, j1, k1))
            i1, j1, k1 = i2, j2, k2
    blocks.append((i1, j1, k1))
    return blocks


_NO_RUNS: dict[int, int] = {}
"""Runs of equal symbols ending at the previous position of ``a`` when there are none."""


def _present(
    events: tuple[Event, ...], flat: tuple[str, ...], blocks: list[Block]
) -> tuple[int, int]:
    """The events ``[start, end)`` of the present (§4.3): from the event of the first matched
    symbol to the event of the last, one event earlier when the first matched symbol opens its
    event and is in the previous one too."""
    first = blocks[0][0]
    last = blocks[-1][0] + blocks[-1][2] - 1
    if len(events) == len(flat):  # one symbol per event: positions are event indexes
        start, opening, end = first, first, last + 1
    else:
        start = opening = -1
        position, end = 0, len(events)
        for index, event in enumerate(events):
            following = position + len(event)
            if start < 0 and first < following:
                start, opening = index, position
            if last < following:
                end = index + 1
                break
            position = following
    if start >= 1 and first == opening and flat[first] in events[start - 1]:  # one scan, O(n)
        start -= 1
    return start, end


def _entropy_term(p: float, k: int) -> float:
    return -p * math.log(p, k) if p > 0 and k > 1 else 0.0


class _Ensemble:
    """The quantities shared by one observe's predictions (§4.6) and the renderer of each.

    Ranking by ``potential`` (the default) needs only the cheap fields, so every field of a
    prediction is computed only for the predictions that survive the ``max_predictions`` cut.
    """

    def __init__(
        self,
        members: list[_Candidate],
        universe: set[str],
        stm: Sequence[Event],
        observed: list[frozenset[str]],
        state: list[str],
        state_counts: Counter[str],
        ltm: LTMView,
    ) -> None:
        self.members = members
        self.stm = stm
        self.observed = observed
        self.state = state
        stats = ltm.symbol_stats(sorted(universe))
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
        self.total_frequency = total_frequency = sum(cand.pattern.frequency for cand in members)
        self.groups: dict[tuple[Event, ...], _FutureGroup] = {}
        groups = self.groups
        for cand in members:
            pattern = cand.pattern
            if cand.end < len(pattern.events):  # a future (§4.3): grouped by its sorted events
                key = pattern.sorted_events[cand.end :]
                group = groups.get(key)
                if group is None:
                    group = groups[key] = _FutureGroup()
                group.weight += pattern.frequency * cand.similarity
                group.members += 1
                cand.group = group
        self.weight_total = weight_total = sum(group.weight for group in groups.values())
        for cand in members:
            agg = 0.0
            if cand.group is not None and weight_total:
                agg = cand.group.weight / weight_total
            cand.pattern_probability = probability = cand.pattern.frequency / total_frequency
            cand.weighted_strength = strength = cand.similarity * probability
            cand.information = information = strength / agg if agg else 0.0
            cand.potential = cand.similarity * information

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
        events = pattern.events
        present = events[cand.start : cand.end]
        missing, extras = [], []
        for i, stm_event in enumerate(self.stm):
            expected = present[i] if i < len(present) else ()
            # Membership in sets, not in the event tuples: a tuple scan made one n-symbol event
            # cost n² (64k symbols: 35 s); the lists keep pattern and STM order all the same.
            seen, wanted = self.observed[i], frozenset(expected)
            missing.append([symbol for symbol in expected if symbol not in seen])
            extras.append([symbol for symbol in stm_event if symbol not in wanted])
        state = self.state
        matches = [symbol for _, j, size in cand.blocks for symbol in state[j : j + size]]
        flat_present = [symbol for event in present for symbol in event]
        unmatched = self.size - cand.matched
        return {
            "type": "prototypical",
            "name": pattern.name,
            "frequency": pattern.frequency,
            "sequence": [list(event) for event in events],
            "similarity": cand.similarity,
            "matches": matches,
            "missing": missing,
            "extras": extras,
            "past": [list(event) for event in events[: cand.start]],
            "present": [list(event) for event in present],
            "future": [list(event) for event in events[cand.end :]],
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
        """One entry per future group, by aggregate potential, weight, then future's JSON.

        The JSON of a future is written only for groups tied on weight (sorting by weight, then
        each run of equal weights by JSON, is the same order as sorting by both at once).
        """
        ordered = sorted(self.groups.items(), key=lambda item: -item[1].weight)
        start = 0
        while start < len(ordered):
            stop = start + 1
            weight = ordered[start][1].weight
            while stop < len(ordered) and ordered[stop][1].weight == weight:
                stop += 1
            if stop - start > 1:
                ordered[start:stop] = sorted(ordered[start:stop], key=lambda item: _json(item[0]))
            start = stop
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


def _json(events: tuple[Event, ...]) -> str:
    return json.dumps(events)  # tuples are written as arrays


@dataclass(slots=True)
class _FutureGroup:
    """Patterns predicting the same future (events compared with their symbols sorted)."""

    weight: float = 0.0
    members: int = 0


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
