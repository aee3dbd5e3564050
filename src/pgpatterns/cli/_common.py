"""What the subcommands share: URL handling and the error they report with exit code 2."""

from __future__ import annotations

import re

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError as SAArgumentError

__all__ = ["CliError", "engine_for"]


class CliError(Exception):
    """A usage or connection problem: printed on stderr, exit code 2."""


def engine_for(raw: str, *, search_path: str | None = None) -> Engine:
    """An engine for a user-given URL, using psycopg 3 whatever driver the URL names."""
    try:
        url: URL = make_url(raw)
    except SAArgumentError as exc:
        raise CliError(
            f"cannot parse database URL {raw!r}: {exc}; use the form "
            "postgresql://user:password@host:5432/dbname."
        ) from exc
    if url.get_backend_name() != "postgresql":
        raise CliError(f"{url.render_as_string(hide_password=True)} is not a PostgreSQL URL.")
    if search_path is not None and not re.fullmatch(r"[\w$]+(,[\w$]+)*", search_path):
        raise CliError(
            f"--search-path {search_path!r}: give schema names separated by commas, without "
            "spaces or quotes (e.g. app,public)."
        )
    args = {"options": f"-c search_path={search_path}"} if search_path else {}
    return create_engine(url.set(drivername="postgresql+psycopg"), connect_args=args,
                         pool_pre_ping=False)
