"""The ``kato`` command line: ``kato serve`` runs the HTTP service.

Exit codes: 0 after a clean shutdown, 2 for bad arguments or settings (with the reason).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence

from kato._version import __version__
from kato.exceptions import InvalidConfigError
from kato.settings import STORES, Settings

__all__ = ["main"]


def _serve(args: argparse.Namespace) -> int:
    try:
        settings = Settings.from_env(store=args.store, workers=args.workers)
    except InvalidConfigError as exc:
        print(f"kato serve: {exc.message}", file=sys.stderr)
        return 2
    import uvicorn

    os.environ["KATO_STORE"] = settings.store
    os.environ["KATO_WORKERS"] = str(settings.workers)
    os.environ["KATO_LOG_LEVEL"] = args.log_level
    metrics_dir = None
    if settings.workers > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        metrics_dir = tempfile.mkdtemp(prefix="kato-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        uvicorn.run(
            "kato.service.app:create_app_from_env",
            factory=True,
            host=args.host,
            port=args.port,
            workers=settings.workers,
            log_level=args.log_level,
            access_log=False,
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kato", description="KATO pattern-learning service")
    parser.add_argument("--version", action="version", version=f"kato {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    serve.add_argument("--store", choices=STORES, default=None, help="session store")
    serve.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="log level (JSON lines on stderr)",
    )
    serve.set_defaults(run=_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
