"""uvicorn's HTTP/1.1 protocol with a deadline for each request's headers.

uvicorn closes a connection that stays idle between requests (``timeout_keep_alive``) but not
one that sends a request's headers a byte at a time: such a connection held its socket and
parser forever. Here every connection must complete each request's headers within
``KATO_HEADER_TIMEOUT_S`` seconds (from the connection's start, or from the previous response);
otherwise it is closed without an answer. ``kato serve`` names it to uvicorn by its import
string, which every worker process can import.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from kato.settings import Settings

__all__ = ["HeaderDeadlineProtocol"]

log = logging.getLogger("kato.access")
_DEFAULT_TIMEOUT = Settings().header_timeout_s


class HeaderDeadlineProtocol(H11Protocol):
    """:class:`H11Protocol` that closes a connection whose request headers are late."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = float(os.environ.get("KATO_HEADER_TIMEOUT_S", _DEFAULT_TIMEOUT))
        self._header_timer: asyncio.TimerHandle | None = None
        self._waiting_after: object = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
        super().connection_lost(exc)

    def _arm(self) -> None:
        """Expect the next request's headers (a new request cycle) within the timeout."""
        if self._header_timer is not None:
            self._header_timer.cancel()
        self._waiting_after = self.cycle
        self._header_timer = self.loop.call_later(self.header_timeout, self._deadline)

    def _deadline(self) -> None:
        self._header_timer = None
        idle = self.cycle is None or self.cycle.response_complete
        if self.cycle is self._waiting_after and idle and not self.transport.is_closing():
            log.info("headers late", extra={"fields": {"timeout_s": self.header_timeout}})
            self.transport.close()
