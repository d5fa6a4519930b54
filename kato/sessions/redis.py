"""The production session store: Redis, shared by any number of worker processes.

Layout (``P`` = key prefix, ``S`` = session id; ``{S}`` is a hash tag, so one session's keys live
in one slot and the store also runs on Redis Cluster):

* ``P:{S}`` — a hash: ``v`` version, ``t`` TTL in milliseconds, and the record in parts
  (:mod:`kato.sessions.codec`: head, state, predictions, outbox), so a route reads and a write
  sends only the parts it needs;
* ``P:{S}:ids`` / ``P:{S}:idq`` — replies remembered for idempotent retries (hash) and their
  ids, oldest last (list), trimmed to ``applied_limit``;
* ``P:sessions`` — the session index: a sorted set of ids scored by expiry time (ms);
* ``P:outbox`` — the outbox index: ids of sessions whose record carries pending LTM effects,
  scored by the time (ms) of the latest write that committed some;
* ``{P:sessions}:node:N`` — with a per-node limit, node ``N``'s ids (in the index's slot).

On Redis Cluster (a ``redis+cluster://host:port[,host:port...]`` URL naming some of its nodes,
:mod:`kato.stores.redis_cluster`) every
script touches one slot: a session's keys share the tag ``{S}``, and the index ``P:sessions`` hashes
like the tag ``{P:sessions}`` of the node sets, so the limits' script and the exact count see one
slot too. MOVED/ASK are followed by redis-py; a connection error, a timeout or ``CLUSTERDOWN``
while a master fails over is retried with backoff for about ``socket_timeout`` seconds, then the
store is unavailable (503), never "not found". A write whose connection broke after it was sent
is resent: the compare-and-set turns the resend of an applied write into a conflict and a
recompute, so such a write can apply twice unless the client sent a ``unique_id``.

``wait_replicas`` (``KATO_REDIS_WAIT_REPLICAS``): every create and update is followed, in its
round trip and on its connection, by ``WAIT n``: the reply is sent once ``n`` replicas have the
write, or after ``socket_timeout``; how many acknowledged is counted in :class:`StoreCounters`
and told to the observer (``kato_store_replica_waits_total{outcome}`` in ``/metrics``). A
shortfall is logged and answered ``StoreUnavailableError`` (503): the write is on the master,
which may lose it, so it is not acknowledged (a retry with the same ``unique_id`` replays it if
it survived). Redis replicates asynchronously: without it, a master that dies before
its replica got a write loses that acknowledged write.

On one Redis every script (each read, create and compare-and-set) goes over one connection per
process that all its requests share (:mod:`kato.stores.redis_pipe`: the commands of one turn of
the event loop go out in one write, their replies come back in order); it never resends a
command, so a script whose reply was lost fails (503) and only the client's retry, with its
``unique_id``, sends it again. The other commands (``BLPOP``, pipelines, the count) use
redis-py's pool.

How each guarantee of sessions.md holds:

1. *Visible on create*: Redis is one primary; a write is visible to every later command.
2. *Atomic updates*: read (``v``, ``d``) → compute → a Lua compare-and-set that writes only if
   ``v`` is unchanged; a conflict re-reads and recomputes, with jittered backoff, at most
   ``max_attempts`` times (then :class:`~kato.exceptions.ConflictError`; never a livelock).
3. *Effects once*: ``change`` is pure (it runs in a worker thread); its LTM effects are part of
   the record it writes (the outbox), and a write that carries pending effects indexes its
   session in ``P:outbox`` in the same script, so the drainer finds it (on a cluster, where the
   index lives in another slot, right after the commit: a process that dies in between leaves
   the effects to the session's next request).
4. *No resurrection*: the compare-and-set refuses a missing key; only ``create`` makes one.
5. *One clock*: the key's TTL is the expiry. Every access restarts it inside the same script
   (``PEXPIRE``); ``expires_at`` is derived from ``PTTL``.
6. *Exact count without scans*: ``count`` drops index entries whose keys are gone and re-scores
   those whose keys were extended by reads since (checking only entries past their recorded
   expiry), then ``ZCARD``; no ``KEYS``/``SCAN``, no cache.
7. *Isolation*: keys derive from the validated session id only.
8. *Honest errors*: a missing key is ``SessionNotFoundError``; an unreachable Redis is
   ``StoreUnavailableError`` (translated in :mod:`kato.stores.redis_errors`), never the other.
9. *Bounded work*: an update is two round trips (one script read, one script write); a read is
   one.

Session limits (``max_sessions``, ``max_sessions_per_node``) are decided by one script over the
index and the node's set, so they are exact across processes. An index entry whose score is
still ahead is live (reads only push a key's expiry further out; delete removes the entry); one
past its score may have been extended, so the script hands those back, the store checks their
keys as ``count`` does, and asks again. A node's set holds ids; one no longer in the index is
dead and is dropped there. The document is written in the same round trip as the script and
deleted again if the script refuses.

Seams (constructor parameters; the bug zoo rebuilds broken stores with them, production uses
the defaults):

* ``commit`` — *how an update's write is committed*: a :class:`Commit` built on the store,
  called with the :class:`Write` computed from a :class:`Read`. Production's is
  :class:`CompareAndSet`, the Lua compare-and-set of guarantees 2 and 4.
* ``refresh`` — *what a touching read does besides restarting the key's TTL*, which the read
  script does in its own round trip: a :class:`Refresh` built on the store, called with the
  :class:`Read`. Production's is ``None``: reads never write (guarantee 2).
* ``queue_writers`` — whether this process's writers of one session queue (``_queued``).

Seams reach Redis through :attr:`RedisSessionStore.redis` and the keys in :class:`Read`, and
report each round trip they make with :meth:`RedisSessionStore.note_round_trip`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import random
import time
import weakref
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

import redis.asyncio as redis_asyncio
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from kato.engine import SnapshotChanged
from kato.exceptions import (
    ConflictError,
    SessionLimitError,
    SessionNotFoundError,
    StoreUnavailableError,
)
from kato.sessions import codec
from kato.sessions.ids import looks_like_session_id
from kato.sessions.record import SessionRecord
from kato.sessions.store import Change, ChangeFn, Lease, Outcome, compute
from kato.stores import redis_pipe
from kato.stores.redis_cluster import is_cluster_url, parse_cluster_url
from kato.stores.redis_errors import redis_errors
from kato.stores.redis_pipe import SharedConnection

__all__ = [
    "Commit",
    "CompareAndSet",
    "Read",
    "RedisSessionStore",
    "Refresh",
    "StoreCounters",
    "StoreObserver",
    "Write",
]

T = TypeVar("T")
log = logging.getLogger("kato")
#: An argument of a Lua script.
Arg = str | bytes | int
#: A client of one Redis or of a Redis Cluster (the seams use the commands both have).
RedisClient = redis_asyncio.Redis | RedisCluster
#: Longest pause between two tries of a cluster command (a failover takes about two seconds).
_CLUSTER_BACKOFF_CAP_S = 0.25

#: The parts a read of predictions asks for.
_WITH_PREDICTIONS = (*codec.RECORD_PARTS, *codec.PREDICTION_PARTS)

#: Milliseconds a writer's lease on a session lasts unless its write releases it sooner (the
#: longest another process's writer waits for one that died holding it).
LEASE_MS = 1000
#: Seconds an update waits for other processes' writers' leases before it goes on without one.
LEASE_WAIT_S = 2.0

#: Seconds a write waits behind this process's other writers of its session before it goes on
#: unqueued (see ``RedisSessionStore._queued``).
WRITER_QUEUE_S = 1.0

# KEYS: doc, ids, idq, lease, wake, waiting
# ARGV: touch ("1"/"0"), unique id ("" for none), lease token ("" for none), lease ms, part names...
# -> false if missing; {lease pttl} if another writer holds the lease; else
#    {version, pttl, earlier reply or false, legacy doc or false, parts...}
_READ = """
local fields = {'v', 't', 'd'}
for i = 5, #ARGV do fields[#fields + 1] = ARGV[i] end
local r = redis.call('HMGET', KEYS[1], unpack(fields))
if not r[1] then return false end
local earlier = false
if ARGV[2] ~= '' then earlier = redis.call('HGET', KEYS[2], ARGV[2]) end
if ARGV[3] ~= '' and not earlier then
  local holder = redis.call('GET', KEYS[4])
  if holder and holder ~= ARGV[3] then
    redis.call('SET', KEYS[6], 1, 'PX', ARGV[4])
    return {redis.call('PTTL', KEYS[4])}
  end
  redis.call('SET', KEYS[4], ARGV[3], 'PX', ARGV[4])
