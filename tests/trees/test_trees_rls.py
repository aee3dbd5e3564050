"""The tree guard under row-level security, as the non-owner app role (issue #16, item 3).

A ``TenantScoped`` tree (``scope="tenant_id"``): tenant 1 cannot see tenant 2's rows, yet
the guard (SECURITY DEFINER) sees them and refuses a parent from another tenant; a root
with children cannot change tenant.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import Engine, MetaData, Table, insert, select, text, update
from sqlalchemy.exc import DBAPIError, ProgrammingError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from pgpatterns.ddl import attach
from pgpatterns.errors import TreeNodeNotFoundError, TreeScopeError
from pgpatterns.rls import TenantScoped, tenant_context
from pgpatterns.testing import Database
from pgpatterns.testing.plugin import PgSchema
from pgpatterns.trees import AdjacencyListMixin, TreeOptions, move, tree_errors, tree_guard


@dataclass
class World:
    owner: Engine
    app: Engine
    model: type
    table: Table
    ids: dict[str, int]


@pytest.fixture
def world(pg_schema: PgSchema, pg_database: Database) -> World:
    class Base(DeclarativeBase):
        metadata = MetaData()

    class Dir(TenantScoped, AdjacencyListMixin, Base):
        __tablename__ = "dirs"
        __tenant_roles__ = (pg_database.app_role,)
        __tree__ = TreeOptions(scope="tenant_id")
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]

    attach(Base.metadata, *tree_guard(Dir))
    Base.metadata.create_all(pg_schema.engine)
    table = Dir.__table__
    assert isinstance(table, Table)
    ids = {}
    with pg_schema.engine.begin() as conn:  # the owner (a superuser) loads both tenants
        for name, tenant, parent in [("r1", 1, None), ("a1", 1, "r1"), ("r2", 2, None),
                                     ("b2", 2, "r2"), ("lone2", 2, None)]:
            ids[name] = conn.execute(
                insert(table).values(name=name, tenant_id=tenant,
                                     parent_id=ids[parent] if parent else None)
                .returning(table.c.id)
            ).scalar_one()
    return World(pg_schema.engine, pg_schema.app_engine, Dir, table, ids)


def _parent(w: World, name: str) -> int | None:
    with w.owner.connect() as conn:
        return conn.execute(
            select(w.table.c.parent_id).where(w.table.c.id == w.ids[name])
        ).scalar_one()


def test_a_parent_from_another_tenant_is_refused_although_invisible(world: World) -> None:
    w = world
    with w.app.connect() as conn, conn.begin():
        tenant_context(conn, 1)
        visible = set(conn.execute(select(w.table.c.name)).scalars())
        assert visible == {"r1", "a1"}  # tenant 2's rows are invisible to the invoker
        stmt = update(w.table).where(w.table.c.id == w.ids["a1"]).values(
            parent_id=w.ids["r2"])
        with (
            pytest.raises(TreeScopeError, match="another scope") as info,
            tree_errors(w.model),
            conn.begin_nested(),
        ):
            conn.execute(stmt)
        assert info.value.__cause__ is not None
        new = insert(w.table).values(name="x", parent_id=w.ids["b2"])  # tenant from context
        with pytest.raises(TreeScopeError), tree_errors(w.model), conn.begin_nested():
            conn.execute(new)
    assert _parent(w, "a1") == w.ids["r1"]


def test_move_cannot_reach_another_tenant(world: World) -> None:
    w = world
    with Session(w.app) as s, s.begin():
        tenant_context(s, 1)
        a1 = s.get(w.model, w.ids["a1"])
        with pytest.raises(TreeNodeNotFoundError):  # invisible: reported as missing
            move(s, a1, w.ids["r2"])
        move(s, a1, None)  # its own tenant: fine
    assert _parent(w, "a1") is None


def test_a_root_with_children_cannot_change_tenant(world: World) -> None:
    w = world
    to_two = update(w.table).where(w.table.c.id == w.ids["r1"]).values(tenant_id=2)
    with w.app.connect() as conn, conn.begin():
        tenant_context(conn, 1)
        with pytest.raises(TreeScopeError, match="has children"), tree_errors(w.model):
            conn.execute(to_two)
    with (  # not even its owner
        w.owner.connect() as conn,
        conn.begin(),
        pytest.raises(TreeScopeError, match="has children"),
        tree_errors(w.model),
    ):
        conn.execute(to_two)
    with w.owner.begin() as conn:  # a root without children may change tenant
        conn.execute(update(w.table).where(w.table.c.id == w.ids["lone2"]).values(tenant_id=1))
        tenants = dict(conn.execute(select(w.table.c.name, w.table.c.tenant_id)).all())
    assert tenants == {"r1": 1, "a1": 1, "r2": 2, "b2": 2, "lone2": 1}


def test_the_guard_function_is_definer_pinned_and_not_callable(
    world: World, pg_database: Database
) -> None:
    w = world
    with w.owner.connect() as conn:
        row = conn.execute(text(
            "SELECT p.oid::regprocedure::text, p.prosecdef, p.proconfig FROM pg_proc p"
            " JOIN pg_trigger t ON t.tgfoid = p.oid WHERE t.tgrelid = to_regclass('dirs')"
            " AND NOT t.tgisinternal"
        )).one()
    name, definer, config = row
    assert definer is True
    assert "search_path=pg_catalog, pg_temp" in config
    assert "enable_seqscan=off" in config
    function, trigger = tree_guard(w.model)
    with w.owner.connect() as conn:  # migrations see the declared function as in sync
        assert function.reflect_diff(conn) == [] and trigger.reflect_diff(conn) == []
    settings = text("SELECT current_setting('search_path'), current_setting('enable_seqscan')")
    with w.app.connect() as conn, conn.begin():  # the guard's settings end with the call
        tenant_context(conn, 1)
        before = conn.execute(settings).one()
        conn.execute(insert(w.table).values(name="kid", parent_id=w.ids["a1"]))
        assert conn.execute(settings).one() == before
        assert before[1] == "on"
        conn.rollback()
    with w.app.connect() as conn, pytest.raises(DBAPIError, match="only be called as trigger"):
        conn.execute(text(f"SELECT {name.split('(')[0]}()"))


def test_a_guard_owned_by_a_role_under_rls_refuses_to_run_blind(
    world: World, pg_database: Database
) -> None:
    w = world
    with w.owner.begin() as conn:
        fn = conn.execute(text(
            "SELECT t.tgfoid::regprocedure FROM pg_trigger t"
            " WHERE t.tgrelid = to_regclass('dirs') AND NOT t.tgisinternal"
        )).scalar_one()
        conn.execute(text(
            f'ALTER FUNCTION {fn} OWNER TO "{pg_database.app_role}"'
        ))
    with w.app.connect() as conn, conn.begin():
        tenant_context(conn, 1)
        stmt = update(w.table).where(w.table.c.id == w.ids["a1"]).values(parent_id=w.ids["r2"])
        with pytest.raises(ProgrammingError, match="subject to row-level security"):
            conn.execute(stmt)
