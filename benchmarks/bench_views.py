"""views: an expensive report as a plain view vs a materialized view (pgpatterns.views).

Data: N orders (default 10**7 as in the issue, quick 10**5) over 24 months and 200 shops.
The report: revenue, order count and average basket per shop and month (200 x 24 rows),
declared once as a view and once as a materialized view with
``unique_key=["shop_id", "month"]``.

Questions:

* ``views:report-read``: read the whole report (plain view: aggregates every order on each
  read; materialized view: reads the stored rows).
* ``views:refresh``: ``refresh(session, mv)`` (CONCURRENTLY) vs a plain refresh, after 1000
  new orders; both leave the same contents.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    Engine,
    Integer,
    MetaData,
    Table,
    delete,
    func,
    select,
    text,
)
from sqlalchemy.orm import Session

from benchmarks.conftest import Scale, record
from pgpatterns.bulk import copy_rows
from pgpatterns.explain import explain, plan_summary
from pgpatterns.views import materialized_view, refresh, refresh_stmt, view

START = dt.date(2024, 1, 1)
SHOPS = 200
metadata = MetaData()
orders = Table(
    "bench_views_orders", metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("shop_id", Integer, nullable=False), Column("day", Date, nullable=False),
    Column("cents", Integer, nullable=False),
)
month = func.date_trunc("month", orders.c.day).label("month")
REPORT = select(
    orders.c.shop_id, month, func.count().label("orders"),
    func.sum(orders.c.cents).label("cents"), func.avg(orders.c.cents).label("basket"),
).group_by(orders.c.shop_id, month)
report_view = view("bench_views_report_v", REPORT, metadata=metadata)
report_mv = materialized_view("bench_views_report_mv", REPORT, metadata=metadata,
                              unique_key=["shop_id", "month"])
NEW = 1000


def _rows(scale: Scale, n: int) -> Iterator[tuple[int, int, dt.date, int]]:
    rng = np.random.default_rng(scale.seed)
    shops = rng.integers(1, SHOPS + 1, n).tolist()
    days = rng.integers(0, 730, n).tolist()
    cents = rng.integers(100, 50_000, n).tolist()
    return ((i, s, START + dt.timedelta(days=d), c)
            for i, (s, d, c) in enumerate(zip(shops, days, cents, strict=True)))


@pytest.fixture(scope="module")
def _module() -> Iterator[dict[str, Any]]:
    state: dict[str, Any] = {}
    yield state
    if "engine" in state:
        metadata.drop_all(state["engine"])


@pytest.fixture
def loaded(pg_engine: Engine, scale: Scale, _module: dict[str, Any]) -> int:
    if "n" not in _module:
        _module["engine"] = pg_engine
        n = scale.pick(quick=10**5, default=10**7)
        with pg_engine.begin() as conn:
            metadata.drop_all(conn)
            metadata.create_all(conn)
            copy_rows(conn, orders, _rows(scale, n))
            conn.execute(refresh_stmt(report_mv, concurrently=False))
        with pg_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE bench_views_orders, bench_views_report_mv"))
        _module["n"] = n
    result: int = _module["n"]
    return result


def _sorted(stmt: Any) -> Any:
    return stmt.order_by(text("shop_id"), text("month"))


READ_CASES = {
    "materialized view (pgpatterns.views)": ("pattern", report_mv),
    "plain view (aggregate on every read)": ("baseline", report_view),
}


@pytest.mark.parametrize("case", list(READ_CASES))
def test_report_read(benchmark: Any, pg_engine: Engine, loaded: int, scale: Scale,
                     case: str) -> None:
    role, obj = READ_CASES[case]
    stmt = _sorted(select(obj.table))
    with Session(pg_engine) as s:
        plan = explain(s, stmt, analyze=True)
        expected = s.execute(_sorted(select(report_view.table))).all()
    record(benchmark, question="views:report-read", case=case, role=role, rows=loaded,
           scale=scale, plan=plan_summary(plan),
           **({"slower_by_at_least": 10} if role == "baseline" else {}))

    def run() -> list[Any]:
        with pg_engine.connect() as conn:
            return list(conn.execute(stmt).all())

    rounds = scale.rounds if role == "pattern" else min(scale.rounds, 3)
    found = benchmark.pedantic(run, rounds=rounds, iterations=1, warmup_rounds=1)
    assert len(found) == len(expected) == SHOPS * 24
    assert [(r.shop_id, r.month, r.orders, r.cents) for r in found] == [
        (r.shop_id, r.month, r.orders, r.cents) for r in expected
    ]


def _add_orders(engine: Engine, loaded: int) -> None:
    """Each round starts from the same change: 1000 new orders since the last refresh."""
    with engine.begin() as conn:
        conn.execute(delete(orders).where(orders.c.id >= loaded))
        conn.execute(orders.insert(), [
            {"id": loaded + i, "shop_id": 1 + i % SHOPS, "day": START, "cents": 100}
            for i in range(NEW)
        ])


REFRESH_CASES = {
    "refresh(concurrently=True): readers not blocked": ("pattern", True),
    "plain REFRESH: blocks readers": ("alternative", False),
}


@pytest.mark.parametrize("case", list(REFRESH_CASES))
def test_refresh(benchmark: Any, pg_engine: Engine, loaded: int, scale: Scale,
                 case: str) -> None:
    role, concurrently = REFRESH_CASES[case]
    record(benchmark, question="views:refresh", case=case, role=role, rows=loaded,
           scale=scale, plan=str(refresh_stmt(report_mv, concurrently=concurrently).compile()),
           note="min(rounds, 3) rounds")

    def run() -> None:
        with Session(pg_engine) as s:
            refresh(s, report_mv, concurrently=concurrently)
            s.commit()

    benchmark.pedantic(run, setup=lambda: _add_orders(pg_engine, loaded),
                       rounds=min(scale.rounds, 3), iterations=1, warmup_rounds=0)
    with pg_engine.connect() as conn:
        stored = conn.execute(select(func.sum(report_mv.table.c.orders))).scalar()
    assert stored == loaded + NEW
