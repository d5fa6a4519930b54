"""The embedded LTM: every node's long-term memory in one SQLite file that processes share.

    nodes = SQLiteNodes("/var/lib/kato/ltm.sqlite3")
    ltm = nodes.ltm("node-a")
    ltm.apply(step.effects)          # one BEGIN IMMEDIATE transaction, all or nothing
    with ltm.snapshot() as view:     # one read transaction: a WAL snapshot
        predictions, futures = predict(stm, view, config)

**One file for all nodes.** Every table has ``node_id`` as the first column of its primary key,
so a node's rows are one contiguous key range and every query is bounded to it: nothing of one
node is ever read for another. One file rather than one per node because SQLite serialises
writers per file anyway and a learn holds the write lock for well under a millisecond, while one
file keeps one connection per thread whatever the number of nodes, one WAL to checkpoint, no
file name derived from a node id, and ``clear_all`` a handful of range deletes.

Tables (``node_id`` leads every key)::

    nodes            node_id │ version, cleared, total_pattern_frequencies,
                             │ total_symbol_frequencies, total_symbols_in_patterns_frequencies,
                             │ symbol_count (= K)
    patterns         node_id, name │ events JSON, length, frequency, emotives JSON, metadata JSON,
                                   │ generation
    pattern_symbols  node_id, symbol, name        (the symbol index that candidates use)
    symbols          node_id, symbol │ frequency, pattern_member_frequency, generation
    symbol_emotives  node_id, symbol, key │ total  (rowid keeps the keys' first-seen order)
    vectors          node_id, name │ vector JSON  (the VCTR registry)
    applied_effects  node_id, effect_id            (the outbox ids ``apply`` has applied)

**Concurrency** (engine.md §7). The file is in WAL mode with a busy timeout, and each thread
of each process has its own connection (a connection is used by no other thread, and never
across a ``fork``).

- ``apply(effects, effect_id=…)`` runs every effect of a step in one ``BEGIN IMMEDIATE``
  transaction, and records ``effect_id`` in ``applied_effects`` in that same transaction: an id
  found there already means the effects were applied before, and the transaction applies
  nothing (a session's outbox may be drained by a request and a drainer at once). The
  write lock is taken before anything is read, so learns from any number of processes are
  serialised and each is applied exactly once and entirely (§7.1), and a ``clear_all`` racing a
  learn lands wholly before or after it (§7.6). Counters are SQL increments and upserts
  (``frequency = frequency + 1``); the emotive window and metadata union are computed by
  :func:`kato.engine.ltm.apply_learn` from the row read *inside* that transaction, so no
  other writer can come between the read and the write.
- ``snapshot()`` holds one read transaction; in WAL mode every read in it sees the database as
  of its first read (§7.3), while writers go on. Every transaction committed before that first
  read is visible, whichever process committed it (§7.2); there is no per-process cache. The
  node's ``version`` is bumped by every ``apply``, for a future cache to be versioned by.
- Candidates come from ``pattern_symbols`` with one ``IN`` over the state's symbols (passed as
  one JSON parameter, so any number of symbols fits), never from a scan of the patterns.

**Errors.** A database that is locked past the busy timeout, cannot be opened or created, or
fails with an I/O error is unavailable: :class:`~kato.exceptions.StoreUnavailableError`,
raised ``from`` the original error by :func:`~kato.ltm._sqlite_db.sqlite_errors`, the one
place that translates them. Anything else propagates unchanged.

Durability: ``synchronous=NORMAL`` by default, so a committed learn survives a crash of any
process; an operating-system crash or power loss may lose the last few. Pass
``synchronous="FULL"`` to fsync every commit.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Collection, Iterable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

from kato.engine import (
    ClearNode,
    Effect,
    LearnPattern,
    LTMStore,
    LTMView,
    Pattern,
    RegisterVector,
    SymbolStats,
    Totals,
)
from kato.engine.ltm import WouldWait, apply_learn, long_lived, small, symbol_counts
from kato.ltm._codec import decode_events, encode_events
from kato.ltm._sqlite_db import Connections, sqlite_errors

__all__ = ["SQLiteLTM", "SQLiteNodes", "sqlite_errors"]

log = logging.getLogger("kato")

#: How :meth:`SQLiteNodes.check_writable` tries the write lock: attempts, and the pause between.
PROBE_TRIES = 3
PROBE_PAUSE_S = 0.005

_SELECT_PATTERN = "SELECT name, events, frequency, emotives, metadata FROM patterns"
_SELECT_NODE = (
    "SELECT version, cleared, total_pattern_frequencies, total_symbol_frequencies,"
    " total_symbols_in_patterns_frequencies, symbol_count FROM nodes WHERE node_id = ?"
)


class SQLiteNodes:
    """Every node's LTM in one SQLite file that any number of processes share.

        nodes = SQLiteNodes("ltm.sqlite3")
        nodes.ltm("node-a").apply(effects)

    Parameters:
        path: the database file; it and its directory are created on first use.
        timeout: seconds a transaction waits for another process's write lock before the
            store is reported unavailable.
        synchronous: SQLite's ``synchronous`` setting, ``"NORMAL"`` (default) or ``"FULL"``.

    Nothing is opened until the first operation; each thread then opens its own connection.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        timeout: float = 10.0,
        synchronous: str = "NORMAL",
    ) -> None:
        text = os.fspath(path)
        if text == ":memory:" or text.startswith("file::memory:"):
            raise ValueError("SQLiteNodes needs a file that processes share, not ':memory:'")
        if synchronous.upper() not in ("NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be NORMAL, FULL or EXTRA, got {synchronous!r}")
        self.path = Path(text)
        self._connections = Connections(self.path, timeout=timeout, synchronous=synchronous.upper())
        self._caches = _Caches()

    def ltm(self, node_id: str) -> LTMStore:
        """The store of ``node_id`` (its rows only; nothing is created until it learns)."""
        return SQLiteLTM(self._connections, node_id, self._caches)

    def ping(self) -> None:
        """Raise ``StoreUnavailableError`` unless the database answers a query."""
        with sqlite_errors("ping", self.path):
            self._connections.get().execute("SELECT 1").fetchone()

    def check_writable(self) -> None:
        """Raise ``StoreUnavailableError`` unless the write lock can be taken at once.

        Takes SQLite's write lock (``BEGIN IMMEDIATE``) and releases it without writing, trying
        ``PROBE_TRIES`` times ``PROBE_PAUSE_S`` apart (a learn holds the lock for well under a
        millisecond): another process holding the lock (a backup, a second writer) makes it
        fail, while reads would still answer.
        """
        with sqlite_errors("write probe", self.path):
            conn = self._connections.get()
            conn.execute("PRAGMA busy_timeout = 0")
            try:
                for attempt in range(PROBE_TRIES):
                    try:
                        conn.execute("BEGIN IMMEDIATE")
                        conn.execute("ROLLBACK")
                        return
                    except sqlite3.OperationalError:
                        if attempt == PROBE_TRIES - 1:
                            raise
                        time.sleep(PROBE_PAUSE_S)
            finally:
                conn.execute(f"PRAGMA busy_timeout = {int(self._connections.timeout * 1000)}")

    def close(self) -> None:
        """Close every connection of this process and drop its read caches; the next operation
        opens a new connection and loads again."""
        self._connections.close()
        self._caches.drop()

    def __repr__(self) -> str:
        return f"SQLiteNodes({os.fspath(self.path)!r})"


