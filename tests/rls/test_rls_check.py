"""check_rls finds every planted problem and nothing on a clean schema; plans; Supabase preset."""

from __future__ import annotations

import random
import uuid
from typing import Any

import pytest
from rls_world import build
from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    MetaData,
    Table,
    Text,
    Uuid,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.orm import Session

from pgpatterns.bulk import copy_rows
from pgpatterns.ddl import Function, MaterializedView, Partition, Policy, View, attach
from pgpatterns.errors import RLSContextError, RLSError
from pgpatterns.explain import explain, has_seq_scan, uses_index
from pgpatterns.rls import (
    check_rls,
    check_rls_async,
    current_user_id,
    enable_rls,
    initplan,
    member_of,
    owner_only,
    policy,
    rls_view,
    tenant_context,
    tenant_isolation,
)
from pgpatterns.rls.supabase import install_auth_stand_in, jwt_context, owner_policy
from pgpatterns.testing import Database
from pgpatterns.testing.plugin import PgSchema


def _kinds(findings: list[Any]) -> list[tuple[str, str]]:
    return sorted((f.kind, f.relation.split(".", 1)[1]) for f in findings)


def test_clean_schema_has_no_findings(pg_schema: PgSchema, pg_database: Database) -> None:
    world = build(pg_schema, pg_database.app_role)
    with pg_schema.engine.begin() as conn:
        conn.execute(text("DROP VIEW docs_leaky"))  # the one deliberate leak of that schema
    with Session(pg_schema.engine) as owner:  # superuser: plans as the policies' role
        assert check_rls(owner) == []
    with Session(world.app) as app:
        assert check_rls(app) == []
        assert check_rls(app, [world.docs, "events"]) == []


def _planted(schema: PgSchema, role: str) -> MetaData:
    md = MetaData()

    def col(indexed: bool = True) -> list[Column[Any]]:
        return [Column("id", BigInteger, primary_key=True),
                Column("tenant_id", BigInteger, index=indexed)]

    # 1. policies, RLS disabled (ddl.Policy without RowLevelSecurity)
    disabled = Table("t_disabled", md, *col())
    # 2. RLS without a policy
    nopolicy = Table("t_nopolicy", md, *col())
    # 3. policy column without an index
    unindexed = Table("t_unindexed", md, *col(indexed=False))
    # 4. per-row function: a plpgsql function (VOLATILE by default) not wrapped
    perrow = Table("t_perrow", md, *col())
    fn = Function("my_tenant", returns="bigint", language="plpgsql",
                  body="BEGIN RETURN nullif(current_setting('app.tenant_id', true), ''); END")
    # 5. join back to the row (correlated) vs member_of (clean)
    members = Table("members", md, Column("team_id", BigInteger), Column("user_id", BigInteger))
    joinback = Table("t_joinback", md, Column("id", BigInteger, primary_key=True),
                     Column("group_id", BigInteger, index=True))
    clean = Table("t_member", md, Column("id", BigInteger, primary_key=True),
                  Column("team_id", BigInteger, index=True))
    # 6./7. definer view (through a view), materialized view
    # 8. partition without the parent's policy
    parent = Table("t_parent", md, Column("tenant_id", BigInteger, index=True),
                   postgresql_partition_by="LIST (tenant_id)")
    objects: list[Any] = [fn]
    for t in (nopolicy, unindexed, perrow, joinback, clean, parent):
        objects.append(enable_rls(t))
    same = tenant_isolation(disabled.c.tenant_id)
    objects += [
        Policy("p", disabled, to=[role], using=same),
        policy("p", unindexed, to=role, using=tenant_isolation(unindexed.c.tenant_id)),
        policy("p", perrow, to=role, using=perrow.c.tenant_id == func.my_tenant()),
        # "is the user in the row's team": correlated to the row, so it runs for every row
        policy("p", joinback, to=role, using=current_user_id().in_(
            select(members.c.user_id).where(members.c.team_id == joinback.c.group_id)
        )),
        policy("p", clean, to=role, using=member_of(clean.c.team_id, members)),
        policy("p", parent, to=role, using=tenant_isolation(parent.c.tenant_id)),
        Partition("t_parent_1", parent, list_=[1]),
    ]
    inner = rls_view("v_inner", select(clean.c.id))
    outer = View("v_outer", select(inner.table.c.id), security_invoker=False)
    objects += [inner, outer, MaterializedView("mv", select(clean.c.id))]
    attach(md, *objects)
    with schema.engine.begin() as conn:
        md.create_all(conn)
    return md


