"""MongoDB LTM: one database per node, every counter a server-side ``$inc`` upsert.

    nodes = MongoNodes("mongodb://db.example:27017")
    ltm = nodes.ltm("node-a")
    ltm.apply(step.effects)
    with ltm.snapshot() as view:     # raises SnapshotChanged on exit if a learn landed meanwhile
        predictions, futures = predict(stm, view, config)

Each node is the database ``<prefix><node_id>`` (see :func:`database_name` for node ids that
are not valid database names), holding::

    meta             {_id: "node", version, total_pattern_frequencies, total_symbol_frequencies,
                      total_symbols_in_patterns_frequencies, symbol_count}
    patterns         {_id: name, events, length, symbols: [distinct symbols], frequency,
                      emotives: [entry JSON], metadata: [[key, value] JSON]}   index on symbols
    symbols          {_id: symbol, frequency, pattern_member_frequency}
    symbol_emotives  {_id: [symbol, key] JSON, symbol, key, total, order}      index on symbol
    vectors          {_id: VCTR name, vector: JSON}
    applied          {_id: effect id, done, owner, at, failed}   (the outbox ids applied)

Without transactions, a document an effect is writing also holds ``_marks: {key: 1 or 2}``
and a symbol it created ``_made: {key: 1}`` (see "Applying an effect id once"); reads never
return them.

The pattern name is ``_id``, so the always-present unique ``_id`` index is the unique index on
the name. Candidates come from the multikey index on ``patterns.symbols``.

**Counting exactly.** Frequencies, symbol statistics and totals change only through ``$inc``
in upserts, which the server applies atomically, so concurrent learns from any number of
processes count exactly. The emotive window is ``$push`` with ``$each`` and ``$slice``; a
metadata union is ``$addToSet`` of ``[key, value]`` pairs (their first-seen order is the merge
order of engine.md §1.8). Entries and vectors are stored as JSON strings, so keys holding
``.`` or ``$`` are safe, no update path is built from user text, and floats stay exact. The
adapter never relies on ``$addToSet``
creating a missing field, nor on ``find_one_and_update`` honouring ``$setOnInsert``: a new
pattern is inserted with its metadata in ``$setOnInsert`` of an ``update_one``, and a learn
that loses the insert race adds its pairs with ``$addToSet`` once the field exists.

**Atomicity of one learn.** When the server supports transactions (a replica set or a sharded
cluster, detected from ``hello``), all effects of a step are applied in one transaction
(``with_transaction``, retried on transient errors): §7.1 and §7.6 hold fully. A standalone
server has no multi-document transactions, and then the writes are *ordered* instead: totals,
symbol records, the pattern, then the version. Each write is atomic and every counter still
counts exactly, but a learn is not all-or-nothing: a crash or lost connection between writes
leaves it partly applied until the outbox applies it again (which completes it, counting
nothing twice: below), and a ``clear_all`` racing a learn can leave part of that learn
behind. That is this mode's stated limitation.

**Applying an effect id once.** ``apply(effects, effect_id=…)`` inserts ``{_id: effect_id}``
into ``applied``; the unique ``_id`` index lets only one insert of an id succeed. With
transactions the insert is part of the transaction, so the id is recorded exactly when the
effects are. Without them the insert comes first, as a claim (``done: false``, its writer and
its time), and is marked ``done`` after the effects. A second drainer of the same outbox entry
finds a live claim and raises ``StoreUnavailableError`` (the outbox keeps the effects pending
and asks again). An apply that fails midway marks its claim ``failed``, and the next drain
takes it over at once; a claim older than ``MongoNodes.lease_s`` is taken over too: its
writer could not mark it (the server was unreachable), or a paused server ran the claim after
its writer had given up. Claims are never deleted.

A taken-over effect is applied again, while writes of the earlier attempt may have landed,
or still sit in a paused server that runs them when it resumes (pymongo gave up on them after
``timeout_ms``; the server never learns that). ``$inc`` is not idempotent, so every write of
an effect makes itself once: its filter requires the document not to hold the effect's marker
``_marks.<key>`` (a hash of the effect id and the effect's index) and its update sets it, in
one atomic update of that document. A write whose document holds the marker changes nothing
(an upsert then fails on the unique ``_id``: taken as done). ``meta`` takes two writes of a
learn: the first sets the marker to 1, the last (the version and ``symbol_count``, filtered on
1) to 2. ``symbol_count`` counts the symbols whose ``_made.<key>`` says this learn created
them, whichever attempt did. The markers are dropped once the effect is ``done``, but only if
its claim was fresh and still this writer's then: no other writer ever held it, so no write of
the effect can still be in flight. After a takeover they stay for good (one key in each
document the effect touched, for each apply that failed midway), so a write a frozen server
runs however late still finds its marker. pymongo resends no write to a standalone server
(retryable writes need a replica set or ``mongos``), so a write runs at most once per
attempt.

**Snapshots** (§7.3). Snapshot reads need a replica set, so consistency is checked instead:
every learn and every clear increments the node's ``version`` before and after its writes
(inside the transaction when there is one); ``snapshot()`` reads the version on entry and on
exit and raises :class:`~kato.engine.SnapshotChanged` if it moved, and the session layer
computes again. Without transactions one gap remains: a learn that started before the snapshot
and ends after it moves no version inside the window. Predictions read patterns, then symbols,
then totals, the reverse of the write order, so even then a snapshot never counts a learn in a
pattern or a symbol record without also counting it in the totals: probabilities stay ≤ 1.

Against a real MongoDB, counters and emotive sums are exact IEEE arithmetic. The test server
``nx-27017`` rounds doubles written by update operators to 15 significant digits, so there the
symbols' emotive sums (never used by predictions) agree only within 1e-9.

**Errors.** pymongo's ``ConnectionFailure`` family (``AutoReconnect``,
``ServerSelectionTimeoutError``, ``NetworkTimeout``, ``WaitQueueTimeoutError``…) and
``ExecutionTimeout`` become :class:`~kato.exceptions.StoreUnavailableError` in
:func:`mongo_errors`, the one place that translates them; other errors propagate unchanged.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Any, Literal, TypeVar

from pymongo import MongoClient, ReturnDocument, UpdateOne
from pymongo.client_session import ClientSession
from pymongo.collection import Collection as MongoCollection
from pymongo.database import Database
from pymongo.errors import BulkWriteError, ConnectionFailure, DuplicateKeyError, ExecutionTimeout
from pymongo.results import BulkWriteResult

from kato.engine import (
    ClearNode,
    Effect,
    LearnPattern,
    LTMStore,
    LTMView,
    Pattern,
    RegisterVector,
    SnapshotChanged,
    SymbolStats,
    Totals,
    WouldWait,
)
from kato.engine.ltm import symbol_counts
from kato.exceptions import StoreUnavailableError
from kato.ltm._codec import (
    decode_metadata_pairs,
    encode_emotive_entry,
    encode_metadata_pairs,
    pattern_from_parts,
)

__all__ = ["MongoLTM", "MongoNodes", "database_name", "mongo_errors"]

log = logging.getLogger("kato")

Document = dict[str, Any]
_T = TypeVar("_T")
_META = {"_id": "node"}
_TOTAL_FIELDS = (
    "total_pattern_frequencies",
    "total_symbol_frequencies",
    "total_symbols_in_patterns_frequencies",
    "symbol_count",
)
_PATTERN_FIELDS = {"events": 1, "frequency": 1, "emotives": 1, "metadata": 1}
_SYMBOL_FIELDS = {"frequency": 1, "pattern_member_frequency": 1}
_EMOTIVE_FIELDS = {"symbol": 1, "key": 1, "total": 1, "order": 1}
_MARKS = "_marks"  # per document, the effects whose write it took (see _Marked)
_MADE = "_made"  # per symbol, the effect that created it
_PLAIN_NODE = re.compile(r"[a-z0-9_]+(?:-[a-z0-9_]+)*")
_PREFIX = re.compile(r"[A-Za-z0-9][A-Za-z0-9_]{0,19}")


@contextlib.contextmanager
def mongo_errors(operation: str, node_id: str | None = None) -> Iterator[None]:
    """Translate an unreachable or unresponsive MongoDB into ``StoreUnavailableError``."""
    try:
        yield
    except (ConnectionFailure, ExecutionTimeout) as exc:
        where = f" (node {node_id})" if node_id is not None else ""
        raise StoreUnavailableError(
            f"LTM store (MongoDB) unavailable during {operation}{where}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def database_name(prefix: str, node_id: str) -> str:
    """The database of ``node_id``: ``prefix + node_id`` when that is a safe name.

    A node id of lowercase letters, digits, ``_`` and single inner ``-`` is used as it is.
    Any other (upper case, ``.``, ``--``, too long) becomes ``<prefix><readable>--<hash>``: a
    database name may not hold ``.``, MongoDB refuses two names that differ only in case, and
    names are limited to 63 characters. The mapping is one-to-one: plain names never hold
    ``--`` and hashed names always do.

    >>> database_name("kato_", "demo"), database_name("kato_", "Demo.v2")
    ('kato_demo', 'kato_demo_v2--430d67141e0538b003c7')
    """
    if _PLAIN_NODE.fullmatch(node_id) and len(prefix) + len(node_id) <= 63:
        return prefix + node_id
    readable = re.sub(r"[^a-z0-9_]", "_", node_id.lower())[:20]
    digest = hashlib.sha1(node_id.encode("utf-8", "surrogatepass")).hexdigest()[:20]
    return f"{prefix}{readable}--{digest}"


class MongoNodes:
    """Every node's LTM in MongoDB, one database per node.

        nodes = MongoNodes("mongodb://localhost:27017")
        nodes.ltm("node-a").apply(effects)

    Parameters:
        url: a MongoDB connection string.
        database_prefix: the start of every node's database name (letters, digits, ``_``).
        timeout_ms: how long an operation waits to find a usable server, to connect, and for
            each answer before the store is reported unavailable (pymongo's
            ``serverSelectionTimeoutMS``, ``connectTimeoutMS`` and ``socketTimeoutMS``): a
            server that stops answering (paused, or its host gone) fails a request after this
            long instead of holding it and a thread of the service.
        transactions: force multi-document transactions on or off; by default they are used
            when the server is a replica set member or ``mongos``.
        client_options: passed on to :class:`pymongo.MongoClient`.

    The client is created on first use, and again in a child process after a ``fork``.
    """

    def __init__(
        self,
        url: str,
        *,
        database_prefix: str = "kato_",
        timeout_ms: int = 5000,
        transactions: bool | None = None,
        **client_options: Any,
    ) -> None:
        if not _PREFIX.fullmatch(database_prefix):
            raise ValueError(
                "database_prefix must be 1-20 letters, digits or '_', starting with a letter "
                f"or digit; got {database_prefix!r}"
            )
        self.url = url
        self.database_prefix = database_prefix
        self._options = {
            "serverSelectionTimeoutMS": timeout_ms,
            "connectTimeoutMS": timeout_ms,
            "socketTimeoutMS": timeout_ms,
            **client_options,
        }
        self._transactions = transactions
        #: How long a claim without a transaction holds its effect id (see ``MongoLTM._lease``):
        #: ten times a call's timeout, longer than any live writer takes for one step's effects.
        self.lease_s = 10 * timeout_ms / 1000
        self._client: MongoClient[Document] | None = None
        self._pid = 0
        self._stores: dict[str, MongoLTM] = {}
        self._lock = threading.Lock()

    def ltm(self, node_id: str) -> LTMStore:
        """The store of ``node_id`` (its database is created by its first learn)."""
        with self._lock:
            store = self._stores.get(node_id)
            if store is None:
                store = self._stores[node_id] = MongoLTM(self, node_id)
            return store

    def client(self) -> MongoClient[Document]:
        """This process's client, created on first use."""
        with self._lock:
            if self._client is None or self._pid != os.getpid():
                self._client = MongoClient(self.url, **self._options)
                self._pid = os.getpid()
            return self._client

    def uses_transactions(self) -> bool:
        """Whether effects are applied in multi-document transactions (asks the server once)."""
        if self._transactions is None:
            with mongo_errors("hello"):
                hello = self.client().admin.command("hello")
            self._transactions = "setName" in hello or hello.get("msg") == "isdbgrid"
            log.debug("MongoDB LTM: transactions %s", "on" if self._transactions else "off")
        return self._transactions

    def ping(self) -> None:
        """Raise ``StoreUnavailableError`` unless the server answers ``ping``."""
        with mongo_errors("ping"):
            self.client().admin.command("ping")

    def check_writable(self) -> None:
        """The server takes writes whenever it answers: the same as :meth:`ping`."""
        self.ping()

    def close(self) -> None:
        with self._lock:
            if self._client is not None and self._pid == os.getpid():
                self._client.close()
            self._client = None

    def __repr__(self) -> str:
        return f"MongoNodes(database_prefix={self.database_prefix!r})"


