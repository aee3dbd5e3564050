"""Resolve a PostgreSQL server that has the required extensions, and fresh databases on it.

One :class:`Resolver` per process (:func:`get_resolver`) starts each candidate at most
once and stops everything it started at exit, including after Ctrl-C or a failure.
"""

from __future__ import annotations

import atexit
import logging
import os
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import psycopg
from psycopg import sql
from sqlalchemy.engine import URL

from pgpatterns.errors import DatabaseUnavailableError, MissingExtensionError
from pgpatterns.testing.servers import Server, candidate_names, start_candidate

__all__ = ["DEFAULT_EXTENSIONS", "Database", "Resolver", "get_resolver", "required_from_env"]

#: Extensions created in every fresh database when the server has them.
DEFAULT_EXTENSIONS = ("vector", "postgis", "btree_gist", "ltree", "pg_trgm")

log = logging.getLogger("pgpatterns.testing")


def required_from_env() -> frozenset[str]:
    """Extensions listed in ``PGPATTERNS_REQUIRE``: missing ones fail instead of skip."""
    raw = os.environ.get("PGPATTERNS_REQUIRE", "")
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


@dataclass
class Database:
    """A fresh database: ``url`` connects as its owner, ``app_url`` as a plain role.

    The app role is neither superuser nor owner and has no BYPASSRLS, so row-level
    security applies to it. It may read and write tables the owner creates in
    ``public`` (default privileges), but not create or alter them.
    """

    server: Server
    name: str
    url: URL
    app_role: str
    app_url: URL
    extensions: frozenset[str]

    def create_schema(self, prefix: str = "t") -> str:
        """Create a fresh schema ``<prefix>_<hex>`` that the app role may use; return its name."""
        name = f"{prefix}_{secrets.token_hex(4)}"
        with _admin(self.server, self.name) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
            grant_app_access(conn, self.app_role, name)
        return name

    def drop_schema(self, name: str, *, terminate: str | None = None) -> None:
        """Drop schema ``name`` with everything in it.

        ``terminate``: an ``application_name`` whose other sessions are ended first, so a
        transaction left open cannot block the drop.
        """
        with _admin(self.server, self.name) as conn:
            if terminate:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = %s AND pid <> pg_backend_pid()",
                    [terminate],
                )
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))

    @staticmethod
    def search_path_args(schema: str, **extra: str) -> dict[str, str]:
        """``connect_args`` that put ``schema`` first on the search_path, then ``public``."""
        if not schema.replace("_", "").isalnum():
            raise ValueError(f"schema name {schema!r} is not one create_schema() made")
        return {"options": f"-c search_path={schema},public", **extra}


@dataclass
class _ServerState:
    server: Server
    template: str | None = None
    template_extensions: frozenset[str] = frozenset()
    databases: list[Database] = field(default_factory=list)


def _admin(server: Server, database: str | None = None) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(server.conninfo(database), autocommit=True)


