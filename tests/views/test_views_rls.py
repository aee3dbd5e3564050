"""Views and materialized views over row-level-secured tables (issue #16.5), as the app role.

The owner (a superuser) creates the schema, loads rows and refreshes; every read under test
runs as the non-owner application role with ``tenant_context`` set.
"""

from __future__ import annotations

import secrets
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import BigInteger, Engine, MetaData, Table, func, insert, select, text
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.pool import NullPool

from pgpatterns.ddl import View
from pgpatterns.errors import RLSViewError, ViewError, ViewRefreshError, ViewRLSError
from pgpatterns.rls import rls_view, tenant_context
from pgpatterns.testing import Database
from pgpatterns.testing.plugin import PgSchema
from pgpatterns.views import (
    ReadOnlyView,
    materialized_view,
    refresh,
    refresh_async,
    replace_materialized_view,
    tenant_materialized_view,
    tenant_rows,
    view,
)

ROWS = [  # (tenant, id, shop, cents)
    (1, 1, 10, 100), (1, 2, 10, 50), (1, 3, 11, 7),
    (2, 4, 10, 1000), (2, 5, 12, 1), (2, 6, 12, 2),
]


@dataclass
class Shop:
    md: MetaData
    sales: Table
    totals: View
    base: Any


def _model(app_role: str) -> Shop:
    class Base(DeclarativeBase):
        metadata = MetaData()

    from pgpatterns.rls import TenantScoped

    class Sale(TenantScoped, Base):
        __tablename__ = "sales"
        __tenant_roles__ = (app_role,)
        id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
        shop: Mapped[int]
        cents: Mapped[int]

    sales = Sale.__table__
    assert isinstance(sales, Table)
    per_shop = select(
        sales.c.tenant_id, sales.c.shop, func.sum(sales.c.cents).label("cents")
    ).group_by(sales.c.tenant_id, sales.c.shop)
    totals = tenant_materialized_view(
        "shop_totals", per_shop, metadata=Base.metadata, readers=[app_role],
        unique_key=["shop", "tenant_id"],
    )
    return Shop(Base.metadata, sales, totals, Base)


def _expected(tenant: int, rows: list[tuple[int, int, int, int]] = ROWS) -> dict[int, int]:
    totals: Counter[int] = Counter()
    for t, _, shop, cents in rows:
        if t == tenant:
            totals[shop] += cents
    return dict(totals)


@pytest.fixture
def shop(pg_schema: PgSchema, pg_database: Database) -> Shop:
    made = _model(pg_database.app_role)
    with pg_schema.engine.begin() as conn:
        made.md.create_all(conn)
        conn.execute(insert(made.sales), [
            {"tenant_id": t, "id": i, "shop": s, "cents": c} for t, i, s, c in ROWS
        ])
        refresh(conn, made.totals)
    return made


def _read(app: Engine, shop: Shop, tenant: int | None) -> dict[int, int]:
    with app.begin() as conn:
        if tenant is not None:
            tenant_context(conn, tenant)
        rows = conn.execute(select(shop.totals.table.c.shop, shop.totals.table.c.cents)).all()
    return {s: int(c) for s, c in rows}


# -- refusals at declaration (no SQL) -------------------------------------------------------
def test_views_over_rls_tables_are_refused_with_the_fix_named() -> None:
    shop = _model("app_user")
    s = shop.sales
    per_shop = select(s.c.tenant_id, s.c.shop, func.sum(s.c.cents).label("cents")).group_by(
        s.c.tenant_id, s.c.shop)
    with pytest.raises(ViewRLSError, match=r"reads sales.*tenant_materialized_view"):
        materialized_view("leaky_totals", per_shop, metadata=MetaData())
    with pytest.raises(ViewError, match=r"reads sales.*security_invoker=False"):
        view("leaky", select(s.c.id), metadata=MetaData(), security_invoker=False)
    allowed = materialized_view("all_totals", per_shop, metadata=MetaData(), allow_rls=True)
    for invoker in (False, True):  # no policy applies to a matview's rows either way
        with pytest.raises(RLSViewError, match="all_totals"):
            rls_view("over_mv", select(allowed.table), security_invoker=invoker)
        with pytest.raises(ViewRLSError, match="all_totals"):
            view("over_mv", select(allowed.table), metadata=MetaData(),
                 security_invoker=invoker)
    # the private rows of the tenant form count as such a materialized view too
    hidden = tenant_rows(shop.totals)
    assert hidden is not None and hidden.name == "shop_totals_mv"
    with pytest.raises(RLSViewError, match="shop_totals_mv"):
        rls_view("peek", select(hidden.table))
    # reading the filtered reader view is fine, through invoker views too
    assert view("mine", select(shop.totals.table), metadata=shop.md).security_invoker
    assert rls_view("mine2", select(shop.totals.table)).security_invoker