end
if ARGV[1] == '1' then
  for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], r[2]) end
end
local reply = {r[1], redis.call('PTTL', KEYS[1]), earlier, r[3]}
for i = 4, #r do reply[#reply + 1] = r[i] end
return reply
"""

# Releases a writer's lease if ``token`` still holds it, and wakes one waiting writer if one
# waited lately (the compare-and-set's success and a failed update's release both end so).
_RELEASE_LEASE = """
local function release(lease, wake, waiting, token)
  if redis.call('GET', lease) ~= token then return 0 end
  redis.call('DEL', lease)
  if redis.call('EXISTS', waiting) == 1 then
    redis.call('LPUSH', wake, 1)
    redis.call('LTRIM', wake, 0, 0)
    redis.call('PEXPIRE', wake, 1000)
  end
  return 1
end
"""

# Indexes a session in the outbox index under ``now`` or, when it is indexed already under a
# mark as late (two writes in one millisecond), one past that mark: a drainer that read the
# earlier mark must find it changed and keep the entry (``_SETTLED``); an equal mark was dropped
# with the newer write's effects still pending.
_OUTBOX_MARK = """
local function index_outbox(outbox, id, now)
  local mark = tonumber(now)
  local seen = redis.call('ZSCORE', outbox, id)
  if seen and tonumber(seen) >= mark then mark = tonumber(seen) + 1 end
  redis.call('ZADD', outbox, mark, id)
end
"""

# KEYS: doc, ids, idq, lease, wake, waiting[, outbox index]
# ARGV: expected version, new version, ttl ms, restart ttl ("1"/"0"), unique id, reply, limit,
#       outbox mark ("" for none), session id, drop the legacy document ("1"/"0"), lease token
#       ("" for none), then the changed parts as field, value, field, value...
# -> {-1} missing, {0} conflict (a lease is kept), {1, remaining TTL in ms} written (the lease
#    released, and one waiter woken if a writer waited lately)
_COMPARE_AND_SET = (
    _RELEASE_LEASE
    + _OUTBOX_MARK
    + """
