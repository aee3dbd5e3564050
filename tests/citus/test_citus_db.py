"""pgpatterns.citus on a real coordinator + 2 workers, as the non-owner app role."""

from __future__ import annotations

import pytest
from citus_world import DISTRIBUTION, TENANTS, Project, Task, World, build
from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError, ProgrammingError
from sqlalchemy.orm import Session, selectinload

from pgpatterns import rls
from pgpatterns.citus import (
    is_router,
    route_by_tenant,
    table_distribution,
    task_counts,
    tenant_context,
    tenant_filtered,
)
from pgpatterns.explain import explain, has_seq_scan, uses_index
from pgpatterns.testing.citus import APP_ROLE, CitusSchema

pytestmark = pytest.mark.citus

SHARDS = 8  # citus_world distributes with shard_count=8


@pytest.fixture
def world(pg_citus: CitusSchema) -> World:
    return build(pg_citus)


def test_create_all_distributes_colocated_and_diff_is_clean(world: World) -> None:
    with world.schema.engine.connect() as conn:
        plans = table_distribution(conn, world.plans)
        projects = table_distribution(conn, world.projects)
        tasks = table_distribution(conn, world.tasks)
        assert plans is not None and plans["method"] == "n"
        assert projects is not None and tasks is not None
        assert projects["column_name"] == tasks["column_name"] == "tenant_id"
        assert projects["colocation"] == tasks["colocation"]
        for obj in DISTRIBUTION:
            assert obj.reflect_diff(conn) == [], obj.describe()
        fks = conn.execute(text(
            "SELECT conrelid::regclass::text, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE contype = 'f' AND connamespace = to_regnamespace(:s) ORDER BY 1, 2"
        ), {"s": world.schema.name}).all()
    assert fks == [
        ("projects", "FOREIGN KEY (plan_id) REFERENCES plans(id)"),
        ("tasks", "FOREIGN KEY (tenant_id, project_id) REFERENCES projects(tenant_id, id)"
                  " ON DELETE CASCADE"),
    ]


def test_the_initplan_policy_form_is_refused_on_a_distributed_table(world: World) -> None:
    with world.schema.engine.connect() as conn, pytest.raises(
        DBAPIError, match="unexpected non-SELECT command in SubLink"
    ):
        conn.execute(text(
            "CREATE POLICY fast ON tasks TO public USING "
            "(tenant_id = (SELECT nullif(current_setting('app.tenant_id', true), '')::bigint))"
        ))


def test_no_tenant_sees_no_rows_and_raises_nothing(world: World) -> None:
    app = world.schema.app_engine
    with app.connect() as conn:  # outside any transaction block, and inside one
        assert conn.execute(select(func.count()).select_from(world.tasks)).scalar() == 0
        conn.commit()
        conn.execute(text("SET app.tenant_id = ''"))  # set, then reset: reads as ''
        assert conn.execute(select(func.count()).select_from(world.tasks)).scalar() == 0
    with app.begin() as conn, pytest.raises(DBAPIError):
        conn.execute(insert(world.tasks).values(id=1, project_id=101, title="orphan"))


def test_rls_tenant_context_does_not_reach_the_workers(world: World) -> None:
    """set_config() in a SELECT runs on the coordinator only: closed, but useless."""
    with world.schema.app_engine.begin() as conn:
        rls.tenant_context(conn, 1)
        assert conn.execute(select(func.count()).select_from(world.tasks)).scalar() == 0


@pytest.mark.parametrize("tenant", TENANTS[:2])
def test_citus_tenant_context_sees_own_rows_only(world: World, tenant: int) -> None:
    with Session(world.schema.app_engine) as session, session.begin():
        tenant_context(session, tenant)
        rows = session.scalars(select(Task)).all()
        assert {t.tenant_id for t in rows} == {tenant}
        assert len(rows) == 20
        # writes: own tenant by default; another tenant's id is refused by the policy
        session.execute(insert(Task).values(id=99_001, project_id=tenant * 100 + 1, title="n"))
        with pytest.raises(ProgrammingError, match="row-level security"), session.begin_nested():
            session.execute(insert(Task).values(
                tenant_id=tenant + 1, id=99_002, project_id=(tenant + 1) * 100 + 1, title="x"))
        # the composite tenant key refuses a reference to another tenant's project
        with pytest.raises(IntegrityError), session.begin_nested():
            session.execute(insert(Task).values(id=99_003, project_id=(tenant + 1) * 100 + 1,
                                                title="cross"))
        moved = session.execute(update(Task).values(title="mine")).rowcount
        assert moved == 21
        session.rollback()


