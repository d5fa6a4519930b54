"""The ``kato`` command line: ``kato serve`` runs the HTTP service, ``kato lab`` the workbench,
``kato bench`` the benchmarks.

Exit codes: 0 after a clean shutdown, 2 for bad arguments or settings (with the reason).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from kato._version import __version__
from kato.exceptions import InvalidConfigError
from kato.lab.cli import add_lab_parser
from kato.observability import metrics_folder
from kato.settings import LTM_BACKENDS, STORES, Settings
from kato.stores.redis_server import PERSISTENCE_MODES, redis_url

__all__ = ["main", "run_uvicorn", "serving"]


def _serve(args: argparse.Namespace) -> int:
    try:
        with serving(args) as settings:
            _run_uvicorn(args, settings)
    except InvalidConfigError as exc:
        print(f"kato serve: {exc.message}", file=sys.stderr)
        return 2
    return 0


@contextlib.contextmanager
def serving(args: argparse.Namespace) -> Iterator[Settings]:
    """Everything a server needs before uvicorn starts, undone when the block ends.

    From ``kato serve``'s arguments (``store``, ``workers``, ``ltm``, ``data_dir``,
    ``redis_persistence``, ``log_level``): an embedded Redis unless ``KATO_REDIS_URL`` names one,
    the settings (raising ``InvalidConfigError``), the data folder, the environment the worker
    processes build their app from, and a Prometheus multi-process folder for several workers.
    The bug zoo's server starts the same way.
    """
    data_dir = Path(args.data_dir)
    with contextlib.ExitStack() as stack:
        redis = os.environ.get("KATO_REDIS_URL")
        if args.store == "redis" and not redis:
            redis = stack.enter_context(redis_url(persistence=args.redis_persistence))
        settings = Settings.from_env(
            store=args.store,
            workers=args.workers,
            ltm=args.ltm,
            ltm_path=os.environ.get("KATO_LTM_PATH") or str(data_dir / "ltm.sqlite3"),
            redis_url=redis,
        )
        if settings.ltm == "sqlite":
            data_dir.mkdir(parents=True, exist_ok=True)
        _export(settings, args.log_level)
        stack.enter_context(metrics_folder(settings.workers))
        yield settings


def _export(settings: Settings, log_level: str) -> None:
    """Hand the settings to the worker processes, which build their app from the environment."""
    os.environ.update(
        {
            "KATO_STORE": settings.store,
            "KATO_WORKERS": str(settings.workers),
            "KATO_LTM": settings.ltm,
            "KATO_LTM_PATH": settings.ltm_path,
            "KATO_LOG_LEVEL": log_level,
        }
    )
    if settings.redis_url:
        os.environ["KATO_REDIS_URL"] = settings.redis_url


def _run_uvicorn(args: argparse.Namespace, settings: Settings) -> None:
    run_uvicorn(
        "kato.service.app:create_app_from_env",
        host=args.host,
        port=args.port,
        workers=settings.workers,
        log_level=args.log_level,
    )


def run_uvicorn(factory: str, *, host: str, port: int, workers: int, log_level: str) -> None:
    """Serve the app that the import string ``factory`` builds, with ``workers`` processes."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    config = uvicorn.Config(
        factory,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=False,
    )
    if workers == 1:
        uvicorn.Server(config).run()
        return
    with contextlib.suppress(KeyboardInterrupt):
        Multiprocess(config, sockets=[shared_socket(config)]).run()


def shared_socket(config: Any) -> socket.socket:
    """The listening socket several uvicorn workers share, with ``TCP_NODELAY`` set.

    uvicorn binds it without the TCP protocol number that asyncio looks for before it turns
    Nagle off, so the workers' connections kept Nagle on and every response written in two
    parts waited ~40 ms for a delayed ACK (measured here: 44 ms per ``GET /`` with two workers,
    1 ms with one). Accepted connections inherit the option from the listening socket.
    """
    sock: socket.socket = config.bind_socket()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kato", description="KATO pattern-learning service")
    parser.add_argument("--version", action="version", version=f"kato {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    serve.add_argument(
        "--store",
        choices=STORES,
        default=os.environ.get("KATO_STORE", "redis"),
        help="session store (default redis: KATO_REDIS_URL, else an embedded redis-server)",
    )
    serve.add_argument(
        "--ltm",
        choices=LTM_BACKENDS,
        default=os.environ.get("KATO_LTM", "sqlite"),
        help="long-term memory (default sqlite, shared by every worker)",
    )
    serve.add_argument(
        "--data-dir",
        default=os.environ.get("KATO_DATA_DIR", "kato-data"),
        help="where the sqlite LTM lives (default ./kato-data)",
    )
    serve.add_argument(
        "--redis-persistence",
        choices=PERSISTENCE_MODES,
        default="none",
        help="persistence of the embedded redis (none, AOF everysec, AOF always)",
    )
    serve.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="log level (JSON lines on stderr)",
    )
    serve.set_defaults(run=_serve)
    add_lab_parser(commands)
    _add_bench_parser(commands)
    return parser


def _add_bench_parser(commands: Any) -> None:
    from kato.bench.suite import SECTIONS

    bench = commands.add_parser(
        "bench", help="benchmarks: each figure beside a reference measured in the same run"
    )
    bench.add_argument("--quick", action="store_true", help="small sizes, short loads (≤ 2 min)")
    bench.add_argument(
        "--only", nargs="+", choices=SECTIONS, metavar="SECTION", help=f"among {SECTIONS}"
    )
    bench.add_argument("--out", default="results", help="parent folder of the run's folder")
    bench.add_argument("--quiet", action="store_true", help="no progress bar")
    bench.set_defaults(run=_bench)


def _bench(args: argparse.Namespace) -> int:
    from kato.bench.suite import main as bench_main

    return bench_main(args)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
