"""pgpatterns.views against a real PostgreSQL: create, map, refresh, replace, schedule."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
import pytest
from sqlalchemy import (
    Column,
    Date,
    Engine,
    Integer,
    MetaData,
    Table,
    Text,
    create_engine,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Session
from sqlalchemy.pool import NullPool

from pgpatterns.ddl import diff
from pgpatterns.errors import (
    ReadOnlyViewError,
    ViewRefreshError,
    ViewReplaceError,
    ViewScheduleError,
)
from pgpatterns.testing import Database
from pgpatterns.testing.plugin import PgSchema
from pgpatterns.views import (
    ReadOnlyView,
    materialized_view,
    refresh,
    refresh_async,
    refresh_stmt,
    replace_materialized_view,
    replace_materialized_view_async,
    schedule_refresh,
    unschedule_refresh,
    view,
)


def _model(schema: str | None = None) -> dict[str, Any]:
    md = MetaData()
    orders = Table(
        "orders",
        md,
        Column("id", Integer, primary_key=True),
        Column("day", Date, nullable=False),
        Column("shop", Text, nullable=False),
        Column("cents", Integer, nullable=False),
        schema=schema,
    )
    big = view(
        "big_orders", select(orders.c.id, orders.c.shop).where(orders.c.cents >= 1000),
        metadata=md, key=["id"], schema=schema,
    )
    per_day = select(orders.c.day, func.sum(orders.c.cents).label("cents")).group_by(orders.c.day)
    daily = materialized_view(
        "daily_sales", per_day, metadata=md, unique_key=["day"], schema=schema,
        indexes=[("daily_sales_cents", ["cents"], False)],
    )
    return {"md": md, "orders": orders, "big": big, "daily": daily, "per_day": per_day}


ROWS = [
    {"id": i, "day": dt.date(2026, 1, 1 + i % 5), "shop": f"s{i % 3}", "cents": 100 * i}
    for i in range(1, 31)
]


def _setup(engine: Engine, schema: str | None = None) -> dict[str, Any]:
    m = _model(schema)
    with engine.begin() as conn:
        m["md"].create_all(conn)  # the materialized view is created empty here
        conn.execute(insert(m["orders"]), ROWS)
        conn.execute(refresh_stmt(m["daily"], concurrently=False))
    return m


def test_view_and_matview_are_created_queried_and_mapped(pg_schema: PgSchema) -> None:
    m = _setup(pg_schema.engine)

    class Base(DeclarativeBase):
        pass

    class BigOrder(ReadOnlyView, Base):
        __view__ = m["big"]

    class DailySales(ReadOnlyView, Base):
        __view__ = m["daily"]

    with Session(pg_schema.engine) as session:
        big = session.scalars(select(BigOrder).order_by(BigOrder.__table__.c.id)).all()
        assert [b.id for b in big] == [i for i in range(1, 31) if 100 * i >= 1000]  # type: ignore[attr-defined]
        session.execute(insert(m["orders"]).values(id=99, day=dt.date(2026, 2, 1), shop="x",
                                                   cents=7))
        assert len(session.scalars(select(DailySales)).all()) == 5  # a snapshot
        refresh(session, DailySales)  # concurrently: the unique key is there
        days = session.scalars(select(DailySales).order_by(DailySales.__table__.c.day)).all()
        assert [(d.day, d.cents) for d in days][-1] == (dt.date(2026, 2, 1), 7)  # type: ignore[attr-defined]
        session.commit()
    with pg_schema.engine.connect() as conn:
        assert diff(conn, m["md"]) == []


def test_orm_writes_to_a_view_raise_before_sql(pg_schema: PgSchema) -> None:
    m = _setup(pg_schema.engine)

    class Base(DeclarativeBase):
        pass

    class DailySales(ReadOnlyView, Base):
        __view__ = m["daily"]

    with Session(pg_schema.engine) as session:
        row = session.scalars(select(DailySales).limit(1)).one()
        row.cents = 0  # type: ignore[attr-defined]
        with pytest.raises(ReadOnlyViewError, match="cannot update DailySales"):
            session.flush()
        session.rollback()
        session.add(DailySales(day=dt.date(2030, 1, 1), cents=1))
        with pytest.raises(ReadOnlyViewError, match=r"cannot insert DailySales.*read-only"):
            session.flush()
        session.rollback()
        session.delete(session.scalars(select(DailySales).limit(1)).one())
        with pytest.raises(ReadOnlyViewError, match="cannot delete"):
            session.flush()


def test_refresh_without_unique_key_is_refused_before_sql() -> None:
    md = MetaData()
    t = Table("t", md, Column("day", Date), Column("n", Integer))
    mv = materialized_view("no_key", select(t.c.day, t.c.n), metadata=md)
    with pytest.raises(ViewRefreshError, match=r"unique_key=.*concurrently=False"):
        refresh(None, mv)  # type: ignore[arg-type]  # raised before the session is touched


def _lock_wait(pg_schema: PgSchema, concurrently: bool) -> str:
    """Refresh in one connection (uncommitted); read from another with a short lock_timeout."""
    m = _setup(pg_schema.engine)
    with Session(pg_schema.engine) as writer, pg_schema.engine.connect() as reader:
        refresh(writer, m["daily"], concurrently=concurrently)  # lock held until commit
        reader.execute(text("SET lock_timeout = '300ms'"))
        try:
            n = reader.execute(select(func.count()).select_from(m["daily"].table)).scalar()
            outcome = f"read {n}"
        except OperationalError as exc:
            assert isinstance(exc.orig, psycopg.errors.LockNotAvailable)
            outcome = "blocked"
        writer.commit()
    return outcome


def test_concurrent_refresh_does_not_block_a_reader(pg_schema: PgSchema) -> None:
    assert _lock_wait(pg_schema, concurrently=True) == "read 5"


def test_plain_refresh_blocks_a_reader(pg_schema: PgSchema) -> None:
    assert _lock_wait(pg_schema, concurrently=False) == "blocked"


def test_never_populated_view_is_filled_plainly(pg_schema: PgSchema) -> None:
    md = MetaData()
    t = Table("t", md, Column("day", Date, nullable=False))
    mv = materialized_view("days", select(t.c.day).distinct(), metadata=md, unique_key=["day"],
                           with_data=False)
    with Session(pg_schema.engine) as session:
        md.create_all(session.connection())
        session.execute(insert(t), [{"day": dt.date(2026, 1, 1)}])
        refresh(session, mv)  # CONCURRENTLY is impossible on an unpopulated view
        assert session.execute(select(func.count()).select_from(mv.table)).scalar() == 1


def _indexes(conn: Any, name: str) -> list[str]:
    return sorted(
        conn.execute(
            text("SELECT indexrelid::regclass::text FROM pg_index"
                 " WHERE indrelid = to_regclass(:n)"),
            {"n": name},
        ).scalars()
    )


def test_replace_keeps_declared_and_hand_made_indexes_and_grants(
    pg_schema: PgSchema, pg_database: Database
) -> None:
    m = _setup(pg_schema.engine)
    with pg_schema.engine.begin() as conn:
        conn.execute(text("CREATE INDEX daily_sales_by_day_cents ON daily_sales (day, cents)"))
        conn.execute(text(f'REVOKE ALL ON daily_sales FROM "{pg_database.app_role}"'))
        conn.execute(text(f'GRANT SELECT ON daily_sales TO "{pg_database.app_role}"'))
        before = _indexes(conn, "daily_sales")
    # v2: one more column, same name and declared indexes
    orders = m["orders"]
    v2 = materialized_view(
        "daily_sales",
        select(orders.c.day, func.sum(orders.c.cents).label("cents"),
               func.count().label("orders")).group_by(orders.c.day),
        metadata=MetaData(), unique_key=["day"],
        indexes=[("daily_sales_cents", ["cents"], False)],
    )
    with Session(pg_schema.engine) as session:
        done = replace_materialized_view(session, v2)
        session.commit()
    assert done.kept == ["daily_sales_by_day_cents"]
    assert ("SELECT", pg_database.app_role) in done.grants
    with pg_schema.engine.connect() as conn:
        assert _indexes(conn, "daily_sales") == before
        assert conn.execute(text("SELECT sum(orders) FROM daily_sales")).scalar() == 30
        assert diff(conn, [v2]) == []
    with pg_schema.app_engine.connect() as conn:  # the grant survived the swap
        assert conn.execute(text("SELECT count(*) FROM daily_sales")).scalar() == 5


def test_replace_refuses_when_views_depend_on_it(pg_schema: PgSchema) -> None:
    m = _setup(pg_schema.engine)
    with pg_schema.engine.begin() as conn:
        conn.execute(text("CREATE VIEW busy_days AS SELECT day FROM daily_sales WHERE cents > 0"))
    with Session(pg_schema.engine) as session, pytest.raises(ViewReplaceError, match="busy_days"):
        replace_materialized_view(session, m["daily"])
    with pg_schema.engine.connect() as conn:  # nothing was created or dropped
        names = conn.execute(
            text("SELECT relname FROM pg_class WHERE relname LIKE 'pgp_new_%'")
        ).all()
        assert names == []
        assert conn.execute(text("SELECT count(*) FROM daily_sales")).scalar() == 5


def test_replace_refuses_an_index_it_cannot_rebuild(pg_schema: PgSchema) -> None:
    m = _setup(pg_schema.engine)
    with pg_schema.engine.begin() as conn:
        conn.execute(text("CREATE INDEX daily_sales_expr ON daily_sales ((cents * 2))"))
    with Session(pg_schema.engine) as session, pytest.raises(
        ViewReplaceError, match=r"daily_sales_expr.*expressions.*keep_indexes=False"
    ):
        replace_materialized_view(session, m["daily"])
    with Session(pg_schema.engine) as session:
        done = replace_materialized_view(session, m["daily"], keep_indexes=False)
        session.commit()
    assert done.kept == []
    with pg_schema.engine.connect() as conn:
        assert "daily_sales_expr" not in _indexes(conn, "daily_sales")


async def test_async_refresh_and_replace(pg_schema: PgSchema, pg_database: Database) -> None:
    m = _setup(pg_schema.engine)
    args = pg_database.search_path_args(pg_schema.name)
    engine = create_async_engine(pg_database.url, poolclass=NullPool, connect_args=args)
    try:
        async with AsyncSession(engine) as session:
            await session.execute(insert(m["orders"]).values(id=99, day=dt.date(2027, 1, 1),
                                                             shop="x", cents=5))
            await refresh_async(session, m["daily"])
            n = (await session.execute(select(func.count()).select_from(m["daily"].table))).scalar()
            assert n == 6
            done = await replace_materialized_view_async(session, m["daily"])
            await session.commit()
        assert done.indexes == ["daily_sales_key", "daily_sales_cents"]
    finally:
        await engine.dispose()


def test_schedule_refresh_says_when_pg_cron_is_missing(pg_schema: PgSchema) -> None:
    m = _setup(pg_schema.engine)
    with Session(pg_schema.engine) as session:
        with pytest.raises(ViewScheduleError, match="not a pg_cron schedule"):
            schedule_refresh(session, m["daily"], "every five minutes")
        with pytest.raises(ViewScheduleError, match="pg_cron is not available"):
            schedule_refresh(session, m["daily"], "*/5 * * * *")


@pytest.mark.requires_extension("pg_cron")
def test_schedule_refresh_creates_a_pg_cron_job(pg_schema: PgSchema, pg_database: Database) -> None:
    m = _setup(pg_schema.engine, schema=pg_schema.name)
    server = pg_database.server
    with psycopg.connect(server.conninfo("postgres"), autocommit=True) as admin:
        cron_db = admin.execute("SELECT current_setting('cron.database_name')").fetchone()
        admin.execute("CREATE EXTENSION IF NOT EXISTS pg_cron")
    assert cron_db == ("postgres",)
    cron_engine = create_engine(server.admin_url, poolclass=NullPool)
    try:
        with Session(cron_engine) as session:
            job = schedule_refresh(session, m["daily"], "*/5 * * * *", database=pg_database.name)
            again = schedule_refresh(session, m["daily"], "*/10 * * * *", database=pg_database.name)
            row = session.execute(
                text("SELECT schedule, command, database FROM cron.job WHERE jobid = :j"),
                {"j": job},
            ).one()
            session.commit()
        assert again == job  # same job name: updated, not duplicated
        assert row.schedule == "*/10 * * * *"
        assert row.database == pg_database.name
        assert row.command == (
            f'REFRESH MATERIALIZED VIEW CONCURRENTLY "{pg_schema.name}".daily_sales'
            if pg_schema.name != pg_schema.name.lower() else
            f"REFRESH MATERIALIZED VIEW CONCURRENTLY {pg_schema.name}.daily_sales"
        )
        with pg_schema.engine.begin() as conn:  # the command runs as written
            conn.execute(text(row.command))
        with Session(cron_engine) as session:
            assert unschedule_refresh(session, m["daily"]) is True
            assert unschedule_refresh(session, m["daily"]) is False
            session.commit()
    finally:
        cron_engine.dispose()