@pytest.mark.parametrize("as_", ["owner", "app"])
def test_check_rls_finds_each_planted_problem(
    pg_schema: PgSchema, pg_database: Database, as_: str
) -> None:
    _planted(pg_schema, pg_database.app_role)
    engine = pg_schema.engine if as_ == "owner" else pg_schema.app_engine
    with Session(engine) as session:
        findings = check_rls(session)
    assert _kinds(findings) == [
        ("matview_over_rls", "mv"),
        ("no_policies", "t_nopolicy"),
        ("partition_missing_policy", "t_parent_1"),
        ("per_row_function", "t_perrow"),
        ("per_row_subquery", "t_joinback"),
        ("rls_disabled", "t_disabled"),
        ("unindexed_policy_column", "t_unindexed"),
        ("view_without_security_invoker", "v_outer"),
    ]
    perrow = next(f for f in findings if f.kind == "per_row_function")
    assert "my_tenant" in perrow.message and "initplan" in perrow.message


def test_wrapping_the_function_clears_the_finding(
    pg_schema: PgSchema, pg_database: Database
) -> None:
    md = MetaData()
    t = Table("wrapped", md, Column("tenant_id", BigInteger, index=True))
    fn = Function("my_tenant", returns="bigint", language="plpgsql",
                  body="BEGIN RETURN nullif(current_setting('app.tenant_id', true), ''); END")
    attach(md, fn, enable_rls(t), policy(
        "p", t, to=pg_database.app_role, using=t.c.tenant_id == initplan(func.my_tenant())))
    with pg_schema.engine.begin() as conn:
        md.create_all(conn)
    with Session(pg_schema.engine) as session:
        assert check_rls(session, [t]) == []


async def test_check_rls_async(pg_schema: PgSchema, pg_database: Database) -> None:
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
    from sqlalchemy.pool import NullPool

    _planted(pg_schema, pg_database.app_role)
    engine = create_async_engine(pg_database.url, poolclass=NullPool,
                                 connect_args=pg_database.search_path_args(pg_schema.name))
    try:
        async with AsyncSession(engine) as session:
            found = await check_rls_async(session, ["t_nopolicy", "t_perrow"])
    finally:
        await engine.dispose()
    assert _kinds(found) == [("no_policies", "t_nopolicy"), ("per_row_function", "t_perrow")]


def test_check_rls_rejects_unknown_tables(pg_schema: PgSchema) -> None:
    with Session(pg_schema.engine) as session, pytest.raises(RLSError, match="no table"):
        check_rls(session, ["no_such_table"])


def test_policy_plan_uses_the_tenant_index(pg_schema: PgSchema, pg_database: Database) -> None:
    """20k rows, 200 tenants + ANALYZE: the initPlan form is an index scan, the per-row
    function form a seq scan (the function is VOLATILE, so it cannot be an index key)."""
    md = MetaData()
    fast = Table("fast", md, Column("id", BigInteger, primary_key=True),
                 Column("tenant_id", BigInteger), Index("fast_tenant_idx", "tenant_id"))
    slow = Table("slow", md, Column("id", BigInteger, primary_key=True),
                 Column("tenant_id", BigInteger), Index("slow_tenant_idx", "tenant_id"))
    fn = Function("my_tenant", returns="bigint", language="plpgsql",
                  body="BEGIN RETURN nullif(current_setting('app.tenant_id', true), ''); END")
    role = pg_database.app_role
    attach(md, fn, enable_rls(fast), enable_rls(slow),
           policy("p", fast, to=role, using=tenant_isolation(fast.c.tenant_id)),
           policy("p", slow, to=role, using=slow.c.tenant_id == func.my_tenant()))
    rng = random.Random(1)
    rows = [(i, rng.randrange(200)) for i in range(20_000)]
    with pg_schema.engine.begin() as conn:
        md.create_all(conn)
        copy_rows(conn, fast, rows)
        copy_rows(conn, slow, rows)
        conn.execute(text("ANALYZE fast; ANALYZE slow"))
    expected = sum(1 for _, t in rows if t == 7)
    with pg_schema.app_engine.begin() as conn:
        tenant_context(conn, 7)
        good = explain(conn, select(func.count()).select_from(fast))
        bad = explain(conn, select(func.count()).select_from(slow))
        assert conn.execute(select(func.count()).select_from(fast)).scalar() == expected
        assert conn.execute(select(func.count()).select_from(slow)).scalar() == expected
    assert uses_index(good, "fast_tenant_idx") and not has_seq_scan(good, "fast")
    assert has_seq_scan(bad, "slow") and not uses_index(bad, "slow_tenant_idx")


