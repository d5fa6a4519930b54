"""The fast path: the operations of :data:`kato.api.ENDPOINTS`, served without FastAPI's machinery.

A plain ASGI layer inside the middleware (so the request observer, the body bounds and the rate
limit apply as before). It finds the route FastAPI would dispatch to, with FastAPI's own compiled
patterns in FastAPI's order (the trailing-slash twins too), and when that route is an operation it
reads the request itself: path parameters, the node (``?node_id=``, ``X-Node-ID``, ``X-Test-ID``),
integer query parameters, and the body, decoded by msgspec (:func:`kato.api.shapes.decode`)
instead of json and pydantic. It calls the core with the same :class:`~kato.api.Operation` the
route would, and answers with the same bytes (:func:`~kato.service.routes.operation_reply`) or,
for a refusal of the core, the same error response.

Whenever it is not sure of a part (a missing or malformed parameter, another content type, a body
its decoder does not take, an error while reading the body), it hands the request to FastAPI,
replaying what it read of the body, so every validation error still comes from one code path. The
gain: FastAPI's routing through included routers (two of them, every route registered twice),
dependency solving, pydantic validation and the response model cost ~130 us of CPU per request,
the fast path ~10 us; and a body decodes several times faster, a large observation's strings in
steps with the event loop free between them (a 4 MiB body no longer holds ``/health``).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi.routing import APIRoute
from starlette._utils import get_route_path
from starlette.datastructures import QueryParams
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kato.api import Endpoint, Operation, Shape, shapes
from kato.core import Kato
from kato.exceptions import KatoError, ValidationError
from kato.service.errors import error_response
from kato.service.routes import _node_from_request, operation_reply

__all__ = ["FastPath"]

#: An integer query value the fast path reads itself: plain decimal, at most 18 digits (anything
#: else, e.g. ``+5``, `` 5``, ``05``, goes to FastAPI, whose parsing decides).
_INTEGER = re.compile(r"0|-?[1-9][0-9]{0,17}")

#: One candidate of the routing table: the route's pattern, the route, its operation (if any).
_Candidate = tuple[re.Pattern[str], APIRoute, Endpoint | None]


class _Unsure(Exception):
    """A part of the request the fast path does not read itself: FastAPI's to judge."""


def _header(scope: Scope, name: bytes) -> str | None:
    """The first ``name`` header, as Starlette's ``Headers.get`` reads it."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _is_json(content_type: str | None) -> bool:
    """Whether FastAPI would parse the body as JSON: its media type, as ``email.message`` reads
    it, is ``application/json`` (``+json`` types go to FastAPI)."""
    return (
        content_type is not None
        and content_type.partition(";")[0].strip().lower() == "application/json"
    )


class FastPath:
    """The ASGI layer of the module docstring, over FastAPI's ``app`` and its ``routes``."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        routes: Sequence[BaseRoute],
        operations: Mapping[str, Endpoint],
        kato: Kato,
    ) -> None:
        self.app = app
        self.kato = kato
        #: Per method, the routes that take it, in routing order: the first whose pattern
        #: matches is the route FastAPI dispatches to (its full match).
        self.table: dict[str, list[_Candidate]] = {}
        for route in routes:
            assert isinstance(route, APIRoute), route  # the router holds only API routes
            ep = operations.get(route.name)
            for method in route.methods or ():
                self.table.setdefault(method, []).append((route.path_regex, route, ep))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = get_route_path(scope)
            for pattern, route, ep in self.table.get(scope["method"], ()):
                match = pattern.match(path)
                if match is not None:
                    if ep is not None:
                        await self._serve(scope, receive, send, route, ep, match.groupdict())
                        return
                    break
        await self.app(scope, receive, send)

    async def _serve(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        route: APIRoute,
        ep: Endpoint,
        matched: dict[str, str],
    ) -> None:
        params = dict(scope.get("path_params", {}))
        params.update({k: route.param_convertors[k].convert(v) for k, v in matched.items()})
        # What routing would put in the scope: the observer labels metrics by ``route``.
        scope["endpoint"] = route.endpoint
        scope["path_params"] = params
        scope["route"] = route
        body: Any = None
        try:
            args = {name: params[name] for name in ep.path_params if name != "session_id"}
            node = self._node(scope) if ep.node else None
            if ep.query:
                args.update(self._query(scope, ep))
            if ep.body is not None:
                body = await self._body(scope, receive, ep.body)
        except _Unsure:
            await self.app(scope, receive, send)
            return
        except _Replay as replay:
            await self.app(scope, replay.receive(receive), send)
            return
        op = Operation(ep, params.get("session_id"), node, args, body)
        try:
            result = await op.call(self.kato)
        except KatoError as exc:  # what the route's error handler answers
            request_id = scope.get("state", {}).get("request_id")
            await error_response(exc, request_id)(scope, receive, send)
            return
        content, headers = operation_reply(ep, result)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    @staticmethod
    def _node(scope: Scope) -> str:
        """The node, as the route's dependency chooses and checks it."""
        query = QueryParams(scope["query_string"]) if scope["query_string"] else None
        try:
            return _node_from_request(
                node_id=query.get("node_id") if query is not None else None,
                x_node_id=_header(scope, b"x-node-id"),
                x_test_id=_header(scope, b"x-test-id"),
            )
        except ValidationError:
            raise _Unsure from None

    @staticmethod
    def _query(scope: Scope, ep: Endpoint) -> dict[str, int]:
        """The operation's integer query parameters, or :class:`_Unsure`."""
        query = QueryParams(scope["query_string"])
        values = {}
        for q in ep.query:
            raw = query.get(q.name)
            if raw is None:
                if q.default is None:
                    raise _Unsure
                values[q.name] = q.default
                continue
            if _INTEGER.fullmatch(raw) is None:
                raise _Unsure
            value = int(raw)
            if not q.core_checks and (
                (q.ge is not None and value < q.ge) or (q.le is not None and value > q.le)
            ):
                raise _Unsure
            values[q.name] = value
        return values

    @staticmethod
    async def _body(scope: Scope, receive: Receive, shape: Shape) -> dict[str, Any]:
        """The body, read and decoded; :class:`_Replay` (what was read) if not sure of it."""
        if not _is_json(_header(scope, b"content-type")):
            raise _Unsure
        read: list[Message | Exception] = []
        chunks = []
        while True:
            try:
                message = await receive()
            except Exception as exc:  # the observer's 413 or 408, raised while reading
                read.append(exc)
                raise _Replay(read) from None
            read.append(message)
            if message["type"] != "http.request":
                raise _Replay(read)
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        content = b"".join(chunks)
        decoded: dict[str, Any] | None = None
        if content:
            steps = shapes.decode_steps(shape, content)
            while True:  # a large body decodes in steps, other requests served between them
                try:
                    next(steps)
                except StopIteration as done:
                    decoded = done.value
                    break
                await asyncio.sleep(0)
        if decoded is None:
            raise _Replay(read)
        return decoded


class _Replay(Exception):
    """The body was (partly) read and the request goes to FastAPI, which reads it again."""

    def __init__(self, read: list[Message | Exception]) -> None:
        super().__init__()
        self.read = read

    def receive(self, receive: Receive) -> Receive:
        """``receive`` with what was read first (an error read is raised again)."""
        pending = list(self.read)

        async def replay() -> Message:
            if not pending:
                return await receive()
            item = pending.pop(0)
            if isinstance(item, Exception):
                raise item
            return item

        return replay