class _Reader:
    """The reads of one node on one connection; a snapshot when that connection is in a
    read transaction."""

    def __init__(self, conn: sqlite3.Connection, node_id: str) -> None:
        self._conn = conn
        self._node = node_id

    def node(self) -> tuple[int, int, Totals]:
        """The node's version, the version of its latest clear, and its totals (a node never
        written: all zero)."""
        row = self._conn.execute(_SELECT_NODE, (self._node,)).fetchone()
        if row is None:
            return 0, 0, Totals()
        return row[0], row[1], Totals(*row[2:])

    def candidates(self, symbols: Collection[str]) -> list[Pattern]:
        rows = self._conn.execute(
            f"{_SELECT_PATTERN} WHERE node_id = ?1 AND name IN ("
            " SELECT name FROM pattern_symbols"
            " WHERE node_id = ?1 AND symbol IN (SELECT value FROM json_each(?2))"
            ") ORDER BY name",
            (self._node, json.dumps(list(symbols))),
        )
        return [_pattern(row) for row in rows]

    def pattern(self, name: str) -> Pattern | None:
        row = self._conn.execute(
            f"{_SELECT_PATTERN} WHERE node_id = ? AND name = ?", (self._node, name)
        ).fetchone()
        return None if row is None else _pattern(row)

    def symbol_stats(self, symbols: Collection[str]) -> dict[str, SymbolStats]:
        wanted = json.dumps(list(symbols))
        rows = self._conn.execute(
            "SELECT symbol, frequency, pattern_member_frequency FROM symbols"
            " WHERE node_id = ?1 AND symbol IN (SELECT value FROM json_each(?2))",
            (self._node, wanted),
        ).fetchall()
        emotives = self._emotives(
            " AND symbol IN (SELECT value FROM json_each(?2))", (self._node, wanted)
        )
        return {
            symbol: SymbolStats(symbol, frequency, member, emotives.get(symbol, {}))
            for symbol, frequency, member in rows
        }

    def patterns_since(self, generation: int) -> sqlite3.Cursor:
        """The pattern rows written after ``generation`` (every one for ``-1``)."""
        if generation < 0:
            return self._conn.execute(f"{_SELECT_PATTERN} WHERE node_id = ?", (self._node,))
        return self._conn.execute(
            f"{_SELECT_PATTERN} WHERE node_id = ? AND generation > ?", (self._node, generation)
        )

    def symbol_stats_since(self, generation: int) -> list[SymbolStats]:
        """The symbol records written after ``generation`` (every one for ``-1``); a learn
        rewrites the record of each symbol whose emotive totals it changes."""
        where, of_those = "", ""
        params: tuple[object, ...] = (self._node,)
        if generation >= 0:
            where, params = " AND generation > ?2", (self._node, generation)
            of_those = f" AND symbol IN (SELECT symbol FROM symbols WHERE node_id = ?1{where})"
        rows = self._conn.execute(
            "SELECT symbol, frequency, pattern_member_frequency FROM symbols"
            f" WHERE node_id = ?1{where}",
            params,
        ).fetchall()
        emotives = self._emotives(of_those, params)
        return [
            SymbolStats(symbol, frequency, member, emotives.get(symbol, {}))
            for symbol, frequency, member in rows
        ]

    def patterns(self, offset: int, limit: int | None) -> list[Pattern]:
        rows = self._conn.execute(
            f"{_SELECT_PATTERN} WHERE node_id = ? ORDER BY name LIMIT ? OFFSET ?",
            (self._node, -1 if limit is None else limit, offset),
        )
        return [_pattern(row) for row in rows]

    def pattern_count(self) -> int:
        row = self._conn.execute(
            "SELECT count(*) FROM patterns WHERE node_id = ?", (self._node,)
        ).fetchone()
        return int(row[0])

    def all_symbol_stats(self) -> list[SymbolStats]:
        rows = self._conn.execute(
            "SELECT symbol, frequency, pattern_member_frequency FROM symbols"
            " WHERE node_id = ? ORDER BY symbol",
            (self._node,),
        ).fetchall()
        emotives = self._emotives("", (self._node,))
        return [
            SymbolStats(symbol, frequency, member, emotives.get(symbol, {}))
            for symbol, frequency, member in rows
        ]

    def vector(self, name: str) -> tuple[float, ...] | None:
        row = self._conn.execute(
            "SELECT vector FROM vectors WHERE node_id = ? AND name = ?", (self._node, name)
        ).fetchone()
        return None if row is None else tuple(float(x) for x in json.loads(row[0]))

    def applied(self, effect_ids: Collection[str]) -> set[str]:
        rows = self._conn.execute(
            "SELECT effect_id FROM applied_effects"
            " WHERE node_id = ?1 AND effect_id IN (SELECT value FROM json_each(?2))",
            (self._node, json.dumps(list(effect_ids))),
        )
        return {row[0] for row in rows}

    def _emotives(self, where: str, params: tuple[object, ...]) -> dict[str, dict[str, float]]:
        found: dict[str, dict[str, float]] = {}
        rows = self._conn.execute(
            f"SELECT symbol, key, total FROM symbol_emotives WHERE node_id = ?1{where}"
            " ORDER BY rowid",
            params,
        )
        for symbol, key, total in rows:
            found.setdefault(symbol, {})[key] = float(total)
        return found


