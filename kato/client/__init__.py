"""Clients of KATO: :class:`KatoClient` (one session on one node) and the in-process backend."""

from kato.client._client import KatoClient
from kato.client._local import LocalBackend, default_backend

__all__ = ["KatoClient", "LocalBackend", "default_backend"]
