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

    nodes            node_id │ version, total_pattern_frequencies, total_symbol_frequencies,
                             │ total_symbols_in_patterns_frequencies, symbol_count (= K)
    patterns         node_id, name │ events JSON, length, frequency, emotives JSON, metadata JSON
    pattern_symbols  node_id, symbol, name        (the symbol index that candidates use)
    symbols          node_id, symbol │ frequency, pattern_member_frequency
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
from kato.engine.ltm import apply_learn, symbol_counts
from kato.ltm._codec import decode_events, encode_events
from kato.ltm._sqlite_db import Connections, sqlite_errors

__all__ = ["SQLiteLTM", "SQLiteNodes", "sqlite_errors"]

log = logging.getLogger("kato")

#: How :meth:`SQLiteNodes.check_writable` tries the write lock: attempts, and the pause between.
PROBE_TRIES = 3
PROBE_PAUSE_S = 0.005

_SELECT_PATTERN = "SELECT name, events, frequency, emotives, metadata FROM patterns"


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

    def ltm(self, node_id: str) -> LTMStore:
        """The store of ``node_id`` (its rows only; nothing is created until it learns)."""
        return SQLiteLTM(self._connections, node_id)

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
        """Close every connection of this process; the next operation opens a new one."""
        self._connections.close()

    def __repr__(self) -> str:
        return f"SQLiteNodes({os.fspath(self.path)!r})"


class _Reader:
    """The reads of one node on one connection; a snapshot when that connection is in a
    read transaction."""

    def __init__(self, conn: sqlite3.Connection, node_id: str) -> None:
        self._conn = conn
        self._node = node_id

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

    def totals(self) -> Totals:
        row = self._conn.execute(
            "SELECT total_pattern_frequencies, total_symbol_frequencies,"
            " total_symbols_in_patterns_frequencies, symbol_count FROM nodes WHERE node_id = ?",
            (self._node,),
        ).fetchone()
        return Totals() if row is None else Totals(*row)

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

    def _emotives(self, where: str, params: tuple[str, ...]) -> dict[str, dict[str, float]]:
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
    """The reads of one node through a :class:`_Reader`, with errors translated.

    What :meth:`SQLiteLTM.snapshot` yields: an :class:`LTMView`, plus the listing reads.
    """

    def __init__(self, reader: _Reader, path: Path) -> None:
        self._reader = reader
        self._path = path

    def candidates(self, symbols: Collection[str]) -> list[Pattern]:
        with sqlite_errors("candidates", self._path):
            return self._reader.candidates(symbols)

    def pattern(self, name: str) -> Pattern | None:
        with sqlite_errors("pattern", self._path):
            return self._reader.pattern(name)

    def symbol_stats(self, symbols: Collection[str]) -> dict[str, SymbolStats]:
        with sqlite_errors("symbol_stats", self._path):
            return self._reader.symbol_stats(symbols)

    def totals(self) -> Totals:
        with sqlite_errors("totals", self._path):
            return self._reader.totals()

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


class SQLiteLTM:
    """One node's long-term memory in a :class:`SQLiteNodes` file (an :class:`LTMStore`).

    Reads made directly on the store (not through :meth:`snapshot`) each run in a read
    transaction of their own.
    """

    def __init__(self, connections: Connections, node_id: str) -> None:
        self._connections = connections
        self.node_id = node_id

    # -- reads -------------------------------------------------------------------------------
    def snapshot(self) -> AbstractContextManager[LTMView]:
        """A view whose reads all happen in one read transaction (one WAL snapshot).

        Never raises :class:`~kato.engine.SnapshotChanged`: the snapshot is exact. Inside
        another snapshot of the same thread it reuses that one.
        """
        return self._snapshot()

    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[_View]:
        path = self._connections.path
        with sqlite_errors("snapshot", path):
            conn = self._connections.get()
            nested = conn.in_transaction
            if not nested:
                conn.execute("BEGIN")
        try:
            yield _View(_Reader(conn, self.node_id), path)
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
                for effect in effects:
                    self._apply_one(conn, effect)
                conn.execute(
                    "UPDATE nodes SET version = version + 1 WHERE node_id = ?", (self.node_id,)
                )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        return True

    def _apply_one(self, conn: sqlite3.Connection, effect: Effect) -> None:
        if isinstance(effect, LearnPattern):
            self._learn(conn, effect)
        elif isinstance(effect, RegisterVector):
            conn.execute(
                "INSERT INTO vectors (node_id, name, vector) VALUES (?, ?, ?)"
                " ON CONFLICT (node_id, name) DO UPDATE SET vector = excluded.vector",
                (self.node_id, effect.name, json.dumps([float(x) for x in effect.vector])),
            )
        elif isinstance(effect, ClearNode):
            self._clear(conn)
        else:  # pragma: no cover - the Effect union is closed
            raise TypeError(f"unknown effect {effect!r}")

    def _learn(self, conn: sqlite3.Connection, effect: LearnPattern) -> None:
        node = self.node_id
        existing = _Reader(conn, node).pattern(effect.name)
        learned = apply_learn(existing, effect)
        counts = symbol_counts(effect.events)
        conn.execute(
            "INSERT INTO patterns (node_id, name, events, length, frequency, emotives, metadata)"
            " VALUES (?, ?, ?, ?, 1, ?, ?)"
            " ON CONFLICT (node_id, name) DO UPDATE SET frequency = frequency + 1,"
            " emotives = excluded.emotives, metadata = excluded.metadata",
            (
                node,
                effect.name,
                encode_events(effect.events),
                learned.length,
                json.dumps([dict(entry) for entry in learned.emotives]),
                json.dumps({key: list(values) for key, values in learned.metadata.items()}),
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
            "INSERT INTO symbols (node_id, symbol, frequency, pattern_member_frequency)"
            " VALUES (?, ?, ?, 1) ON CONFLICT (node_id, symbol) DO UPDATE SET"
            " frequency = frequency + excluded.frequency,"
            " pattern_member_frequency = pattern_member_frequency + 1",
            [(node, symbol, count) for symbol, count in counts.items()],
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

    def _clear(self, conn: sqlite3.Connection) -> None:
        for table in ("patterns", "pattern_symbols", "symbols", "symbol_emotives", "vectors"):
            conn.execute(f"DELETE FROM {table} WHERE node_id = ?", (self.node_id,))
        conn.execute(
            "UPDATE nodes SET total_pattern_frequencies = 0, total_symbol_frequencies = 0,"
            " total_symbols_in_patterns_frequencies = 0, symbol_count = 0 WHERE node_id = ?",
            (self.node_id,),
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
