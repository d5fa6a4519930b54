"""Long-term memory on real stores: where each node's patterns live outside one process.

The engine reads a node's LTM through :class:`~kato.engine.LTMView` and changes it only through
effects that :meth:`~kato.engine.LTMStore.apply` applies once per effect id, drained from the
committed session's outbox (:mod:`kato.sessions.outbox`). This
package holds the stores that several worker processes share:

- :mod:`kato.ltm.sqlite` — :class:`~kato.ltm.sqlite.SQLiteNodes`, the embedded default: one
  SQLite file in WAL mode, stdlib only; a learn is one ``BEGIN IMMEDIATE`` transaction and a
  snapshot is one read transaction.
- :mod:`kato.ltm.mongo` — :class:`~kato.ltm.mongo.MongoNodes`, one MongoDB database per node,
  counters by ``$inc`` upserts, snapshots checked by the node's version counter.
- :mod:`kato.ltm.vectors` — the ``VCTR|`` registry behind a small ``VectorIndex`` protocol:
  the node's LTM store by default, or Qdrant.
- :mod:`kato.ltm.nx27017` — starts an ``nx-27017`` server (MongoDB wire protocol, pure Python)
  for tests and benchmarks; never a production store.

:func:`kato.nodes.open_nodes` picks the store a location names (``memory``, ``sqlite:PATH``,
``mongodb://…``).

:class:`kato.engine.MemoryLTM` (through :class:`kato.nodes.MemoryNodes`) is the reference
semantics; ``tests/ltm/test_ltm_contract.py`` holds every store to it. Importing this package
imports neither pymongo nor qdrant-client: each module imports what it needs.
"""
