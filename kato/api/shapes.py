"""The request bodies of :data:`kato.api.ENDPOINTS`, as the service validates them.

Strict pydantic models: ``/openapi.json`` describes them, and a body of the wrong types is
refused with 422 before the core is reached. The rules the core owns and answers with its own
error (a TTL or configuration value out of range: 400 ``INVALID_CONFIG``; vector lengths: 400
``VECTOR_DIMENSION``) are documented here but not checked, so that the error stays the core's.
Only the service imports this module.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator
from typing import Annotated, Any, cast

import msgspec
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, WithJsonSchema

from kato.api import Body, Shape
from kato.engine.config import overrides_schema
from kato.settings import MAX_TTL, MIN_SESSION_TTL

__all__ = [
    "ConfigUpdateIn",
    "ObservationIn",
    "ObserveSequenceIn",
    "SessionCreateIn",
    "decode",
    "decode_steps",
]

Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
#: A session configuration update. The core validates it (a bad value is 400
#: ``INVALID_CONFIG``, not 422), so the model takes any object and only documents the rules.
ConfigIn = Annotated[dict[str, Any], WithJsonSchema(overrides_schema())]


class ObservationIn(BaseModel):
    """One observation (engine.md §2.1): strings, vectors, emotives, metadata, unique_id."""

    model_config = ConfigDict(extra="ignore")
    strings: list[StrictStr] = Field(default_factory=list)
    #: The core checks the lengths (400 ``VECTOR_DIMENSION``: equal and non-zero); the
    #: document states the part JSON Schema can.
    vectors: list[Annotated[list[Number], Field(json_schema_extra={"minItems": 1})]] = Field(
        default_factory=list
    )
    emotives: dict[str, Number] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    unique_id: StrictStr | None = Field(default=None, min_length=1, max_length=128)


class ObserveSequenceIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    observations: list[ObservationIn] = Field(default_factory=list)
    learn_after_each: StrictBool = False
    learn_at_end: StrictBool = False
    clear_stm_between: StrictBool = False


class SessionCreateIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    node_id: StrictStr = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.\-]+$")
    metadata: dict[str, Any] = Field(default_factory=dict)
    #: Checked by the core (400 ``INVALID_CONFIG``), like ``config``; the range is documented.
    ttl_seconds: StrictInt | None = Field(
        default=None, json_schema_extra={"minimum": MIN_SESSION_TTL, "maximum": MAX_TTL}
    )
    config: ConfigIn | None = None


def _update_schema() -> dict[str, Any]:
    changes = overrides_schema()
    nested = {"anyOf": [changes, {"type": "null"}]}
    return {**changes, "properties": {**changes["properties"], "config": nested}}


#: The body of ``POST .../config``: the changes, or ``{"config": {...changes}}`` (changes beside
#: it count too; ``config`` null is not given).
ConfigUpdateIn = Annotated[dict[str, Any], WithJsonSchema(_update_schema())]


# -- the same shapes, decoded fast ------------------------------------------------------------
# msgspec twins of the models above, for the service's fast path (kato.service.fastpath): they
# decode a body straight from bytes into what ``Model.model_validate(json.loads(body))
# .model_dump(exclude_none=True)`` gives, several times faster than json + pydantic. A twin may
# refuse more than its model (the body then goes to the model, which gives the canonical answer,
# error or not) but never less: tests/service/test_fastpath.py checks that on generated bodies.
# msgspec is already strict where the models are (no bool for a number or an int, no int for a
# bool, no float for an int, no null for a list or an object) and reads no NaN or Infinity.

#: Nesting the twins take in free-form values (metadata, config); a deeper one goes to the model,
#: whose parser (json's recursion limit, ~1,000) and the core (its own bound) decide.
_FREE_DEPTH = 64
_NODE_ID = re.compile(r"[A-Za-z0-9_.\-]{1,128}")
#: An observation body over this many bytes has its strings decoded in steps of about
#: ``_STEP_BYTES`` bytes (:func:`decode_steps`): a 4 MiB body's 350k strings take ~16 ms of CPU to
#: decode, which would hold a worker's event loop (and its ``/health``) for as long.
_STEPWISE_BYTES = 256 * 1024
_STEP_BYTES = 64 * 1024


class _Observation(msgspec.Struct):
    strings: list[str] = []
    vectors: list[list[float]] = []
    emotives: dict[str, float] = {}
    metadata: dict[str, Any] = {}
    unique_id: str | None = None


class _ObservationUnreadStrings(msgspec.Struct):
    """:class:`_Observation` with its strings left as JSON text (checked, not decoded)."""

    strings: msgspec.Raw = msgspec.Raw(b"[]")
    vectors: list[list[float]] = []
    emotives: dict[str, float] = {}
    metadata: dict[str, Any] = {}
    unique_id: str | None = None


class _ObserveSequence(msgspec.Struct):
    observations: list[_Observation] = []
    learn_after_each: bool = False
    learn_at_end: bool = False
    clear_stm_between: bool = False


class _SessionCreate(msgspec.Struct):
    node_id: str
    metadata: dict[str, Any] = {}
    ttl_seconds: int | None = None
    config: dict[str, Any] | None = None


def _shallow(value: Any, depth: int = _FREE_DEPTH) -> bool:
    """Whether ``value`` nests at most ``depth`` containers deep."""
    if isinstance(value, dict):
        return depth > 0 and all(_shallow(item, depth - 1) for item in value.values())
    if isinstance(value, list):
        return depth > 0 and all(_shallow(item, depth - 1) for item in value)
    return True


def _observation(o: _Observation | _ObservationUnreadStrings, strings: list[str]) -> Body | None:
    if o.unique_id is not None and not 1 <= len(o.unique_id) <= 128:
        return None
    if o.metadata and not _shallow(o.metadata):
        return None
    dumped = {"strings": strings, "vectors": o.vectors, "emotives": o.emotives}
    dumped["metadata"] = o.metadata
    if o.unique_id is not None:
        dumped["unique_id"] = o.unique_id
    return dumped


def _observe_sequence(s: _ObserveSequence) -> Body | None:
    observations = [_observation(o, o.strings) for o in s.observations]
    if any(o is None for o in observations):
        return None
    return {
        "observations": observations,
        "learn_after_each": s.learn_after_each,
        "learn_at_end": s.learn_at_end,
        "clear_stm_between": s.clear_stm_between,
    }


def _session_create(s: _SessionCreate) -> Body | None:
    if _NODE_ID.fullmatch(s.node_id) is None or not _shallow([s.metadata, s.config]):
        return None
    dumped: Body = {"node_id": s.node_id, "metadata": s.metadata}
    if s.ttl_seconds is not None:
        dumped["ttl_seconds"] = s.ttl_seconds
    if s.config is not None:
        dumped["config"] = s.config
    return dumped


def _changes(changes: Body) -> Body | None:
    return changes if _shallow(changes) else None


_TWINS: dict[Shape, tuple[msgspec.json.Decoder[Any], Callable[[Any], Body | None]]] = {
    "ObservationIn": (msgspec.json.Decoder(_Observation), lambda o: _observation(o, o.strings)),
    "ObserveSequenceIn": (msgspec.json.Decoder(_ObserveSequence), _observe_sequence),
    "SessionCreateIn": (msgspec.json.Decoder(_SessionCreate), _session_create),
    "ConfigUpdateIn": (msgspec.json.Decoder(dict[str, Any]), _changes),
}
_UNREAD_STRINGS = msgspec.json.Decoder(_ObservationUnreadStrings)
_STRINGS = msgspec.json.Decoder(list[str])
_NOT_SURE = (UnicodeDecodeError, msgspec.DecodeError, RecursionError)


def decode(shape: Shape, body: bytes) -> Body | None:
    """``body`` as the service's model ``shape`` validates and dumps it (``exclude_none``), or
    ``None`` when the fast decoder is not sure: the body is then the model's to judge."""
    steps = decode_steps(shape, body)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return cast("Body | None", done.value)


