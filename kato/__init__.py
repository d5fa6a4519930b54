"""KATO: a deterministic pattern-learning engine, served through per-user sessions.

    >>> import kato
    >>> with kato.KatoClient(node_id="readme") as k:
    ...     _ = k.observe(strings=["hello"])
    ...     k.get_stm()["stm"]
    [['hello']]

The engine itself is :mod:`kato.engine` (pure and deterministic); errors are
:mod:`kato.exceptions`.
"""

from kato._version import __version__
from kato.client import AsyncKatoClient, KatoClient, LocalBackend
from kato.exceptions import (
    EmptySTMError,
    InvalidConfigError,
    KatoError,
    NotFoundError,
    SessionNotFoundError,
    StoreUnavailableError,
    TransportError,
    ValidationError,
    VectorDimensionError,
)

__all__ = [
    "AsyncKatoClient",
    "EmptySTMError",
    "InvalidConfigError",
    "KatoClient",
    "KatoError",
    "LocalBackend",
    "NotFoundError",
    "SessionNotFoundError",
    "StoreUnavailableError",
    "TransportError",
    "ValidationError",
    "VectorDimensionError",
    "__version__",
]
