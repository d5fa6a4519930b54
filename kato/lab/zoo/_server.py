"""The bug zoo's server: ``kato serve`` with one variant wired in (``python -m kato.lab.zoo``).

Each uvicorn worker builds its app with :func:`create_app_from_env`, from the same ``KATO_*``
variables as ``kato serve`` plus ``KATO_ZOO_VARIANT`` (``production``: the real app) and
``KATO_ZOO_LOSE_RESPONSES`` (``--lose-responses``: the lossy layer of
:mod:`~kato.lab.zoo.r9_retry_without_idempotency` in front of any variant). It starts the way
``kato serve`` does (:mod:`kato.service.server`), with the same options. Nothing in
``kato.service`` or ``kato.cli`` imports this package: a variant is reachable only through the lab.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kato.lab.zoo._variant import VARIANT_ENV
from kato.service import server
from kato.settings import Settings

__all__ = ["create_app_from_env", "main"]


_READY_ENV = "KATO_ZOO_READY_DIR"
_LOSE_ENV = "KATO_ZOO_LOSE_RESPONSES"
#: ``--variant production``: the service exactly as ``kato serve`` builds it (behind the lossy
#: layer, the only reason to serve it from here).
PRODUCTION = "production"


def create_app_from_env() -> Any:
    """The app of the variant named by ``KATO_ZOO_VARIANT`` (each worker process calls it)."""
    from kato.lab.zoo import VARIANTS
    from kato.observability import configure_logging

    configure_logging(os.environ.get("KATO_LOG_LEVEL", "info"))
    from kato.lab.zoo.r9_retry_without_idempotency import LoseResponses

    settings = Settings.from_env()
    name = os.environ[VARIANT_ENV]
    app: Any
    if name == PRODUCTION:
        from kato.service.app import create_app

        app = create_app(settings)
    else:
        app = VARIANTS[name].build(settings)
    lose = float(os.environ.get(_LOSE_ENV) or 0)
    if lose > 0:
        app = LoseResponses(app, lose)
    ready = os.environ.get(_READY_ENV)
    return _AllWorkersReady(app, Path(ready), settings.workers) if ready else app


class _AllWorkersReady:
    """Answers ``/health`` with 503 until every worker has started.

    The workbench starts its run as soon as ``/health`` answers 200; if only the first worker
    were up, every connection would go to it and a variant that needs several workers (R2, R3)
    would be tested on one. Each worker marks a file in a folder the server shares with them
    when its lifespan has started.
    """

    def __init__(self, app: Any, folder: Path, workers: int) -> None:
        self.app = app
        self.folder = folder
        self.workers = workers

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":

            async def mark_ready(message: Any) -> None:
                if message["type"] == "lifespan.startup.complete":
                    (self.folder / str(os.getpid())).touch()
                await send(message)

            await self.app(scope, receive, mark_ready)
            return
        if scope["type"] == "http" and scope["path"] == "/health":
            started = sum(1 for _ in self.folder.iterdir())
            if started < self.workers:
                from starlette.responses import JSONResponse

                body = {"status": "starting", "workers_started": started}
                await JSONResponse(body, status_code=503)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _serve(args: argparse.Namespace) -> int:
    os.environ.update({VARIANT_ENV: args.variant, _LOSE_ENV: str(args.lose_responses)})
    with contextlib.ExitStack() as stack:
        if args.workers > 1:
            ready = stack.enter_context(tempfile.TemporaryDirectory(prefix="kato-zoo-"))
            os.environ[_READY_ENV] = ready
        return server.serve(
            args, factory="kato.lab.zoo._server:create_app_from_env", prog="kato.lab.zoo serve"
        )


def build_parser() -> argparse.ArgumentParser:
    from kato.lab.zoo import VARIANTS

    parser = argparse.ArgumentParser(
        prog="python -m kato.lab.zoo", description="KATO's bug zoo: a historical failure, served"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the service with one bug-zoo variant")
    serve.add_argument("--variant", required=True, choices=[PRODUCTION, *sorted(VARIANTS)])
    serve.add_argument(
        "--lose-responses",
        type=float,
        default=0.0,
        metavar="FRACTION",
        help="drop this fraction of observe responses after applying them (503 RESPONSE_LOST)",
    )
    server.add_arguments(serve)
    serve.set_defaults(run=_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.workers < 1:
        print("kato.lab.zoo serve: --workers must be >= 1", file=sys.stderr)
        return 2
    if not 0.0 <= args.lose_responses < 1.0:
        print("kato.lab.zoo serve: --lose-responses must be in [0, 1)", file=sys.stderr)
        return 2
    return int(args.run(args))