def test_tenant_form_validates_before_sql() -> None:
    shop = _model("app_user")
    s = shop.sales
    per_shop = select(s.c.tenant_id, s.c.shop).group_by(s.c.tenant_id, s.c.shop)
    no_tenant = select(s.c.shop).group_by(s.c.shop)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"selectable": no_tenant}, "must produce the tenant column 'tenant_id'"),
        ({"unique_key": ["shop"]}, r"leaves out 'tenant_id'"),
        ({"readers": []}, "readers must name the role"),
        ({"readers": ["PUBLIC"]}, "not PUBLIC"),
        ({"readers": None}, "readers must name the role"),
        ({"selectable": "SELECT 1"}, "selectable must be a select"),
        ({"name": ""}, "non-empty string"),
        ({"metadata": None}, "metadata must be"),
    ]
    for change, message in cases:
        kw: dict[str, Any] = {"name": "t", "selectable": per_shop, "metadata": MetaData(),
                              "readers": ["app_user"], **change}
        name, selectable = kw.pop("name"), kw.pop("selectable")
        with pytest.raises(ViewError, match=message):
            tenant_materialized_view(name, selectable, **kw)


def test_tenant_form_renders_private_rows_and_a_filtered_door() -> None:
    shop = _model("app user")
    rows = tenant_rows(shop.totals)
    assert rows is not None
    mv_sql = rows.sql().split(";\n")
    assert mv_sql[1] == (
        "CREATE UNIQUE INDEX shop_totals_mv_key ON shop_totals_mv (tenant_id, shop)"
    )
    assert mv_sql[-1] == 'REVOKE ALL ON shop_totals_mv FROM PUBLIC, "app user"'
    view_sql = shop.totals.sql().split(";\n")
    assert view_sql[0].startswith("CREATE VIEW shop_totals WITH (security_barrier = true) AS")
    assert "current_setting('app.tenant_id', true)" in view_sql[0]
    assert view_sql[1] == 'GRANT SELECT ON shop_totals TO "app user"'


# -- real PostgreSQL, as the app role -----------------------------------------------------------
def test_each_tenant_reads_only_its_own_aggregates(shop: Shop, pg_schema: PgSchema) -> None:
    app = pg_schema.app_engine
    assert _read(app, shop, 1) == _expected(1)
    assert _read(app, shop, 2) == _expected(2)
    assert _read(app, shop, None) == {}  # no context: nothing
    hidden = tenant_rows(shop.totals)
    assert hidden is not None
    with app.begin() as conn, pytest.raises(ProgrammingError, match="permission denied"):
        conn.execute(select(func.count()).select_from(hidden.table))
    with app.begin() as conn:  # a condition of the reader's runs after the tenant filter
        tenant_context(conn, 1)
        other = conn.execute(
            select(func.count()).select_from(shop.totals.table)
            .where(shop.totals.table.c.tenant_id == 2)
        ).scalar()
        assert other == 0


def test_refresh_plain_and_concurrent_show_new_rows(shop: Shop, pg_schema: PgSchema) -> None:
    app = pg_schema.app_engine
    extra = [(1, 7, 10, 5), (2, 8, 13, 9)]
    with pg_schema.engine.begin() as conn:
        conn.execute(insert(shop.sales), [
            {"tenant_id": t, "id": i, "shop": s, "cents": c} for t, i, s, c in extra
        ])
        assert _read(app, shop, 1) == _expected(1)  # a snapshot until refreshed
        refresh(conn, shop.totals, concurrently=True)
    assert _read(app, shop, 1) == _expected(1, ROWS + extra)
    assert _read(app, shop, 2) == _expected(2, ROWS + extra)
    with Session(pg_schema.engine) as session:
        refresh(session, shop.totals, concurrently=False)
        session.commit()
    assert _read(app, shop, 2) == _expected(2, ROWS + extra)


def test_reader_view_maps_as_read_only_class(shop: Shop, pg_schema: PgSchema) -> None:
    class ShopTotal(ReadOnlyView, shop.base):  # type: ignore[misc, name-defined]
        __view__ = shop.totals

    with Session(pg_schema.app_engine) as session, session.begin():
        tenant_context(session, 2)
        got = {(r.shop, int(r.cents)) for r in session.scalars(select(ShopTotal))}
    assert got == set(_expected(2).items())


async def test_async_refresh_of_the_tenant_form(
    shop: Shop, pg_schema: PgSchema, pg_database: Database
) -> None:
    with pg_schema.engine.begin() as conn:
        conn.execute(insert(shop.sales).values(tenant_id=1, id=99, shop=10, cents=1))
    engine = create_async_engine(
        pg_database.url, poolclass=NullPool,
        connect_args=pg_database.search_path_args(pg_schema.name),
    )
    try:
        async with AsyncSession(engine) as session:
            await refresh_async(session, shop.totals)
            await session.commit()
    finally:
        await engine.dispose()
    assert _read(pg_schema.app_engine, shop, 1) == _expected(1, [*ROWS, (1, 99, 10, 1)])