class MongoLTM:
    """One node's long-term memory in its own MongoDB database (an :class:`LTMStore`).

    Reads go straight to the server; there is no cache, so every learn acknowledged before a
    read is visible to it, from any process (§7.2).
    """

    def __init__(self, nodes: MongoNodes, node_id: str) -> None:
        self._nodes = nodes
        self.node_id = node_id
        self.database = database_name(nodes.database_prefix, node_id)
        self._indexed = False

    def _db(self) -> Database[Document]:
        return self._nodes.client()[self.database]

    def _errors(self, operation: str) -> AbstractContextManager[None]:
        return mongo_errors(operation, self.node_id)

    # -- reads -------------------------------------------------------------------------------
    def snapshot(self, *, at_once: bool = False) -> AbstractContextManager[LTMView]:
        """A view checked by the node's version: leaving it raises ``SnapshotChanged`` if any
        ``apply`` ran in between (see the module docstring for the one gap without
        transactions). Never ``at_once``: every read is a round trip to the server."""
        if at_once:
            raise WouldWait("the MongoDB LTM is read over the network")
        return self._snapshot()

    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[LTMView]:
        before = self._version()
        yield self
        after = self._version()
        if after != before:
            log.debug(
                "LTM of node %s changed during a snapshot (%s -> %s)", self.node_id, before, after
            )
            raise SnapshotChanged(f"LTM of node {self.node_id} changed: {before} -> {after}")

    def _version(self) -> int:
        with self._errors("snapshot"):
            doc = self._db().meta.find_one(_META, {"version": 1})
        return int(doc.get("version", 0)) if doc else 0

    def candidates(self, symbols: Collection[str]) -> list[Pattern]:
        with self._errors("candidates"):
            docs = list(
                self._db().patterns.find({"symbols": {"$in": list(symbols)}}, _PATTERN_FIELDS)
            )
        docs.sort(key=lambda doc: str(doc["_id"]))
        return [_pattern(doc) for doc in docs]

    def pattern(self, name: str) -> Pattern | None:
        with self._errors("pattern"):
            doc = self._db().patterns.find_one({"_id": name}, _PATTERN_FIELDS)
        return None if doc is None else _pattern(doc)

    def symbol_stats(self, symbols: Collection[str]) -> dict[str, SymbolStats]:
        wanted = list(symbols)
        with self._errors("symbol_stats"):
            db = self._db()
            docs = list(db.symbols.find({"_id": {"$in": wanted}}, _SYMBOL_FIELDS))
            emotives = _emotives(
                db.symbol_emotives.find({"symbol": {"$in": wanted}}, _EMOTIVE_FIELDS)
            )
        return {doc["_id"]: _symbol(doc, emotives) for doc in docs}

    def totals(self) -> Totals:
        with self._errors("totals"):
            doc = self._db().meta.find_one(_META, dict.fromkeys(_TOTAL_FIELDS, 1))
        if doc is None:
            return Totals()
        return Totals(*(int(doc.get(field, 0)) for field in _TOTAL_FIELDS))

    def patterns(self, *, offset: int = 0, limit: int | None = None) -> list[Pattern]:
        """Patterns sorted by name, from ``offset``, at most ``limit`` of them."""
        with self._errors("patterns"):
            cursor = self._db().patterns.find({}, _PATTERN_FIELDS).sort("_id", 1).skip(offset)
            if limit is not None:
                if limit <= 0:
                    return []
                cursor = cursor.limit(limit)
            return [_pattern(doc) for doc in cursor]

    def pattern_count(self) -> int:
        with self._errors("pattern_count"):
            return int(self._db().patterns.count_documents({}))

    def all_symbol_stats(self) -> list[SymbolStats]:
        """Every symbol record of the node, sorted by symbol."""
        with self._errors("all_symbol_stats"):
            db = self._db()
            docs = list(db.symbols.find({}, _SYMBOL_FIELDS))
            emotives = _emotives(db.symbol_emotives.find({}, _EMOTIVE_FIELDS))
        docs.sort(key=lambda doc: str(doc["_id"]))
        return [_symbol(doc, emotives) for doc in docs]

    def vector(self, name: str) -> tuple[float, ...] | None:
        with self._errors("vector"):
            doc = self._db().vectors.find_one({"_id": name})
        return None if doc is None else tuple(float(x) for x in json.loads(doc["vector"]))

    def applied(self, effect_ids: Collection[str]) -> set[str]:
        with self._errors("applied"):
            docs = self._db().applied.find({"_id": {"$in": list(effect_ids)}, "done": True})
            return {str(doc["_id"]) for doc in docs}

    # -- writes ------------------------------------------------------------------------------
    def apply(self, effects: Iterable[Effect], *, effect_id: str | None = None) -> bool:
        """Apply a step's effects: one transaction if the server has them, else in order;
        ``False`` (nothing applied) if ``effect_id`` was applied before."""
        effects = list(effects)
        if not effects:
            return True
        with self._errors("apply"):
            self._ensure_indexes()
            if self._nodes.uses_transactions():
                with self._nodes.client().start_session() as session:
                    return bool(
                        session.with_transaction(
                            lambda s: self._claim(effect_id, s) and self._apply_all(effects, s)
                        )
                    )
            return self._apply_ordered(effects, effect_id)

    def _apply_ordered(self, effects: list[Effect], effect_id: str | None) -> bool:
        """Without transactions: claim the id, make every write once (its marker), mark it
        done, and drop the markers when no other writer can have a write of it in flight."""
        owner = uuid.uuid4().hex
        writes = [_Marked(_marker(effect_id or owner, index)) for index in range(len(effects))]
        try:
            claim = "fresh" if effect_id is None else self._lease(effect_id, owner)
            if claim == "done":
                return False
            self._apply_all(effects, None, writes)
            still_ours = self._done(effect_id, owner)
        except BaseException:
            if effect_id is not None:  # a later drain takes over at once; the markers stay
                with contextlib.suppress(Exception):
                    self._db().applied.update_one(
                        {"_id": effect_id, "owner": owner, "done": False},
                        {"$set": {"failed": True}},
                    )
            raise
        if claim == "fresh" and still_ours:  # no other writer ever held it: none in flight
            try:
                for marked in writes:
                    marked.unmark(self._db())
            except (ConnectionFailure, ExecutionTimeout) as exc:
                log.warning("MongoDB LTM: markers of effects %s left: %s", effect_id, exc)
        return True

    def _done(self, effect_id: str | None, owner: str) -> bool:
        """Record ``effect_id`` as applied; whether the claim was still ``owner``'s (no other
        writer took it over, so none can have a write of these effects in flight)."""
        if effect_id is None:
            return True
        before = self._db().applied.find_one_and_update(
            {"_id": effect_id}, {"$set": {"done": True}}, projection={"owner": True}
        )
        return before is not None and before.get("owner") == owner

    def _lease(self, effect_id: str, owner: str) -> Literal["fresh", "taken", "done"]:
        """Claim ``effect_id`` for ``owner`` without a transaction (``done: false`` plus the
        claim's time): ``"fresh"`` if no writer held it before, ``"taken"`` if an earlier
        writer's claim was taken over (some of its writes may have landed, or land later),
        ``"done"`` if the effects were applied already.

        A claim held by another writer for less than the lease, and not marked ``failed``,
        means that writer is applying the effects: raise ``StoreUnavailableError``, so the
        outbox keeps them pending and asks again. A failed or older claim is taken over: its
        writer gave up, or the server ran the claim after the writer had given up (a paused
        server answering late) — left alone it would keep the effects from ever being applied.
        Claims are never deleted, so a fresh claim proves that no writer came before.
        """
        applied = self._db().applied
        now = time.time()
        claim = {"done": False, "owner": owner, "at": now, "failed": False}
        with contextlib.suppress(DuplicateKeyError):  # a racing insert won: read what it holds
            result = applied.update_one({"_id": effect_id}, {"$setOnInsert": claim}, upsert=True)
            if result.upserted_id is not None:
                return "fresh"
        # two updates, not one with $or: nx-27017's update_one with $or beside other
        # conditions changes the first document that matches the $or alone
        for free in ({"failed": True}, {"at": {"$lt": now - self._nodes.lease_s}}):
            taken = {"_id": effect_id, "done": False, **free}
            if applied.update_one(taken, {"$set": claim}).modified_count:
                log.warning("MongoDB LTM: took over the claim of effects %s", effect_id)
                return "taken"
        found = applied.find_one({"_id": effect_id}, projection={"done": True})
        if found is None:  # removed by hand meanwhile
            return self._lease(effect_id, owner)
        if found.get("done"):
            return "done"
        raise StoreUnavailableError(
            f"LTM effects {effect_id} are being applied by another writer (node {self.node_id})"
        )

    def _claim(self, effect_id: str | None, session: ClientSession) -> bool:
        """Record ``effect_id`` as done in the transaction; ``False`` if it is there already.

        An upsert that inserts nothing when the id exists: no write error, which would abort a
        transaction; two transactions recording the same id conflict, and the retried one
        finds it.
        """
        if effect_id is None:
            return True
        try:
            result = self._db().applied.update_one(
                {"_id": effect_id}, {"$setOnInsert": {"done": True}}, upsert=True, session=session
            )
        except DuplicateKeyError:
            return False
        return result.upserted_id is not None

    def _ensure_indexes(self) -> None:
        if not self._indexed:
            db = self._db()
            db.patterns.create_index("symbols")
            db.symbol_emotives.create_index("symbol")
            self._indexed = True

    def _apply_all(
        self,
        effects: list[Effect],
        session: ClientSession | None,
        writes: list[_Marked] | None = None,
    ) -> bool:
        db = self._db()
        for index, effect in enumerate(effects):
            marked = _Marked(None) if writes is None else writes[index]
            if isinstance(effect, LearnPattern):
                _Learn(db, effect, session, marked).run()
            elif isinstance(effect, RegisterVector):  # a $set: the same however often it runs
                db.vectors.update_one(
                    {"_id": effect.name},
                    {"$set": {"vector": json.dumps([float(x) for x in effect.vector])}},
                    upsert=True,
                    session=session,
                )
            elif isinstance(effect, ClearNode):
                self._clear(db, session, marked)
            else:  # pragma: no cover - the Effect union is closed
                raise TypeError(f"unknown effect {effect!r}")
        return True

    def _clear(
        self, db: Database[Document], session: ClientSession | None, marked: _Marked
    ) -> None:
        """Empty the node's collections; the ``meta`` document stays, so ``version`` never
        goes back (a snapshot across a clear must see it move). A clear whose last write
        landed is not run again."""
        begin = marked.marking({"$inc": {"version": 1}})
        begun = _once(
            lambda: db.meta.update_one(
                marked.not_done("meta", "node"), begin, upsert=True, session=session
            )
        )
        if begun is None and db.meta.count_documents(marked.finished(), limit=1):
            return  # an earlier attempt of this clear finished it
        for collection in ("patterns", "symbol_emotives", "symbols", "vectors"):
            db[collection].delete_many({}, session=session)
        db.meta.update_one(
            marked.begun(),
            marked.marking({"$set": dict.fromkeys(_TOTAL_FIELDS, 0), "$inc": {"version": 1}}, 2),
            session=session,
        )
        log.info("cleared the long-term memory of node %s", self.node_id)

    def __repr__(self) -> str:
        return f"MongoLTM(database={self.database!r})"


