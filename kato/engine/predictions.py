"""Predictions (engine.md §4): match every candidate pattern against the STM and score it.

The candidate set is exact: every pattern sharing a symbol with the state, from the store's
symbol index, in name order (so float sums are always added in the same order). Matching is
difflib's ``SequenceMatcher`` without junk heuristics (the reference algorithm), written out in
:func:`_matching_blocks` over an index of the state built once per call: the same blocks, without
a matcher object, named tuples and method calls per candidate.

Time goes where the candidates are many: every candidate is matched and scored, so per
candidate only a tuple of the few numbers the ensemble needs is made (no object, no copy of its
symbols), and its present is found by bisection over the pattern's event starts (computed once
per pattern). Every other field — past, present, future, matches, missing, extras, itf-df,
confluence — is computed only for the predictions that survive the ``max_predictions`` cut.
Every float is computed by the same operations in the same order as the plain definitions, so
the output is the same to the bit (``tests/engine/test_frozen_predictions.py``).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Sequence
from itertools import filterfalse
from json.encoder import encode_basestring_ascii
from operator import attrgetter
from typing import Any

from kato.engine.accumulators import average_emotives
from kato.engine.config import EngineConfig
from kato.engine.limits import check_match_pairs
from kato.engine.ltm import LTMView, Pattern, Totals

__all__ = ["predict"]

Event = tuple[str, ...]
Block = tuple[int, int, int]
"""A matching block ``(i, j, size)``: ``pattern.flat[i:i+size] == state[j:j+size]``."""

Member = tuple[Pattern, list[Block], int, float, int, int]
"""A kept candidate: its pattern, matching blocks, matched symbols, similarity, and the events
``[start, end)`` of its present (§4.3)."""

Group = list[Any]
"""The patterns predicting one future (events compared with their symbols sorted): their
summed weight (a float) and how many they are (an int)."""

Scores = tuple[float, float, float, float]
"""A member's pattern probability, weighted strength, predictive information and potential."""