local v = redis.call('HGET', KEYS[1], 'v')
if not v then return {-1} end
if v ~= ARGV[1] then return {0} end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 't', ARGV[3], unpack(ARGV, 12))
if ARGV[10] == '1' then redis.call('HDEL', KEYS[1], 'd') end
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[2], ARGV[5], ARGV[6])
  redis.call('LPUSH', KEYS[3], ARGV[5])
  while redis.call('LLEN', KEYS[3]) > tonumber(ARGV[7]) do
    redis.call('HDEL', KEYS[2], redis.call('RPOP', KEYS[3]))
  end
end
if ARGV[4] == '1' then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[2], ttl)
  redis.call('PEXPIRE', KEYS[3], ttl)
end
if ARGV[8] ~= '' then index_outbox(KEYS[7], ARGV[9], ARGV[8]) end
if ARGV[11] ~= '' then release(KEYS[4], KEYS[5], KEYS[6], ARGV[11]) end
return {1, ttl}
"""
)

# KEYS: lease, wake, waiting   ARGV: lease token -> 1 released (a waiter woken if one waited
# lately), 0 not held
_RELEASE = (
    _RELEASE_LEASE
    + """
return release(KEYS[1], KEYS[2], KEYS[3], ARGV[1])
"""
)

# KEYS: index, node set   ARGV: id, score, now ms, max sessions, max per node (0: no limit)
# -> {0} indexed, {1} deployment full, {2} node full; {3, ids...} (deployment) or {4, ids...}
#    (node) when only the keys of these ids can tell
_INDEX = """
local now, max_total, max_node = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
if max_total > 0 and redis.call('ZCARD', KEYS[1]) >= max_total then
  if redis.call('ZCOUNT', KEYS[1], '(' .. ARGV[3], '+inf') >= max_total then return {1} end
  local reply = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[3], 'LIMIT', 0, 4096)
  table.insert(reply, 1, 3)
  return reply
end
if max_node > 0 then
  if redis.call('ZCARD', KEYS[2]) >= max_node then
    local live, reply = 0, {4}
    for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
      local score = redis.call('ZSCORE', KEYS[1], id)
      if not score then redis.call('ZREM', KEYS[2], id)
      elseif tonumber(score) > now then live = live + 1
      else reply[#reply + 1] = id end
    end
    if live >= max_node then return {2} end
    if live + #reply - 1 >= max_node then return reply end
  end
  redis.call('ZADD', KEYS[2], 'NX', ARGV[2], ARGV[1])
end
redis.call('ZADD', KEYS[1], 'NX', ARGV[2], ARGV[1])
return {0}
"""

# KEYS: outbox index   ARGV: id, now ms (for a commit that could not index in its own script)
_INDEX_OUTBOX = (
    _OUTBOX_MARK
    + """
index_outbox(KEYS[1], ARGV[1], ARGV[2])
"""
)

# KEYS: outbox index   ARGV: id, mark -> 1 dropped, 0 indexed anew since (kept)
_SETTLED = """
local mark = redis.call('ZSCORE', KEYS[1], ARGV[1])
if mark and tonumber(mark) == tonumber(ARGV[2]) then return redis.call('ZREM', KEYS[1], ARGV[1]) end
return 0
"""

# KEYS: doc   ARGV: version, ttl ms, then the parts as field, value, field, value...
_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 't', ARGV[2], unpack(ARGV, 3))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""


class StoreObserver(Protocol):
    """Receives the store's traffic as it happens (the service's metrics implement it)."""

    def round_trip(self, sent: int, received: int, *, background: bool = False) -> None: ...

    def conflict(self) -> None: ...

    def replicas(self, asked: int, acknowledged: int) -> None: ...


@dataclass(slots=True)
class StoreCounters:
    """This process's store traffic, for benchmarks and ``/metrics``."""

    round_trips: int = 0
    #: The outbox drainer's polls (no request's cost; see ``note_round_trip``).
    background_round_trips: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    conflicts: int = 0
    updates: int = 0
    #: Waits for another process's writer's lease on a session (``_update``).
    lease_waits: int = 0
    #: ``WAIT`` (``wait_replicas``): writes waited for, replicas that acknowledged them, and
    #: writes fewer replicas than asked acknowledged before the timeout.
    replica_waits: int = 0
    replica_acks: int = 0
    replica_shortfalls: int = 0


@dataclass(frozen=True, slots=True)
class Read:
    """A session as one read found it: ``keys`` are its document, reply-hash and reply-list
    keys; ``earlier`` is the reply remembered under the update's ``unique_id``, if any;
    ``legacy``: the record was an earlier KATO's whole document (:mod:`kato.sessions.codec`)."""

    session_id: str
    keys: list[str]
    version: str
    record: SessionRecord
    pttl_ms: int
    earlier: Mapping[str, Any] | None
    legacy: bool = False
    #: The writer's lease this read took (``""``: none; see ``RedisSessionStore._update``).
    lease: str = ""
    #: The stored predictions, when the read asked for them (undecoded).
    stored: codec.StoredPredictions | None = None


