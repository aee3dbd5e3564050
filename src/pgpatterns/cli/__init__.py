"""The ``pgpatterns`` command line: ``serve``, ``doctor`` and ``diff``.

Examples:
    $ pgpatterns serve                      # a throwaway PostgreSQL 18, URLs printed
    $ pgpatterns doctor postgresql://localhost/app --fail-on warning
    $ pgpatterns diff postgresql://localhost/app --models app.models:Base

``python -m pgpatterns`` is the same program. Exit codes: 0 fine, 1 findings (doctor) or
differences (diff), 2 bad arguments or an unreachable database.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pgpatterns import __version__
from pgpatterns.cli import diff, doctor, serve
from pgpatterns.cli._common import CliError

__all__ = ["main", "parser"]


def parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    top = argparse.ArgumentParser(
        prog="pgpatterns",
        description="PostgreSQL data-modeling patterns: a database to point tools at, a "
        "schema doctor, and the drift check.",
    )
    top.add_argument("--version", action="version", version=f"pgpatterns {__version__}")
    subs = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (serve, doctor, diff):
        module.add_parser(subs)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (the console script exits with it)."""
    args = parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except CliError as exc:
        print(f"pgpatterns {args.command}: {exc}", file=sys.stderr)
        return 2
    return code