def decode_steps(
    shape: Shape, body: bytes, *, stepwise_above: int = _STEPWISE_BYTES, step: int = _STEP_BYTES
) -> Generator[None, None, Body | None]:
    """:func:`decode` in steps: the generator returns the result, and between its steps (each
    about ``step`` bytes of the strings of an observation of over ``stepwise_above`` bytes) its
    caller may do other work."""
    try:
        if not body.isascii():
            body.decode()  # msgspec skips unknown fields unread, json refuses bad UTF-8 anywhere
        if shape != "ObservationIn" or len(body) <= stepwise_above:
            decoder, dump = _TWINS[shape]
            return dump(decoder.decode(body))
        unread = _UNREAD_STRINGS.decode(body)
    except _NOT_SURE:
        return None
    array = bytes(unread.strings)  # any JSON value, its syntax checked
    if not (array.startswith(b"[") and array.endswith(b"]")):
        return None
    strings: list[str] = []
    try:
        if b"\\" in array:  # an escaped quote could look like the end of a string: at once
            strings = _STRINGS.decode(array)
        else:
            # Without escapes a string holds no quote, so every '",' ends one, and the array
            # splits into arrays of whole strings (an element of another type fails to decode).
            start, end = 1, len(array) - 1
            while start < end:
                cut = array.find(b'",', start + step, end)
                stop = end if cut < 0 else cut + 1
                strings.extend(_STRINGS.decode(b"[" + array[start:stop] + b"]"))
                start = stop + 1
                yield
    except _NOT_SURE:
        return None
    return _observation(unread, strings)
