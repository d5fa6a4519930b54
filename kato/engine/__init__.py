"""The KATO engine: a pure, deterministic functional core.

An operation takes a session's :class:`SessionState`, its input, the effective
:class:`EngineConfig` and a read-only view of the node's long-term memory (:class:`LTMView`), and
returns a :class:`Step`: the new state, the result, and the node effects to apply once the
session write has committed. There is no I/O, no clock, no randomness and no mutable module
state here; the session layer and the stores around it are the imperative shell.

    >>> from kato.engine import EngineConfig, MemoryLTM, Observation, SessionState, observe
    >>> ltm, state = MemoryLTM(), SessionState()
    >>> step = observe(state, Observation.parse({"strings": ["hello"]}), EngineConfig(), ltm,
    ...                node_id="demo", unique_id="obs-1")
    >>> ltm.apply(step.effects)
    >>> step.state.stm
    (('hello',),)
"""

from kato.engine.config import SESSION_FIELDS, EngineConfig, validate_overrides
from kato.engine.ltm import (
    ClearNode,
    Effect,
    LearnPattern,
    LTMStore,
    LTMView,
    MemoryLTM,
    Pattern,
    RegisterVector,
    SnapshotChanged,
    SymbolStats,
    Totals,
    WouldWait,
)
from kato.engine.naming import bare_pattern_name, pattern_hash, pattern_name, vector_symbol
from kato.engine.operations import Step, clear_all, clear_stm, learn, observe, observe_sequence
from kato.engine.predictions import predict
from kato.engine.state import Observation, SessionState

__all__ = [
    "SESSION_FIELDS",
    "ClearNode",
    "Effect",
    "EngineConfig",
    "LTMStore",
    "LTMView",
    "LearnPattern",
    "MemoryLTM",
    "Observation",
    "Pattern",
    "RegisterVector",
    "SessionState",
    "SnapshotChanged",
    "Step",
    "SymbolStats",
    "Totals",
    "WouldWait",
    "bare_pattern_name",
    "clear_all",
    "clear_stm",
    "learn",
    "observe",
    "observe_sequence",
    "pattern_hash",
    "pattern_name",
    "predict",
    "validate_overrides",
    "vector_symbol",
]
