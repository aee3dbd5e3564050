"""Hostile identifiers (issue #17) through views, materialized views and the refresh/replace
helpers: ``%``, quotes, spaces, unicode and 63-byte names for views, columns and keys."""

from __future__ import annotations

import pytest
from hostile import names
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import BigInteger, Column, Integer, MetaData, Table, func, insert, select

from pgpatterns.errors import ViewError, ViewRefreshError
from pgpatterns.rls import enable_rls, tenant_context
from pgpatterns.testing.plugin import PgSchema
from pgpatterns.views import (
    materialized_view,
    refresh,
    refresh_stmt,
    replace_materialized_view,
    schedule_refresh,
    tenant_materialized_view,
    unschedule_refresh,
    view,
)

NAMES = names(4)


@settings(max_examples=10)
@given(names=NAMES, qualified=st.booleans())
def test_hostile_names_create_refresh_replace_and_read(
    pg_schema: PgSchema, names: list[str], qualified: bool
) -> None:
    view_name, table_name, col, label = names
    schema = pg_schema.name if qualified else None
    md = MetaData()
    src = Table(table_name, md, Column("tenant_id", BigInteger, nullable=False),
                Column(col, Integer, nullable=False), schema=schema)
    grouped = select(src.c[col].label(label), func.count().label("ńcount")).group_by(src.c[col])
    mv = materialized_view(view_name, grouped, metadata=md, unique_key=[label], schema=schema)
    plain = view(view_name[:20] + "_v", select(src.c[col]), metadata=md, schema=schema)
    with pg_schema.engine.connect() as conn, conn.begin():
        md.create_all(conn)
        conn.execute(insert(src), [{"tenant_id": 1 + i % 2, col: i % 3} for i in range(9)])
        refresh(conn, mv, concurrently=False)
        refresh(conn, mv)  # CONCURRENTLY
        assert dict(conn.execute(select(mv.table)).all()) == {0: 3, 1: 3, 2: 3}
        assert conn.execute(select(func.count()).select_from(plain.table)).scalar() == 9
        done = replace_materialized_view(conn, mv)
        assert not done.created and done.indexes == [str(mv._indexes[0].name)]
        assert dict(conn.execute(select(mv.table)).all()) == {0: 3, 1: 3, 2: 3}
        conn.rollback()


@settings(max_examples=8)
@given(names=NAMES)
def test_hostile_names_in_the_tenant_form(pg_schema: PgSchema, names: list[str]) -> None:
    view_name, table_name, col, role = names
    md = MetaData()
    src = Table(table_name, md, Column("tenant_id", BigInteger, nullable=False),
                Column(col, Integer, nullable=False))
    enable_rls(src)
    per = select(src.c.tenant_id, src.c[col], func.count().label("ńcount")).group_by(
        src.c.tenant_id, src.c[col])
    totals = tenant_materialized_view(view_name, per, metadata=md, readers=[role],
                                      unique_key=["tenant_id", col])
    with pg_schema.engine.connect() as conn, conn.begin():
        conn.exec_driver_sql(  # the reader role (a hostile name too), rolled back below
            "CREATE ROLE " + conn.dialect.identifier_preparer.quote(role) + " NOLOGIN"
        )
        md.create_all(conn)
        conn.execute(insert(src), [{"tenant_id": 1 + i % 2, col: i % 3} for i in range(12)])
        refresh(conn, totals)
        tenant_context(conn, 2)
        rows = conn.execute(select(totals.table)).all()
        assert {r[0] for r in rows} == {2} and sum(r[-1] for r in rows) == 6
        conn.rollback()


def test_arguments_are_checked_before_sql() -> None:
    md = MetaData()
    t = Table("t", md, Column("id", Integer), Column("n", Integer))
    q = select(t.c.id, t.c.n)
    bad: list[tuple[object, str]] = [
        (lambda: view(None, q, metadata=md), "name must be a non-empty string"),  # type: ignore[arg-type]
        (lambda: view("v", "SELECT 1", metadata=md), "selectable must be a select"),  # type: ignore[arg-type]
        (lambda: materialized_view("", q, metadata=md), "non-empty string"),
        (lambda: materialized_view("m", q, metadata=md, unique_key=[1]), "list of column"),  # type: ignore[list-item]
        (lambda: materialized_view("m", q, metadata=md, indexes=None), "indexes must be"),  # type: ignore[arg-type]
        (lambda: materialized_view("m", q, metadata=md, with_data="no"), "with_data must be"),  # type: ignore[arg-type]
        (lambda: view("v", q, metadata=md, security_invoker=None), "security_invoker must"),  # type: ignore[arg-type]
        (lambda: materialized_view("m", q, metadata=md, unique_key=None, indexes="x"),  # type: ignore[arg-type]
         "indexes must be"),
    ]
    for build, message in bad:
        with pytest.raises(ViewError, match=message):
            build()  # type: ignore[operator]
    mv = materialized_view("m", q, metadata=MetaData(), unique_key=["id"])
    with pytest.raises(ViewRefreshError, match="concurrently must be True or False"):
        refresh_stmt(mv, concurrently="yes")  # type: ignore[arg-type]
    with pytest.raises(ViewError, match="expected a view"):
        refresh(None, "m")  # type: ignore[arg-type]
    with pytest.raises(ViewError, match="must be a Session or Connection, got NoneType"):
        refresh(None, mv)  # type: ignore[arg-type]
    with pytest.raises(ViewError, match="must be a Session or Connection"):
        replace_materialized_view("engine", mv)  # type: ignore[arg-type]
    with pytest.raises(ViewError, match="keep_indexes must be True or False"):
        replace_materialized_view(None, mv, keep_indexes="no")  # type: ignore[arg-type]
    with pytest.raises(ViewError, match="job_name must be a non-empty string"):
        schedule_refresh(None, mv, "@daily", job_name="")  # type: ignore[arg-type]
    with pytest.raises(ViewError, match="pass the materialized view or job_name"):
        unschedule_refresh(None)  # type: ignore[arg-type]


def test_the_pg_cron_command_is_not_percent_escaped() -> None:
    from pgpatterns.views.schedule import refresh_command

    mv = materialized_view("na%me", select(func.count().label("n%")).select_from(
        Table("t%s", MetaData(), Column("id", Integer)).select().subquery()),
        metadata=MetaData(), unique_key=["n%"])
    assert refresh_command(refresh_stmt(mv), "sch%ema") == (
        'REFRESH MATERIALIZED VIEW CONCURRENTLY "sch%ema"."na%me"'
    )
