"""The request bodies of :data:`kato.api.ENDPOINTS`, as the service validates them.

Strict pydantic models: ``/openapi.json`` describes them, and a body of the wrong types is
refused with 422 before the core is reached. Only the service imports this module.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

__all__ = ["AnyObject", "ObservationIn", "ObserveSequenceIn", "SessionCreateIn"]

Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]


class ObservationIn(BaseModel):
    """One observation (engine.md §2.1): strings, vectors, emotives, metadata, unique_id."""

    model_config = ConfigDict(extra="ignore")
    strings: list[StrictStr] = Field(default_factory=list)
    vectors: list[list[Number]] = Field(default_factory=list)
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
    ttl_seconds: StrictInt | None = None
    config: dict[str, Any] | None = None


#: A body the service takes as any JSON object (``POST .../config``).
AnyObject = dict[str, Any]