def predict(
    stm: Sequence[Event], ltm: LTMView, config: EngineConfig
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Return ``(predictions, future_potentials)`` for ``stm`` against the node's LTM.

    Both are ``[]`` when the state has fewer than 2 symbols or nothing matches (a node that
    has learned nothing is answered so before the state is even listed: an STM that is never
    learned from grows with every observe).
    """
    if sum(map(len, stm)) < 2:
        return [], []
    totals = ltm.totals()
    if not totals.total_pattern_frequencies:
        return [], []
    state = [symbol for event in stm for symbol in event]
    state_counts = Counter(state)
    observed = [frozenset(event) for event in stm]
    members, universe = _match_candidates(stm, observed, state, state_counts, ltm, config)
    if not members:
        return [], []
    scored = _Ensemble(members, universe, stm, observed, state, state_counts, ltm, totals)
    return scored.ranked(config.rank_sort_algo, config.max_predictions), scored.future_potentials()


def _match_candidates(
    stm: Sequence[Event],
    observed: list[frozenset[str]],
    state: list[str],
    state_counts: Counter[str],
    ltm: LTMView,
    config: EngineConfig,
) -> tuple[list[Member], set[str]]:
    """The candidates at or above the recall threshold, and the symbols whose statistics the
    ensemble reads: every member's matches and missing symbols (§4.4)."""
    candidates = ltm.candidates(state_counts.keys())
    # Counting the pairs takes a pass over every candidate's symbols: only when the bound of
    # every symbol of every candidate paired with the state's most repeated one is over.
    if sum(map(len, map(_FLAT, candidates))) * max(state_counts.values()) > config.max_match_pairs:
        check_match_pairs(state_counts, map(_FLAT, candidates), config)
    threshold = config.recall_threshold
    positions: dict[str, list[int]] = {}
    for j, symbol in enumerate(state):
        positions.setdefault(symbol, []).append(j)
    size = len(state)
    kept: list[Member] = []
    matched_symbols: set[str] = set()
    distinct = len(positions)
    window = len(stm)
    aligned: set[str] = set()  # the symbols of presents' events aligned with STM events
    for pattern in candidates:
        flat = pattern.flat
        hits = [(i, js) for i, symbol in enumerate(flat) if (js := positions.get(symbol))]
        if not hits:
            continue
        if len(hits) == 1:  # one symbol of the pattern in the state: its first equal symbol
            first, js = hits[0]
            blocks = [(first, js[0], 1)]
            last = first
            matched = 1
        else:
            blocks = _matching_blocks(hits, len(flat), size)
            matched = 0
            for block in blocks:
                matched += block[2]
            first = blocks[0][0]
            last = blocks[-1][0] + blocks[-1][2] - 1
        similarity = 2.0 * matched / (len(flat) + size)
        if similarity < threshold:
            continue
        # The present: from the event of the first matched symbol to the event of the last,
        # one event earlier when the first matched symbol opens its event and is in the
        # previous one too. As many events as symbols: positions are taken for event indexes
        # (as the reference does, even when an empty event makes that untrue).
        starts = pattern.starts
        events = pattern.events
        if len(events) == len(flat):
            start, end = first, last + 1
            opening = first
        else:
            start = bisect_right(starts, first) - 1
            end = bisect_right(starts, last)
            opening = starts[start]
        if start and first == opening and flat[first] in events[start - 1]:
            start -= 1
        if len(matched_symbols) < distinct:  # once every state symbol is in, none is new
            for i, _, length in blocks:
                matched_symbols.update(flat[i : i + length])
        aligned.update(flat[starts[start] : starts[min(end, start + window)]])
        kept.append((pattern, blocks, matched, similarity, start, end))
    # Missing symbols: aligned with an STM event that lacks them. One not in the state is
    # missing wherever it is aligned; one in the state only where its STM event lacks it,
    # which matters only for those not matched already.
    universe = matched_symbols | aligned.difference(positions)
    unmatched = aligned.intersection(positions).difference(matched_symbols)
    if unmatched:
        for pattern, _, _, _, start, end in kept:
            for seen, event in zip(observed, pattern.events[start:end], strict=False):
                universe.update(
                    symbol for symbol in event if symbol in unmatched and symbol not in seen
                )
    return kept, universe


def _matching_blocks(hits: list[tuple[int, list[int]]], size_a: int, size_b: int) -> list[Block]:
    """``SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks()`` without the final
    empty block, as plain tuples, for ``a`` of length ``size_a`` and ``b`` of length ``size_b``;
    ``hits`` lists, in order, each index of ``a`` whose symbol is in ``b`` with the ascending
    indexes of that symbol in ``b``.

    The same algorithm step for step: the longest matching block of a range (earliest in ``a``,
    then in ``b``, among the longest), then the ranges on each side of it, last pushed first;
    blocks sorted and adjacent ones joined. difflib then extends each block over equal
    neighbours, which never changes a block when there is no junk: the longest run found is
    already maximal within its range.

    Two hits, the most common case after one, are answered directly: the earliest run of two
    if they are adjacent and such a run exists, else the first pair of the first hit and the
    first pair of the second after it.
    """
    if len(hits) == 2:
        (i1, js1), (i2, js2) = hits
        if i2 == i1 + 1:
            ends = set(js1)
            for j in js2:
                if j - 1 in ends:
                    return [(i1, j - 1, 2)]
        j1 = js1[0]
        for j in js2:
            if j > j1:
                return [(i1, j1, 1), (i2, j, 1)]
        return [(i1, j1, 1)]
    found: list[Block] = []
    queue = [(0, size_a, 0, size_b)]
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


_FLAT = attrgetter("flat")

_NO_RUNS: dict[int, int] = {}
"""Runs of equal symbols ending at the previous position of ``a`` when there are none."""


def _entropy_term(p: float, k: int) -> float:
    return -p * math.log(p, k) if p > 0 and k > 1 else 0.0


class _Ensemble:
    """The quantities shared by one observe's predictions (§4.6) and the renderer of each.

    Every member gets its scores and its ranking key; the rest of a prediction is computed
    only for the predictions returned.
    """

    def __init__(
        self,
        members: list[Member],
        universe: set[str],
        stm: Sequence[Event],
        observed: list[frozenset[str]],
        state: list[str],
        state_counts: Counter[str],
        ltm: LTMView,
        totals: Totals,
    ) -> None:
        self.members = members
        self.stm = stm
        self.observed = observed
        stats = ltm.symbol_stats(sorted(universe))
        self.totals = totals
        tsip = totals.total_symbols_in_patterns_frequencies
        k = totals.symbol_count
        self.prob = prob = {
            symbol: (stats[symbol].pattern_member_frequency / tsip if tsip else 0.0)
            for symbol in universe
            if symbol in stats
        }
        self.size = size = len(state)
        self.normalized_entropy = sum(
            _entropy_term(state_counts[symbol] / size, k) for symbol in state
        )
        self.global_entropy = sum(
            _entropy_term(prob.get(symbol, 0.0), k) for symbol in state_counts
        )
        # itf-df's state vector (§4.5): its weight per symbol, and its squared norm summed in
        # symbol order, as the sum over both vectors' symbols adds it.
        self.state_weights = {
            symbol: prob.get(symbol, 0.0) * count for symbol, count in state_counts.items()
        }
        self.state_norm = 0.0
        for symbol in sorted(state_counts):
            weight = self.state_weights[symbol]
            self.state_norm += weight * weight
        self.logs = _Logs(prob)
        self.total_frequency = total_frequency = sum(member[0].frequency for member in members)
        # Futures (§4.3) grouped by their sorted events, in the members' order.
        self.groups: dict[tuple[Event, ...], Group] = {}
        groups = self.groups
        group_of: list[Group | None] = []
        for pattern, _, _, similarity, _, end in members:
            if end < len(pattern.events):
                key = pattern.sorted_events[end:]
                group = groups.get(key)
                if group is None:
                    group = groups[key] = [0.0, 0]
                group[0] += pattern.frequency * similarity
                group[1] += 1
                group_of.append(group)
            else:
                group_of.append(None)
        self.weight_total = weight_total = sum(group[0] for group in groups.values())
        self.scores: list[Scores] = []
        self.potential_keys: list[tuple[float, float, int, str]] = []  # §4.7's order
        for (pattern, _, _, similarity, _, _), group in zip(members, group_of, strict=True):
            agg = 0.0
            if group is not None and weight_total:
                agg = group[0] / weight_total
            probability = pattern.frequency / total_frequency
            strength = similarity * probability
            information = strength / agg if agg else 0.0
            potential = similarity * information
            self.scores.append((probability, strength, information, potential))
            self.potential_keys.append((-potential, -similarity, -pattern.frequency, pattern.name))

    def ranked(self, algo: str, limit: int) -> list[dict[str, Any]]:
        """The first ``limit`` predictions in §4.7 order (``algo`` first if not ``potential``)."""
        members, scores = self.members, self.scores
        keys: list[tuple[Any, ...]]
        if algo == "potential":
            keys = self.potential_keys
        else:
            field = self.field(algo)
            keys = [
                (-field(member, score), -score[3], -member[3], -member[0].frequency, member[0].name)
                for member, score in zip(members, scores, strict=True)
            ]
        # Names are unique, so no two keys are equal and the indexes are never compared.
        order = sorted(zip(keys, range(len(keys)), strict=True))
        return [self.render(members[index], scores[index]) for _, index in order[:limit]]

    def field(self, name: str) -> Callable[[Member, Scores], float]:
        """How the prediction field ``name`` is computed from a member and its scores."""
        fields: dict[str, Callable[[Member, Scores], float]] = {
            "similarity": lambda member, _: member[3],
            "evidence": lambda member, _: _evidence(member),
            "confidence": lambda member, _: _confidence(member, _flat_present(member)),
            "snr": lambda member, _: self.snr(member),
            "predictive_information": lambda _, score: score[2],
            "itfdf_similarity": lambda member, _: self.itfdf(member, _flat_present(member)),
            "confluence": lambda member, _: self.confluence(member, _flat_present(member)),
            "frequency": lambda member, _: member[0].frequency,
            "weighted_strength": lambda _, score: score[1],
            "pattern_probability": lambda _, score: score[0],
        }
        return fields[name]

    def render(self, member: Member, scores: Scores) -> dict[str, Any]:
        """Every field of §4.5, in a fixed order."""
        pattern, blocks, _, similarity, start, end = member
        events = pattern.events
        present = events[start:end]
        missing, extras = [], []
        for i, stm_event in enumerate(self.stm):
            if i < len(present):
                expected = present[i]
                # Membership in sets, not in the event tuples: a tuple scan made one n-symbol
                # event cost n² (64k symbols: 35 s); the lists keep pattern and STM order.
                missing.append(list(filterfalse(self.observed[i].__contains__, expected)))
                extras.append(list(filterfalse(frozenset(expected).__contains__, stm_event)))
            else:
                missing.append([])
                extras.append(list(stm_event))
        flat = pattern.flat
        matches: list[str] = []
        for i, _, size in blocks:
            matches += flat[i : i + size]
        flat_present = _flat_present(member)
        probability, strength, information, potential = scores
        return {
            "type": "prototypical",
            "name": pattern.name,
            "frequency": pattern.frequency,
            "sequence": list(map(list, events)),
            "similarity": similarity,
            "matches": matches,
            "missing": missing,
            "extras": extras,
            "past": list(map(list, events[:start])),
            "present": list(map(list, present)),
            "future": list(map(list, events[end:])),
            "evidence": _evidence(member),
            "confidence": _confidence(member, flat_present),
            "fragmentation": float(len(blocks) - 1),
            "snr": self.snr(member),
            "entropy": 0.0,
            "emotives": average_emotives(pattern.emotives) if pattern.emotives else {},
            "normalized_entropy": self.normalized_entropy,
            "global_normalized_entropy": self.global_entropy,
            "itfdf_similarity": self.itfdf(member, flat_present),
            "confluence": self.confluence(member, flat_present),
            "pattern_probability": probability,
            "weighted_strength": strength,
            "predictive_information": information,
            "potential": potential,
        }

    def snr(self, member: Member) -> float:
        matched = member[2]
        unmatched = self.size - matched
        return (2 * matched - unmatched) / (2 * matched + unmatched)

    def itfdf(self, member: Member, flat_present: tuple[str, ...]) -> float:
        """1 − the cosine distance of the state's and the present's itf-df vectors, scaled by
        the pattern's share of the frequency (§4.5).

        Summed in symbol order over the present's symbols only: a symbol of one vector alone
        adds exact zeros to the dot product and to the other vector's norm, which leave a sum
        of non-negative terms as it is; the state's norm is the ensemble's.
        """
        counts: dict[str, int] = {}
        for symbol in flat_present:
            counts[symbol] = counts.get(symbol, 0) + 1
        prob = self.prob
        state_weights = self.state_weights
        dot = norm = 0.0
        for symbol in sorted(counts):
            weight = prob.get(symbol, 0.0) * counts[symbol]
            norm += weight * weight
            state_weight = state_weights.get(symbol)
            if state_weight is not None:
                dot += state_weight * weight
        if self.state_norm == 0 or norm == 0:
            distance = 1.0
        else:
            distance = 1 - dot / (math.sqrt(self.state_norm) * math.sqrt(norm))
        return 1 - distance * member[0].frequency / self.total_frequency

    def confluence(self, member: Member, flat_present: tuple[str, ...]) -> float:
        total = self.totals.total_pattern_frequencies
        if not total:
            return 0.0
        log_product = sum(map(self.logs.__getitem__, flat_present))
        return member[0].frequency / total * (1.0 - math.pow(10.0, log_product))

    def future_potentials(self) -> list[dict[str, Any]]:
        """One entry per future group, by aggregate potential, weight, then future's JSON.

        The JSON of a future is written only for groups tied on weight (sorting by weight, then
        each run of equal weights by JSON, is the same order as sorting by both at once).
        """
        ordered = sorted(self.groups.items(), key=lambda item: -item[1][0])
        start = 0
        while start < len(ordered):
            stop = start + 1
            weight = ordered[start][1][0]
            while stop < len(ordered) and ordered[stop][1][0] == weight:
                stop += 1
            if stop - start > 1:
                ordered[start:stop] = sorted(ordered[start:stop], key=lambda item: _json(item[0]))
            start = stop
        weight_total = self.weight_total
        return [
            {
                "future": list(map(list, key)),
                "aggregate_potential": weight / weight_total if weight_total else 0.0,
                "supporting_patterns": count,
                "total_weighted_frequency": weight,
            }
            for key, (weight, count) in ordered
        ]


class _Logs(dict[str, float]):
    """Confluence's ``log10`` of each symbol's probability (``1e-10`` for none), computed when
    first read."""

    def __init__(self, prob: dict[str, float]) -> None:
        super().__init__()
        self.prob = prob

    def __missing__(self, symbol: str) -> float:
        value = self[symbol] = math.log10(self.prob.get(symbol, 0.0) or 1e-10)
        return value


def _flat_present(member: Member) -> tuple[str, ...]:
    """The symbols of a member's present, in order."""
    pattern = member[0]
    return pattern.flat[pattern.starts[member[4]] : pattern.starts[member[5]]]


def _evidence(member: Member) -> float:
    length = member[0].length
    return member[2] / length if length else 0.0


def _confidence(member: Member, flat_present: tuple[str, ...]) -> float:
    return member[2] / len(flat_present) if flat_present else 0.0


def _json(future: tuple[Event, ...]) -> str:
    """``json.dumps(future)``: the same text, from the text of each of its events."""
    return "[" + ", ".join(map(_EVENT_TEXTS.__getitem__, future)) + "]"


class _EventTexts(dict[Event, str]):
    """``json.dumps`` of each event met, kept across calls (every future is a run of a
    pattern's events, and the same events recur in many futures and observes) up to
    ``EVENT_TEXTS`` of them or ``EVENT_TEXT_CHARS`` characters, then started afresh.

    The text is ``json.dumps``'s: an array, ``", "`` between items, each string by the
    encoder's own ASCII escaper; without the encoder's set-up per call.
    """

    def __init__(self) -> None:
        super().__init__()
        self.chars = 0

    def __missing__(self, event: Event) -> str:
        text = "[" + ", ".join(map(_string, event)) + "]"
        if len(self) >= EVENT_TEXTS or self.chars + len(text) > EVENT_TEXT_CHARS:
            self.clear()
            self.chars = 0
        self[event] = text
        self.chars += len(text)
        return text


#: How many event texts :func:`_json` keeps, and how many characters in all (a few MB).
EVENT_TEXTS = 16_384
EVENT_TEXT_CHARS = 1 << 20

_EVENT_TEXTS = _EventTexts()

_string: Callable[[str], str] = encode_basestring_ascii
