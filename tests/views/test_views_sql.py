"""Compile-only shapes and declaration errors of pgpatterns.views (no database)."""

from __future__ import annotations

import pytest
from sqlalchemy import Column, Date, Index, Integer, MetaData, Table, func, select
from sqlalchemy.orm import DeclarativeBase

from pgpatterns.ddl import attached
from pgpatterns.errors import ViewError, ViewRefreshError, ViewScheduleError
from pgpatterns.views import (
    ReadOnlyView,
    concurrent_refresh_index,
    materialized_view,
    refresh_stmt,
    schedule_refresh,
    view,
)

md = MetaData()
orders = Table("orders", md, Column("id", Integer, primary_key=True), Column("day", Date),
               Column("cents", Integer))
PER_DAY = select(orders.c.day, func.sum(orders.c.cents).label("cents")).group_by(orders.c.day)


def test_view_renders_security_invoker_and_is_attached() -> None:
    meta = MetaData()
    v = view("cheap", select(orders.c.id).where(orders.c.cents < 10), metadata=meta)
    assert v.sql() == (
        "CREATE VIEW cheap WITH (security_invoker = true) AS SELECT orders.id \n"
        "FROM orders \nWHERE orders.cents < 10"
    )
    assert attached(meta) == [v]


def test_materialized_view_renders_its_unique_key_first() -> None:
    mv = materialized_view("daily", PER_DAY, metadata=MetaData(), unique_key=["day"],
                           indexes=[("daily_cents", ["cents"], False)])
    lines = mv.sql().split(";\n")
    assert lines[0].startswith("CREATE MATERIALIZED VIEW daily AS SELECT orders.day")
    assert lines[1:] == [
        "CREATE UNIQUE INDEX daily_key ON daily (day)",
        "CREATE INDEX daily_cents ON daily (cents)",
    ]
    assert str(refresh_stmt(mv).compile()) == "REFRESH MATERIALIZED VIEW CONCURRENTLY daily"
    assert str(refresh_stmt(mv, concurrently=False).compile()) == "REFRESH MATERIALIZED VIEW daily"


def test_quoted_and_schema_qualified_names() -> None:
    mv = materialized_view("Daily Sales", PER_DAY, metadata=MetaData(), schema="Reports",
                           unique_key=["day"])
    assert str(refresh_stmt(mv).compile()) == (
        'REFRESH MATERIALIZED VIEW CONCURRENTLY "Reports"."Daily Sales"'
    )


@pytest.mark.parametrize(
    "indexes",
    [
        [],
        [("d", ["day"], False)],  # not unique
        [Index("d_expr", func.lower(select(orders.c.day).subquery().c.day), unique=True)],
    ],
)
def test_concurrent_refresh_needs_a_plain_unique_index(indexes: list[object]) -> None:
    mv = materialized_view("d", PER_DAY, metadata=MetaData(), indexes=indexes)  # type: ignore[arg-type]
    assert concurrent_refresh_index(mv) is None
    with pytest.raises(ViewRefreshError, match="needs a UNIQUE index on plain columns"):
        refresh_stmt(mv)
    assert "CONCURRENTLY" not in str(refresh_stmt(mv, concurrently=False).compile())


def test_partial_unique_index_does_not_count() -> None:
    mv = materialized_view("d", PER_DAY, metadata=MetaData())
    partial = Index("d_part", mv.table.c.day, unique=True, postgresql_where=mv.table.c.cents > 0)
    mv2 = materialized_view("d2", PER_DAY, metadata=MetaData(), indexes=[partial])
    assert concurrent_refresh_index(mv2) is None


def test_declaration_errors() -> None:
    with pytest.raises(ViewError, match=r"unique_key names columns \['nope'\]"):
        materialized_view("x", PER_DAY, metadata=MetaData(), unique_key=["nope"])
    with pytest.raises(ViewError, match="metadata must be"):
        view("x", PER_DAY, metadata=None)  # type: ignore[arg-type]
    long = materialized_view("x" * 60, PER_DAY, metadata=MetaData(), unique_key=["day"])
    key_index = long._indexes[0].name  # shortened with a hash, never truncated by PostgreSQL
    assert len(str(key_index).encode()) == 63 and str(key_index).endswith("_key")
    plain = view("v", PER_DAY, metadata=MetaData())
    with pytest.raises(ViewRefreshError, match="plain view"):
        refresh_stmt(plain)


def test_orm_mapping_needs_a_key() -> None:
    class Base(DeclarativeBase):
        pass

    keyless = view("keyless", PER_DAY, metadata=MetaData())
    with pytest.raises(ViewError, match=r"has no key.*__view_key__"):
        class Keyless(ReadOnlyView, Base):
            __view__ = keyless

    class WithKey(ReadOnlyView, Base):
        __view__ = keyless
        __view_key__ = ("day",)

    assert [c.name for c in WithKey.__mapper__.primary_key] == ["day"]
    assert str(select(WithKey)).split("\n")[-1] == "FROM keyless"


def test_schedule_validates_before_sql() -> None:
    mv = materialized_view("d", PER_DAY, metadata=MetaData(), unique_key=["day"])
    with pytest.raises(ViewScheduleError, match="not a pg_cron schedule"):
        schedule_refresh(None, mv, "5 * *")  # type: ignore[arg-type]
    nokey = materialized_view("n", PER_DAY, metadata=MetaData())
    with pytest.raises(ViewRefreshError):
        schedule_refresh(None, nokey, "*/5 * * * *")  # type: ignore[arg-type]