@dataclass(frozen=True, slots=True)
class Write:
    """What an update commits: ``record`` (already at the next version) computed from ``read``;
    ``parts``, the parts of it that changed (:func:`kato.sessions.codec.encode`); ``reply``
    (JSON, or ``""``) to remember under ``unique_id`` (or ``""``); ``restart_ttl`` restarts the
    key's TTL. A commit also indexes the session in the outbox index when ``record`` carries
    pending effects (:meth:`RedisSessionStore.index_outbox`)."""

    read: Read
    record: SessionRecord
    parts: Mapping[str, bytes]
    restart_ttl: bool
    unique_id: str
    reply: str

    @property
    def size(self) -> int:
        """Bytes this write sends (parts and reply), for the store's counters."""
        return sum(len(value) for value in self.parts.values()) + len(self.reply)


class Commit(Protocol):
    """How an update's write is committed. Returns the key's remaining TTL in milliseconds once
    written, ``None`` when another writer changed the session since the read (the store reads
    again and retries); raises ``SessionNotFoundError`` when the session is gone."""

    async def __call__(self, write: Write) -> int | None: ...


class Refresh(Protocol):
    """What a touching read does after the read script restarted the key's TTL."""

    async def __call__(self, read: Read) -> None: ...


class CompareAndSet:
    """Production's commit: one script writes only if the version is still the one read, and
    never creates a missing key (guarantees 2 and 4). On one Redis the same script indexes a
    session whose record carries pending effects in the outbox index (one round trip); on a
    cluster that index lives in another slot, so it takes a round trip of its own."""

    def __init__(self, store: RedisSessionStore) -> None:
        self._store = store
        self._script = store.register_script(_COMPARE_AND_SET)

    async def __call__(self, write: Write) -> int | None:
        store, new, keys = self._store, write.record, write.read.keys
        in_script = bool(new.pending) and not store.cluster
        args: list[str | bytes | int] = [
            write.read.version,
            str(new.version),
            new.ttl_seconds * 1000,
            "1" if write.restart_ttl else "0",
            write.unique_id,
            write.reply,
            store.applied_limit,
            store.now_ms() if in_script else "",
            write.read.session_id,
            "1" if write.read.legacy else "0",
            write.read.lease,
            *codec.flat(write.parts),
        ]
        if in_script:
            keys = [*keys, store.outbox_key]
        status, *ttl = await store.run_write(self._script, keys, args)
        if status == -1:
            session_id = write.read.session_id
            raise SessionNotFoundError(session_id, f"Session '{session_id}' was deleted")
        if status != 1:
            return None
        if new.pending and not in_script:
            await store.index_outbox(write.read.session_id)
        return int(ttl[0])


