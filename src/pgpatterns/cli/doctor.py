"""``pgpatterns doctor URL``: the schema doctor's findings as text, JSON or SARIF."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from sqlalchemy.exc import DBAPIError

from pgpatterns.cli._common import CliError, engine_for
from pgpatterns.errors import ArgumentError

__all__ = ["add_parser", "run"]


def add_parser(subs: Any) -> None:
    p = subs.add_parser(
        "doctor", help="find schema problems and the pattern that fixes each",
        description="Read the database's catalogs and statistics; report each finding with "
        "its evidence, the pgpatterns pattern that avoids it and the fix as DDL. Exit code 1 "
        "when a finding at or above --fail-on remains after the baseline.",
    )
    p.add_argument("url", help="database URL, e.g. postgresql://user:pw@host:5432/db")
    p.add_argument("--schema", action="append", dest="schemas", metavar="NAME",
                   help="check this schema (repeatable; default: every user schema)")
    p.add_argument("--format", choices=["text", "json", "sarif"], default="text")
    p.add_argument("--baseline", metavar="FILE",
                   help="a previous --format json report: its findings are not reported")
    p.add_argument("--fail-on", choices=["info", "warning", "error", "never"],
                   default="warning", help="lowest severity that fails (default: warning)")
    p.add_argument("--lint", action="append", dest="lints", metavar="ID",
                   help="run only this lint (repeatable)")
    p.add_argument("--exclude", action="append", default=[], metavar="ID",
                   help="skip this lint (repeatable)")
    p.add_argument("--plans", action="store_true",
                   help="also take plans (per-row policy calls, check_rls)")
    p.add_argument("--role", help="the role plans are taken as (with --plans)")
    p.add_argument("--output", "-o", metavar="FILE", help="write the report here, not stdout")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pgpatterns.doctor import (
        LINTS,
        at_least,
        doctor,
        load_baseline,
        user_schemas,
        without_baseline,
    )
    from pgpatterns.doctor.report import to_json, to_sarif, to_text

    unknown = sorted((set(args.lints or []) | set(args.exclude)) - set(LINTS))
    if unknown:  # before connecting
        raise CliError(f"unknown lint ids {unknown}; the lints are: {', '.join(LINTS)}.")
    try:
        baseline = load_baseline(args.baseline) if args.baseline else set()
        engine = engine_for(args.url)
        shown = engine.url.render_as_string(hide_password=True)
        try:
            with engine.connect() as conn:
                schemas = args.schemas or user_schemas(conn)
                findings = doctor(conn, schemas=schemas, lints=args.lints,
                                  exclude=args.exclude, plans=args.plans, role=args.role)
        finally:
            engine.dispose()
    except ArgumentError as exc:
        raise CliError(str(exc)) from exc
    except DBAPIError as exc:
        first = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise CliError(f"cannot read {shown}: {first}") from exc
    findings = without_baseline(findings, baseline)
    if args.format == "json":
        out = json.dumps(to_json(findings, schemas=schemas, database=shown), indent=2)
    elif args.format == "sarif":
        out = json.dumps(to_sarif(findings, database=shown), indent=2)
    else:
        out = _text(findings, to_text, args.output is None)
    if args.output:
        with open(args.output, "w") as fh:
            fh.write(out + "\n")
    elif out:
        print(out)
    failing = [] if args.fail_on == "never" else at_least(findings, args.fail_on)
    return 1 if failing else 0


def _text(findings: list[Any], to_text: Any, console: bool) -> str:
    plain: str = to_text(findings)
    if not (console and sys.stdout.isatty()):
        return plain
    try:
        from rich.console import Console
        from rich.markup import escape
    except ImportError:
        return plain
    styles = {"ERROR": "bold red", "WARNING": "yellow", "INFO": "cyan"}
    rich = Console()
    for line in plain.splitlines():
        word = line.split(" ", 1)[0]
        style = styles.get(word)
        rich.print(f"[{style}]{escape(line)}[/]" if style else escape(line), highlight=False,
                   soft_wrap=True)  # no hard line breaks inside DDL
    return ""
