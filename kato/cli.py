"""The ``kato`` command line: ``kato serve`` runs the HTTP service, ``kato lab`` the workbench,
``kato bench`` the benchmarks.

``kato serve`` imports no workbench code: ``lab`` and ``bench`` are named here with their help
line, and their arguments (with the modules behind them) are loaded only when one of them is
the command. Exit codes: 0 after a clean shutdown, 2 for bad arguments or settings (with the
reason).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from kato._version import __version__
from kato.service import server

__all__ = ["main", "parse_args"]

#: The commands loaded on use: name → (help line, module whose ``add_arguments(parser)`` adds
#: their arguments and sets ``run``).
_LOADED_ON_USE = {
    "lab": ("the concurrency workbench", "kato.lab.cli"),
    "bench": (
        "benchmarks: each figure beside a reference measured in the same run",
        "kato.bench.suite",
    ),
}


def _build_parser(command: str | None) -> argparse.ArgumentParser:
    """The parser, with the full arguments of ``command`` if it is loaded on use (else a stub
    that only names it)."""
    parser = argparse.ArgumentParser(prog="kato", description="KATO pattern-learning service")
    parser.add_argument("--version", action="version", version=f"kato {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP service")
    server.add_arguments(serve)
    serve.set_defaults(run=server.serve)
    for name, (help_line, module) in _LOADED_ON_USE.items():
        sub = commands.add_parser(name, help=help_line, add_help=name == command)
        if name == command:
            importlib.import_module(module).add_arguments(sub)
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """``kato``'s arguments: a first pass finds the command, the second parses all of them."""
    command, _ = _build_parser(None).parse_known_args(argv)
    return _build_parser(command.command).parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
