"""The reference server of ``kato bench``'s HTTP rows: a FastAPI app that returns a constant.

    python -m kato.bench.trivial --port 8001 --workers 2

It is served by the same :func:`kato.service.server.run_uvicorn` as ``kato serve`` (same uvicorn
settings, same worker model, same socket options), so the ratio of a KATO route's rate to
``GET /constant`` is the cost of KATO itself: middleware, validation, the session store and the
engine.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from fastapi import FastAPI, Response

__all__ = ["create_app", "main"]

CONSTANT = {"status": "okay"}


def create_app() -> FastAPI:
    app = FastAPI(title="kato bench: trivial endpoint", openapi_url=None, docs_url=None)
    worker = str(os.getpid())

    @app.get("/constant")
    async def constant() -> dict[str, str]:
        return CONSTANT

    @app.get("/health")  # what kato.lab.targets.serve waits for, once per worker
    async def health(response: Response) -> dict[str, str]:
        response.headers["X-Kato-Worker"] = worker
        return CONSTANT

    return app


def main(argv: Sequence[str] | None = None) -> int:
    from kato.service.server import run_uvicorn  # not in the workers, which import this module

    parser = argparse.ArgumentParser(prog="python -m kato.bench.trivial", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--log-level", default="warning")
    parser.add_argument("--data-dir", help="ignored (kato.lab.targets.serve passes one)")
    args = parser.parse_args(argv)
    run_uvicorn("kato.bench.trivial:create_app", args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