class RedisSessionStore:
    """Sessions in Redis (see the module docstring for how each guarantee holds).

    **Parameters:**

    * **url** - ``redis://host:port/db``, ``unix:///path?db=0``, or
      ``redis+cluster://host:port[,host:port...]`` (nodes of a Redis Cluster).
    * **auto_extend** - sliding expiry (default); ``False`` keeps each session's first deadline.
    * **applied_limit** - how many idempotency replies a session remembers.
    * **max_attempts** - compare-and-set attempts per update before ``ConflictError``.
    * **key_prefix** - the namespace of every key.
    * **observer** - told of every round trip and every lost compare-and-set (metrics).
    * **max_sessions**, **max_sessions_per_node** - live sessions allowed (0: no limit).
    * **queue_writers** - queue this process's writers of one session (``_queued``); off only
      to rebuild the earlier system's races in the bug zoo.
    * **leases** - writers of one session in other processes wait for each other's lease
      (``_update``); off only to rebuild the earlier system in the bug zoo.
    * **commit**, **refresh** - the seams of the module docstring (built on this store).
    * **wait_replicas** - after each write, ``WAIT`` for this many replicas (0: don't wait).
    """

    def __init__(
        self,
        url: str,
        *,
        auto_extend: bool = True,
        applied_limit: int = 1000,
        max_attempts: int = 64,
        key_prefix: str = "kato",
        socket_timeout: float = 5.0,
        observer: StoreObserver | None = None,
        max_sessions: int = 0,
        max_sessions_per_node: int = 0,
        queue_writers: bool = True,
        leases: bool = True,
        commit: Callable[[RedisSessionStore], Commit] = CompareAndSet,
        refresh: Callable[[RedisSessionStore], Refresh] | None = None,
        wait_replicas: int = 0,
    ) -> None:
        self.url = url
        self.auto_extend = auto_extend
        self.applied_limit = applied_limit
        self.max_attempts = max_attempts
        self.prefix = key_prefix
        self.index_key = f"{key_prefix}:sessions"
        self.outbox_key = f"{key_prefix}:outbox"
        self.max_sessions = max_sessions
        self.max_sessions_per_node = max_sessions_per_node
        self.queue_writers = queue_writers
        self.leases = leases
        self.counters = StoreCounters()
        # a lock lives while a writer holds or awaits it, then drops out of the map by itself
        self._writers: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        self._observer = observer
        self.cluster = is_cluster_url(url)
        self.wait_replicas = wait_replicas
        self._wait_ms = int(socket_timeout * 1000)
        self._redis: RedisClient = _client(url, socket_timeout)
        self._shared = (
            None
            if self.cluster
            else SharedConnection(url, timeout=socket_timeout, connect_timeout=socket_timeout)
        )
        self._read_script = self.register_script(_READ)
        self._create_script = self.register_script(_CREATE)
        self._index_script = self.register_script(_INDEX)
        self._settled_script = self.register_script(_SETTLED)
        self._index_outbox_script = self.register_script(_INDEX_OUTBOX)
        self._release_script = self.register_script(_RELEASE)
        self._commit = commit(self)
        self._refresh = refresh(self) if refresh is not None else None

    @property
    def redis(self) -> RedisClient:
        """The store's redis-py client (one connection pool per process), for the seams."""
        return self._redis

    def register_script(self, text: str) -> Script:
        """A Lua script of this store's client (see :class:`Script`)."""
        return Script(self._redis, text, self._shared)

    async def run_write(self, script: Script, keys: list[str], args: Sequence[Arg]) -> Any:
        """Run a writing script; with ``wait_replicas``, ``WAIT`` in the same round trip."""
        if not self.wait_replicas:
            return await script(keys, args)
        async with self._redis.pipeline(transaction=False) as pipe:
            await script(keys, args, client=pipe)
            await self._queue_wait(pipe, keys[0])
            reply, acked = await self._execute_waiting(pipe)
        self._note_replicas(acked, keys[0])
        return reply

    async def _queue_wait(self, pipe: Any, key: str) -> None:
        """Queue ``WAIT`` behind a write of ``key`` in ``pipe``: on the key's node and so on
        the write's connection (``WAIT`` counts the replicas that have *this connection's*
        writes)."""
        if isinstance(self._redis, RedisCluster):
            await self._redis.initialize()
            node = self._redis.get_node_from_key(key)
            pipe.execute_command("WAIT", self.wait_replicas, self._wait_ms, target_nodes=node)
        else:
            pipe.execute_command("WAIT", self.wait_replicas, self._wait_ms)

    async def _execute_waiting(self, pipe: Any) -> list[Any]:
        """Execute ``pipe``; when it ends with ``WAIT``, an error of the ``WAIT`` alone (its node
        was demoted meanwhile: "WAIT cannot be used with replica instances") counts as no
        replica acknowledging, and any other error is raised."""
        if not self.wait_replicas:
            return list(await pipe.execute())
        *replies, acked = await pipe.execute(raise_on_error=False)
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return [*replies, 0 if isinstance(acked, Exception) else acked]

    def _note_replicas(self, acked: int, key: str) -> None:
        """Count a ``WAIT``'s answer; fewer replicas than asked: the write is not acknowledged
        (``StoreUnavailableError``, 503) — it is on the master and may or may not survive it, so
        the client's retry with its ``unique_id`` decides."""
        if self._observer is not None:
            self._observer.replicas(self.wait_replicas, int(acked))
        self.counters.replica_waits += 1
        self.counters.replica_acks += int(acked)
        if int(acked) < self.wait_replicas:
            self.counters.replica_shortfalls += 1
            fields = {"asked": self.wait_replicas, "acknowledged": int(acked), "key": key}
            log.warning("redis write reached fewer replicas than asked", extra={"fields": fields})
            raise StoreUnavailableError(
                f"session write reached {int(acked)} of {self.wait_replicas} replicas within "
                f"{self._wait_ms} ms; it may not survive a failover (retry with the same unique_id)"
            )

    # -- keys and encoding -------------------------------------------------------------------
    def keys(self, session_id: str) -> list[str]:
        """The keys of a session: its document, its replies (hash) and their ids (list), its
        writers' lease, the list that wakes a writer waiting for it, and the flag that says a
        writer waited lately (only then does a release wake anyone: no key is left behind by
        writes nobody waited for)."""
        if not looks_like_session_id(session_id):  # keys derive from validated ids only
            raise SessionNotFoundError(session_id)
        doc = f"{self.prefix}:{{{session_id}}}"
        return [doc, doc + ":ids", doc + ":idq", doc + ":lease", doc + ":wake", doc + ":waiting"]

    def note_round_trip(self, sent: int, received: int = 0, *, background: bool = False) -> None:
        """Count one round trip to Redis (the seams report theirs here too). ``background``:
        the outbox drainer's polling, which no request makes: counted apart
        (``background_round_trips``), so ``round_trips`` stays what requests cost."""
        if background:
            self.counters.background_round_trips += 1
        else:
            self.counters.round_trips += 1
        self.counters.bytes_sent += sent
        self.counters.bytes_received += received
        if self._observer is not None:
            self._observer.round_trip(sent, received, background=background)

    @staticmethod
    def _lease(record: SessionRecord, pttl_ms: int) -> Lease:
        return Lease(record, time.time() + max(pttl_ms, 0) / 1000)

    # -- reads -------------------------------------------------------------------------------
    async def _read(
        self,
        session_id: str,
        *,
        touch: bool,
        unique_id: str | None,
        predictions: bool = False,
        lease: str = "",
    ) -> Read:
        keys = self.keys(session_id)
        names = _WITH_PREDICTIONS if predictions else codec.RECORD_PARTS
        args = ["1" if touch else "0", unique_id or "", lease, LEASE_MS, *names]
        with redis_errors("read", session_id):
            reply = await self._read_script(keys=keys, args=args)
        if not reply or len(reply) == 1:
            self.note_round_trip(len(session_id))
            if reply:
                raise _LeaseHeld(int(reply[0]))
            raise SessionNotFoundError(session_id)
        version, pttl, earlier, legacy, *values = reply
        received = sum(len(value) for value in values if value) + len(earlier or b"")
        self.note_round_trip(len(session_id), received + len(legacy or b""))
        parts = dict(zip(names, values, strict=True))
        stored = None
        if legacy is not None:
            parts[codec.LEGACY] = legacy
        elif predictions:
            stored = codec.StoredPredictions.read(parts)
            parts = {name: parts[name] for name in codec.RECORD_PARTS}
        record = codec.decode(parts, int(version))
        remembered = json.loads(earlier) if earlier else None
        read = Read(
            session_id,
            keys,
            version.decode(),
            record,
            int(pttl),
            remembered,
            legacy=legacy is not None,
            lease=lease if earlier is None else "",
            stored=stored,
        )
        if touch and self._refresh is not None:
            with redis_errors("read", session_id):
                await self._refresh(read)
        return read

    async def get(self, session_id: str, *, touch: bool = True, predictions: bool = True) -> Lease:
        read = await self._read(
            session_id,
            touch=touch and self.auto_extend,
            unique_id=None,
            predictions=predictions,
        )
        return replace(self._lease(read.record, read.pttl_ms), predictions=read.stored)

    async def exists(self, session_id: str) -> bool:
        if not looks_like_session_id(session_id):
            return False
        with redis_errors("exists", session_id):
            found = await self._redis.exists(self.keys(session_id)[0])
        self.note_round_trip(len(session_id))
        return bool(found)

    # -- writes ------------------------------------------------------------------------------
    async def create(self, record: SessionRecord) -> Lease:
        if self.max_sessions or self.max_sessions_per_node:
            return await self._create_within_limits(record)
        keys = self.keys(record.session_id)
        ttl_ms = record.ttl_seconds * 1000
        parts = codec.encode(record)
        args = ["0", ttl_ms, *codec.flat(parts)]
        async with self._redis.pipeline(transaction=False) as pipe:
            await self._create_script(keys=keys[:1], args=args, client=pipe)
            pipe.zadd(self.index_key, {record.session_id: self.now_ms() + ttl_ms}, nx=True)
            with redis_errors("create", record.session_id):
                if self.wait_replicas:
                    await self._queue_wait(pipe, keys[0])
                created, _, *acked = await self._execute_waiting(pipe)
        self.note_round_trip(_size(parts))
        if acked:
            self._note_replicas(acked[0], keys[0])
        self._check_created(record, created)
        return self._lease(record, ttl_ms)

    @staticmethod
    def _check_created(record: SessionRecord, created: int) -> None:
        if not created:  # 128 random bits collided, or a caller reused an id
            raise RuntimeError(f"session {record.session_id} already exists")

    async def _create_within_limits(self, record: SessionRecord) -> Lease:
        """Write the document and ask the index script for room in one round trip; repair
        entries the script is unsure of and ask again; delete the document if refused."""
        keys = self.keys(record.session_id)
        ttl_ms = record.ttl_seconds * 1000
        parts = codec.encode(record)
        sets = [self.index_key, f"{{{self.index_key}}}:node:{record.node_id}"]

        def args() -> list[str | int]:
            now = self.now_ms()
            limits = [self.max_sessions, self.max_sessions_per_node]
            return [record.session_id, now + ttl_ms, now, *limits]

        with redis_errors("create", record.session_id):
            async with self._redis.pipeline(transaction=False) as pipe:
                create = ["0", ttl_ms, *codec.flat(parts)]
                await self._create_script(keys=keys[:1], args=create, client=pipe)
                await self._index_script(keys=sets, args=args(), client=pipe)
                if self.wait_replicas:
                    await self._queue_wait(pipe, keys[0])
                created, verdict, *acked = await self._execute_waiting(pipe)
            self.note_round_trip(_size(parts))
            if acked:
                self._note_replicas(acked[0], keys[0])
            self._check_created(record, created)
            for _ in range(self.max_attempts):
                if verdict[0] == 0:
                    return self._lease(record, ttl_ms)
                if verdict[0] in (1, 2):
                    break
                await self._repair([member.decode() for member in verdict[1:]])
                verdict = await self._index_script(keys=sets, args=args())
                self.note_round_trip(0)
            await self._redis.delete(*keys)
            self.note_round_trip(0)
        kind, limit = (
            ("node", self.max_sessions_per_node)
            if verdict[0] in (2, 4)
            else ("deployment", self.max_sessions)
        )
        raise SessionLimitError.reached(kind, limit)

    async def update(
        self, session_id: str, change: ChangeFn[T], *, unique_id: str | None = None
    ) -> Outcome[T]:
        return await self._update(session_id, change, unique_id=unique_id, restart=False)

    async def _update(
        self, session_id: str, change: ChangeFn[T], *, unique_id: str | None, restart: bool
    ) -> Outcome[T]:
        """Read, compute, compare-and-set; again on a conflict (see the module docstring).

        With ``leases``, the read also takes the session's writers' lease (a token with a
        ``LEASE_MS`` expiry, which the write releases): while another process's writer holds
        it, this one waits to be woken (``BLPOP`` on the session's wake list) instead of
        computing a change that would lose the compare-and-set — a hot session written from
        several processes recomputed most of its writes without it. The lease is a hint, never
        the guard: the compare-and-set decides, so an expired or stolen lease costs a conflict,
        not a lost write. Waiting ends after ``LEASE_WAIT_S``; the writer then goes on
        without a lease.
        """
        self.counters.updates += 1
        async with self._queued(session_id):
            writer = _Writer(_token() if self.leases else "")
            try:
                return await self._attempts(session_id, change, unique_id, restart, writer)
            finally:
                if writer.held:  # not released by a write: a failure, or a crash of change
                    await self._release(session_id, writer.held)

    async def _attempts(
        self,
        session_id: str,
        change: ChangeFn[T],
        unique_id: str | None,
        restart: bool,
        writer: _Writer,
    ) -> Outcome[T]:
        deadline = time.monotonic() + LEASE_WAIT_S
        attempt = 0
        while attempt < self.max_attempts:
            try:
                read = await self._read(
                    session_id, touch=self.auto_extend, unique_id=unique_id, lease=writer.token
                )
            except _LeaseHeld as held:
                if not await self._await_lease(session_id, held.pttl_ms, deadline):
                    writer.token = ""  # waited long enough: optimistic from now on
                continue
            writer.held = read.lease
            if read.earlier is not None:
                return Outcome(self._lease(read.record, read.pttl_ms), None, replayed=read.earlier)
            try:
                changed = await compute(change, read.record)
            except SnapshotChanged:
                await self._back_off(attempt)
                attempt += 1
                continue
            new = replace(changed.record, version=read.record.version + 1)
            reply = json.dumps(changed.reply) if unique_id and changed.reply is not None else ""
            write = Write(
                read,
                new,
                codec.encode(new, since=None if read.legacy else read.record),
                restart_ttl=self.auto_extend or restart,
                unique_id=unique_id if unique_id and reply else "",
                reply=reply,
            )
            try:
                with redis_errors("update", session_id):
                    ttl = await self._commit(write)
            finally:
                self.note_round_trip(write.size)
            if ttl is not None:
                writer.held = ""  # the write released it
                return Outcome(self._lease(new, ttl), changed.value)
            self.counters.conflicts += 1
            if self._observer is not None:
                self._observer.conflict()
            await self._back_off(attempt)
            attempt += 1
        raise ConflictError(
            f"session {session_id} kept changing under {self.max_attempts} concurrent-write "
            "attempts; nothing was applied",
            session_id=session_id,
        )

    async def _await_lease(self, session_id: str, pttl_ms: int, deadline: float) -> bool:
        """Wait until another writer's lease on the session is released (its write wakes one
        waiter) or expires, at most until ``deadline``; ``False`` once that has passed."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        self.counters.lease_waits += 1
        # well inside the socket timeout: a blocked read that outlives it is an outage
        timeout = max(min(max(pttl_ms, 1) / 1000, remaining, self._wait_ms / 2000), 0.001)
        with redis_errors("update", session_id):
            await self._redis.blpop([self.keys(session_id)[4]], timeout=timeout)
        self.note_round_trip(len(session_id))
        return True

    async def _release(self, session_id: str, token: str) -> None:
        """Release a lease a failed update still holds (best effort: it expires anyway)."""
        keys = self.keys(session_id)[3:]
        try:
            with redis_errors("update", session_id):
                await self._release_script(keys=keys, args=[token])
            self.note_round_trip(len(token))
        except StoreUnavailableError:
            log.warning("a session's writer lease was left to expire", exc_info=True)

    async def index_outbox(self, session_id: str) -> None:
        """Index a session whose committed record carries pending effects (guarantee 3), in a
        round trip of its own (for commits that cannot do it in their script)."""
        with redis_errors("update", session_id):
            await self._index_outbox_script(
                keys=[self.outbox_key], args=[session_id, self.now_ms()]
            )
        self.note_round_trip(len(session_id))

    async def outbox(self, limit: int) -> list[tuple[str, float]]:
        with redis_errors("outbox"):
            found: list[Any] = await self._redis.zrange(
                self.outbox_key, 0, limit - 1, withscores=True
            )
        self.note_round_trip(0, background=True)
        return [(member.decode(), float(score)) for member, score in found]

    async def settled(self, session_id: str, mark: float) -> None:
        with redis_errors("outbox", session_id):
            await self._settled_script(keys=[self.outbox_key], args=[session_id, repr(mark)])
        self.note_round_trip(len(session_id))

    @contextlib.asynccontextmanager
    async def _queued(self, session_id: str) -> AsyncIterator[None]:
        """Queue behind this process's other writers of ``session_id`` (for at most
        ``WRITER_QUEUE_S``), so that only writers in *other* processes can conflict.

        Not what makes updates atomic — the compare-and-set does that across processes (an
        in-process lock alone is bug R2). It keeps one hot session from turning every write into
        a retry storm: measured with ``kato bench`` (64 connections into one session, 4 workers),
        17.6 conflicts per observe and 11.5 observes/s without it. The wait is bounded so that a
        stalled Redis answers every queued writer with 503 in time instead of one by one: past
        the bound a writer goes on unqueued, as optimistic as before.
        """
        if not self.queue_writers:
            yield
            return
        lock = self._writers.get(session_id)
        if lock is None:
            lock = self._writers[session_id] = asyncio.Lock()
        try:
            async with asyncio.timeout(WRITER_QUEUE_S):
                await lock.acquire()
        except TimeoutError:
            yield
            return
        try:
            yield
        finally:
            lock.release()

    @staticmethod
    async def _back_off(attempt: int) -> None:
        await asyncio.sleep(min(0.0005 * 2**attempt, 0.05) * random.uniform(0.5, 1.5))

    async def extend(self, session_id: str, ttl_seconds: int) -> Lease:
        outcome = await self._update(
            session_id,
            lambda record: Change(replace(record, ttl_seconds=ttl_seconds), None),
            unique_id=None,
            restart=True,
        )
        with redis_errors("extend", session_id):
            await self._redis.zadd(
                self.index_key, {session_id: self.now_ms() + ttl_seconds * 1000}, xx=True
            )
        self.note_round_trip(len(session_id))
        return outcome.lease

    async def delete(self, session_id: str) -> None:
        keys = self.keys(session_id)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.delete(*keys)
            pipe.zrem(self.index_key, session_id)
            with redis_errors("delete", session_id):
                deleted, _ = await pipe.execute()
        self.note_round_trip(len(session_id))
        if not deleted:
            raise SessionNotFoundError(session_id)

    # -- counting ----------------------------------------------------------------------------
    @staticmethod
    def now_ms() -> int:
        return int(time.time() * 1000)

    async def count(self) -> int:
        """Exact live sessions: repair index entries past their recorded expiry, then count."""
        with redis_errors("count"):
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.zrangebyscore(self.index_key, "-inf", self.now_ms())
                pipe.zcard(self.index_key)
                stale, total = await pipe.execute()
            self.note_round_trip(0)
            if not stale:
                return int(total)
            return await self._repair([member.decode() for member in stale])

    async def _repair(self, ids: list[str]) -> int:
        """Re-score the index entries of ``ids`` whose keys live on, drop the others; the
        index's size afterwards. Two round trips; the caller translates Redis errors."""
        now = self.now_ms()
        async with self._redis.pipeline(transaction=False) as pipe:
            for session_id in ids:
                pipe.pttl(self.keys(session_id)[0])
            remaining = await pipe.execute()
        self.note_round_trip(0)
        async with self._redis.pipeline(transaction=False) as pipe:
            for session_id, pttl in zip(ids, remaining, strict=True):
                if pttl > 0:  # extended by reads since it was indexed: re-score, never re-add
                    pipe.zadd(self.index_key, {session_id: now + pttl}, xx=True)
                else:
                    pipe.zrem(self.index_key, session_id)
            pipe.zcard(self.index_key)
            results = await pipe.execute()
        self.note_round_trip(0)
        return int(results[-1])

    async def close(self) -> None:
        if self._shared is not None:
            await self._shared.close()
        await self._redis.aclose()


