"""indexes: BRIN vs B-tree, partial vs full, covering vs plain index, EXCLUDE on insert.

Data: an append-only orders table of N rows (default 10**7, quick 10**5): ``created_at``
follows insert order (N rows over 365 days), ``status`` is 'pending' for 1% of the rows,
``customer_id`` uniform over 5000 customers. All indexes exist at once; a case that must not
see a competing index drops it inside its own transaction, which is rolled back afterwards.
Index sizes are in each case's ``plan`` column and ``extra`` (``index_bytes``).

At default scale the suite takes about 2.5 minutes on the 2-core benchmark machine, load
(~10**7 rows through COPY) and index builds included.

Questions:

* ``indexes:day-range``: count the orders of one day (BRIN / B-tree / no index).
* ``indexes:pending-oldest``: the 100 oldest pending orders (partial index queried through
  ``partial_predicate`` or with a bound parameter / full index).
* ``indexes:customer-totals``: sum(total) of 100 customers (covering / plain index).
* ``indexes:booking-insert``: insert 1000 non-overlapping bookings (EXCLUDE / none).
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    Numeric,
    Select,
    Table,
    Text,
    delete,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.schema import DropIndex

from benchmarks.conftest import Scale, record
from pgpatterns.bulk import copy_rows
from pgpatterns.constraints import no_overlap
from pgpatterns.explain import explain, plan_summary
from pgpatterns.indexes import brin_index, covering_index, partial_index, partial_predicate

START = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
CUSTOMERS = 5000

metadata = MetaData()
orders = Table(
    "bench_idx_orders",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("customer_id", Integer, nullable=False),
    Column("status", Text, nullable=False),
    Column("total", Numeric(12, 2), nullable=False),
)
BRIN = brin_index(orders, "created_at").name
BTREE = Index("bench_idx_orders_created_at_btree", orders.c.created_at).name
PARTIAL_INDEX = partial_index(orders, "created_at", where=orders.c.status == "pending")
PARTIAL = PARTIAL_INDEX.name
FULL = Index("bench_idx_orders_status_created_at", orders.c.status, orders.c.created_at).name
COVERING = covering_index(orders, ["customer_id"], include=["total"]).name
PLAIN = Index("bench_idx_orders_customer_plain", orders.c.customer_id).name

bookings_md = MetaData()
bookings = Table(
    "bench_idx_bookings", bookings_md,
    Column("id", Integer, primary_key=True),
    Column("room_id", Integer, nullable=False),
    Column("starts_at", DateTime(timezone=True), nullable=False),
    Column("ends_at", DateTime(timezone=True), nullable=False),
)
no_overlap(bookings, ("starts_at", "ends_at"), "room_id")
plain_bookings = bookings.to_metadata(MetaData(), name="bench_idx_bookings_plain")
for _c in list(plain_bookings.constraints):
    if _c.name == "bench_idx_bookings_no_overlap":
        plain_bookings.constraints.discard(_c)


def _rows(scale: Scale, n: int) -> Iterator[tuple[Any, ...]]:
    rng = random.Random(scale.seed)
    step = 365 * 86400 / n
    for i in range(1, n + 1):
        yield (
            i, START + dt.timedelta(seconds=i * step), rng.randrange(1, CUSTOMERS + 1),
            "pending" if rng.random() < 0.01 else "paid",
            Decimal(rng.randrange(100, 100_000)) / 100,
        )


@pytest.fixture(scope="module")
def _module() -> Iterator[dict[str, Any]]:
    state: dict[str, Any] = {}
    yield state
    if "engine" in state:
        with state["engine"].begin() as conn:
            orders.drop(conn)


@pytest.fixture
def data(pg_engine: Engine, scale: Scale, _module: dict[str, Any]) -> dict[str, int]:
    if "data" not in _module:
        _module["engine"] = pg_engine
        _module["data"] = _load(pg_engine, scale)
    result: dict[str, int] = _module["data"]
    return result


def _load(pg_engine: Engine, scale: Scale) -> dict[str, int]:
    n = scale.pick(quick=10**5, default=10**7)
    with pg_engine.begin() as conn:
        # synchronous: VACUUM sets all-visible bits only for flushed commits (the harness
        # server runs with synchronous_commit=off)
        conn.execute(text("SET LOCAL synchronous_commit = on"))
        orders.create(conn, checkfirst=False)
        copy_rows(conn, orders, _rows(scale, n))
    with pg_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM (ANALYZE) bench_idx_orders"))
        sizes = {
            name: int(conn.execute(text("SELECT pg_relation_size(to_regclass(:n))"),
                                   {"n": name}).scalar_one())
            for name in (BRIN, BTREE, PARTIAL, FULL, COVERING, PLAIN)
        }
    return {"rows": n, **sizes}


def _run(benchmark: Any, engine: Engine, scale: Scale, stmt: Select[Any], drop: list[str],
         *, question: str, case: str, role: str, sizes: dict[str, int], index: str | None,
         rows: int, **kw: Any) -> Any:
    """Run ``stmt`` with the ``drop``-ped indexes gone (in a rolled-back transaction)."""
    with engine.connect() as conn:
        conn.begin()
        for name in drop:
            conn.execute(DropIndex(next(i for i in orders.indexes if i.name == name)))
        plan = explain(conn, stmt, analyze=True)
        size = sizes.get(index or "", 0)
        label = f"{index} {size / 1024:.0f} kB; " if index else ""
        record(benchmark, question=question, case=case, role=role, rows=rows, scale=scale,
               plan=label + plan_summary(plan), index_bytes=size, **kw)
        result = benchmark.pedantic(lambda: conn.execute(stmt).all(), rounds=scale.rounds,
                                    iterations=1, warmup_rounds=1)
        conn.rollback()
    return result


# -- day range: BRIN vs B-tree -----------------------------------------------------------------
def _day() -> Select[Any]:
    day = START + dt.timedelta(days=200)
    return select(func.count()).where(orders.c.created_at >= day,
                                      orders.c.created_at < day + dt.timedelta(days=1))


@pytest.mark.parametrize(
    ("case", "role", "drop", "index"),
    [
        ("BRIN (brin_index)", "pattern", [BTREE, PARTIAL, FULL], BRIN),
        ("B-tree on created_at", "alternative", [BRIN, PARTIAL, FULL], BTREE),
        ("no index (seq scan)", "baseline", [BRIN, BTREE, PARTIAL, FULL], None),
    ],
)
def test_day_range(benchmark: Any, pg_engine: Engine, data: dict[str, int], scale: Scale,
                   case: str, role: str, drop: list[str], index: str | None) -> None:
    extra: dict[str, Any] = {}
    if index == BTREE:
        extra["size_ratio_btree_over_brin"] = round(data[BTREE] / data[BRIN], 1)
        print(f"\nBRIN {data[BRIN]} bytes, B-tree {data[BTREE]} bytes: "
              f"{data[BTREE] / data[BRIN]:.0f}x (target >= 100x)")
    result = _run(benchmark, pg_engine, scale, _day(), drop, question="indexes:day-range",
                  case=case, role=role, sizes=data, index=index, rows=data["rows"], **extra)
    assert result[0][0] == pytest.approx(data["rows"] / 365, rel=0.01)


# -- pending: partial vs full ------------------------------------------------------------------
def _pending(inline: bool) -> Select[Any]:
    where = partial_predicate(PARTIAL_INDEX) if inline else orders.c.status == "pending"
    return select(orders.c.id).where(where).order_by(orders.c.created_at).limit(100)


@pytest.mark.parametrize(
    ("case", "role", "drop", "index", "inline"),
    [
        ("partial index + partial_predicate()", "pattern", [FULL, BTREE, BRIN], PARTIAL, True),
        ("partial index, status = :param", "alternative", [FULL, BTREE, BRIN], PARTIAL,
         False),
        ("full index (status, created_at)", "alternative", [PARTIAL, BTREE, BRIN], FULL,
         False),
    ],
)
def test_pending_oldest(benchmark: Any, pg_engine: Engine, data: dict[str, int], scale: Scale,
                        case: str, role: str, drop: list[str], index: str, inline: bool
                        ) -> None:
    extra: dict[str, Any] = {}
    if index == FULL:
        extra["size_ratio_full_over_partial"] = round(data[FULL] / data[PARTIAL], 1)
        print(f"\npartial {data[PARTIAL]} bytes, full {data[FULL]} bytes: "
              f"{data[FULL] / data[PARTIAL]:.0f}x (target >= 20x)")
    result = _run(benchmark, pg_engine, scale, _pending(inline), drop,
                  question="indexes:pending-oldest", case=case, role=role, sizes=data,
                  index=index, rows=data["rows"], **extra)
    assert len(result) == 100


# -- customer totals: covering vs plain --------------------------------------------------------
def _totals() -> Select[Any]:
    ids = list(range(1, CUSTOMERS + 1, CUSTOMERS // 100))
    return (select(orders.c.customer_id, func.sum(orders.c.total))
            .where(orders.c.customer_id.in_(ids)).group_by(orders.c.customer_id))


@pytest.mark.parametrize(
    ("case", "role", "drop", "index", "target"),
    [
        ("covering index INCLUDE (total)", "pattern", [PLAIN], COVERING, None),
        ("plain index + heap", "baseline", [COVERING], PLAIN, 1.0),
    ],
)
def test_customer_totals(benchmark: Any, pg_engine: Engine, data: dict[str, int], scale: Scale,
                         case: str, role: str, drop: list[str], index: str,
                         target: float | None) -> None:
    result = _run(benchmark, pg_engine, scale, _totals(), drop,
                  question="indexes:customer-totals", case=case, role=role, sizes=data,
                  index=index, rows=data["rows"], slower_by_at_least=target)
    assert len(result) == 100


# -- booking inserts: EXCLUDE vs none -------------------------------------------------------------
def _booking_rows(n: int) -> list[dict[str, Any]]:
    return [
        {"id": i, "room_id": i % 50, "starts_at": START + dt.timedelta(hours=2 * (i // 50)),
         "ends_at": START + dt.timedelta(hours=2 * (i // 50) + 1)}
        for i in range(n)
    ]


@pytest.mark.parametrize(
    ("case", "role", "table"),
    [("EXCLUDE USING gist (no_overlap)", "pattern", bookings),
     ("no constraint", "limit", plain_bookings)],
)
def test_booking_insert(benchmark: Any, pg_engine: Engine, scale: Scale, case: str, role: str,
                        table: Table) -> None:
    rows = _booking_rows(scale.pick(quick=500, default=2000))
    table.create(pg_engine)
    try:
        record(benchmark, question="indexes:booking-insert", case=case, role=role,
               rows=len(rows), scale=scale, plan="INSERT ... VALUES (executemany)")

        def reset() -> None:
            with pg_engine.begin() as conn:
                conn.execute(delete(table))

        def load(conn_factory: Callable[[], Connection] = pg_engine.begin) -> None:
            with conn_factory() as conn:
                conn.execute(insert(table), rows)

        benchmark.pedantic(load, setup=reset, rounds=scale.rounds, iterations=1)
        with pg_engine.connect() as conn:
            count = conn.execute(select(func.count()).select_from(table)).scalar()
        assert count == len(rows)
    finally:
        table.drop(pg_engine)
