"""pgpatterns.rls on real PostgreSQL, connected as the non-superuser, non-owner app role.

The owner (a superuser) creates the schema and loads the rows; every statement under test runs
as ``pg_schema.app_engine``, to which row-level security applies.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rls_world import TENANTS, World, build
from sqlalchemy import (
    Engine,
    MetaData,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import DBAPIError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.pool import NullPool, QueuePool

from pgpatterns.ddl import attached
from pgpatterns.errors import RLSContextError, RLSPolicyError
from pgpatterns.rls import (
    TenantScoped,
    tenant_context,
    tenant_context_async,
    tenant_context_on_begin,
)
from pgpatterns.testing import Database
from pgpatterns.testing.plugin import PgSchema


@pytest.fixture
def world(pg_schema: PgSchema, pg_database: Database) -> World:
    return build(pg_schema, pg_database.app_role)


def test_schema_objects_are_created_and_forced(world: World) -> None:
    with world.schema.engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class"
            " WHERE relnamespace = to_regnamespace(:s) AND relkind IN ('r', 'p') ORDER BY 1"
        ), {"s": world.schema.name}).all()
        policies = conn.execute(text(
            "SELECT polrelid::regclass::text FROM pg_policy p JOIN pg_class c"
            " ON c.oid = p.polrelid WHERE c.relnamespace = to_regnamespace(:s) ORDER BY 1"
        ), {"s": world.schema.name}).scalars().all()
    assert rows == [
        ("docs", True, True), ("events", True, True),
        ("events_p0", True, True), ("events_p1", True, True),
    ]
    assert policies == ["docs", "events", "events_p0", "events_p1"]


def test_no_context_sees_nothing_and_cannot_insert(world: World) -> None:
    with world.app.begin() as conn:
        assert conn.execute(select(func.count()).select_from(world.docs)).scalar() == 0
    with world.app.begin() as conn, pytest.raises(DBAPIError):
        conn.execute(insert(world.docs).values(id=1000, body="orphan"))  # tenant_id NULL


def test_tenant_id_defaults_to_the_context(world: World) -> None:
    with world.app.begin() as conn:
        tenant_context(conn, 3)
        conn.execute(insert(world.docs).values(id=1000, body="mine"))
        row = conn.execute(select(world.docs.c.tenant_id).where(world.docs.c.id == 1000)).one()
        conn.rollback()
    assert row == (3,)


def test_definer_view_leaks_and_rls_view_does_not(world: World) -> None:
    with world.app.begin() as conn:
        tenant_context(conn, 1)
        leaked = set(conn.execute(select(world.leaky.c.tenant_id)).scalars())
        secured = set(conn.execute(select(world.secure.c.tenant_id)).scalars())
    assert leaked == set(TENANTS)  # the view runs as its (superuser) owner
    assert secured == {1}


_ops = st.one_of(
    st.tuples(st.just("select"), st.sampled_from(["docs", "view", "events", "p0", "p1"])),
    st.tuples(st.just("update"), st.integers(1, 40)),
    st.tuples(st.just("move"), st.integers(1, 40), st.sampled_from(TENANTS)),
    st.tuples(st.just("delete"), st.lists(st.integers(1, 40), max_size=6)),
    st.tuples(st.just("insert"), st.sampled_from(TENANTS), st.sampled_from(["docs", "events"])),
)


@settings(max_examples=40)
@given(tenant=st.sampled_from(TENANTS), ops=st.lists(_ops, min_size=1, max_size=8))
def test_no_statement_crosses_tenants(world: World, tenant: int, ops: list[Any]) -> None:
    """Random statements under tenant_context never read or write another tenant's row."""
    live = {i for i, t in world.owner_of.items() if t == tenant}
    sources = {"docs": world.docs, "view": world.secure, "events": world.events,
               "p0": world.parts[0], "p1": world.parts[1]}
    next_id = 1000
    with world.app.connect() as conn, conn.begin():
        tenant_context(conn, tenant)
        for op in ops:
            if op[0] == "select":
                seen = conn.execute(select(sources[op[1]].c.tenant_id, sources[op[1]].c.id)).all()
                assert {t for t, _ in seen} <= {tenant}
                if op[1] in ("docs", "view"):
                    assert {i for _, i in seen} == live
            elif op[0] == "update":
                stmt = update(world.docs).where(world.docs.c.id == op[1]).values(body="edited")
                changed = conn.execute(stmt.returning(world.docs.c.tenant_id)).scalars().all()
                assert changed == ([tenant] if op[1] in live else [])
            elif op[0] == "move":
                _, doc, other = op
                stmt = update(world.docs).where(world.docs.c.id == doc).values(tenant_id=other)
                with conn.begin_nested() as sp:
                    try:
                        moved = conn.execute(stmt).rowcount
                    except ProgrammingError as exc:  # new row violates the policy
                        assert "row-level security" in str(exc.orig)
                        assert doc in live and other != tenant
                        sp.rollback()
                        continue
                    assert moved == (1 if doc in live else 0)
                    assert doc not in live or other == tenant
                    sp.rollback()
            elif op[0] == "delete":
                stmt = delete(world.docs).where(world.docs.c.id.in_(op[1]))
                gone = set(conn.execute(stmt.returning(world.docs.c.id)).scalars())
                assert gone == live & set(op[1])
                live -= gone
            else:
                _, owner, target = op
                next_id += 1
                table = world.docs if target == "docs" else world.events
                values = {"id": next_id, "tenant_id": owner,
                          ("body" if target == "docs" else "kind"): "new"}
                with conn.begin_nested() as sp:
                    try:
                        conn.execute(insert(table).values(**values))
                    except ProgrammingError as exc:
                        assert "row-level security" in str(exc.orig)
                        assert owner != tenant
                        sp.rollback()
                        continue
                    assert owner == tenant
                    sp.commit()
                    if target == "docs":
                        live.add(next_id)
        conn.rollback()


