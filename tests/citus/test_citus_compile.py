"""pgpatterns.citus without a cluster: DDL text, what distribute() changes, its refusals."""

from __future__ import annotations

import pytest
from sqlalchemy import BigInteger, Column, ForeignKey, MetaData, Table, exists, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.schema import CreateTable

from pgpatterns.citus import (
    DistributedTable,
    ReferenceTable,
    citus_policy_expression,
    context_statements,
    distribute,
    tenant_filtered,
)
from pgpatterns.ddl import CompositeForeignKey, Policy, attached
from pgpatterns.errors import CitusDistributionError, DDLOptionError, RLSContextError
from pgpatterns.rls import TenantScoped, tenant_column, tenant_isolation


def _sql(obj: object) -> str:
    return obj.sql()  # type: ignore[attr-defined,no-any-return]


def test_ddl_text_quotes_names_and_colocates() -> None:
    m = MetaData()
    a = Table('we"ird%', m, Column("tenant_id", BigInteger), schema="s")
    b = Table("b", m, Column("tenant_id", BigInteger))
    seq = "SET LOCAL citus.multi_shard_modify_mode TO 'sequential';\n"
    assert _sql(DistributedTable(a, "tenant_id", shard_count=4)) == seq + (
        "SELECT create_distributed_table('\"s\".\"we\"\"ird%\"', 'tenant_id', "
        "colocate_with => 'default', shard_count => 4)"
    )
    assert _sql(DistributedTable(b, "tenant_id", colocate_with=a)).endswith(
        "colocate_with => '\"s\".\"we\"\"ird%\"')"
    )
    assert _sql(ReferenceTable(b)) == seq + "SELECT create_reference_table('\"b\"')"
    assert ReferenceTable(b).sql(drop=True) == "SELECT undistribute_table('\"b\"')"


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"column": "nope"}, "no column 'nope'"),
        ({"colocate_with": "elsewhere"}, "colocate_with='elsewhere'"),
        ({"shard_count": 0}, "shard_count=0"),
        ({"shard_count": True}, "shard_count=True"),
    ],
)
def test_distributed_table_refuses_bad_options(kw: dict[str, object], match: str) -> None:
    t = Table("t", MetaData(), Column("tenant_id", BigInteger))
    args = {"column": "tenant_id", **kw}
    column = args.pop("column")
    with pytest.raises(DDLOptionError, match=match):
        DistributedTable(t, column, **args)  # type: ignore[arg-type]


def _models(tenant_pk: bool = True) -> type[DeclarativeBase]:
    class Base(DeclarativeBase):
        metadata = MetaData()

    class Plan(Base):
        __tablename__ = "plans"
        id: Mapped[int] = mapped_column(BigInteger, primary_key=True)

    class Folder(TenantScoped, Base):
        __tablename__ = "folders"
        __tenant_roles__ = ("app",)
        __tenant_primary_key__ = tenant_pk
        id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
        plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id"))

    class Doc(TenantScoped, Base):
        __tablename__ = "docs"
        __tenant_roles__ = ("app",)
        __tenant_primary_key__ = tenant_pk
        id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
        folder_id: Mapped[int] = mapped_column(ForeignKey("folders.id"))

    return Base


def test_distribute_orders_distribution_before_keys_and_policies() -> None:
    base = _models()
    made = distribute(base.metadata)
    kinds = [o.describe() for o in made]
    assert kinds[:3] == [
        "reference table plans", "distributed table folders", "distributed table docs",
    ]
    order = [o.describe() for o in attached(base.metadata)]
    for table in ("folders", "docs"):
        dist = order.index(f"distributed table {table}")
        assert dist < order.index(f"row level security on {table}")
        assert dist < min(
            i for i, o in enumerate(attached(base.metadata))
            if isinstance(o, Policy) and o.table.name == table
        )
    # the plain one-column keys are out of CREATE TABLE; the composite tenant key is attached
    docs = base.metadata.tables["docs"]
    create = str(CreateTable(docs).compile(dialect=postgresql.dialect()))
    assert "REFERENCES" not in create
    fks = [o for o in attached(base.metadata) if isinstance(o, CompositeForeignKey)]
    assert {(f.table.name, tuple(f.columns)) for f in fks} == {
        ("docs", ("tenant_id", "folder_id")), ("folders", ("plan_id",)),
    }
    # the policy lost its initPlan: Citus refuses subqueries in policies
    policy = next(o for o in attached(base.metadata) if isinstance(o, Policy))
    assert "SELECT" not in policy.sql().split("USING", 1)[1]
    assert "nullif(current_setting('app.tenant_id', true), '')" in policy.sql()
    assert distribute(base.metadata) == []  # idempotent


