"""Sessions: the record a session is, its id, and the stores that hold records.

A session is one user's short-term context on one node. Stores implement
:class:`~kato.sessions.store.SessionStore`; the in-memory store serves a single process.
"""

from kato.sessions import codec
from kato.sessions.ids import looks_like_session_id, new_session_id
from kato.sessions.memory import MemorySessionStore
from kato.sessions.outbox import Pending, effect_id
from kato.sessions.record import SessionRecord
from kato.sessions.store import Change, ChangeFn, Lease, Outcome, SessionStore, compute

__all__ = [
    "Change",
    "ChangeFn",
    "Lease",
    "MemorySessionStore",
    "Outcome",
    "Pending",
    "SessionRecord",
    "SessionStore",
    "codec",
    "compute",
    "effect_id",
    "looks_like_session_id",
    "new_session_id",
]