def _marker(effect_id: str, index: int) -> str:
    """The marker key of effect ``index`` of ``effect_id``: hex, so a safe field name."""
    return hashlib.sha256(f"{index}:{effect_id}".encode("utf-8", "surrogatepass")).hexdigest()[:24]


class _Marked:
    """The filters and updates of one effect's writes, each made once by its marker (the
    module docstring, "Applying an effect id once"); ``key=None`` inside a transaction, which
    needs no markers. Remembers the documents written, for :meth:`unmark`."""

    def __init__(self, key: str | None) -> None:
        self.key = key
        self.field = f"{_MARKS}.{key}"
        self.made = f"{_MADE}.{key}"
        self._touched: dict[str, dict[str, None]] = {}

    def not_done(self, collection: str, doc_id: str) -> Document:
        """The filter of a write to ``doc_id`` that this effect has not made yet."""
        self._touched.setdefault(collection, {})[doc_id] = None
        return (
            {"_id": doc_id} if self.key is None else {"_id": doc_id, self.field: {"$exists": False}}
        )

    def begun(self) -> Document:
        """The filter of the last ``meta`` write: the first one made, the last one not."""
        return _META if self.key is None else {**_META, self.field: 1}

    def finished(self) -> Document:
        """``meta`` once the effect's last write landed."""
        return {**_META, self.field: 2}

    def marking(self, update: Document, value: int = 1) -> Document:
        """``update`` that also sets the marker."""
        if self.key is None:
            return update
        return {**update, "$set": {**update.get("$set", {}), self.field: value}}

    def unmark(self, db: Database[Document]) -> None:
        """Drop the markers once no write of the effect can run again (``_apply_ordered``)."""
        if self.key is None:
            return
        for collection, ids in self._touched.items():
            db[collection].update_many(
                {"_id": {"$in": list(ids)}}, {"$unset": {self.field: "", self.made: ""}}
            )


