"""pgpatterns.indexes: validation, DDL shape, plan-level effect of each factory, index_report."""

from __future__ import annotations

import datetime as dt
import random
import warnings
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Engine,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    Table,
    Text,
    func,
    select,
    text,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSTZRANGE
from sqlalchemy.schema import CreateIndex

from pgpatterns.bulk import copy_rows
from pgpatterns.errors import IndexDefinitionError
from pgpatterns.explain import explain, has_seq_scan, nodes, scan_types, uses_index
from pgpatterns.indexes import (
    BrinCorrelationWarning,
    brin_index,
    check_index,
    covering_index,
    expression_index,
    gin_index,
    gist_index,
    index_report,
    index_report_async,
    partial_index,
    partial_predicate,
)
from pgpatterns.testing.plugin import PgSchema

DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]
START = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
ROWS = 30_000


def _orders(metadata: MetaData | None = None) -> Table:
    return Table(
        "orders",
        metadata or MetaData(),
        Column("id", BigInteger, primary_key=True),
        Column("customer_id", Integer, nullable=False),
        Column("status", Text, nullable=False),
        Column("total", Numeric(12, 2), nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("note", Text),
        Column("tags", ARRAY(Text)),
        Column("attrs", JSONB),
        Column("during", TSTZRANGE),
    )


def _ddl(index: Index) -> str:
    return str(CreateIndex(index).compile(dialect=DIALECT))


# -- compile-only ------------------------------------------------------------------------
def test_factory_ddl() -> None:
    t = _orders()
    assert _ddl(partial_index(t, "created_at", where=t.c.status == "pending")) == (
        "CREATE INDEX orders_created_at_partial_idx ON orders (created_at) "
        "WHERE status = 'pending'"
    )
    assert _ddl(covering_index(t, [t.c.customer_id], include=["total"])) == (
        "CREATE INDEX orders_customer_id_incl_idx ON orders (customer_id) INCLUDE (total)"
    )
    assert _ddl(brin_index(t, "created_at", pages_per_range=16)) == (
        "CREATE INDEX orders_created_at_brin ON orders USING brin (created_at) "
        "WITH (pages_per_range = 16)"
    )
    assert _ddl(gin_index(t, "attrs", ops="jsonb_path_ops")) == (
        "CREATE INDEX orders_attrs_gin ON orders USING gin (attrs jsonb_path_ops)"
    )
    assert _ddl(gin_index(t, t.c.tags)) == "CREATE INDEX orders_tags_gin ON orders USING gin (tags)"
    assert _ddl(gin_index(t, "note", ops="gin_trgm_ops")).endswith("(note gin_trgm_ops)")
    assert _ddl(gist_index(t, "customer_id", "during")) == (
        "CREATE INDEX orders_customer_id_during_gist ON orders USING gist (customer_id, during)"
    )
    ix = expression_index(t, func.lower(t.c.note), name="orders_note_lower_idx",
                          ops="text_pattern_ops")
    assert _ddl(ix) == (
        "CREATE INDEX orders_note_lower_idx ON orders (lower(note) text_pattern_ops)"
    )


@pytest.mark.parametrize(
    ("build", "fragment"),
    [
        (lambda t: partial_index(t, "nope", where=t.c.status == "x"), "has no column 'nope'"),
        (lambda t: partial_index(t, "id", where=None), "where= must be"),
        (lambda t: covering_index(t, ["customer_id"], include=["customer_id", "total"]),
         "both a key column and in include"),
        (lambda t: covering_index(t, ["customer_id"], include=[]), "include= is empty"),
        (lambda t: brin_index(t, "created_at", pages_per_range=0), "out of range"),
        (lambda t: gin_index(t, "note"), "no default operator class"),
        (lambda t: gin_index(t, "customer_id"), "cannot index customer_id"),
        (lambda t: gin_index(t, "attrs", ops="jsonb_pathops"), "does not exist for GIN"),
        (lambda t: gist_index(t, "during", ops="gist_trgm_ops"), "does not exist for GIST"),
        (lambda t: gist_index(t, "during", "note", ops={"dur": "range_ops"}),
         "not key columns"),
        (lambda t: brin_index(t, "created_at", name="x" * 64), "truncates"),
        (lambda t: expression_index(t, func.now(), name="orders_now_idx"), "no column"),
        (lambda t: partial_index(t, "id", where=_orders().c.status == "x"),
         "can only mention columns of orders"),
    ],
)
def test_factories_refuse_bad_input(build: Callable[[Table], Any], fragment: str) -> None:
    t = _orders()
    with pytest.raises(IndexDefinitionError, match=fragment):
        build(t)
    assert not t.indexes  # nothing half-added


def test_check_index_catches_silently_dropped_ops() -> None:
    """pgvector-python #65: an ops key that matches no column is dropped by SQLAlchemy."""
    t = _orders()
    index = Index("orders_note_idx", t.c.note, postgresql_ops={"notes": "text_pattern_ops"})
    assert "text_pattern_ops" not in _ddl(index)  # what SQLAlchemy alone does
    with pytest.raises(IndexDefinitionError, match="key 'notes' matches no key column"):
        check_index(index)
    with pytest.raises(IndexDefinitionError, match="already has an index"):
        brin_index(t, "created_at", name="orders_note_idx")


# -- real PostgreSQL ---------------------------------------------------------------------
def _load(engine: Engine, table: Table, *, ordered: bool = True) -> None:
    rng = random.Random(11)
    statuses = ["paid"] * 97 + ["shipped"] * 2 + ["pending"]
    rows = []
    for i in range(1, ROWS + 1):
        seconds = i * 60 if ordered else rng.randrange(ROWS * 60)
        rows.append({
            "id": i, "customer_id": rng.randrange(1, 2000), "status": rng.choice(statuses),
            "total": Decimal(rng.randrange(100, 100_000)) / 100,
            "created_at": START + dt.timedelta(seconds=seconds),
        })
    with engine.begin() as conn:
        # the harness runs with synchronous_commit=off; VACUUM marks pages all-visible only
        # once the inserting commit is flushed, so make this commit synchronous
        conn.execute(text("SET LOCAL synchronous_commit = on"))
        table.metadata.create_all(conn)
        copy_rows(conn, table, rows)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM (ANALYZE) orders"))


def conn_count(engine: Engine, day: dt.datetime) -> int:
    with engine.connect() as conn:
        query = text("SELECT count(*) FROM orders WHERE status = 'pending' AND created_at > :d")
        return int(conn.execute(query, {"d": day}).scalar_one())


def test_partial_index_used_only_for_its_predicate(pg_schema: PgSchema) -> None:
    t = _orders(MetaData())
    index = partial_index(t, "created_at", where=t.c.status == "pending")
    _load(pg_schema.engine, t)
    day = START + dt.timedelta(days=5)
    inlined = select(t.c.id).where(partial_predicate(index), t.c.created_at > day)
    with pg_schema.engine.connect() as conn:
        hit = explain(conn, select(t.c.id).where(t.c.status == "pending", t.c.created_at > day))
        miss = explain(conn, select(t.c.id).where(t.c.status == "paid", t.c.created_at > day))
        also = explain(conn, inlined)
        rows = conn.execute(inlined).all()
        # a generic plan (prepared statement) cannot prove status = $1 implies the predicate
        conn.execute(text("SET LOCAL plan_cache_mode = force_generic_plan"))
        conn.execute(text("PREPARE q(text) AS SELECT id FROM orders WHERE status = $1"
                          " AND created_at > '2026-01-06'"))
        generic = "\n".join(conn.execute(text("EXPLAIN EXECUTE q('pending')")).scalars())
    assert uses_index(hit, "orders_created_at_partial_idx"), scan_types(hit)
    assert not uses_index(miss, "orders_created_at_partial_idx")
    assert uses_index(also, "orders_created_at_partial_idx")
    assert len(rows) == conn_count(pg_schema.engine, day)
    assert "partial_idx" not in generic
    assert "'pending'" in str(inlined.compile(dialect=DIALECT,
                                              compile_kwargs={"render_postcompile": True}))
    with pytest.raises(IndexDefinitionError, match="not a partial index"):
        partial_predicate(Index("plain", t.c.id))


def test_covering_index_gives_index_only_scan(pg_schema: PgSchema) -> None:
    t = _orders(MetaData())
    covering_index(t, ["customer_id"], include=["total"])
    _load(pg_schema.engine, t)
    stmt = select(func.sum(t.c.total)).where(t.c.customer_id == 42)
    with pg_schema.engine.connect() as conn:
        plan = explain(conn, stmt, analyze=True)
        conn.execute(text("DROP INDEX orders_customer_id_incl_idx"))
        conn.execute(text("CREATE INDEX orders_customer_plain ON orders (customer_id)"))
        naive = explain(conn, stmt, analyze=True)
        conn.rollback()
    only = [n for n in nodes(plan) if n.get("Node Type") == "Index Only Scan"]
    assert only and only[0]["Index Name"] == "orders_customer_id_incl_idx"
    assert only[0]["Heap Fetches"] == 0
    assert "Index Only Scan" not in scan_types(naive)


def test_brin_used_for_a_range_on_a_correlated_column(pg_schema: PgSchema) -> None:
    """30k rows (~1 MB) are enough for the planner to pick the BRIN for one day of 21."""
    t = _orders(MetaData())
    brin_index(t, "created_at", pages_per_range=4)
    _load(pg_schema.engine, t)
    day = START + dt.timedelta(days=3)
    stmt = select(func.count()).where(t.c.created_at >= day,
                                      t.c.created_at < day + dt.timedelta(days=1))
    with pg_schema.engine.connect() as conn:
        plan = explain(conn, stmt, analyze=True)
        count = conn.execute(stmt).scalar()
        conn.execute(text("DROP INDEX orders_created_at_brin"))
        naive = explain(conn, stmt)
        conn.rollback()
    assert uses_index(plan, "orders_created_at_brin")
    assert has_seq_scan(naive, "orders")
    assert count == 1440


def test_brin_warns_on_an_uncorrelated_column(pg_schema: PgSchema) -> None:
    t = _orders(MetaData())
    _load(pg_schema.engine, t, ordered=False)
    index = brin_index(t, "created_at")
    with pg_schema.engine.begin() as conn, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        index.create(conn)
    found = [w for w in caught if issubclass(w.category, BrinCorrelationWarning)]
    assert found and "has correlation" in str(found[0].message)
    assert abs(float(str(found[0].message).split("correlation ")[1].split(" ")[0])) < 0.9


def _report_schema(pg_schema: PgSchema) -> Table:
    metadata = MetaData()
    Table("customers", metadata, Column("id", Integer, primary_key=True),
          schema=pg_schema.name)
    t = Table(
        "orders", metadata, Column("id", Integer, primary_key=True),
        Column("customer_id", ForeignKey(f"{pg_schema.name}.customers.id"), nullable=False),
        Column("seller_id", ForeignKey(f"{pg_schema.name}.customers.id"), nullable=False),
        Column("status", Text), schema=pg_schema.name,
    )
    Index("orders_status_idx", t.c.status)
    Index("orders_status_again", t.c.status)
    Index("orders_seller_idx", t.c.seller_id, t.c.status)
    with pg_schema.engine.begin() as conn:
        metadata.create_all(conn)
        conn.execute(text("INSERT INTO customers SELECT generate_series(1, 10)"))
        conn.execute(text("INSERT INTO orders SELECT g, 1, 1, 'x' FROM generate_series(1, 50) g"))
    with pg_schema.engine.begin() as conn:
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        conn.execute(text("SELECT * FROM orders WHERE seller_id = 3")).all()
        conn.execute(text("SELECT pg_stat_force_next_flush()"))
    return t


def _check_report(report: Any) -> None:
    assert [i.name for i in report.indexes] == [
        "orders_pkey", "orders_seller_idx", "orders_status_again", "orders_status_idx"
    ]
    assert report["orders_seller_idx"].used
    assert report["orders_pkey"].primary and report["orders_pkey"].unique
    assert set(report.unused) == {"orders_status_again", "orders_status_idx"}
    assert report.duplicates == [("orders_status_idx", "orders_status_again")]
    assert report.unindexed_foreign_keys == [("orders_customer_id_fkey", ("customer_id",))]
    assert all(i.size_bytes > 0 for i in report.indexes)
    assert "foreign keys without an index: orders_customer_id_fkey (customer_id)" in str(report)


def test_index_report(pg_schema: PgSchema) -> None:
    from sqlalchemy.orm import Session

    t = _report_schema(pg_schema)
    with Session(pg_schema.engine) as session:
        _check_report(index_report(session, t))
        with pytest.raises(IndexDefinitionError, match="does not exist"):
            index_report(session, Table("ghost", MetaData()))


async def test_index_report_async(pg_schema: PgSchema, pg_async_session: Any) -> None:
    t = _report_schema(pg_schema)
    _check_report(await index_report_async(pg_async_session, t))