@pytest.fixture
def one_connection_engine(pg_database: Database, world: World) -> Iterator[Engine]:
    engine = create_engine(
        pg_database.app_url, poolclass=QueuePool, pool_size=1, max_overflow=0,
        connect_args=pg_database.search_path_args(world.schema.name),
    )
    yield engine
    engine.dispose()


def _state(conn: Any) -> tuple[int, str | None]:
    row = conn.execute(
        text("SELECT pg_backend_pid(), current_setting('app.tenant_id', true)")
    ).one()
    return row[0], row[1]


@pytest.mark.parametrize("end", ["commit", "rollback"])
def test_context_is_gone_after_the_transaction(one_connection_engine: Engine, end: str) -> None:
    engine = one_connection_engine
    with Session(engine) as session, session.begin():
        tenant_context(session, 2, user_id=5)
        pid, inside = _state(session)
        assert inside == "2"
        if end == "rollback":
            session.rollback()
    with engine.connect() as conn:
        later_pid, later = _state(conn)
    assert later_pid == pid  # the same pooled connection
    assert later in (None, "")  # reads as unset: nullif(..., '') is NULL


def test_session_level_set_would_leak(one_connection_engine: Engine) -> None:
    """The hazard tenant_context avoids: a plain SET survives on the pooled connection."""
    engine = one_connection_engine
    with engine.begin() as conn:
        conn.execute(select(func.set_config("app.tenant_id", "2", False)))
    with engine.connect() as conn:
        assert _state(conn)[1] == "2"
        conn.execute(text("RESET app.tenant_id"))
        conn.commit()


def test_tenant_context_refuses_outside_a_transaction(world: World) -> None:
    with Session(world.app) as session, pytest.raises(RLSContextError, match="transaction"):
        tenant_context(session, 1)
    auto = world.app.execution_options(isolation_level="AUTOCOMMIT")
    with auto.connect() as conn:
        conn.execute(text("SELECT 1"))
        with pytest.raises(RLSContextError, match="AUTOCOMMIT"):
            tenant_context(conn, 1)


@pytest.mark.parametrize("bad", [True, 1.5, "", b"1", object()])
def test_tenant_context_rejects_bad_values(world: World, bad: Any) -> None:
    with world.app.begin() as conn, pytest.raises(RLSContextError):
        tenant_context(conn, bad)


def test_after_begin_variant_sets_each_transaction(world: World) -> None:
    current: list[Any] = [4]
    factory = sessionmaker(world.app)
    stop = tenant_context_on_begin(factory, lambda: current[0])
    try:
        with factory() as session:
            first = set(session.scalars(select(world.docs.c.tenant_id)))
            session.commit()
            current[0] = (1, 9)
            second = set(session.scalars(select(world.docs.c.tenant_id)))
            user = session.scalar(text("SELECT current_setting('app.user_id', true)"))
    finally:
        stop()
    assert first == {4} and second == {1} and user == "9"
    assert not event.contains(factory, "after_begin", stop)


async def test_async_tenant_context(pg_database: Database, world: World) -> None:
    engine = create_async_engine(
        pg_database.app_url, poolclass=NullPool,
        connect_args=pg_database.search_path_args(world.schema.name),
    )
    try:
        async with AsyncSession(engine) as session:
            with pytest.raises(RLSContextError):
                await tenant_context_async(session, 2)
            async with session.begin():
                await tenant_context_async(session, 2)
                seen = set((await session.scalars(select(world.docs.c.tenant_id))).all())
    finally:
        await engine.dispose()
    assert seen == {2}


def test_missing_role_is_reported_before_anything_is_created(pg_schema: PgSchema) -> None:
    class Base(DeclarativeBase):
        metadata = MetaData()

    class Ghost(TenantScoped, Base):
        __tablename__ = "ghosts"
        __tenant_roles__ = ("pgpatterns_no_such_role",)
        id: Mapped[int] = mapped_column(primary_key=True)

    assert any(o.kind == "policy" for o in attached(Base.metadata))
    with (
        pytest.raises(RLSPolicyError, match="pgpatterns_no_such_role"),
        pg_schema.engine.begin() as conn,
    ):
        Base.metadata.create_all(conn)
    with pg_schema.engine.connect() as conn:
        assert conn.execute(text("SELECT to_regclass('ghosts')")).scalar() is None


def test_view_is_created_with_security_invoker(world: World) -> None:
    with world.schema.engine.connect() as conn:
        options = conn.execute(text(
            "SELECT relname, reloptions FROM pg_class WHERE relkind = 'v'"
            " AND relnamespace = to_regnamespace(:s) ORDER BY 1"
        ), {"s": world.schema.name}).all()
    assert options == [("docs_leaky", None), ("docs_secure", ["security_invoker=true"])]