_TOKENS = itertools.count()
_TOKEN_PREFIX = os.urandom(6).hex()


def _token() -> str:
    """A writer's lease token, unique among live writers of every process: the process id
    (forked workers share the random part), a random part, and a counter (``uuid4`` took
    1.5 % of a bare observe's time in a profile)."""
    return f"{os.getpid():x}.{_TOKEN_PREFIX}.{next(_TOKENS):x}"


def _size(parts: Mapping[str, bytes]) -> int:
    return sum(len(value) for value in parts.values())


class _LeaseHeld(Exception):
    """Raised by a read that found another writer's lease on the session."""

    def __init__(self, pttl_ms: int) -> None:
        super().__init__(pttl_ms)
        self.pttl_ms = pttl_ms


@dataclass(slots=True)
class _Writer:
    """One update's lease: the token it asks with (``""``: none) and the one it holds."""

    token: str
    held: str = ""


class Script:
    """A Lua script of the store, run by its SHA: on one Redis over the store's shared connection
    (:mod:`kato.stores.redis_pipe`), on a cluster by redis-py's client. Queued in a cluster
    pipeline it is sent whole (``EVAL``): a pipeline cannot load a script the node it reaches
    has not cached (a replica just promoted by a failover), a single call loads it and tries
    again."""

    def __init__(self, client: RedisClient, text: str, shared: SharedConnection | None) -> None:
        self._script = client.register_script(text)
        self._shared = shared
        self._lua = redis_pipe.Script(text)

    async def __call__(self, keys: list[str], args: Sequence[Arg], *, client: Any = None) -> Any:
        if isinstance(client, ClusterPipeline):
            return client.eval(self._lua.text, len(keys), *keys, *args)
        if client is None and self._shared is not None:
            return await self._shared.evalsha(self._lua, keys, args)
        return await self._script(keys=keys, args=args, client=client)


def _client(url: str, socket_timeout: float) -> RedisClient:
    """One Redis, or a Redis Cluster whose commands are retried through a failover for about
    ``socket_timeout`` seconds (the module docstring)."""
    options: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": socket_timeout,
    }
    if not is_cluster_url(url):
        return redis_asyncio.Redis.from_url(url, health_check_interval=30, **options)
    tries = max(1, int(socket_timeout / _CLUSTER_BACKOFF_CAP_S))
    retry = Retry(ExponentialWithJitterBackoff(base=0.02, cap=_CLUSTER_BACKOFF_CAP_S), tries)
    first, nodes = parse_cluster_url(url)
    startup = [ClusterNode(host, port) for host, port in nodes[1:]]
    return RedisCluster.from_url(first, retry=retry, startup_nodes=startup, **options)
