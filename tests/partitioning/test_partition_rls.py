"""Every partition of a tenant-scoped table gets the parent's RLS, FORCE and policies (#16.4).

Read and written as the non-owner app role with ``tenant_context``: a partition queried by
name must show tenant 1 only tenant 1's rows, whichever path created it.
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    Engine,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    insert,
    select,
    text,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from pgpatterns.ddl import attached
from pgpatterns.partitioning import (
    ensure_partitions,
    existing_partitions,
    partition_by,
    range_partition,
    run_pg_partman_maintenance,
    use_pg_partman,
)
from pgpatterns.rls import TenantScoped, policy, secure_table, tenant_column, tenant_context
from pgpatterns.testing import Database
from pgpatterns.testing.plugin import PgSchema

JAN, FEB, MAR = dt.date(2026, 1, 10), dt.date(2026, 2, 10), dt.date(2026, 3, 10)


def tenant_events(app_role: str) -> Table:
    class Base(DeclarativeBase):
        metadata = MetaData()

    class Event(TenantScoped, Base):
        __tablename__ = "events"
        __tenant_roles__ = (app_role,)
        id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
        day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
        kind: Mapped[str]

    table = Event.__table__
    assert isinstance(table, Table)
    return table


def load(engine: Engine, table: Table, days: list[dt.date]) -> None:
    with engine.begin() as conn:  # the owner (superuser) writes every tenant's rows
        for n, day in enumerate(days):
            for tenant in (1, 2):
                row = {"tenant_id": tenant, "id": 10 * n + tenant, "day": day, "kind": "k"}
                conn.execute(insert(table).values(**row))


def partition(table: Table, name: str) -> Table:
    return Table(name, MetaData(), Column("tenant_id", BigInteger), Column("id", BigInteger),
                 schema=table.schema)


def tenants_seen(app: Engine, table: Table, name: str, tenant: int) -> list[int]:
    """Tenant ids visible to ``tenant`` reading partition ``name`` directly, as the app role."""
    part = partition(table, name)
    with app.begin() as conn:
        tenant_context(conn, tenant)
        return list(conn.scalars(select(part.c.tenant_id).distinct().order_by(part.c.tenant_id)))


def assert_isolated(
    schema: PgSchema, table: Table, names: list[str], empty: tuple[str, ...] = ()
) -> None:
    """Every partition in ``names`` has forced RLS and one policy; each that is not in
    ``empty`` holds rows of tenants 1 and 2 and shows each tenant only its own."""
    assert names
    with schema.engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,"
            " (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid)"
            " FROM pg_class c WHERE c.relnamespace = to_regnamespace(:s) AND c.relname = ANY(:n)"
            " ORDER BY 1"), {"s": schema.name, "n": names}).all()
    assert rows == [(n, True, True, 1) for n in sorted(names)]
    for name in names:
        if name in empty:
            continue
        assert tenants_seen(schema.app_engine, table, name, 1) == [1], name
        assert tenants_seen(schema.app_engine, table, name, 2) == [2], name
        part = partition(table, name)
        with schema.app_engine.begin() as conn:  # writing another tenant's row: refused
            tenant_context(conn, 1)
            with pytest.raises(DBAPIError, match="row-level security"):
                conn.execute(insert(part).values(tenant_id=2, id=99))


def test_declared_partitions_get_the_parents_policies(
    pg_schema: PgSchema, pg_database: Database
) -> None:
    table = tenant_events(pg_database.app_role)
    partition_by(table, "range", "day", interval="1 month", partitions=[
        range_partition("2026-01-01", "2026-02-01"), range_partition("2026-02-01", "2026-03-01"),
    ])
    kinds = sorted({o.kind for o in attached(table.metadata) if o.name != "events"})
    assert "policy" in kinds and "row level security" in kinds
    table.metadata.create_all(pg_schema.engine)
    load(pg_schema.engine, table, [JAN, FEB])
    assert_isolated(pg_schema, table, ["events_p2026_01", "events_p2026_02"])


def test_policies_declared_after_partition_by_reach_the_partitions(
    pg_schema: PgSchema, pg_database: Database
) -> None:
    table = Table(
        "events", MetaData(), tenant_column(), Column("id", BigInteger), Column("day", Date),
        Column("kind", Text), PrimaryKeyConstraint("tenant_id", "id", "day"),
    )
    partition_by(table, "range", "day", interval="1 month",
                 partitions=[range_partition("2026-01-01", "2026-02-01")])
    secure_table(table, roles=[pg_database.app_role])  # after partition_by
    table.metadata.create_all(pg_schema.engine)
    load(pg_schema.engine, table, [JAN])
    assert_isolated(pg_schema, table, ["events_p2026_01"])
    with pg_schema.engine.connect() as conn:
        policies = conn.execute(text(
            "SELECT count(*) FROM pg_policy WHERE polrelid = to_regclass('events_p2026_01')"
        )).scalar()
    assert policies == 1  # copied once, not once per create_all listener


def test_an_extra_policy_is_copied_and_nothing_twice(
    pg_schema: PgSchema, pg_database: Database
) -> None:
    table = tenant_events(pg_database.app_role)
    partition_by(table, "range", "day", interval="1 month",
                 partitions=[range_partition("2026-01-01", "2026-02-01")])
    policy("no_secret", table, to=[pg_database.app_role], using=table.c.kind != "secret",
           permissive=False)
    table.metadata.create_all(pg_schema.engine)
    with pg_schema.engine.begin() as conn:
        conn.execute(insert(table).values(tenant_id=1, id=1, day=JAN, kind="secret"))
        conn.execute(insert(table).values(tenant_id=1, id=2, day=JAN, kind="open"))
        names = conn.execute(text(
            "SELECT polname FROM pg_policy WHERE polrelid = to_regclass('events_p2026_01')"
            " ORDER BY 1")).scalars().all()
    assert names == ["no_secret", "tenant_isolation"]
    part = Table("events_p2026_01", MetaData(), Column("id", BigInteger))
    with pg_schema.app_engine.begin() as conn:
        tenant_context(conn, 1)
        assert conn.scalars(select(part.c.id)).all() == [2]


def test_ensure_partitions_copies_the_same_policies(
    pg_schema: PgSchema, pg_database: Database
) -> None:
    table = tenant_events(pg_database.app_role)
    partition_by(table, "range", "day", interval="1 month")
    table.metadata.create_all(pg_schema.engine)
    with Session(pg_schema.engine) as s:
        made = ensure_partitions(s, table, ahead=2, now=JAN)
        s.commit()
    assert made == ["events_p2026_01", "events_p2026_02", "events_p2026_03"]
    load(pg_schema.engine, table, [JAN, FEB, MAR])
    assert_isolated(pg_schema, table, made)


@pytest.mark.requires_extension("pg_partman")
def test_pg_partman_partitions_get_the_parents_policies(
    pg_schema: PgSchema, pg_database: Database
) -> None:
    table = tenant_events(pg_database.app_role)
    partition_by(table, "range", "day", interval="1 month")
    with pg_schema.engine.begin() as conn:
        conn.execute(text("CREATE SCHEMA IF NOT EXISTS partman"))
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS pg_partman SCHEMA partman"))
        table.metadata.create_all(conn)
    with Session(pg_schema.engine) as s:
        use_pg_partman(s, table, premake=2, start=JAN.isoformat())
        run_pg_partman_maintenance(s, table)
        s.commit()
        names = [p.name for p in existing_partitions(s, table)]
    load(pg_schema.engine, table, [JAN, FEB])
    assert len(names) >= 3  # the months from January and pg_partman's default partition
    with pg_schema.engine.connect() as conn:  # the owner bypasses RLS: which hold no rows
        empty = tuple(n for n in names
                      if not conn.execute(select(partition(table, n).c.id).limit(1)).first())
    assert len(empty) < len(names)
    assert_isolated(pg_schema, table, names, empty)
