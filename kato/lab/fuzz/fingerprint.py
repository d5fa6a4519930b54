"""What a deployment stores, reduced to a comparable fingerprint: Redis keys and the SQLite LTM.

A fingerprint maps every Redis key to a digest of its value and every LTM table to a digest of
its rows. TTLs are left out (a rejected request may legitimately restart one), and so are the
session indexes' expiry scores and their entries for sessions whose keys are gone (index
upkeep, which ``count`` and the limit checks do lazily): an index is fingerprinted as the set of
live sessions it lists. The outbox index (``<prefix>:outbox``) is left out too: the service's
drainer empties it in the background, whatever the requests of the moment; the effects it points
to live in the session records and the LTM, which are fingerprinted. Anything else a request
changes shows up as a changed, added or removed entry.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from pathlib import Path
from typing import Any

import redis

__all__ = ["Fingerprint", "difference", "fingerprint"]

Fingerprint = dict[str, str]


def _digest(value: Any) -> str:
    return hashlib.sha256(repr(value).encode()).hexdigest()[:16]


def fingerprint(
    client: redis.Redis, ltm_path: Path | None = None, *, prefix: str = "kato"
) -> Fingerprint:
    """The fingerprint of every key ``client`` sees and of the LTM at ``ltm_path``."""
    index = re.compile(re.escape(f"{prefix}:sessions") + r"$|^\{" + re.escape(prefix))
    keys = sorted(client.scan_iter(count=1000))
    with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.type(key)
        types = pipe.execute()
    with client.pipeline(transaction=False) as pipe:
        for key, kind in zip(keys, types, strict=True):
            _queue_read(pipe, key, kind)
        values = pipe.execute()
    prints: Fingerprint = {}
    for key, kind, value in zip(keys, types, values, strict=True):
        name = key.decode(errors="replace")
        if name == f"{prefix}:outbox":
            continue
        if kind == b"zset" and index.search(name):
            members = [member for member, _ in value]
            with client.pipeline(transaction=False) as pipe:
                for member in members:
                    pipe.exists(f"{prefix}:{{{member.decode(errors='replace')}}}")
                alive = pipe.execute()
            value = sorted(m for m, live in zip(members, alive, strict=True) if live)
        elif isinstance(value, dict):
            value = sorted(value.items())
        elif isinstance(value, set):
            value = sorted(value)
        prints[name] = _digest(value)
    if ltm_path is not None and ltm_path.exists():
        prints.update(_ltm(ltm_path))
    return prints


def _queue_read(pipe: Any, key: bytes, kind: bytes) -> None:
    """Queue the read of ``key``'s whole value, by its type (gone since the scan: ``EXISTS``)."""
    if kind == b"string":
        pipe.get(key)
    elif kind == b"hash":
        pipe.hgetall(key)
    elif kind == b"list":
        pipe.lrange(key, 0, -1)
    elif kind == b"set":
        pipe.smembers(key)
    elif kind == b"zset":
        pipe.zrange(key, 0, -1, withscores=True)
    else:
        pipe.exists(key)


def _ltm(path: Path) -> Fingerprint:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {
            f"ltm:{table}": _digest(sorted(map(repr, db.execute(f'SELECT * FROM "{table}"'))))
            for table in sorted(tables)
        }


def difference(before: Fingerprint, after: Fingerprint) -> dict[str, list[str]]:
    """The keys added, removed and changed between two fingerprints."""
    return {
        "added": sorted(after.keys() - before.keys()),
        "removed": sorted(before.keys() - after.keys()),
        "changed": sorted(k for k in before.keys() & after.keys() if before[k] != after[k]),
    }
