"""How the service is served: ``kato serve``'s options, what starts before uvicorn, the workers.

The one place that knows the worker model. The parent process starts what the workers share (an
embedded Redis unless ``KATO_REDIS_URL`` names one, which it supervises: restarted on the same
port and data if it dies; the data folder; a Prometheus multi-process folder) and hands the
settings to them through ``KATO_*`` variables; each uvicorn worker builds its app from those with
an app factory (an import string). Several workers share one listening socket. ``kato serve``,
the bug zoo's server (``python -m kato.lab.zoo serve``) and the benchmarks' reference server
(``python -m kato.bench.trivial``) all start this way, so they differ only in the app they serve.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kato.exceptions import InvalidConfigError
from kato.observability import configure_logging, metrics_folder
from kato.settings import LTM_BACKENDS, STORES, Settings
from kato.stores.redis_cluster import embedded_cluster
from kato.stores.redis_server import PERSISTENCE_MODES, redis_url

__all__ = ["APP", "KEEP_ALIVE_S", "add_arguments", "run_uvicorn", "serve", "shared_socket"]

#: The app factory of ``kato serve``: each worker calls it.
APP = "kato.service.app:create_app_from_env"
#: Seconds a connection may stay idle between requests before a worker closes it (uvicorn's
#: ``timeout_keep_alive``); clients close theirs sooner (``kato.client._http.IDLE_EXPIRY_S``).
KEEP_ALIVE_S = 5
_LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``kato serve``'s options (``KATO_STORE``, ``KATO_LTM``, ``KATO_DATA_DIR`` set defaults)."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument(
        "--store",
        choices=STORES,
        default=os.environ.get("KATO_STORE", "redis"),
        help="session store (default redis: KATO_REDIS_URL, else an embedded redis-server)",
    )
    parser.add_argument(
        "--ltm",
        choices=LTM_BACKENDS,
        default=os.environ.get("KATO_LTM", "sqlite"),
        help="long-term memory (default sqlite, shared by every worker)",
    )
    parser.add_argument(
        "--data-dir",
        default=os.environ.get("KATO_DATA_DIR", "kato-data"),
        help="where the sqlite LTM and the embedded redis's AOF live (default ./kato-data)",
    )
    parser.add_argument(
        "--redis-persistence",
        choices=PERSISTENCE_MODES,
        default="none",
        help="persistence of the embedded redis (default none; the others: AOF with that fsync, "
        "kept in <data-dir>/redis)",
    )
    parser.add_argument(
        "--redis-cluster",
        type=int,
        default=0,
        metavar="MASTERS",
        help="instead of one embedded redis, an embedded Redis Cluster of MASTERS masters and "
        "as many replicas (KATO_REDIS_URL unset; no persistence)",
    )
    parser.add_argument(
        "--log-level", default="info", choices=_LOG_LEVELS, help="log level (JSON lines on stderr)"
    )


def serve(args: argparse.Namespace, *, factory: str = APP, prog: str = "kato serve") -> int:
    """Serve the app ``factory`` builds, as ``args`` (:func:`add_arguments`) say, until stopped.

    Returns the command's exit code: 0 after a clean shutdown, 2 for bad settings (the reason
    on stderr, after ``prog``).
    """
    configure_logging(args.log_level)  # the supervisor's own lines (the embedded redis's)
    try:
        with _shared_by_workers(args):
            run_uvicorn(factory, args)
    except InvalidConfigError as exc:
        print(f"{prog}: {exc.message}", file=sys.stderr)
        return 2
    return 0


@contextlib.contextmanager
def _shared_by_workers(args: argparse.Namespace) -> Iterator[Settings]:
    """Everything the workers need before uvicorn starts them, undone when the block ends.

    The settings (raising ``InvalidConfigError``) exported as ``KATO_*`` variables, the embedded
    Redis, the data folder, and a Prometheus multi-process folder for several workers.
    """
    data_dir = Path(args.data_dir)
    with contextlib.ExitStack() as stack:
        redis = os.environ.get("KATO_REDIS_URL")
        if args.store == "redis" and not redis and getattr(args, "redis_cluster", 0):
            redis = stack.enter_context(embedded_cluster(args.redis_cluster))
        elif args.store == "redis" and not redis:
            redis = stack.enter_context(
                redis_url(persistence=args.redis_persistence, data_dir=data_dir / "redis")
            )
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
            "KATO_HEADER_TIMEOUT_S": str(settings.header_timeout_s),
        }
    )
    if settings.redis_url:
        os.environ["KATO_REDIS_URL"] = settings.redis_url


def run_uvicorn(factory: str, args: argparse.Namespace) -> None:
    """Serve the app that the import string ``factory`` builds on ``args.host``/``args.port``,
    with ``args.workers`` processes, logging at ``args.log_level``; returns when stopped."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    config = uvicorn.Config(
        factory,
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        access_log=False,
        timeout_keep_alive=KEEP_ALIVE_S,
        http="kato.service.connections:HeaderDeadlineProtocol",  # late headers: closed
    )
    if args.workers == 1:
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