def test_distribute_refuses_a_global_primary_key() -> None:
    base = _models(tenant_pk=False)
    with pytest.raises(CitusDistributionError, match=r"primary key \(id\).*__tenant_primary_key__"):
        distribute(base.metadata)


def test_distribute_refuses_reference_to_distributed_and_local_links() -> None:
    m = MetaData()
    t = Table("t", m, tenant_column(), Column("id", BigInteger), )
    from pgpatterns.rls import secure_table

    secure_table(t, roles=["app"])
    Table("shared", m, Column("id", BigInteger, primary_key=True),
          Column("t_id", BigInteger, ForeignKey("t.id")))
    with pytest.raises(CitusDistributionError, match="reference table shared cannot point"):
        distribute(m)
    m2 = MetaData()
    loc = Table("loc", m2, Column("id", BigInteger, primary_key=True))
    Table("ref", m2, Column("id", BigInteger, primary_key=True),
          Column("loc_id", BigInteger, ForeignKey("loc.id")))
    with pytest.raises(CitusDistributionError, match="a local table and a distributed"):
        distribute(m2, local=[loc])


def test_policy_with_a_correlated_subquery_is_refused() -> None:
    m = MetaData()
    t = Table("t", m, tenant_column(), Column("id", BigInteger))
    other = Table("members", m, Column("tenant_id", BigInteger))
    expr = tenant_isolation(t.c.tenant_id) & exists(
        select(other.c.tenant_id).where(other.c.tenant_id == t.c.tenant_id)
    )
    # exists() is not a scalar subquery, but a (SELECT ... FROM members) is:
    scalar = t.c.tenant_id == select(other.c.tenant_id).limit(1).scalar_subquery()
    with pytest.raises(CitusDistributionError, match="subquery over a table"):
        citus_policy_expression(scalar, where="p")
    assert expr is not None


def test_context_statements_check_the_value_before_sql() -> None:
    assert context_statements(None)[1] == "SET LOCAL app.tenant_id = ''"
    assert context_statements(7, setting="my.tenant")[1] == "SET LOCAL my.tenant = '7'"
    with pytest.raises(RLSContextError, match="tenant_id='1; DROP"):
        context_statements("1; DROP TABLE x")
    with pytest.raises(RLSContextError):
        context_statements(True)


def test_tenant_filtered_reaches_ctes_subqueries_and_aliases() -> None:
    base = _models()
    docs, folders = base.metadata.tables["docs"], base.metadata.tables["folders"]
    inner = select(folders.c.id).cte("f")
    alias = docs.alias("d2")
    stmt = (
        select(docs.c.id)
        .join(inner, inner.c.id == docs.c.folder_id)
        .where(docs.c.id.in_(select(alias.c.id)))
    )
    sql = str(tenant_filtered(stmt, 5).compile(
        dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    assert "folders.tenant_id = 5" in sql
    assert "docs.tenant_id = 5" in sql
    assert "d2.tenant_id = 5" in sql
    plans = base.metadata.tables["plans"]
    assert "WHERE" not in str(tenant_filtered(select(plans), 5))


def test_tenant_filtered_reaches_recursive_ctes_without_touching_the_original() -> None:
    from pgpatterns.trees import AdjacencyListMixin, TreeOptions, descendants

    class Base(DeclarativeBase):
        metadata = MetaData()

    class Node(AdjacencyListMixin, TenantScoped, Base):
        __tablename__ = "nodes"
        __tenant_roles__ = ("app",)
        __tenant_primary_key__ = True
        __tree__ = TreeOptions(scope="tenant_id")
        id: Mapped[int] = mapped_column(BigInteger, primary_key=True)

    plain = descendants(Node, 1, scope=9)
    before = str(plain)

    def sql(stmt: object) -> str:
        return str(stmt.compile(  # type: ignore[attr-defined]
            dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))

    routed = sql(tenant_filtered(plain, 9))
    anchor, step = routed.split("UNION ALL")
    assert "nodes.tenant_id = 9" in anchor
    assert "nodes_1.tenant_id = 9" in step  # the recursive term: a constant for Citus
    assert str(plain) == before  # the statement passed in is left as it was
