"""The session record's stored parts (kato.sessions.codec): exact round trips, writes that send
only what changed, and documents an earlier KATO stored whole."""

from __future__ import annotations

import json
from dataclasses import replace

from kato.engine import EngineConfig, MemoryLTM, Observation, SessionState, learn, observe
from kato.sessions import Pending, SessionRecord, codec, new_session_id


def _record(**state: object) -> SessionRecord:
    return SessionRecord(
        new_session_id(1),
        "node",
        created_at=1.5,
        ttl_seconds=60,
        metadata={"a": 1, "deep": [{"x": None}]},
        config={"max_pattern_length": 2},
        state=SessionState(**state),  # type: ignore[arg-type]
        version=4,
    )


def _observed() -> SessionRecord:
    """A record whose state holds real predictions (floats of every kind)."""
    config, ltm = EngineConfig(), MemoryLTM()
    for events in ((("a", "b"), ("c",)), (("a",), ("c",), ("d",)), (("b",), ("e", "f"))):
        ltm.apply(learn(SessionState(stm=events), config).effects)
    state = SessionState(emotives_accumulator=({"joy": 0.1},), current_emotives={"joy": 0.1})
    for symbol in ("a", "c"):
        state = observe(
            state, Observation(strings=(symbol,)), config, ltm, node_id="node", unique_id=symbol
        ).state
    assert state.predictions
    return replace(_record(), state=state, pending=(Pending("s:1", ()),))


def _read(record: SessionRecord, *, predictions: bool) -> SessionRecord:
    stored = codec.encode(record)
    names = (*codec.RECORD_PARTS, *(codec.PREDICTION_PARTS if predictions else ()))
    return codec.decode({name: stored.get(name) for name in names}, record.version)


def test_every_part_round_trips_exactly() -> None:
    record = _observed()
    assert _read(record, predictions=True) == record


def test_a_read_without_predictions_leaves_them_unread_and_a_write_does_not_send_them() -> None:
    record = _observed()
    read = _read(record, predictions=False)
    assert read.state.predictions is codec.NOT_READ
    assert read.state.future_potentials is codec.NOT_READ
    assert replace(read, state=replace(read.state, predictions=record.state.predictions,
                   future_potentials=record.state.future_potentials)) == record  # fmt: skip
    # a change that keeps the state (a config update) sends the head only
    changed = replace(read, config={"max_pattern_length": 3})
    assert set(codec.encode(changed, since=read)) == {"h"}
    # a step that replaces the predictions sends them, with their count
    stepped = replace(read, state=replace(read.state, time=9, predictions=({"name": "x"},)))
    assert set(codec.encode(stepped, since=read)) == {"s", "p", "n"}
    assert codec.prediction_count(codec.encode(stepped, since=read)) == 1
    # an emptied outbox is sent
    assert set(codec.encode(replace(read, pending=()), since=read)) == {"o"}


def test_predictions_emptied_by_a_step_are_sent_empty() -> None:
    read = _read(_observed(), predictions=False)
    cleared = replace(read, state=replace(read.state, predictions=(), future_potentials=()))
    parts = codec.encode(cleared, since=read)
    assert json.loads(parts["p"]) == [] and json.loads(parts["f"]) == [] and parts["n"] == b"0"


def test_an_earlier_kato_whole_document_is_read() -> None:
    record = _observed()
    doc = json.dumps(
        {
            "session_id": record.session_id,
            "node_id": record.node_id,
            "created_at": record.created_at,
            "ttl_seconds": record.ttl_seconds,
            "metadata": record.metadata,
            "config": record.config,
            "state": record.state.to_dict(),
            "version": 99,
            "pending": [entry.to_dict() for entry in record.pending],
        }
    ).encode()
    # read whole, predictions included, whatever parts were asked for
    assert codec.decode({codec.LEGACY: doc, "h": None, "p": None}, record.version) == record
    assert codec.decode({codec.LEGACY: doc, "h": None}, record.version) == record


def test_stored_predictions_are_answered_undecoded_and_materialize_for_clients() -> None:
    record = _observed()
    stored = codec.StoredPredictions.read(codec.encode(record))
    assert stored.count == len(record.state.predictions)
    body = {"cognition_data": {"predictions": stored.predictions}, "count": stored.count}
    assert codec.materialize(body) == {
        "cognition_data": {"predictions": [dict(p) for p in record.state.predictions]},
        "count": stored.count,
    }
    assert codec.StoredPredictions.of(record.state) == stored
    empty = codec.StoredPredictions.read({})
    assert codec.materialize([empty.predictions, empty.futures]) == [[], []] and empty.count == 0
