"""bulk: loading rows with pgpatterns.bulk.copy_rows versus the forms users write.

Question ``bulk:load-rows``: load N generated rows (bigint, text, numeric, text[], jsonb,
timestamptz) into an empty table and commit.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Engine,
    MetaData,
    Numeric,
    Table,
    Text,
    insert,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Session, registry

from benchmarks.conftest import Scale, record
from pgpatterns.bulk import copy_rows

QUESTION = "bulk:load-rows"
COLUMNS = ("id", "name", "price", "tags", "doc", "created_at")

metadata = MetaData()
items = Table(
    "bench_bulk_items",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("name", Text, nullable=False),
    Column("price", Numeric(12, 2), nullable=False),
    Column("tags", ARRAY(Text), nullable=False),
    Column("doc", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


class Item:
    """ORM class for the baseline (imperative mapping keeps the table shared)."""

    def __init__(self, **kw: Any) -> None:
        for key, value in kw.items():
            setattr(self, key, value)


registry().map_imperatively(Item, items)


def generate(scale: Scale) -> list[tuple[Any, ...]]:
    rng = random.Random(scale.seed)
    start = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    words = ["red", "green", "blue", "sale", "new", "eco", "xl", "kids"]
    return [
        (
            i,
            f"item {i}",
            Decimal(rng.randrange(100, 1_000_000)) / 100,
            rng.sample(words, rng.randrange(0, 4)),
            {"color": rng.choice(words), "stock": rng.randrange(1000), "flags": [i % 3 == 0]},
            start + dt.timedelta(seconds=rng.randrange(10_000_000)),
        )
        for i in range(1, scale.rows + 1)
    ]


@pytest.fixture(scope="module")
def data(scale: Scale) -> list[tuple[Any, ...]]:
    return generate(scale)


@pytest.fixture
def table(pg_engine: Engine) -> Iterator[Table]:
    metadata.create_all(pg_engine)
    yield items
    metadata.drop_all(pg_engine)


def _truncate(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE bench_bulk_items"))


def _check(engine: Engine, expected: int) -> None:
    with engine.connect() as conn:
        count = conn.execute(text("SELECT count(*) FROM bench_bulk_items")).scalar()
    assert count == expected, f"loaded {count} rows, expected {expected}"


def _run(benchmark: Any, engine: Engine, scale: Scale, load: Any) -> None:
    benchmark.pedantic(
        load, setup=lambda: _truncate(engine), rounds=scale.rounds, iterations=1, warmup_rounds=0
    )
    _check(engine, scale.rows)


def test_copy_rows(benchmark: Any, pg_engine: Engine, table: Table, data: list[Any],
                   scale: Scale) -> None:
    record(benchmark, question=QUESTION, case="copy_rows", role="pattern", rows=len(data),
           scale=scale, plan="COPY ... FROM STDIN (binary)")

    def load() -> None:
        with pg_engine.begin() as conn:
            copy_rows(conn, table, iter(data), columns=COLUMNS)

    _run(benchmark, pg_engine, scale, load)


def test_orm_add_all(benchmark: Any, pg_engine: Engine, table: Table, data: list[Any],
                     scale: Scale) -> None:
    record(benchmark, question=QUESTION, case="ORM session.add_all", role="baseline",
           rows=len(data), scale=scale, plan="INSERT ... VALUES (insertmanyvalues batches)",
           slower_by_at_least=5)

    def load() -> None:
        with Session(pg_engine) as session:
            session.add_all(Item(**dict(zip(COLUMNS, row, strict=True))) for row in data)
            session.commit()

    _run(benchmark, pg_engine, scale, load)


def test_core_executemany(benchmark: Any, pg_engine: Engine, table: Table, data: list[Any],
                          scale: Scale) -> None:
    record(benchmark, question=QUESTION, case="Core insert() executemany", role="alternative",
           rows=len(data), scale=scale, plan="INSERT ... VALUES (insertmanyvalues batches)")
    dicts = [dict(zip(COLUMNS, row, strict=True)) for row in data]

    def load() -> None:
        with pg_engine.begin() as conn:
            conn.execute(insert(table), dicts)

    _run(benchmark, pg_engine, scale, load)


def test_handwritten_copy(benchmark: Any, pg_engine: Engine, table: Table, data: list[Any],
                          scale: Scale) -> None:
    record(benchmark, question=QUESTION, case="hand-written psycopg COPY", role="limit",
           rows=len(data), scale=scale, plan="COPY ... FROM STDIN (binary)")
    from psycopg.types.json import Jsonb

    def load() -> None:
        with pg_engine.begin() as conn:
            raw = conn.connection.driver_connection
            assert raw is not None
            with raw.cursor() as cur, cur.copy(
                "COPY bench_bulk_items (id, name, price, tags, doc, created_at) "
                "FROM STDIN (FORMAT BINARY)"
            ) as copy:
                copy.set_types(["int8", "text", "numeric", "text[]", "jsonb", "timestamptz"])
                for row in data:
                    copy.write_row((*row[:4], Jsonb(row[4]), row[5]))

    _run(benchmark, pg_engine, scale, load)