def _plan_tasks(session: Session, stmt: object, tenant: int) -> list[int]:
    return task_counts(explain(session, tenant_filtered(stmt, tenant)))  # type: ignore[arg-type]


def test_tenant_filtered_statements_are_router_queries(world: World) -> None:
    with Session(world.schema.app_engine) as session, session.begin():
        tenant_context(session, 2)
        unfiltered = explain(session, select(Task))
        assert task_counts(unfiltered) == [SHARDS]  # RLS alone: every shard
        join = select(Project.name, func.count(Task.id)).join(
            Task, (Task.tenant_id == Project.tenant_id) & (Task.project_id == Project.id)
        ).group_by(Project.name)
        with_ref = select(Project).join(world.plans, world.plans.c.id == Project.plan_id)
        for stmt in (
            select(Task),
            join,
            with_ref,
            select(Task).where(Task.project_id.in_(select(Project.id).where(Project.name > ""))),
            update(Task).values(title="t"),
            delete(Task).where(Task.id == 0),
        ):
            assert _plan_tasks(session, stmt, 2) == [1], str(stmt)


def test_route_by_tenant_routes_orm_queries_and_relationship_loads(world: World) -> None:
    seen: list[str] = []

    class Routed(Session):
        pass

    route_by_tenant(Routed)
    with Routed(world.schema.app_engine) as session, session.begin():
        from sqlalchemy import event

        @event.listens_for(session.connection(), "before_cursor_execute")
        def capture(conn, cursor, statement, params, context, many):  # type: ignore[no-untyped-def]
            seen.append(statement)

        tenant_context(session, 3)
        projects = session.scalars(select(Project).options(selectinload(Project.tasks))).all()
        assert {p.tenant_id for p in projects} == {3}
        assert all(len(p.tasks) == 4 for p in projects)
        plan = explain(session, tenant_filtered(select(Project), 3))
        assert is_router(plan)
    selects = [s for s in seen if s.lstrip().startswith("SELECT")]
    assert selects and all("tenant_id = %(" in s for s in selects), selects
    # a later transaction without a tenant: no filter, and RLS shows nothing
    with Routed(world.schema.app_engine) as session, session.begin():
        assert session.scalars(select(Project)).all() == []


def test_reference_table_is_readable_and_owner_writes_reach_every_node(world: World) -> None:
    with world.schema.app_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(world.plans)).scalar() == 2
        plan = explain(conn, select(world.plans))
        assert task_counts(plan) == [1]
    assert APP_ROLE in rls_roles(world)


def rls_roles(world: World) -> list[str]:
    with world.schema.engine.connect() as conn:
        return list(conn.execute(text(
            "SELECT unnest(polroles::regrole[])::text FROM pg_policy"
            " WHERE polrelid = 'tasks'::regclass"
        )).scalars())


def test_citus_policy_form_keeps_the_index_on_one_node(pg_citus: CitusSchema) -> None:
    """On a plain (local) table the form distribute() declares still uses the tenant index,
    also once psycopg prepares the statement (generic plan after the 5th execution)."""
    from sqlalchemy import BigInteger, Column, Index, MetaData, Table

    from pgpatterns.citus import citus_policy_expression
    from pgpatterns.ddl import Policy, attach, attached

    m = MetaData()
    docs = Table("local_docs", m, rls.tenant_column(), Column("id", BigInteger),
                 Column("body", BigInteger))
    Index("local_docs_tenant_id_idx", docs.c.tenant_id, docs.c.id)
    rls.secure_table(docs, roles=[APP_ROLE], index=False)
    for obj in attached(m):
        if isinstance(obj, Policy):
            assert obj.using is not None
            obj.using = obj.with_check = citus_policy_expression(obj.using, where="test")
    attach(m)
    with pg_citus.engine.begin() as conn:
        m.create_all(conn)
        conn.execute(text(
            "INSERT INTO local_docs SELECT i % 200, i, i FROM generate_series(1, 20000) i"))
        conn.execute(text("ANALYZE local_docs"))
        policy = conn.execute(text(
            "SELECT pg_get_expr(polqual, polrelid) FROM pg_policy"
            " WHERE polrelid = 'local_docs'::regclass")).scalar()
    assert policy is not None and "SELECT" not in policy.upper()
    with pg_citus.app_engine.connect() as conn, conn.begin():
        tenant_context(conn, 7)
        for _ in range(10):  # past psycopg's prepare threshold
            plan = explain(conn, select(docs.c.id).where(docs.c.body > 0))
            assert uses_index(plan, "local_docs_tenant_id_idx"), plan
            assert not has_seq_scan(plan), plan
            assert len(conn.execute(select(docs.c.id)).all()) == 100



