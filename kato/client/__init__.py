"""Clients of KATO: one session on one node, in-process or over HTTP, sync or async."""

from kato.client._client import AsyncKatoClient, KatoClient
from kato.client._local import LocalBackend, default_backend

__all__ = ["AsyncKatoClient", "KatoClient", "LocalBackend", "default_backend"]