def test_refresh_refuses_an_owner_to_whom_rls_applies(shop: Shop, pg_schema: PgSchema) -> None:
    """A matview owned by a role without BYPASSRLS is computed from no rows under FORCE RLS:
    refresh() says so instead of emptying it."""
    role = f"mv_owner_{secrets.token_hex(4)}"
    hidden = tenant_rows(shop.totals)
    assert hidden is not None
    with pg_schema.engine.begin() as conn:
        conn.execute(text(f'CREATE ROLE "{role}" NOLOGIN'))
    try:
        with pg_schema.engine.begin() as conn:
            conn.execute(text(f'GRANT USAGE ON SCHEMA "{pg_schema.name}" TO "{role}"'))
            conn.execute(text(f'GRANT SELECT ON sales TO "{role}"'))
            conn.execute(text(f'ALTER MATERIALIZED VIEW shop_totals_mv OWNER TO "{role}"'))
            with pytest.raises(ViewRefreshError, match=rf"{role}.*sales.*BYPASSRLS"):
                refresh(conn, shop.totals)
            conn.execute(text("REFRESH MATERIALIZED VIEW shop_totals_mv"))  # what it prevents
            assert conn.execute(select(func.count()).select_from(hidden.table)).scalar() == 0
            conn.rollback()
    finally:
        with pg_schema.engine.begin() as conn:
            conn.execute(text(f'DROP OWNED BY "{role}"'))
            conn.execute(text(f'DROP ROLE "{role}"'))


def test_concurrent_refresh_racing_readers(shop: Shop, pg_schema: PgSchema) -> None:
    """8 app-role readers (two tenants) while the owner writes and refreshes CONCURRENTLY:
    no reader sees an error or an empty result, and each sees one of the refreshed states."""
    app, owner = pg_schema.app_engine, pg_schema.engine
    rounds = 6
    states: dict[int, list[dict[int, int]]] = {1: [_expected(1)], 2: [_expected(2)]}
    rows = list(ROWS)
    for n in range(rounds):  # each round adds one sale per tenant to an existing shop
        rows += [(1, 100 + 2 * n, 10, n + 1), (2, 101 + 2 * n, 12, n + 1)]
        states[1].append(_expected(1, rows))
        states[2].append(_expected(2, rows))
    errors: list[BaseException] = []
    seen: list[tuple[int, dict[int, int]]] = []
    done = threading.Event()
    lock = threading.Lock()

    def reader(tenant: int) -> None:
        try:
            while not done.is_set():
                got = _read(app, shop, tenant)
                with lock:
                    seen.append((tenant, got))
        except BaseException as exc:
            errors.append(exc)

    def refresher() -> None:
        try:
            for n in range(rounds):
                with owner.begin() as conn:
                    t1, t2 = rows[len(ROWS) + 2 * n], rows[len(ROWS) + 2 * n + 1]
                    conn.execute(insert(shop.sales), [
                        {"tenant_id": t, "id": i, "shop": s, "cents": c} for t, i, s, c in (t1, t2)
                    ])
                    refresh(conn, shop.totals, concurrently=True)
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    threads = [threading.Thread(target=reader, args=(1 + i % 2,)) for i in range(8)]
    threads.append(threading.Thread(target=refresher))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert not any(t.is_alive() for t in threads)
    assert len(seen) >= 8
    for tenant, got in seen:
        assert got, "a reader saw an empty result"
        assert got in states[tenant]
    assert _read(app, shop, 1) == states[1][-1]
    assert _read(app, shop, 2) == states[2][-1]


def test_replace_the_tenant_form_keeps_the_door_and_the_grants(
    shop: Shop, pg_schema: PgSchema, pg_database: Database
) -> None:
    s = shop.sales
    v2 = tenant_materialized_view(
        "shop_totals",
        select(s.c.tenant_id, s.c.shop, func.sum(s.c.cents).label("cents"),
               func.count().label("sales")).group_by(s.c.tenant_id, s.c.shop),
        metadata=MetaData(), readers=[pg_database.app_role], unique_key=["tenant_id", "shop"],
    )
    with Session(pg_schema.engine) as session:
        done = replace_materialized_view(session, v2)
        session.commit()
    assert done.indexes == ["shop_totals_mv_key"] and not done.created
    with pg_schema.app_engine.begin() as conn:
        tenant_context(conn, 2)
        got = {r.shop: (int(r.cents), r.sales) for r in conn.execute(select(v2.table))}
    assert got == {10: (1000, 1), 12: (3, 2)}
    hidden = tenant_rows(v2)
    assert hidden is not None
    with pg_schema.app_engine.begin() as conn, pytest.raises(ProgrammingError):
        conn.execute(select(func.count()).select_from(hidden.table))