async def test_tenant_context_async_reaches_the_workers(world: World) -> None:
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
    from sqlalchemy.pool import NullPool

    from pgpatterns.citus import tenant_context_async

    engine = create_async_engine(
        world.schema.cluster.app_url, poolclass=NullPool,
        connect_args={"options": f"-c search_path={world.schema.name},public"},
    )
    class Routed(Session):
        pass

    route_by_tenant(Routed)
    sent: list[str] = []
    from sqlalchemy import event

    event.listen(engine.sync_engine, "before_cursor_execute",
                 lambda conn, cursor, statement, *args: sent.append(statement))
    try:
        async with AsyncSession(engine, sync_session_class=Routed) as session, session.begin():
            await tenant_context_async(session, 4)
            stmt = select(Task).where(Task.project_id == 401)
            rows = (await session.scalars(stmt)).all()
            assert len(rows) == 4 and {t.tenant_id for t in rows} == {4}
            plan = await session.run_sync(lambda s: explain(s, tenant_filtered(stmt, 4)))
            assert is_router(plan)
        # what route_by_tenant sent: the statement with the tenant filter
        assert any("tasks.project_id = " in q and "tasks.tenant_id = " in q for q in sent), sent
    finally:
        await engine.dispose()


def test_registry_diff_sees_the_distribution(world: World) -> None:
    from citus_world import Base

    from pgpatterns.ddl import diff

    with world.schema.engine.connect() as conn:
        # diff() creates twins of the foreign keys in savepoints after reading the shards:
        # Citus wants one connection per node for that (FKs to a reference table)
        conn.execute(text("SET LOCAL citus.multi_shard_modify_mode TO 'sequential'"))
        assert diff(conn, Base.metadata) == []
        conn.execute(text("SELECT undistribute_table('plans', cascade_via_foreign_keys => true)"))
        found = diff(conn, Base.metadata)
        conn.rollback()
    assert any("reference table plans" in d for d in found), found


def test_tenant_context_refuses_autocommit(pg_citus: CitusSchema) -> None:
    from pgpatterns.errors import RLSContextError

    engine = pg_citus.app_engine.execution_options(isolation_level="AUTOCOMMIT")
    with engine.connect() as conn, pytest.raises(RLSContextError, match="SET LOCAL only lasts"):
        tenant_context(conn, 1)


def test_isolation_kit_finds_no_leak_on_the_cluster(world: World) -> None:
    """pgpatterns.testing.assert_tenant_isolation as the app role, with the Citus tenant
    context in place of rls.tenant_context (which would not reach the workers)."""
    from citus_world import Base

    from pgpatterns.testing import assert_tenant_isolation

    report = assert_tenant_isolation(
        Base.metadata, world.schema.app_engine, tenants=(1, 2), max_examples=8,
        statements_per_example=6, context=tenant_context,
    )
    assert report.statements > 0
    assert set(report.relations) >= {"projects", "tasks"}


def test_tenant_context_on_begin_with_routing(world: World) -> None:
    from contextvars import ContextVar

    from sqlalchemy.orm import sessionmaker

    from pgpatterns.citus import tenant_context_on_begin

    current: ContextVar[int | None] = ContextVar("tenant", default=None)
    factory = sessionmaker(world.schema.app_engine)
    stop = tenant_context_on_begin(factory, current.get)
    route_by_tenant(factory)
    try:
        with factory() as session, session.begin():  # nothing set: nothing seen
            assert session.scalars(select(Task)).all() == []
        token = current.set(3)
        with factory() as session, session.begin():
            rows = session.scalars(select(Task)).all()
            assert len(rows) == 20 and {t.tenant_id for t in rows} == {3}
            plan = explain(session, tenant_filtered(select(Task), 3))
            assert is_router(plan)
        current.reset(token)
    finally:
        stop()