def test_owner_only_and_member_of(pg_schema: PgSchema, pg_database: Database) -> None:
    md = MetaData()
    notes = Table("notes", md, Column("id", BigInteger, primary_key=True),
                  Column("user_id", BigInteger, index=True))
    members = Table("team_members", md, Column("team_id", BigInteger),
                    Column("user_id", BigInteger))
    files = Table("files", md, Column("id", BigInteger, primary_key=True),
                  Column("team_id", BigInteger, index=True))
    role = pg_database.app_role
    attach(md, enable_rls(notes), enable_rls(files),
           policy("own", notes, to=role, using=owner_only(notes.c.user_id)),
           policy("team", files, to=role, command="select",
                  using=member_of(files.c.team_id, members)))
    with pg_schema.engine.begin() as conn:
        md.create_all(conn)
        copy_rows(conn, notes, [(1, 10), (2, 11), (3, 10)])
        copy_rows(conn, members, [(100, 10), (101, 10), (101, 11)])
        copy_rows(conn, files, [(1, 100), (2, 101), (3, 102)])
    with pg_schema.app_engine.begin() as conn:
        tenant_context(conn, 1, user_id=10)
        assert sorted(conn.execute(select(notes.c.id)).scalars()) == [1, 3]
        assert sorted(conn.execute(select(files.c.id)).scalars()) == [1, 2]
        tenant_context(conn, 1, user_id=11)
        assert sorted(conn.execute(select(notes.c.id)).scalars()) == [2]
        assert sorted(conn.execute(select(files.c.id)).scalars()) == [2]
        # the user's teams are an initPlan array, so team_id = ANY (...) is an index condition
        # (seq scans off: three rows would not use an index otherwise)
        plan = explain(conn, select(files.c.id), settings={"enable_seqscan": "off"})
        assert uses_index(plan, "ix_files_team_id"), plan
        tenant_context(conn, 1)  # user cleared
        assert list(conn.execute(select(files.c.id)).scalars()) == []


def test_supabase_owner_policy(pg_schema: PgSchema, pg_database: Database) -> None:
    md = MetaData()
    todos = Table("todos", md, Column("id", BigInteger, primary_key=True),
                  Column("user_id", Uuid, nullable=False, index=True), Column("title", Text))
    attach(md, enable_rls(todos), owner_policy(todos, to=pg_database.app_role))
    alice, bob = uuid.uuid4(), uuid.uuid4()
    with pg_schema.engine.begin() as conn:
        install_auth_stand_in(conn, grant_to=[pg_database.app_role])
        install_auth_stand_in(conn)  # idempotent
        md.create_all(conn)
        copy_rows(conn, todos, [(1, alice, "a"), (2, bob, "b"), (3, alice, "c")])
    with pg_schema.app_engine.begin() as conn:
        jwt_context(conn, {"sub": str(alice), "role": "authenticated"})
        assert sorted(conn.execute(select(todos.c.id)).scalars()) == [1, 3]
        assert conn.execute(text("SELECT auth.role()")).scalar() == "authenticated"
        with pytest.raises(ProgrammingError, match="row-level security"), conn.begin_nested():
            conn.execute(insert(todos).values(id=4, user_id=bob, title="not mine"))
    with Session(pg_schema.engine) as session:
        assert check_rls(session, [todos]) == []
    with pg_schema.app_engine.begin() as conn, pytest.raises(RLSContextError, match="sub"):
        jwt_context(conn, {"role": "authenticated"})