def _once(write: Callable[[], _T]) -> _T | None:
    """``write()``, or ``None`` if its upsert found the document already marked: the filter
    missed it, and inserting the ``_id`` again failed on the unique index."""
    try:
        return write()
    except DuplicateKeyError:
        return None


def _bulk_once(
    collection: MongoCollection[Document], ops: list[UpdateOne], session: ClientSession | None
) -> BulkWriteResult | None:
    """The upserts of ``ops``, each on its own; ``None`` if some found their document marked
    (see :func:`_once`). Any other write error propagates."""
    try:
        return collection.bulk_write(ops, ordered=False, session=session)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if exc.details.get("writeConcernErrors") or any(e.get("code") != 11000 for e in errors):
            raise
        return None


class _Learn:
    """The writes of one learn, in the order the module docstring explains."""

    def __init__(
        self,
        db: Database[Document],
        effect: LearnPattern,
        session: ClientSession | None,
        marked: _Marked,
    ) -> None:
        self.db = db
        self.effect = effect
        self.session = session
        self.marked = marked
        self.counts = symbol_counts(effect.events)

    def run(self) -> None:
        marked, session = self.marked, self.session
        learn_number = self._totals()
        created = self._symbols()
        if self.effect.emotives:
            self._symbol_emotives(self.effect.emotives, learn_number)
        self._pattern()
        self.db.meta.update_one(
            marked.begun(),
            marked.marking({"$inc": {"version": 1, "symbol_count": created}}, 2),
            session=session,
        )

    def _totals(self) -> int:
        """Count the learn in the totals; its number (the node's version after that)."""
        marked, counts = self.marked, self.counts
        counting = {
            "$inc": {
                "version": 1,
                "total_pattern_frequencies": 1,
                "total_symbol_frequencies": sum(counts.values()),
                "total_symbols_in_patterns_frequencies": len(counts),
            }
        }
        meta = _once(
            lambda: self.db.meta.find_one_and_update(
                marked.not_done("meta", "node"),
                marked.marking(counting),
                projection={"version": 1},
                upsert=True,
                return_document=ReturnDocument.AFTER,
                session=self.session,
            )
        )
        if meta is None:  # an earlier attempt of this learn counted it: number it as of now
            meta = self.db.meta.find_one(_META, {"version": 1}, session=self.session)
        return int(meta["version"]) if meta else 0

    def _symbols(self) -> int:
        """Count the learn in its symbols' records; how many of them the learn created."""
        marked, counts = self.marked, self.counts
        made = {} if marked.key is None else {"$setOnInsert": {marked.made: 1}}
        ops = [
            UpdateOne(
                marked.not_done("symbols", symbol),
                marked.marking(
                    {"$inc": {"frequency": count, "pattern_member_frequency": 1}, **made}
                ),
                upsert=True,
            )
            for symbol, count in counts.items()
        ]
        result = _bulk_once(self.db.symbols, ops, self.session)
        if result is not None:
            return result.upserted_count
        # an earlier attempt of this learn wrote some of them (and may have created them)
        return self.db.symbols.count_documents(
            {"_id": {"$in": list(counts)}, marked.made: 1}, session=self.session
        )

    def _symbol_emotives(self, emotives: Mapping[str, float], learn_number: int) -> None:
        marked = self.marked
        ops = [
            UpdateOne(
                marked.not_done("symbol_emotives", json.dumps([symbol, key])),
                marked.marking(
                    {
                        "$setOnInsert": {
                            "symbol": symbol,
                            "key": key,
                            "order": [learn_number, index],
                        },
                        "$inc": {"total": float(value)},
                    }
                ),
                upsert=True,
            )
            for symbol in self.counts
            for index, (key, value) in enumerate(emotives.items())
        ]
        _bulk_once(self.db.symbol_emotives, ops, self.session)

    def _pattern(self) -> None:
        """``frequency + 1``, the emotive window and the metadata union of the pattern.

        An existing pattern takes one update. A new one is inserted by an upsert whose
        ``$setOnInsert`` holds its events and metadata; if another process inserted it first
        (or an earlier attempt of this learn counted it), the metadata pairs follow with
        ``$addToSet``, which adds each pair once however often it runs.
        """
        effect, session, patterns, marked = self.effect, self.session, self.db.patterns, self.marked
        pairs = encode_metadata_pairs(effect.metadata)
        counting: Document = {"$inc": {"frequency": 1}}
        if effect.emotives is not None:
            entry = encode_emotive_entry(effect.emotives)
            counting["$push"] = {"emotives": {"$each": [entry], "$slice": -effect.persistence}}
        adding = {"$addToSet": {"metadata": {"$each": pairs}}} if pairs else {}
        if patterns.update_one(
            marked.not_done("patterns", effect.name),
            marked.marking({**counting, **adding}),
            session=session,
        ).matched_count:
            return
        on_insert: Document = {
            "events": [list(event) for event in effect.events],
            "length": sum(self.counts.values()),
            "symbols": list(self.counts),
            "metadata": pairs,
        }
        if effect.emotives is None:
            on_insert["emotives"] = []
        inserted = _once(
            lambda: patterns.update_one(
                marked.not_done("patterns", effect.name),
                marked.marking({**counting, "$setOnInsert": on_insert}),
                upsert=True,
                session=session,
            )
        )
        if (inserted is None or inserted.upserted_id is None) and adding:
            patterns.update_one({"_id": effect.name}, adding, session=session)


def _pattern(doc: Document) -> Pattern:
    return pattern_from_parts(
        str(doc["_id"]),
        tuple(tuple(event) for event in doc["events"]),
        int(doc.get("frequency", 0)),
        doc.get("emotives", ()),
        decode_metadata_pairs(doc.get("metadata", ())),
    )


def _emotives(docs: Iterable[Document]) -> dict[str, dict[str, float]]:
    """Per symbol, its emotive sums in the order their keys were first learned."""
    ordered = sorted(docs, key=lambda doc: tuple(doc.get("order", (0, 0))))
    found: dict[str, dict[str, float]] = {}
    for doc in ordered:
        found.setdefault(doc["symbol"], {})[doc["key"]] = float(doc["total"])
    return found


def _symbol(doc: Document, emotives: Mapping[str, Mapping[str, float]]) -> SymbolStats:
    name = str(doc["_id"])
    return SymbolStats(
        name=name,
        frequency=int(doc.get("frequency", 0)),
        pattern_member_frequency=int(doc.get("pattern_member_frequency", 0)),
        emotives=dict(emotives.get(name, {})),
    )