class _View:
    """The reads of one node in one snapshot, from the node's cache when it is exact as of the
    snapshot and through a :class:`_Reader` otherwise, with errors translated.

    What :meth:`SQLiteLTM.snapshot` yields: an :class:`LTMView`, plus the listing reads.
    """

    def __init__(
        self, reader: _Reader, path: Path, cache: _NodeCache, version: int, totals: Totals
    ) -> None:
        self._reader = reader
        self._path = path
        self._cache = cache
        self._version = version
        self._totals = totals

    def candidates(self, symbols: Collection[str]) -> list[Pattern]:
        cache = self._cache
        with cache.lock:
            if cache.generation == self._version:
                return cache.candidates(symbols)
        with sqlite_errors("candidates", self._path):
            return self._reader.candidates(symbols)

    def pattern(self, name: str) -> Pattern | None:
        cache = self._cache
        with cache.lock:
            if cache.generation == self._version:
                return cache.patterns.get(name)
        with sqlite_errors("pattern", self._path):
            return self._reader.pattern(name)

    def symbol_stats(self, symbols: Collection[str]) -> dict[str, SymbolStats]:
        cache = self._cache
        with cache.lock:
            if cache.generation == self._version:
                known = cache.symbols
                return {symbol: known[symbol] for symbol in symbols if symbol in known}
        with sqlite_errors("symbol_stats", self._path):
            return self._reader.symbol_stats(symbols)

    def totals(self) -> Totals:
        return self._totals

    def patterns(self, offset: int, limit: int | None) -> list[Pattern]:
        with sqlite_errors("patterns", self._path):
            return self._reader.patterns(offset, limit)

    def pattern_count(self) -> int:
        with sqlite_errors("pattern_count", self._path):
            return self._reader.pattern_count()

    def all_symbol_stats(self) -> list[SymbolStats]:
        with sqlite_errors("all_symbol_stats", self._path):
            return self._reader.all_symbol_stats()

    def vector(self, name: str) -> tuple[float, ...] | None:
        with sqlite_errors("vector", self._path):
            return self._reader.vector(name)

    def applied(self, effect_ids: Collection[str]) -> set[str]:
        with sqlite_errors("applied", self._path):
            return self._reader.applied(effect_ids)


