"""The SQLite file under the embedded LTM: its schema, per-thread connections, and errors.

:mod:`kato.ltm.sqlite` says what the tables mean; this module only opens the file right (WAL
mode, busy timeout, schema created once per process), gives each thread of each process its own
connection, and is the one place where sqlite3 errors become KATO errors.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path

from kato.exceptions import StoreUnavailableError

__all__ = ["SCHEMA_VERSION", "Connections", "sqlite_errors"]

SCHEMA_VERSION = 3

_SCHEMA = """
CREATE TABLE IF NOT EXISTS nodes (
    node_id TEXT PRIMARY KEY,
    version INTEGER NOT NULL DEFAULT 0,
    cleared INTEGER NOT NULL DEFAULT 0,
    total_pattern_frequencies INTEGER NOT NULL DEFAULT 0,
    total_symbol_frequencies INTEGER NOT NULL DEFAULT 0,
    total_symbols_in_patterns_frequencies INTEGER NOT NULL DEFAULT 0,
    symbol_count INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS patterns (
    node_id TEXT NOT NULL,
    name TEXT NOT NULL,
    events TEXT NOT NULL,
    length INTEGER NOT NULL,
    frequency INTEGER NOT NULL,
    emotives TEXT NOT NULL,
    metadata TEXT NOT NULL,
    generation INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (node_id, name)
);
CREATE TABLE IF NOT EXISTS pattern_symbols (
    node_id TEXT NOT NULL,
    symbol TEXT NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (node_id, symbol, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS symbols (
    node_id TEXT NOT NULL,
    symbol TEXT NOT NULL,
    frequency INTEGER NOT NULL,
    pattern_member_frequency INTEGER NOT NULL,
    generation INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (node_id, symbol)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS symbol_emotives (
    node_id TEXT NOT NULL,
    symbol TEXT NOT NULL,
    key TEXT NOT NULL,
    total REAL NOT NULL,
    UNIQUE (node_id, symbol, key)
);
CREATE TABLE IF NOT EXISTS applied_effects (
    node_id TEXT NOT NULL,
    effect_id TEXT NOT NULL,
    PRIMARY KEY (node_id, effect_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS vectors (
    node_id TEXT NOT NULL,
    name TEXT NOT NULL,
    vector TEXT NOT NULL,
    PRIMARY KEY (node_id, name)
) WITHOUT ROWID;
"""

# Created after the columns they index exist (a version-2 file gains them first).
_INDEXES = """
CREATE INDEX IF NOT EXISTS patterns_generation ON patterns (node_id, generation);
CREATE INDEX IF NOT EXISTS symbols_generation ON symbols (node_id, generation);
"""

# Columns added since version 2, for files created before them: (table, column, declaration).
# ``generation`` 0 and ``cleared`` 0 are exact for old rows: a process's cache loads a node
# whole the first time it reads it, and only later writes are read by generation.
_ADDED_COLUMNS = (
    ("nodes", "cleared", "INTEGER NOT NULL DEFAULT 0"),
    ("patterns", "generation", "INTEGER NOT NULL DEFAULT 0"),
    ("symbols", "generation", "INTEGER NOT NULL DEFAULT 0"),
)

# Primary result codes that mean "the database cannot serve now", not "this is a bug".
_UNAVAILABLE_CODES = {
    5,  # SQLITE_BUSY: locked past the busy timeout
    6,  # SQLITE_LOCKED
    10,  # SQLITE_IOERR
    13,  # SQLITE_FULL
    14,  # SQLITE_CANTOPEN
    15,  # SQLITE_PROTOCOL (WAL lock protocol)
}


@contextlib.contextmanager
def sqlite_errors(operation: str, path: str | os.PathLike[str]) -> Iterator[None]:
    """Translate an unavailable SQLite database into ``StoreUnavailableError`` for ``operation``.

    Unavailable: a lock held past the busy timeout, a file or directory that cannot be opened
    or created, an I/O error, a full disk. Other sqlite3 errors propagate unchanged.
    """
    try:
        yield
    except OSError as exc:  # creating the database's directory
        raise StoreUnavailableError(
            f"LTM store {os.fspath(path)!r} unavailable during {operation}: {exc}"
        ) from exc
    except sqlite3.Error as exc:
        code = getattr(exc, "sqlite_errorcode", None)
        if code is None or code & 0xFF not in _UNAVAILABLE_CODES:
            raise
        raise StoreUnavailableError(
            f"LTM store {os.fspath(path)!r} unavailable during {operation}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


class _Connection(sqlite3.Connection):
    """A sqlite3 connection that can be weakly referenced (so :meth:`Connections.close`
    can reach every live one without keeping a dead thread's connection alive)."""


class Connections:
    """One sqlite3 connection per thread of the current process, opened on first use.

    A connection is only ever used by the thread that opened it (it lives in a
    ``threading.local``); ``check_same_thread`` is off only so that :meth:`close` can close
    them all at shutdown. After a ``fork`` the child opens its own and leaves the parent's
    untouched.
    """

    def __init__(self, path: Path, *, timeout: float, synchronous: str) -> None:
        self.path = path
        self.timeout = timeout
        self.synchronous = synchronous
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._local = threading.local()
        self._opened: weakref.WeakSet[_Connection] = weakref.WeakSet()
        self._schema_ready = False
        self._inherited: list[_Connection] = []
        self._spare: _Connection | None = None
        self._spare_lock = threading.Lock()

    def get(self) -> sqlite3.Connection:
        """The calling thread's connection, opened on its first use."""
        if self._pid != os.getpid():
            self._forget_parent()
        conn: _Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._open()
        if self._spare is None:
            spare = self._open()  # here, in a worker thread: opening may wait
            spare.execute("PRAGMA busy_timeout = 0")
            with self._lock:
                kept = self._spare is None
                if kept:
                    self._spare = spare
            if not kept:
                spare.close()
        return conn

    @contextlib.contextmanager
    def spare(self) -> Iterator[sqlite3.Connection | None]:
        """The process's spare connection, for reads that must never wait (an event loop's):
        opened by the first :meth:`get` (in a worker thread), used by one thread at a time,
        with no busy timeout (a lock answers ``SQLITE_BUSY`` at once). ``None`` while it is not
        open yet, or another thread is using it."""
        spare = self._spare
        if spare is None or self._pid != os.getpid() or not self._spare_lock.acquire(False):
            yield None
            return
        try:
            yield spare
        finally:
            self._spare_lock.release()

    def close(self) -> None:
        """Close every connection this process opened (call it when no operation runs)."""
        with self._lock:
            if self._pid == os.getpid():
                for conn in list(self._opened):
                    conn.close()
                self._opened = weakref.WeakSet()
            self._local = threading.local()
            self._spare = None

    def _forget_parent(self) -> None:
        """In a forked child: never use, close or finalise the parent's connections (closing
        one here could release locks the parent holds)."""
        with self._lock:
            if self._pid != os.getpid():
                self._inherited.extend(self._opened)
                self._opened = weakref.WeakSet()
                self._local = threading.local()
                self._schema_ready = False
                self._spare = None
                self._spare_lock = threading.Lock()
                self._pid = os.getpid()

    def _open(self) -> _Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path,
            timeout=self.timeout,
            isolation_level=None,
            check_same_thread=False,
            factory=_Connection,
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            self._retry_busy(lambda: self._set_wal(conn))
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            with self._lock:
                if not self._schema_ready:
                    self._retry_busy(lambda: self._create_schema(conn))
                    self._schema_ready = True
                self._opened.add(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _set_wal(self, conn: sqlite3.Connection) -> None:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise RuntimeError(f"{self.path} cannot be put in WAL mode (journal_mode={mode})")

    @staticmethod
    def _create_schema(conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            found = conn.execute("PRAGMA user_version").fetchone()[0]
            if found > SCHEMA_VERSION:
                raise RuntimeError(
                    f"LTM schema version {found} is newer than this KATO's ({SCHEMA_VERSION})"
                )
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            for table, column, declaration in _ADDED_COLUMNS:
                present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
                if column not in present:
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
            for statement in _INDEXES.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _retry_busy(self, action: Callable[[], None]) -> None:
        """Run ``action``, retrying while another process holds a lock it needs.

        Changing the journal mode and the schema do not always wait on the busy handler, and
        several workers starting at once all try them.
        """
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                action()
                return
            except sqlite3.OperationalError as exc:
                busy = getattr(exc, "sqlite_errorcode", 0) & 0xFF in (5, 6)
                if not busy or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
