"""How a session record is laid out in a store's hash: in parts, so each route reads and each
write sends only the parts it needs (#17).

A session stored whole as one JSON document made every read parse everything: ``GET /stm`` of a
session holding 60 predictions parsed ~100 KB, and every observe parsed and rewrote the
predictions it was about to replace. The record is stored instead as

* ``h`` — the head: id, node, creation time, TTL length, metadata and configuration overrides;
* ``s`` — the engine state without its predictions (STM, accumulators, emotives, time, ...);
* ``p`` / ``f`` / ``n`` — the predictions, the future potentials, and how many predictions;
* ``o`` — the outbox (pending LTM effects, :mod:`kato.sessions.outbox`).

No engine step reads the predictions a session holds (they are outputs: every observe computes
them anew, ``learn`` keeps them, a clear empties them), so an update reads ``h``, ``s`` and
``o`` only; its record carries :data:`NOT_READ` as predictions and future potentials, and a
write sends ``p``/``f``/``n`` only when the step replaced them, ``h`` only when the head changed,
``o`` only when the outbox did. Parts are JSON (msgspec: several times faster than ``json`` both
ways, floats kept exactly).

A read of predictions does not decode them either: :class:`StoredPredictions` carries the stored
JSON as ``msgspec.Raw``, which the service's encoder splices into its answer as it is (60 stored
predictions took most of ``GET /predictions``'s time to decode and encode again); the in-process
client decodes it (:func:`materialize`).

A session written by an earlier KATO (one document in ``d``) is read from it, whole; the next
write stores every part and drops ``d``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from kato.engine import SessionState
from kato.sessions.outbox import Pending
from kato.sessions.record import SessionRecord

if TYPE_CHECKING:
    from kato.sessions.store import Lease

__all__ = [
    "LEGACY",
    "NOT_READ",
    "PREDICTION_PARTS",
    "RECORD_PARTS",
    "StoredPredictions",
    "decode",
    "encode",
    "flat",
    "materialize",
    "prediction_count",
    "stored_predictions",
]

HEAD, STATE, PREDICTIONS, FUTURES, COUNT, OUTBOX = "h", "s", "p", "f", "n", "o"
#: The parts every read and update decodes.
RECORD_PARTS = (HEAD, STATE, OUTBOX)
#: The parts only reads of predictions decode.
PREDICTION_PARTS = (PREDICTIONS, FUTURES, COUNT)
#: An earlier KATO's whole-document field.
LEGACY = "d"

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


class _NotRead(tuple):  # type: ignore[type-arg]
    """The predictions of a record read without them (see the module docstring)."""

    __slots__ = ()


#: Predictions and future potentials left in the store by a read that did not ask for them.
NOT_READ: tuple[Mapping[str, Any], ...] = _NotRead()


@dataclass(frozen=True, slots=True)
class StoredPredictions:
    """A session's predictions and future potentials as stored: JSON arrays, not decoded."""

    predictions: msgspec.Raw
    futures: msgspec.Raw
    count: int

    @classmethod
    def of(cls, state: SessionState) -> StoredPredictions:
        """Those of a record held decoded (the in-memory store's, an earlier KATO's)."""
        return cls(
            msgspec.Raw(_encode(state.predictions)),
            msgspec.Raw(_encode(state.future_potentials)),
            len(state.predictions),
        )

    @classmethod
    def read(cls, parts: Mapping[str, bytes | None]) -> StoredPredictions:
        """Those stored in ``parts`` (:data:`PREDICTION_PARTS`); none stored yet: empty."""
        return cls(
            msgspec.Raw(parts.get(PREDICTIONS) or b"[]"),
            msgspec.Raw(parts.get(FUTURES) or b"[]"),
            prediction_count(parts),
        )


def stored_predictions(lease: Lease) -> StoredPredictions:
    """The predictions of a session read with ``predictions=True``."""
    if lease.predictions is not None:
        return lease.predictions
    return StoredPredictions.of(lease.record.state)


def materialize(body: Any) -> Any:
    """``body`` with every ``msgspec.Raw`` in it decoded (what a client gets from the service)."""
    if isinstance(body, msgspec.Raw):
        return _decode(body)
    if isinstance(body, dict):
        return {key: materialize(value) for key, value in body.items()}
    if isinstance(body, list):
        return [materialize(item) for item in body]
    return body


def _head(record: SessionRecord) -> dict[str, Any]:
    return {
        "session_id": record.session_id,
        "node_id": record.node_id,
        "created_at": record.created_at,
        "ttl_seconds": record.ttl_seconds,
        "metadata": record.metadata,
        "config": record.config,
    }