class _NodeCache:
    """One node's decoded patterns, symbol→names index and symbol records in this process,
    exact as of the node's version ``generation`` (``-1``: nothing loaded yet).

    Every field is read and changed under ``lock`` only; the records are immutable values that
    a refresh replaces, so what a read returned stays exact for the version it was read at.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.generation = -1
        #: whether the node was small (:func:`~kato.engine.ltm.small`) at the latest snapshot:
        #: an at-once read of a large node is refused without a statement
        self.small = False
        self._reset()

    def _reset(self) -> None:
        self.patterns: dict[str, Pattern] = {}
        self.index: dict[str, set[str]] = {}
        self.symbols: dict[str, SymbolStats] = {}
        self._texts: dict[str, str] = {}  # one str per distinct symbol, shared by all patterns

    def candidates(self, symbols: Collection[str]) -> list[Pattern]:
        """As :meth:`_Reader.candidates`; call it under ``lock``."""
        index = self.index
        names: set[str] = set()
        for symbol in symbols:
            found = index.get(symbol)
            if found:
                names.update(found)
        patterns = self.patterns
        return [patterns[name] for name in sorted(names)]

    def catch_up(self, reader: _Reader, version: int, cleared: int) -> None:
        """Bring the cache to ``version`` from ``reader``'s snapshot, which is at ``version``.

        Reads only the rows written after the cache's generation, or every row of the node
        when it was cleared since. A snapshot older than the cache leaves it alone.
        """
        with self.lock:
            if version <= self.generation:
                return
            since = self.generation
            if cleared > since:
                self._reset()
                since = -1
            loaded = 0
            try:
                for row in reader.patterns_since(since):
                    pattern = self._decode(row)
                    if pattern.name not in self.patterns:
                        for symbol in set(pattern.flat):
                            self.index.setdefault(symbol, set()).add(pattern.name)
                    self.patterns[pattern.name] = pattern
                    loaded += 1
                for stats in reader.symbol_stats_since(since):
                    self.symbols[stats.name] = stats
            except BaseException:
                self._reset()  # half caught up is exact as of no version: load whole next time
                self.generation = -1
                raise
            self.generation = version
        long_lived(loaded)

    def _decode(self, row: tuple[str, str, int, str, str]) -> Pattern:
        name, events, frequency, emotives, metadata = row
        texts = self._texts
        return Pattern(
            name=name,
            events=tuple(
                tuple(texts.setdefault(symbol, symbol) for symbol in event)
                for event in json.loads(events)
            ),
            frequency=frequency,
            emotives=tuple(json.loads(emotives)),
            metadata={key: tuple(values) for key, values in json.loads(metadata).items()},
        )


class _Caches:
    """The read caches of this process, one per node of the file.

    A forked child starts with none: a lock held by a thread of the parent at the fork would
    never be released in the child.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._nodes: dict[str, _NodeCache] = {}

    def get(self, node_id: str) -> _NodeCache:
        if self._pid != os.getpid():
            self._lock = threading.Lock()
            self._nodes = {}
            self._pid = os.getpid()
        cache = self._nodes.get(node_id)
        if cache is None:
            with self._lock:
                cache = self._nodes.setdefault(node_id, _NodeCache())
        return cache

    def drop(self) -> None:
        """Forget every node (a snapshot still open keeps the cache it holds)."""
        with self._lock:
            self._nodes = {}


