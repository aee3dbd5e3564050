"""pgpatterns.rls without a database: SQL shapes of the builders and errors before any SQL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    Uuid,
    func,
    select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.schema import CreateTable

from pgpatterns.ddl import Partition, Policy, View, attach, attached
from pgpatterns.ddl.base import pg_dialect
from pgpatterns.errors import (
    DDLDependencyError,
    DDLOptionError,
    RLSContextError,
    RLSExpressionError,
    RLSPolicyError,
    RLSViewError,
)
from pgpatterns.rls import (
    TenantScoped,
    context_statement,
    current_tenant,
    enable_rls,
    for_partitions,
    initplan,
    member_of,
    owner_only,
    policy,
    rls_objects,
    rls_view,
    setting,
    tenant_foreign_key,
    tenant_isolation,
    tenant_unique,
)
from pgpatterns.rls.supabase import auth_stand_in, auth_uid, owner_policy


def sql(expr: Any) -> str:
    out = str(expr.compile(dialect=pg_dialect(), compile_kwargs={"literal_binds": True}))
    return " ".join(out.split())


@pytest.fixture
def docs() -> Table:
    return Table("docs", MetaData(), Column("id", Integer, primary_key=True),
                 Column("tenant_id", BigInteger), Column("user_id", Uuid),
                 Column("team_id", Integer))


def test_setting_is_an_uncorrelated_scalar_subquery(docs: Table) -> None:
    assert sql(tenant_isolation(docs.c.tenant_id)) == (
        "docs.tenant_id = (SELECT CAST(nullif(current_setting('app.tenant_id', true), '') "
        "AS BIGINT) AS nullif_1)"
    )
    assert "AS UUID" in sql(owner_only(docs.c.user_id))  # read as the column's type
    assert sql(setting("request.org", String)).startswith(
        "(SELECT CAST(nullif(current_setting('request.org', true), '') AS VARCHAR)"
    )


def test_member_of_looks_the_row_up_in_the_users_groups() -> None:
    md = MetaData()
    files = Table("files", md, Column("team_id", Integer))
    members = Table("members", md, Column("team", Integer), Column("member", Integer))
    out = sql(member_of(files.c.team_id, members, group_column="team", user_column="member"))
    assert out.startswith(
        "files.team_id = ANY (array((SELECT members.team FROM members "
        "WHERE members.member = (SELECT "
    )
    assert "files" not in out.split("ANY", 1)[1]  # never joins back to the row
    with pytest.raises(RLSExpressionError, match="no column 'user_id'"):
        member_of(files.c.team_id, members, group_column="team")


def test_initplan_wraps_calls_and_refuses_row_references(docs: Table) -> None:
    assert sql(initplan(func.is_admin())) == "(SELECT is_admin() AS is_admin_1)"
    inner = select(func.max(docs.c.id)).scalar_subquery()
    assert sql(initplan(func.coalesce(inner, 0))).startswith("(SELECT coalesce((SELECT max(")
    with pytest.raises(RLSExpressionError, match=r"references the row \(docs.team_id\)"):
        initplan(func.can_see(docs.c.team_id))
    with pytest.raises(RLSExpressionError, match="references the row"):
        owner_only(docs.c.user_id, user=func.lookup(docs.c.id))


def test_wrong_types_and_values_are_refused(docs: Table) -> None:
    with pytest.raises(RLSExpressionError, match=r"BigInteger.*String"):
        tenant_isolation(docs.c.tenant_id, tenant=current_tenant(String))
    assert "AS INTEGER" in sql(tenant_isolation(docs.c.tenant_id, tenant=current_tenant(Integer)))
    with pytest.raises(RLSExpressionError, match="SQL expression"):
        tenant_isolation(docs.c.tenant_id, tenant=42)  # type: ignore[arg-type]
    with pytest.raises(RLSExpressionError, match="not a SQLAlchemy type"):
        current_tenant("bigint")  # type: ignore[arg-type]
    with pytest.raises(RLSExpressionError, match=r"prefix\.name"):
        setting("tenant_id")
    with pytest.raises(RLSExpressionError, match="table column"):
        tenant_isolation(func.now())  # type: ignore[arg-type]


def test_policy_needs_rls_and_named_roles(docs: Table) -> None:
    same = tenant_isolation(docs.c.tenant_id)
    with pytest.raises(RLSPolicyError, match=r"call enable_rls\(docs\) first"):
        policy("p", docs, to="app", using=same)
    rls = enable_rls(docs)
    assert enable_rls(docs) is rls
    with pytest.raises(RLSPolicyError, match="already enabled with force=True"):
        enable_rls(docs, force=False)
    with pytest.raises(RLSPolicyError, match="public"):
        policy("p", docs, to=["PUBLIC"], using=same)
    with pytest.raises(RLSPolicyError, match="must name the roles"):
        policy("p", docs, to=[], using=same)
    with pytest.raises(DDLOptionError, match="SELECT policy takes no with_check"):
        policy("p", docs, to="app", command="select", with_check=same)
    made = policy("p", docs, to="app", using=same, with_check=same)
    assert isinstance(made, Policy) and made.to == ("app",)
    assert rls_objects(docs) == [rls, made]
    with pytest.raises(DDLDependencyError, match="not attached"):
        attach(MetaData(), made)  # a policy without its RLS is refused
    assert made.sql().startswith("CREATE POLICY p ON docs AS PERMISSIVE FOR ALL TO app USING")


def test_policy_subqueries_correlate_to_the_row(docs: Table) -> None:
    members = Table("members", MetaData(), Column("team_id", Integer), Column("user_id", Uuid))
    enable_rls(docs)
    join_back = owner_only(docs.c.user_id).__or__(
        select(members.c.user_id).where(members.c.team_id == docs.c.team_id).exists()
    )
    out = " ".join(policy("p", docs, to="app", using=join_back).sql().split())
    assert "FROM members WHERE members.team_id = docs.team_id" in out  # not "FROM members, docs"


def test_for_partitions_copies_rls_and_retargets_columns() -> None:
    ev = Table("ev", MetaData(), Column("tenant_id", BigInteger),
               postgresql_partition_by="LIST (tenant_id)")
    rls = enable_rls(ev)
    pol = policy("t", ev, to="app", using=tenant_isolation(ev.c.tenant_id))
    parts = [Partition("ev_1", ev, list_=[1]), Partition("ev_2", ev, list_=[2])]
    copies = for_partitions([rls, pol], parts)
    assert [o.describe() for o in copies] == [
        "row level security on ev_1", "policy t on ev_1",
        "row level security on ev_2", "policy t on ev_2",
    ]
    assert "USING (ev_2.tenant_id = (SELECT" in copies[3].sql()
    md = MetaData()
    attach(md, *parts, rls, pol, *copies)
    assert len(attached(md)) == 8
    with pytest.raises(RLSPolicyError, match="no RLS"):
        for_partitions([pol], parts)


def test_rls_view_refuses_definer_rights_over_secured_tables(docs: Table) -> None:
    with pytest.raises(RLSViewError, match="security_invoker=False"):
        rls_view("v", select(docs.c.id), security_invoker=False)  # not yet secured: fine
        enable_rls(docs)
        rls_view("v", select(docs.c.id), security_invoker=False)
    inner = rls_view("inner_v", select(docs.c.id))
    with pytest.raises(RLSViewError, match="inner_v"):
        rls_view("outer_v", select(inner.table.c.id), security_invoker=False)
    allowed = rls_view("all_docs", select(docs.c.id).where(docs.c.id > 0),
                       security_invoker=False, allow_definer_rights=True)
    assert isinstance(allowed, View) and allowed.security_barrier  # filters: barrier on
    assert "security_invoker = true" in rls_view("mine", select(docs.c.id)).sql()


def test_tenant_scoped_table_shape() -> None:
    class Base(DeclarativeBase):
        pass

    class Project(TenantScoped, Base):
        __tablename__ = "projects"
        __tenant_roles__ = ("app",)
        __tenant_primary_key__ = True
        __table_args__ = (tenant_unique("slug"),)
        id: Mapped[int] = mapped_column(primary_key=True)
        slug: Mapped[str]

    class Task(Base, TenantScoped):  # mixin after the base works too
        __tablename__ = "tasks"
        __tenant_roles__ = ("app",)
        __table_args__ = (tenant_foreign_key(["project_id"], "projects", ["id"]),)
        id: Mapped[int] = mapped_column(primary_key=True)
        project_id: Mapped[int]

    ddl = str(CreateTable(Project.__table__).compile(dialect=pg_dialect()))  # type: ignore[arg-type]
    assert "PRIMARY KEY (tenant_id, id)" in ddl and "UNIQUE (tenant_id, slug)" in ddl
    assert "DEFAULT CAST(nullif(current_setting('app.tenant_id', true), '') AS BIGINT)" in ddl
    tasks = Task.__table__
    # UNIQUE (tenant_id, id) leads with tenant_id: no separate tenant_id index
    assert [i.name for i in tasks.indexes] == []  # type: ignore[attr-defined]
    assert "UNIQUE (tenant_id, id)" in str(CreateTable(tasks).compile(dialect=pg_dialect()))
    fk = str(CreateTable(tasks).compile(dialect=pg_dialect()))  # type: ignore[arg-type]
    assert "FOREIGN KEY(tenant_id, project_id) REFERENCES projects (tenant_id, id)" in fk
    kinds = [o.describe() for o in attached(Base.metadata)]
    assert kinds == [
        "row level security on projects", "policy tenant_isolation on projects",
        "row level security on tasks", "policy tenant_isolation on tasks",
    ]


def test_tenant_scoped_needs_roles() -> None:
    class Base(DeclarativeBase):
        pass

    with pytest.raises(RLSPolicyError, match="__tenant_roles__"):
        class Orphan(TenantScoped, Base):
            __tablename__ = "orphans"
            id: Mapped[int] = mapped_column(primary_key=True)


def test_context_statement_binds_values() -> None:
    compiled = context_statement({"app.tenant_id": 7, "app.user_id": None}).compile(
        dialect=pg_dialect()
    )
    assert sorted(v for v in compiled.params.values() if v is not True) == [
        "", "7", "app.tenant_id", "app.user_id"
    ]
    with pytest.raises(RLSContextError, match="setting value"):
        context_statement({"app.tenant_id": 1.5})
    with pytest.raises(RLSExpressionError, match=r"prefix\.name"):
        context_statement({"tenant": 1})


def test_supabase_preset_shapes(docs: Table) -> None:
    assert sql(auth_uid()) == "(SELECT auth.uid() AS uid_1)"
    enable_rls(docs)
    select_only = owner_policy(docs, command="select")
    assert select_only.with_check is None and select_only.to == ("authenticated",)
    insert_only = owner_policy(docs, command="insert", name="ins")
    assert insert_only.using is None and insert_only.with_check is not None
    uid = auth_stand_in()[0]
    assert uid.sql().startswith("CREATE FUNCTION auth.uid() RETURNS UUID LANGUAGE sql STABLE")
    assert "current_setting('request.jwt.claims', true)" in uid.sql()
