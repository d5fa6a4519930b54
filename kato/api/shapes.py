"""The request bodies of :data:`kato.api.ENDPOINTS`, as the service validates them.

Strict pydantic models: ``/openapi.json`` describes them, and a body of the wrong types is
refused with 422 before the core is reached. The rules the core owns and answers with its own
error (a TTL or configuration value out of range: 400 ``INVALID_CONFIG``; vector lengths: 400
``VECTOR_DIMENSION``) are documented here but not checked, so that the error stays the core's.
Only the service imports this module.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, WithJsonSchema

from kato.engine.config import overrides_schema
from kato.settings import MAX_TTL, MIN_SESSION_TTL

__all__ = ["ConfigUpdateIn", "ObservationIn", "ObserveSequenceIn", "SessionCreateIn"]

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
    return {**changes, "properties": {**changes["properties"], "config": changes}}


#: The body of ``POST .../config``: the changes, or ``{"config": {...changes}}``.
ConfigUpdateIn = Annotated[dict[str, Any], WithJsonSchema(_update_schema())]