class Resolver:
    """Finds and starts servers in candidate order; hands out fresh databases."""

    def __init__(self, url: str | None = None, notify: Callable[[str], None] | None = None):
        self.url = url
        self.notify = notify or log.warning
        self._states: dict[str, _ServerState] = {}
        self._failures: dict[str, str] = {}
        self._closed = False

    def server(self, require: Iterable[str] = ()) -> Server:
        """The first candidate whose server offers every extension in ``require``.

        Raises:
            MissingExtensionError: servers were found, but none has the extensions.
            DatabaseUnavailableError: no server could be reached or started at all.
        """
        return self._state(frozenset(require)).server

    def _state(self, need: frozenset[str]) -> _ServerState:
        lacking: list[str] = []
        for kind in candidate_names(self.url):
            state = self._start(kind)
            if state is None:
                continue
            missing = need - state.server.available_extensions
            if not missing:
                if lacking:
                    self.notify(
                        f"pgpatterns: {'; '.join(lacking)}; using {state.server.describe()}"
                    )
                return state
            lacking.append(f"{state.server.describe()} lacks {', '.join(sorted(missing))}")
        tried = "; ".join(lacking + [f"{k}: {why}" for k, why in self._failures.items()])
        if lacking:
            raise MissingExtensionError(
                f"no PostgreSQL server with {', '.join(sorted(need))} ({tried}). Install the "
                "extension (scripts/install-system-postgres.sh has PostGIS and pgvector for "
                "PostgreSQL 15) or point PGPATTERNS_DATABASE_URL at a server that has it."
            )
        raise DatabaseUnavailableError(
            f"no PostgreSQL server available ({tried}). Install pgpatterns[embedded], "
            "install local binaries, or set PGPATTERNS_DATABASE_URL."
        )

    def _start(self, kind: str) -> _ServerState | None:
        if kind in self._states:
            return self._states[kind]
        if kind in self._failures:
            return None
        if self._closed:
            raise DatabaseUnavailableError("the pgpatterns test resolver is already closed")
        try:
            server = start_candidate(kind, self.url)
        except DatabaseUnavailableError as exc:
            if kind == "url":
                raise
            self._failures[kind] = str(exc)
            return None
        state = self._states[kind] = _ServerState(server)
        self._template(state)  # also learns which extensions can really be created
        return state

    def database(self, require: Iterable[str] = ()) -> Database:
        """A new, empty database on a server with ``require``, with extensions created."""
        state = self._state(frozenset(require))
        template = self._template(state)
        name = f"pgpatterns_{secrets.token_hex(4)}"
        role, password = f"{name}_app", secrets.token_urlsafe(16)
        with _admin(state.server) as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            )
            conn.execute(
                sql.SQL(
                    "CREATE ROLE {} LOGIN PASSWORD {} NOSUPERUSER NOBYPASSRLS NOCREATEDB "
                    "NOCREATEROLE"
                ).format(sql.Identifier(role), sql.Literal(password))
            )
        with _admin(state.server, name) as conn:
            grant_app_access(conn, role, "public")
        url = state.server.admin_url.set(database=name)
        db = Database(
            server=state.server,
            name=name,
            url=url,
            app_role=role,
            app_url=url.set(username=role, password=password),
            extensions=state.template_extensions,
        )
        state.databases.append(db)
        return db

    def _template(self, state: _ServerState) -> str:
        if state.template is not None:
            return state.template
        name = f"pgpatterns_tpl_{secrets.token_hex(4)}"
        with _admin(state.server) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        created = []
        with _admin(state.server, name) as conn:
            for ext in DEFAULT_EXTENSIONS:
                if ext not in state.server.available_extensions:
                    continue
                try:
                    conn.execute(
                        sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(ext))
                    )
                    created.append(ext)
                except psycopg.Error as exc:  # not allowed for this user, or half installed
                    self.notify(f"pgpatterns: cannot create extension {ext}: {exc}".strip())
                    state.server.available_extensions -= {ext}
        state.template, state.template_extensions = name, frozenset(created)
        return name

    def close(self) -> None:
        """Drop what was created on servers we did not start; stop the servers we did."""
        self._closed = True
        for state in self._states.values():
            if state.server.kind == "url":
                self._drop_created(state)
            try:
                state.server.stop()
            except Exception as exc:  # keep stopping the others
                log.warning("pgpatterns: stopping %s failed: %s", state.server.describe(), exc)
        self._states.clear()

    def _drop_created(self, state: _ServerState) -> None:
        names = [db.name for db in state.databases] + [t for t in [state.template] if t]
        with _admin(state.server) as conn:
            for name in names:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
            for db in state.databases:
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(db.app_role)))


def grant_app_access(conn: psycopg.Connection[tuple[object, ...]], role: str, schema: str) -> None:
    """Let ``role`` use ``schema`` and read/write the tables created in it from now on."""
    params = {"role": sql.Identifier(role), "schema": sql.Identifier(schema)}
    for stmt in (
        "GRANT USAGE ON SCHEMA {schema} TO {role}",
        "ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} "
        "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role}",
        "ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT USAGE, SELECT ON SEQUENCES TO {role}",
        "ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT EXECUTE ON FUNCTIONS TO {role}",
    ):
        conn.execute(sql.SQL(stmt).format(**params))


_resolver: Resolver | None = None


def get_resolver(url: str | None = None, notify: Callable[[str], None] | None = None) -> Resolver:
    """The process-wide resolver (created on first use, closed at interpreter exit)."""
    global _resolver
    if _resolver is not None and not _resolver._closed and url is None:
        if notify is not None:
            _resolver.notify = notify
        return _resolver  # whatever it was made with (e.g. pytest's --pg-url)
    url = url or os.environ.get("PGPATTERNS_DATABASE_URL") or None
    if _resolver is None or _resolver._closed:
        _resolver = Resolver(url, notify)
        atexit.register(_resolver.close)
    elif url != _resolver.url:
        raise DatabaseUnavailableError(
            f"the test resolver already uses {_resolver.url or 'the default candidates'}; "
            "one process resolves one server set."
        )
    elif notify is not None:
        _resolver.notify = notify
    return _resolver
