"""``KatoClient``: one session on one node, KATO's client model.

With ``base_url=None`` the client runs the engine in-process through a :class:`LocalBackend`;
every method returns exactly the body the HTTP API returns for the same operation, and raises
the same :mod:`kato.exceptions` with the same codes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Self

from kato.client._local import LocalBackend, default_backend
from kato.core import check_node_id
from kato.exceptions import SessionNotFoundError

__all__ = ["KatoClient"]

Body = dict[str, Any]


class KatoClient:
    """A session on a KATO node.

        with kato.KatoClient(node_id="demo") as k:
            k.observe(strings=["hello"])

    **Parameters:**

    * **node_id** - the node whose long-term memory this session learns into and predicts from.
    * **base_url** - ``None`` (the default) runs the engine in this process.
    * **ttl_seconds** - the session's sliding TTL (default: the deployment's, 3600 s).
    * **metadata** - free-form metadata kept with the session.
    * **backend** - the in-process deployment to use (default: one shared per process).
    * **config** - session configuration overrides (``max_pattern_length=3``, ...), validated.
    """

    def __init__(
        self,
        node_id: str,
        base_url: str | None = None,
        *,
        ttl_seconds: int | None = None,
        metadata: Mapping[str, Any] | None = None,
        backend: LocalBackend | None = None,
        **config: Any,
    ) -> None:
        if base_url is not None:
            raise ValueError(
                "KatoClient over HTTP is not available in this version; "
                "use base_url=None to run the engine in-process"
            )
        self.node_id = check_node_id(node_id)
        self._backend = backend or default_backend()
        self._kato = self._backend.kato
        info = self._backend.run(
            self._kato.create_session(
                node_id, metadata=metadata, ttl_seconds=ttl_seconds, config=config
            )
        )
        self.session_id: str = info["session_id"]
        self._closed = False

    def __repr__(self) -> str:
        return f"KatoClient(node_id={self.node_id!r}, session_id={self.session_id!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Delete the session (if it still exists); the client cannot be used afterwards."""
        if self._closed:
            return
        self._closed = True
        # Expired or deleted already: closing wanted the session gone, and it is.
        with contextlib.suppress(SessionNotFoundError):
            self._backend.run(self._kato.delete_session(self.session_id))

    # -- observing and learning ---------------------------------------------------------------
    def observe(
        self,
        strings: Sequence[str] | None = None,
        vectors: Sequence[Sequence[float]] | None = None,
        emotives: Mapping[str, float] | None = None,
        metadata: Mapping[str, Any] | None = None,
        unique_id: str | None = None,
    ) -> Body:
        """Observe one event; returns ``{"status": "okay", "stm_length", "time", ...}``."""
        payload = {
            "strings": list(strings) if strings is not None else [],
            "vectors": [list(v) for v in vectors] if vectors is not None else [],
            "emotives": dict(emotives) if emotives is not None else {},
            "metadata": dict(metadata) if metadata is not None else {},
        }
        if unique_id is not None:
            payload["unique_id"] = unique_id
        return self._backend.run(self._kato.observe(self.session_id, payload))

    def observe_sequence(
        self,
        observations: Sequence[Mapping[str, Any]],
        *,
        learn_after_each: bool = False,
        learn_at_end: bool = False,
        clear_stm_between: bool = False,
    ) -> Body:
        """Observe a batch atomically, optionally learning after each item or at the end."""
        payload = {
            "observations": [dict(o) for o in observations],
            "learn_after_each": learn_after_each,
            "learn_at_end": learn_at_end,
            "clear_stm_between": clear_stm_between,
        }
        return self._backend.run(self._kato.observe_sequence(self.session_id, payload))

    def learn(self) -> Body:
        """Learn the STM as a pattern; raises ``EmptySTMError`` if STM is empty."""
        return self._backend.run(self._kato.learn(self.session_id))

    def clear_stm(self) -> Body:
        return self._backend.run(self._kato.clear_stm(self.session_id))

    def clear_all(self) -> Body:
        """Clear this session's STM and the node's whole long-term memory."""
        return self._backend.run(self._kato.clear_all(self.session_id))

    # -- reading -----------------------------------------------------------------------------
    def get_stm(self) -> Body:
        return self._backend.run(self._kato.get_stm(self.session_id))

    def get_predictions(self) -> Body:
        """The predictions of the latest observe (not recomputed)."""
        return self._backend.run(self._kato.get_predictions(self.session_id))

    def get_percept_data(self) -> Body:
        return self._backend.run(self._kato.get_percept_data(self.session_id))

    def get_cognition_data(self) -> Body:
        return self._backend.run(self._kato.get_cognition_data(self.session_id))

    def get_pattern(self, name: str) -> Body:
        """One pattern of the node by ``PTRN|<hash>`` or ``<hash>``; ``NotFoundError`` if absent."""
        return self._backend.run(self._kato.get_pattern(self.node_id, name))

    def list_patterns(self, *, offset: int = 0, limit: int = 100) -> Body:
        return self._backend.run(self._kato.list_patterns(self.node_id, offset=offset, limit=limit))

    def get_symbol_stats(self) -> Body:
        return self._backend.run(self._kato.symbol_stats(self.node_id))

    # -- the session itself --------------------------------------------------------------------
    def get_session_info(self) -> Body:
        return self._backend.run(self._kato.get_session(self.session_id))

    def get_session_config(self) -> Body:
        return self._backend.run(self._kato.get_session_config(self.session_id))

    def update_session_config(
        self, config: Mapping[str, Any] | None = None, **changes: Any
    ) -> Body:
        """Merge configuration overrides; ``InvalidConfigError`` (nothing applied) if invalid."""
        return self._backend.run(
            self._kato.update_session_config(self.session_id, {**(config or {}), **changes})
        )

    def extend_session(self, ttl_seconds: int) -> Body:
        return self._backend.run(self._kato.extend_session(self.session_id, ttl_seconds))

    def check_session_exists(self) -> Body:
        return self._backend.run(self._kato.session_exists(self.session_id))
