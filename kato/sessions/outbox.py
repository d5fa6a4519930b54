"""The outbox a session record carries: LTM effects committed with the session, not yet known
to be applied to the node's long-term memory (sessions.md guarantee 3).

An engine step's effects are committed *inside* the session record, in the same atomic write
as the step's new state, under a deterministic id: ``<session id>:<record version>`` (the
version that write creates, so no two writes of a session share one). The LTM applies an entry
at most once per id (:meth:`kato.engine.LTMStore.apply` records the id in the same transaction),
so the entry can be drained as often as needed — by the request that committed it, by the next
request on the session, by a background drainer — and is dropped from the record once the LTM
has recorded its id. Effects travel as JSON; floats keep their exact value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kato.engine import ClearNode, Effect, LearnPattern, RegisterVector

__all__ = ["Pending", "effect_id"]


def effect_id(session_id: str, version: int) -> str:
    """The id of the effects committed by the write that made ``version`` of the session."""
    return f"{session_id}:{version}"


@dataclass(frozen=True, slots=True)
class Pending:
    """One step's effects, committed under ``effect_id`` and maybe not applied yet."""

    effect_id: str
    effects: tuple[Effect, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.effect_id, "effects": [_encode(effect) for effect in self.effects]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Pending:
        return cls(data["id"], tuple(_decode(item) for item in data["effects"]))


def _encode(effect: Effect) -> dict[str, Any]:
    if isinstance(effect, LearnPattern):
        return {
            "learn": effect.name,
            "events": [list(event) for event in effect.events],
            "emotives": None if effect.emotives is None else dict(effect.emotives),
            "metadata": {key: list(values) for key, values in effect.metadata.items()},
            "persistence": effect.persistence,
        }
    if isinstance(effect, RegisterVector):
        return {"vector": effect.name, "values": list(effect.vector)}
    return {"clear": True}


def _decode(data: Mapping[str, Any]) -> Effect:
    if "learn" in data:
        return LearnPattern(
            name=data["learn"],
            events=tuple(tuple(event) for event in data["events"]),
            emotives=data["emotives"],
            metadata={key: tuple(values) for key, values in data["metadata"].items()},
            persistence=data["persistence"],
        )
    if "vector" in data:
        return RegisterVector(data["vector"], tuple(float(x) for x in data["values"]))
    return ClearNode()
