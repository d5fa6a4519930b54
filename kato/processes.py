"""Child processes the package starts (``redis-server``, ``nx-27017``, ``kato serve``).

Three things every launcher needs, written once: a free loopback port to give the child, a
``preexec_fn`` that ties the child's life to ours, and a stop that escalates from SIGTERM to
SIGKILL. Standard library only: the stores, the LTM test server and the workbench all use it.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import socket
import subprocess

__all__ = ["die_with_parent", "free_port", "stop"]

_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (another process may take it before the child binds it:
    :class:`~kato.stores.redis_server.RedisServer` retries on a new one)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def die_with_parent() -> None:
    """``preexec_fn`` for a child that must not outlive us: SIGTERM when the parent dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def stop(process: subprocess.Popen[bytes], *, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if the child has not exited after ``timeout`` seconds; reaped.

    A SIGCONT goes first: a child a fault paused (SIGSTOP) cannot act on SIGTERM.
    """
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGCONT)
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
