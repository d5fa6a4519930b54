"""Long-term memory: the records of a node, the effects that change them, and an in-memory store.

The engine never writes long-term memory itself. An operation returns *effects*
(:class:`LearnPattern`, :class:`RegisterVector`, :class:`ClearNode`); the caller commits them
with the session write (its outbox) and applies them to the node's store under an effect id,
which the store records with them so that no id is applied twice (``apply(effect_id=…)``).
Reads go through the small :class:`LTMView` protocol, so any store (in memory, SQLite, MongoDB)
can serve predictions.

:class:`MemoryLTM` is both the in-memory store and the overlay the engine uses inside one
operation: ``MemoryLTM(base=view)`` answers reads from ``view`` plus the effects applied to the
overlay, without touching ``view``. That is how a later step of an observe-sequence sees what an
earlier step learned while the real store is still untouched.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Collection, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from kato.engine.accumulators import merge_metadata

__all__ = [
    "AT_ONCE_SYMBOLS",
    "ClearNode",
    "Effect",
    "LTMStore",
    "LTMView",
    "LearnPattern",
    "MemoryLTM",
    "Pattern",
    "RegisterVector",
    "SnapshotChanged",
    "SymbolStats",
    "Totals",
    "WouldWait",
    "apply_learn",
    "long_lived",
    "small",
]

Event = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Pattern:
    """One learned pattern of a node (engine.md §1.4); ``name`` is the bare hash."""

    name: str
    events: tuple[Event, ...]
    frequency: int = 1
    emotives: tuple[Mapping[str, float], ...] = ()
    metadata: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    flat: tuple[str, ...] = field(init=False, repr=False, compare=False)
    """The pattern's symbols in order, event boundaries removed (computed once)."""

    sorted_events: tuple[Event, ...] = field(init=False, repr=False, compare=False)
    """The events with each one's symbols sorted: how predictions group futures (§4.6).
    ``events`` itself when every event is sorted already (the default ``sort_symbols``)."""

    starts: tuple[int, ...] = field(init=False, repr=False, compare=False)
    """Where each event starts in ``flat``, then ``len(flat)``: predictions find the event of a
    matched symbol by bisection and slice an event range out of ``flat`` (computed once)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "flat", tuple(s for event in self.events for s in event))
        starts = [0]
        for event in self.events:
            starts.append(starts[-1] + len(event))
        object.__setattr__(self, "starts", tuple(starts))
        ordered = tuple(event if len(event) < 2 else tuple(sorted(event)) for event in self.events)
        object.__setattr__(
            self, "sorted_events", self.events if ordered == self.events else ordered
        )

    @property
    def length(self) -> int:
        return len(self.flat)

    def to_document(self) -> dict[str, object]:
        """The pattern as ``get_pattern`` returns it (engine.md §6)."""
        return {
            "name": "PTRN|" + self.name,
            "pattern_data": [list(event) for event in self.events],
            "length": self.length,
            "frequency": self.frequency,
            "emotives": [dict(entry) for entry in self.emotives],
            "metadata": {key: list(values) for key, values in self.metadata.items()},
        }


@dataclass(frozen=True, slots=True)
class SymbolStats:
    """Statistics of one symbol over every learn of its node (engine.md §1.5)."""

    name: str
    frequency: int = 0
    pattern_member_frequency: int = 0
    emotives: Mapping[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "frequency": self.frequency,
            "pattern_member_frequency": self.pattern_member_frequency,
            "emotives": dict(self.emotives),
        }


@dataclass(frozen=True, slots=True)
class Totals:
    """Node-wide totals; ``symbol_count`` is K, the number of distinct symbols with a record."""

    total_pattern_frequencies: int = 0
    total_symbol_frequencies: int = 0
    total_symbols_in_patterns_frequencies: int = 0
    symbol_count: int = 0

    def to_dict(self) -> dict[str, int]:
        return {
            "total_pattern_frequencies": self.total_pattern_frequencies,
            "total_symbol_frequencies": self.total_symbol_frequencies,
            "total_symbols_in_patterns_frequencies": self.total_symbols_in_patterns_frequencies,
            "K": self.symbol_count,
        }


@dataclass(frozen=True, slots=True)
class LearnPattern:
    """Effect: one learn of ``events`` (§3, §7 "learn"): upsert, emotives, metadata, statistics.

    ``emotives`` is the learn's averaged emotives with zeros dropped, or ``None`` when the
    accumulator was empty (then the pattern's emotive list is left as it is).
    """

    name: str
    events: tuple[Event, ...]
    emotives: Mapping[str, float] | None
    metadata: Mapping[str, tuple[str, ...]]
    persistence: int


@dataclass(frozen=True, slots=True)
class RegisterVector:
    """Effect: remember which vector a ``VCTR|…`` symbol stands for (the node's registry)."""

    name: str
    vector: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class ClearNode:
    """Effect: delete the node's whole long-term memory (clear-all)."""


Effect = LearnPattern | RegisterVector | ClearNode


@runtime_checkable
class LTMView(Protocol):
    """What predictions read from a node's long-term memory, as one consistent snapshot."""

    def candidates(self, symbols: Collection[str]) -> list[Pattern]:
        """Every pattern sharing at least one symbol with ``symbols``, sorted by name."""
        ...

    def pattern(self, name: str) -> Pattern | None:
        """One pattern by bare hash."""
        ...

    def symbol_stats(self, symbols: Collection[str]) -> dict[str, SymbolStats]:
        """The records of those of ``symbols`` that have one."""
        ...

    def totals(self) -> Totals: ...


class SnapshotChanged(Exception):
    """The node's LTM changed while a snapshot was being read; the reader must compute again.

    Raised by a store whose snapshots are optimistic (read a version, read, check the version);
    session stores treat it like a write conflict and run the operation again.
    """


class WouldWait(Exception):
    """A snapshot asked for ``at_once`` cannot be read at once: it would wait (a lock, a server,
    the disk) or the node is too large to compute a step over on the event loop. Raised before
    anything was computed; the caller reads it again without ``at_once``, in a worker thread."""


#: The largest node a step is computed over on the event loop (``snapshot(at_once=True)``): at
#: most this many symbols in its patterns, each counted once per learn
#: (``total_symbols_in_patterns_frequencies``), so predicting over it takes tens of
#: microseconds, less than handing the step to a thread does.
AT_ONCE_SYMBOLS = 256


def small(totals: Totals) -> bool:
    """Whether a node of these totals is small enough to compute a step over at once."""
    return totals.total_symbols_in_patterns_frequencies <= AT_ONCE_SYMBOLS


class LTMStore(LTMView, Protocol):
    """A node's long-term memory that effects can be applied to and that can be listed."""

    def snapshot(self, *, at_once: bool = False) -> AbstractContextManager[LTMView]:
        """A view whose reads form one consistent snapshot (engine.md §7.3).

        Leaving the block may raise :class:`SnapshotChanged` when the snapshot was not
        consistent; everything computed from the view must then be discarded. With
        ``at_once``, entering it raises :class:`WouldWait` unless it is read from this
        process's memory without waiting and the node holds at most :data:`AT_ONCE_SYMBOLS`.
        """
        ...

    def apply(self, effects: Iterable[Effect], *, effect_id: str | None = None) -> bool:
        """Apply a step's effects as one atomic unit, each exactly once (§7.1, §7.6).

        With an ``effect_id`` the id is recorded in the same atomic unit, and effects whose id
        was recorded before are not applied again: ``False`` then (``True`` when applied). That
        is what lets a session's outbox be drained more than once (sessions.md guarantee 3).
        """
        ...

    def applied(self, effect_ids: Collection[str]) -> set[str]:
        """Those of ``effect_ids`` that :meth:`apply` recorded (inside a snapshot: as of it)."""
        ...

    def patterns(self, *, offset: int = 0, limit: int | None = None) -> list[Pattern]: ...

    def pattern_count(self) -> int: ...

    def all_symbol_stats(self) -> list[SymbolStats]: ...

    def vector(self, name: str) -> tuple[float, ...] | None: ...


def apply_learn(existing: Pattern | None, effect: LearnPattern) -> Pattern:
    """The pattern after one learn: +1 frequency, emotive window, metadata union (§1.7, §1.8)."""
    if existing is None:
        existing = Pattern(name=effect.name, events=effect.events, frequency=0)
    emotives = existing.emotives
    if effect.emotives is not None:
        emotives = (*emotives, dict(effect.emotives))[-effect.persistence :]
    metadata = existing.metadata
    if effect.metadata:
        merged = merge_metadata(existing.metadata, effect.metadata)
        metadata = {key: tuple(values) for key, values in merged.items()}
    return Pattern(
        name=existing.name,
        events=existing.events,
        frequency=existing.frequency + 1,
        emotives=emotives,
        metadata=metadata,
    )


def symbol_counts(events: Sequence[Event]) -> dict[str, int]:
    """Occurrences of each distinct symbol of a pattern, in first-seen order."""
    counts: dict[str, int] = {}
    for event in events:
        for symbol in event:
            counts[symbol] = counts.get(symbol, 0) + 1
    return counts


#: How many patterns may become long-lived before :func:`long_lived` freezes the collector's
#: objects: large enough that small stores never freeze, small enough that a large LTM is
#: frozen in a few steps while it loads.
FREEZE_AFTER = 10_000

_unfrozen = 0
_unfrozen_lock = threading.Lock()


def long_lived(patterns: int) -> None:
    """Count ``patterns`` new long-lived patterns; once ``FREEZE_AFTER`` have gathered since the
    last freeze, collect, then move every object the collector tracks to its permanent
    generation (``gc.freeze``).

    Why: a loaded node's patterns live as long as the process, yet every full collection walked
    them all — with 100k patterns, a few such collections per hundred predictions made their p99
    20 times their p50. The collection first frees the garbage cycles of the moment, so nothing
    unreachable is pinned. Patterns hold no reference cycles: a frozen pattern that a learn
    replaces or a clear drops is still freed by its reference count.
    """
    global _unfrozen
    with _unfrozen_lock:
        _unfrozen += patterns
        if _unfrozen < FREEZE_AFTER:
            return
        _unfrozen = 0
    gc.collect()
    gc.freeze()


class MemoryLTM:
    """An in-memory node store, optionally layered over a read-only ``base`` view.

    With a ``base``, reads merge the base with what was applied here; a :class:`ClearNode`
    hides the base from then on. Nothing is ever written to the base.
    """

    def __init__(self, base: LTMView | None = None) -> None:
        self._base = base
        self._applied: set[str] = set()
        self._reset()

    def _reset(self) -> None:
        """Forget the node's records; the applied effect ids stay (a clear is an effect too)."""
        self._patterns: dict[str, Pattern] = {}
        self._index: dict[str, set[str]] = {}
        self._symbols: dict[str, SymbolStats] = {}
        self._totals = Totals()
        self._vectors: dict[str, tuple[float, ...]] = {}

    # -- reads -------------------------------------------------------------------------------
    def snapshot(self, *, at_once: bool = False) -> AbstractContextManager[LTMView]:
        """Itself: one process reads and writes it, from one thread at a time."""
        if at_once and not small(self.totals()):
            raise WouldWait(f"{self.totals().total_symbols_in_patterns_frequencies} symbols")
        return contextlib.nullcontext(self)

    def candidates(self, symbols: Collection[str]) -> list[Pattern]:
        names: set[str] = set()
        for symbol in symbols:
            names.update(self._index.get(symbol, ()))
        found = {name: self._patterns[name] for name in names}
        if self._base is not None:
            for pattern in self._base.candidates(symbols):
                found.setdefault(pattern.name, pattern)
        return [found[name] for name in sorted(found)]

    def pattern(self, name: str) -> Pattern | None:
        if name in self._patterns:
            return self._patterns[name]
        return self._base.pattern(name) if self._base is not None else None

    def symbol_stats(self, symbols: Collection[str]) -> dict[str, SymbolStats]:
        found = {s: self._symbols[s] for s in symbols if s in self._symbols}
        if self._base is not None:
            missing = [s for s in symbols if s not in found]
            if missing:
                found.update(self._base.symbol_stats(missing))
        return found

    def totals(self) -> Totals:
        if self._base is None:
            return self._totals
        base = self._base.totals()
        return Totals(
            base.total_pattern_frequencies + self._totals.total_pattern_frequencies,
            base.total_symbol_frequencies + self._totals.total_symbol_frequencies,
            base.total_symbols_in_patterns_frequencies
            + self._totals.total_symbols_in_patterns_frequencies,
            base.symbol_count + self._totals.symbol_count,
        )

    def patterns(self, *, offset: int = 0, limit: int | None = None) -> list[Pattern]:
        if self._base is not None:
            raise TypeError("an overlay cannot be listed; list the store it overlays")
        names = sorted(self._patterns)[offset:]
        if limit is not None:
            names = names[:limit]
        return [self._patterns[name] for name in names]

    def pattern_count(self) -> int:
        if self._base is not None:
            raise TypeError("an overlay cannot be counted; count the store it overlays")
        return len(self._patterns)

    def all_symbol_stats(self) -> list[SymbolStats]:
        if self._base is not None:
            raise TypeError("an overlay cannot be listed; list the store it overlays")
        return [self._symbols[name] for name in sorted(self._symbols)]

    def vector(self, name: str) -> tuple[float, ...] | None:
        return self._vectors.get(name)

    def applied(self, effect_ids: Collection[str]) -> set[str]:
        return {effect_id for effect_id in effect_ids if effect_id in self._applied}

    # -- writes ------------------------------------------------------------------------------
    def apply(self, effects: Iterable[Effect], *, effect_id: str | None = None) -> bool:
        if effect_id is not None:
            if effect_id in self._applied:
                return False
            self._applied.add(effect_id)
        for effect in effects:
            if isinstance(effect, LearnPattern):
                self._learn(effect)
            elif isinstance(effect, RegisterVector):
                self._vectors[effect.name] = effect.vector
            elif isinstance(effect, ClearNode):
                self._base = None  # a wipe hides the base too
                self._reset()
            else:  # pragma: no cover - the Effect union is closed
                raise TypeError(f"unknown effect {effect!r}")
        return True

    def _learn(self, effect: LearnPattern) -> None:
        previous = self.pattern(effect.name)
        self._patterns[effect.name] = apply_learn(previous, effect)
        if self._base is None:  # an overlay lives for one operation
            long_lived(1)
        counts = symbol_counts(effect.events)
        known = self.symbol_stats(list(counts))
        new_symbols = 0
        for symbol, count in counts.items():
            old = known.get(symbol)
            if old is None:
                new_symbols += 1
                old = SymbolStats(name=symbol)
            self._index.setdefault(symbol, set()).add(effect.name)
            emotives = dict(old.emotives)
            for key, value in (effect.emotives or {}).items():
                emotives[key] = emotives.get(key, 0.0) + value
            self._symbols[symbol] = SymbolStats(
                name=symbol,
                frequency=old.frequency + count,
                pattern_member_frequency=old.pattern_member_frequency + 1,
                emotives=emotives,
            )
        length = sum(counts.values())
        self._totals = Totals(
            self._totals.total_pattern_frequencies + 1,
            self._totals.total_symbol_frequencies + length,
            self._totals.total_symbols_in_patterns_frequencies + len(counts),
            self._totals.symbol_count + new_symbols,
        )
