"""``pgpatterns diff URL --models module:attr``: declared schema objects vs the database."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any

from sqlalchemy import MetaData
from sqlalchemy.exc import DBAPIError

from pgpatterns.cli._common import CliError, engine_for

__all__ = ["add_parser", "load_target", "run"]


def add_parser(subs: Any) -> None:
    p = subs.add_parser(
        "diff", help="compare declared pgpatterns objects with the database (drift)",
        description="Run pgpatterns.ddl.diff: every view, function, trigger, policy, "
        "row-level security setting ... attached to the metadata is compared with the "
        "database. Exit code 1 when anything differs.",
    )
    p.add_argument("url", help="database URL")
    p.add_argument("--models", required=True, metavar="MODULE:ATTR",
                   help="where the MetaData is: module:metadata, or module:Base "
                   "(its .metadata)")
    p.add_argument("--search-path", metavar="SCHEMAS",
                   help="search_path for the comparison (schema names, comma-separated)")
    p.set_defaults(run=run)


def load_target(spec: str) -> MetaData:
    """Import ``module:attr`` and return its MetaData (``attr`` or ``attr.metadata``)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise CliError(f"--models {spec!r}: give module:attribute, e.g. app.models:Base.")
    sys.path.insert(0, "")  # like python -m: the current directory's packages import
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise CliError(f"--models {spec!r}: cannot import {module_name}: {exc}") from exc
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise CliError(f"--models {spec!r}: {module_name} has no attribute {attr}.")
        target = getattr(target, part)
    metadata = target if isinstance(target, MetaData) else getattr(target, "metadata", None)
    if not isinstance(metadata, MetaData):
        raise CliError(
            f"--models {spec!r}: {attr} is a {type(target).__name__}, not a MetaData or a "
            "declarative base with .metadata."
        )
    return metadata


def run(args: argparse.Namespace) -> int:
    from pgpatterns.ddl import diff

    metadata = load_target(args.models)
    engine = engine_for(args.url, search_path=args.search_path)
    try:
        with engine.connect() as conn:
            lines = diff(conn, metadata)
    except DBAPIError as exc:
        shown = engine.url.render_as_string(hide_password=True)
        raise CliError(f"cannot read {shown}: {str(exc.orig).strip()}") from exc
    finally:
        engine.dispose()
    for line in lines:
        print(line)
    if not lines:
        print("no differences")
    return 1 if lines else 0