class SQLiteLTM:
    """One node's long-term memory in a :class:`SQLiteNodes` file (an :class:`LTMStore`).

    Reads made directly on the store (not through :meth:`snapshot`) each run in a read
    transaction of their own.
    """

    def __init__(self, connections: Connections, node_id: str, caches: _Caches) -> None:
        self._connections = connections
        self.node_id = node_id
        self._caches = caches

    # -- reads -------------------------------------------------------------------------------
    def snapshot(self, *, at_once: bool = False) -> AbstractContextManager[LTMView]:
        """A view whose reads all happen in one read transaction (one WAL snapshot).

        Never raises :class:`~kato.engine.SnapshotChanged`: the snapshot is exact. Inside
        another snapshot of the same thread it reuses that one. Its first read is the node's
        row, which brings this process's cache of the node up to the snapshot.

        ``at_once`` (an event loop's read): on the process's spare connection, which never
        waits for a lock, and only when this process's cache of the node is already at the
        snapshot's version and the node is small (:func:`~kato.engine.ltm.small`); otherwise
        :class:`~kato.engine.WouldWait`, before anything is computed. In WAL mode a read
        transaction takes no lock a writer holds, so the node's row is one read of a page
        SQLite has cached.
        """
        return self._at_once() if at_once else self._snapshot()

    @contextlib.contextmanager
    def _at_once(self) -> Iterator[_View]:
        with self._connections.spare() as conn:
            cache = self._caches.get(self.node_id)
            if conn is None or cache.generation < 0 or not cache.small:
                raise WouldWait("no spare connection, or the node is large or not cached yet")
            try:
                conn.execute("BEGIN")
                reader = _Reader(conn, self.node_id)
                version, _, totals = reader.node()
                if version != cache.generation or not small(totals):
                    raise WouldWait("the node changed since it was cached, or it is large")
                yield _View(reader, self._connections.path, cache, version, totals)
            except sqlite3.Error as exc:  # busy, or anything else: the worker thread's read decides
                raise WouldWait(f"{type(exc).__name__}: {exc}") from exc
            finally:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")

    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[_View]:
        path = self._connections.path
        with sqlite_errors("snapshot", path):
            conn = self._connections.get()
            nested = conn.in_transaction
            if not nested:
                conn.execute("BEGIN")
        try:
            with sqlite_errors("snapshot", path):
                reader = _Reader(conn, self.node_id)
                version, cleared, totals = reader.node()
                cache = self._caches.get(self.node_id)
                cache.catch_up(reader, version, cleared)
            cache.small = small(totals)
            yield _View(reader, path, cache, version, totals)
        finally:
            if not nested and conn.in_transaction:
                with sqlite_errors("snapshot", path):
                    conn.execute("ROLLBACK")  # read only: nothing to keep

    def candidates(self, symbols: Collection[str]) -> list[Pattern]:
        with self._snapshot() as view:
            return view.candidates(symbols)

    def pattern(self, name: str) -> Pattern | None:
        with self._snapshot() as view:
            return view.pattern(name)

    def symbol_stats(self, symbols: Collection[str]) -> dict[str, SymbolStats]:
        with self._snapshot() as view:
            return view.symbol_stats(symbols)

    def totals(self) -> Totals:
        with self._snapshot() as view:
            return view.totals()

    def patterns(self, *, offset: int = 0, limit: int | None = None) -> list[Pattern]:
        """Patterns sorted by name, from ``offset``, at most ``limit`` of them."""
        with self._snapshot() as view:
            return view.patterns(offset, limit)

    def pattern_count(self) -> int:
        with self._snapshot() as view:
            return view.pattern_count()

    def all_symbol_stats(self) -> list[SymbolStats]:
        """Every symbol record of the node, sorted by symbol."""
        with self._snapshot() as view:
            return view.all_symbol_stats()

    def vector(self, name: str) -> tuple[float, ...] | None:
        with self._snapshot() as view:
            return view.vector(name)

    def applied(self, effect_ids: Collection[str]) -> set[str]:
        with self._snapshot() as view:
            return view.applied(effect_ids)

    # -- writes ------------------------------------------------------------------------------
    def apply(self, effects: Iterable[Effect], *, effect_id: str | None = None) -> bool:
        """Apply ``effects`` in order as one ``BEGIN IMMEDIATE`` transaction (all or none),
        recording ``effect_id`` in it; ``False`` (nothing applied) if it was recorded before."""
        effects = list(effects)
        if not effects:
            return True
        with sqlite_errors("apply", self._connections.path):
            conn = self._connections.get()
            if conn.in_transaction:
                raise RuntimeError("apply() was called inside a snapshot of the same thread")
            conn.execute("BEGIN IMMEDIATE")
            try:
                if (
                    effect_id is not None
                    and not conn.execute(
                        "INSERT OR IGNORE INTO applied_effects (node_id, effect_id) VALUES (?, ?)",
                        (self.node_id, effect_id),
                    ).rowcount
                ):
                    conn.execute("ROLLBACK")
                    return False
                conn.execute("INSERT OR IGNORE INTO nodes (node_id) VALUES (?)", (self.node_id,))
                (generation,) = conn.execute(
                    "UPDATE nodes SET version = version + 1 WHERE node_id = ? RETURNING version",
                    (self.node_id,),
                ).fetchall()[0]
                for effect in effects:
                    self._apply_one(conn, effect, generation)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        return True

    def _apply_one(self, conn: sqlite3.Connection, effect: Effect, generation: int) -> None:
        """One effect, its rows stamped with ``generation`` (the node's new version)."""
        if isinstance(effect, LearnPattern):
            self._learn(conn, effect, generation)
        elif isinstance(effect, RegisterVector):
            conn.execute(
                "INSERT INTO vectors (node_id, name, vector) VALUES (?, ?, ?)"
                " ON CONFLICT (node_id, name) DO UPDATE SET vector = excluded.vector",
                (self.node_id, effect.name, json.dumps([float(x) for x in effect.vector])),
            )
        elif isinstance(effect, ClearNode):
            self._clear(conn, generation)
        else:  # pragma: no cover - the Effect union is closed
            raise TypeError(f"unknown effect {effect!r}")

    def _learn(self, conn: sqlite3.Connection, effect: LearnPattern, generation: int) -> None:
        node = self.node_id
        existing = _Reader(conn, node).pattern(effect.name)
        learned = apply_learn(existing, effect)
        counts = symbol_counts(effect.events)
        conn.execute(
            "INSERT INTO patterns"
            " (node_id, name, events, length, frequency, emotives, metadata, generation)"
            " VALUES (?, ?, ?, ?, 1, ?, ?, ?)"
            " ON CONFLICT (node_id, name) DO UPDATE SET frequency = frequency + 1,"
            " emotives = excluded.emotives, metadata = excluded.metadata,"
            " generation = excluded.generation",
            (
                node,
                effect.name,
                encode_events(effect.events),
                learned.length,
                json.dumps([dict(entry) for entry in learned.emotives]),
                json.dumps({key: list(values) for key, values in learned.metadata.items()}),
                generation,
            ),
        )
        conn.executemany(
            "INSERT OR IGNORE INTO pattern_symbols (node_id, symbol, name) VALUES (?, ?, ?)",
            [(node, symbol, effect.name) for symbol in counts],
        )
        known = conn.execute(
            "SELECT count(*) FROM symbols"
            " WHERE node_id = ? AND symbol IN (SELECT value FROM json_each(?))",
            (node, json.dumps(list(counts))),
        ).fetchone()[0]
        conn.executemany(
            "INSERT INTO symbols"
            " (node_id, symbol, frequency, pattern_member_frequency, generation)"
            " VALUES (?, ?, ?, 1, ?) ON CONFLICT (node_id, symbol) DO UPDATE SET"
            " frequency = frequency + excluded.frequency,"
            " pattern_member_frequency = pattern_member_frequency + 1,"
            " generation = excluded.generation",
            [(node, symbol, count, generation) for symbol, count in counts.items()],
        )
        if effect.emotives:
            conn.executemany(
                "INSERT INTO symbol_emotives (node_id, symbol, key, total) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (node_id, symbol, key) DO UPDATE SET total = total + excluded.total",
                [
                    (node, symbol, key, float(value))
                    for symbol in counts
                    for key, value in effect.emotives.items()
                ],
            )
        conn.execute(
            "UPDATE nodes SET total_pattern_frequencies = total_pattern_frequencies + 1,"
            " total_symbol_frequencies = total_symbol_frequencies + ?,"
            " total_symbols_in_patterns_frequencies = total_symbols_in_patterns_frequencies + ?,"
            " symbol_count = symbol_count + ? WHERE node_id = ?",
            (learned.length, len(counts), len(counts) - known, node),
        )

    def _clear(self, conn: sqlite3.Connection, generation: int) -> None:
        for table in ("patterns", "pattern_symbols", "symbols", "symbol_emotives", "vectors"):
            conn.execute(f"DELETE FROM {table} WHERE node_id = ?", (self.node_id,))
        conn.execute(
            "UPDATE nodes SET cleared = ?, total_pattern_frequencies = 0,"
            " total_symbol_frequencies = 0, total_symbols_in_patterns_frequencies = 0,"
            " symbol_count = 0 WHERE node_id = ?",
            (generation, self.node_id),
        )
        log.info("cleared the long-term memory of node %s", self.node_id)

    def __repr__(self) -> str:
        return f"SQLiteLTM({os.fspath(self._connections.path)!r}, node_id={self.node_id!r})"


def _pattern(row: tuple[str, str, int, str, str]) -> Pattern:
    name, events, frequency, emotives, metadata = row
    return Pattern(
        name=name,
        events=decode_events(events),
        frequency=frequency,
        emotives=tuple(json.loads(emotives)),
        metadata={key: tuple(values) for key, values in json.loads(metadata).items()},
    )