def _state(state: SessionState) -> dict[str, Any]:
    return {
        "stm": state.stm,
        "emotives_accumulator": state.emotives_accumulator,
        "metadata_accumulator": state.metadata_accumulator,
        "current_emotives": state.current_emotives,
        "time": state.time,
        "symbols": state.symbols,
        "percept_data": state.percept_data,
        "last_unique_id": state.last_unique_id,
    }


def _same_head(a: SessionRecord, b: SessionRecord) -> bool:
    return (
        a.session_id == b.session_id
        and a.node_id == b.node_id
        and a.created_at == b.created_at
        and a.ttl_seconds == b.ttl_seconds
        and (a.metadata is b.metadata or a.metadata == b.metadata)
        and (a.config is b.config or a.config == b.config)
    )


def encode(record: SessionRecord, since: SessionRecord | None = None) -> dict[str, bytes]:
    """The parts of ``record`` to store: all of them for a new session (``since`` None), else
    those that differ from ``since``, the record the update read. Predictions left
    :data:`NOT_READ` are never sent."""
    parts: dict[str, bytes] = {}
    if since is None or not _same_head(record, since):
        parts[HEAD] = _encode(_head(record))
    state = record.state
    if since is None or state is not since.state:
        parts[STATE] = _encode(_state(state))
    if state.predictions is not NOT_READ and (
        since is None or state.predictions is not since.state.predictions
    ):
        parts[PREDICTIONS] = _encode(state.predictions)
        parts[COUNT] = str(len(state.predictions)).encode()
    if state.future_potentials is not NOT_READ and (
        since is None or state.future_potentials is not since.state.future_potentials
    ):
        parts[FUTURES] = _encode(state.future_potentials)
    if since is None or record.pending is not since.pending:
        parts[OUTBOX] = _encode([entry.to_dict() for entry in record.pending])
    return parts


def decode(parts: Mapping[str, bytes | None], version: int) -> SessionRecord:
    """The record stored in ``parts`` (those of :data:`RECORD_PARTS`, maybe
    :data:`PREDICTION_PARTS`, and :data:`LEGACY`), at ``version``. Predictions not among the
    parts are :data:`NOT_READ`."""
    legacy = parts.get(LEGACY)
    if legacy is not None and parts.get(HEAD) is None:
        return _decode_legacy(legacy, version)
    state = _decode(_required(parts, STATE))
    outbox = parts.get(OUTBOX)
    return _record(
        _decode(_required(parts, HEAD)),
        SessionState(
            stm=tuple(tuple(event) for event in state["stm"]),
            emotives_accumulator=tuple(state["emotives_accumulator"]),
            metadata_accumulator=tuple(state["metadata_accumulator"]),
            current_emotives=state["current_emotives"],
            time=state["time"],
            symbols=tuple(state["symbols"]),
            percept_data=state["percept_data"],
            predictions=_sequence(parts, PREDICTIONS),
            future_potentials=_sequence(parts, FUTURES),
            last_unique_id=state["last_unique_id"],
        ),
        version,
        _decode(outbox) if outbox else (),
    )


def _record(
    head: Mapping[str, Any], state: SessionState, version: int, pending: Sequence[Any]
) -> SessionRecord:
    """The record of a decoded head (the fields of :func:`_head`), state and outbox."""
    return SessionRecord(
        session_id=head["session_id"],
        node_id=head["node_id"],
        created_at=head["created_at"],
        ttl_seconds=head["ttl_seconds"],
        metadata=head["metadata"],
        config=head["config"],
        state=state,
        version=version,
        pending=tuple(Pending.from_dict(item) for item in pending),
    )


def prediction_count(parts: Mapping[str, bytes | None]) -> int:
    """How many predictions the stored record holds (without decoding them)."""
    count = parts.get(COUNT)
    return int(count) if count else len(_sequence(parts, PREDICTIONS))


def _required(parts: Mapping[str, bytes | None], name: str) -> bytes:
    value = parts.get(name)
    if value is None:
        raise ValueError(f"session record without its part {name!r}")
    return value


def _sequence(parts: Mapping[str, bytes | None], name: str) -> tuple[Mapping[str, Any], ...]:
    if name not in parts:
        return NOT_READ
    value = parts[name]
    return tuple(_decode(value)) if value else ()


def _decode_legacy(doc: bytes, version: int) -> SessionRecord:
    """A record an earlier KATO stored whole in ``d``, predictions included (the write that
    stores it in parts must send them all)."""
    data = json.loads(doc)
    state = SessionState.from_dict(data["state"])
    return _record(data, state, version, data.get("pending", ()))


def flat(parts: Mapping[str, bytes]) -> Sequence[bytes | str]:
    """``parts`` as the field, value, field, value ... arguments of ``HSET``."""
    return [item for pair in parts.items() for item in pair]
