"""copy_rows keeps the caller's transaction usable, and checks values before they are sent.

Issue #17: a failed ``copy_rows`` used to leave the transaction aborted (and a later
``commit()`` silently rolled back the caller's earlier work); ``True`` was written as 1 into
int columns, a ``datetime`` truncated into a date column, ``None`` for rows a TypeError.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    Double,
    Engine,
    Integer,
    MetaData,
    Numeric,
    Table,
    Text,
    event,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from pgpatterns.bulk import copy_rows, copy_rows_async
from pgpatterns.errors import BulkLoadError, PatternError
from pgpatterns.testing.plugin import PgSchema


def pairs_table(schema: str) -> Table:
    return Table(
        "pairs",
        MetaData(),
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("name", Text),
        schema=schema,
    )


def typed_table(schema: str) -> Table:
    return Table(
        "typed",
        MetaData(),
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("i8", BigInteger),
        Column("num", Numeric),
        Column("f8", Double),
        Column("day", Date),
        schema=schema,
    )


@pytest.fixture
def pairs(pg_schema: PgSchema) -> Table:
    table = pairs_table(pg_schema.name)
    table.metadata.create_all(pg_schema.engine)
    return table


@pytest.fixture
def typed(pg_schema: PgSchema) -> Table:
    table = typed_table(pg_schema.name)
    table.metadata.create_all(pg_schema.engine)
    return table


def ids(engine: Engine, table: Table) -> list[int]:
    with engine.connect() as conn:
        return list(conn.scalars(select(table.c.id).order_by(table.c.id)))


class Statements:
    """Counts the statements SQLAlchemy sends on an engine (the COPY itself goes around it)."""

    def __init__(self, engine: Engine) -> None:
        self.sent: list[str] = []
        self.engine = engine

    def __enter__(self) -> Statements:
        event.listen(self.engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._seen)

    def _seen(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.sent.append(statement)


# -- a failure leaves the transaction usable ---------------------------------------------------


def test_issue_example_session_keeps_earlier_work(pg_schema: PgSchema, pairs: Table) -> None:
    with Session(pg_schema.engine) as s:
        s.execute(insert(pairs).values(id=-1, name="earlier"))
        with pytest.raises(BulkLoadError, match=r"row 2 .*column 'name'"):
            copy_rows(s, pairs, [(1, "a"), (2, "b"), (3, 4)])
        assert s.scalar(select(func.count()).select_from(pairs)) == 1  # usable, not aborted
        s.commit()
    assert ids(pg_schema.engine, pairs) == [-1]


@pytest.mark.parametrize(
    ("rows", "cause"),
    [
        ([(1, "a"), (2, "b"), (3, 4)], "dump"),  # psycopg cannot send an int as text
        ([(1, "a"), (2, "b"), (1, "dup")], "unique"),  # PostgreSQL refuses mid-COPY
        ([(1, "a"), (2, "b"), (3, "c", "d")], "shape"),  # our own row check mid-stream
        ([(1, "a"), (2, "b"), (2**31, "c")], "range"),  # the model's range mid-stream
    ],
)
def test_connection_keeps_earlier_work(
    pg_schema: PgSchema, pairs: Table, rows: list[Any], cause: str
) -> None:
    with pg_schema.engine.connect() as conn:
        conn.execute(insert(pairs).values(id=-1, name="earlier"))
        with pytest.raises(BulkLoadError):
            copy_rows(conn, pairs, iter(rows))
        conn.execute(insert(pairs).values(id=-2, name="later"))  # still usable
        conn.commit()
    assert ids(pg_schema.engine, pairs) == [-2, -1]


async def test_async_session_keeps_earlier_work(pg_schema: PgSchema, pairs: Table) -> None:
    engine = create_async_engine(pg_schema.engine.url, poolclass=NullPool)
    try:
        async with AsyncSession(engine) as s:
            await s.execute(insert(pairs).values(id=-1, name="earlier"))
            with pytest.raises(BulkLoadError, match="row 2"):
                await copy_rows_async(s, pairs, [(1, "a"), (2, "b"), (3, 4)])
            with pytest.raises(BulkLoadError, match="duplicate key"):
                await copy_rows_async(s, pairs, [(5, "a"), (5, "b")])
            assert await copy_rows_async(s, pairs, [(7, "ok")]) == 1
            await s.commit()
        async with engine.connect() as conn:
            await conn.execute(insert(pairs).values(id=-3, name="x"))
            with pytest.raises(BulkLoadError, match=r"row 1 .*True is not 1"):
                await copy_rows_async(conn, pairs, [(8, "a"), (True, "b")])
            await conn.commit()
    finally:
        await engine.dispose()
    assert ids(pg_schema.engine, pairs) == [-3, -1, 7]


@settings(max_examples=15, deadline=None)
@given(
    size=st.integers(1, 30),
    bad_at=st.integers(0, 29),
    bad=st.sampled_from([True, False, 2**31, -(2**31) - 1, "7", 1.5, None]),
)
def test_any_bad_row_writes_nothing_and_keeps_the_transaction(
    pg_schema: PgSchema, pairs: Table, size: int, bad_at: int, bad: Any
) -> None:
    """Model: the table holds the earlier row, plus every row exactly when all are valid."""
    rows: list[tuple[Any, str]] = [(n, f"n{n}") for n in range(1, size + 1)]
    index = bad_at % size
    rows[index] = (bad, "bad")  # None: a NULL primary key, refused by PostgreSQL
    with pg_schema.engine.connect() as conn:
        conn.execute(insert(pairs).values(id=-1, name="earlier"))
        with pytest.raises(BulkLoadError, match=f"row {index}|line {index + 1}|null value"):
            copy_rows(conn, pairs, (row for row in rows))
        assert conn.scalars(select(pairs.c.id)).all() == [-1]
        conn.rollback()


# -- checks before any SQL ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"id": 2**31}, "column 'id' got int 2147483648: out of range for the model's Integer"),
        ({"id": 1, "i8": True}, "column 'i8' got bool True: a bool is not a number"),
        ({"id": 1, "num": False}, "column 'num' got bool False: a bool is not a number"),
        ({"id": 1, "f8": True}, "column 'f8' got bool True"),
        ({"id": 1, "i8": -(2**63) - 1}, "out of range for the model's BigInteger"),
        ({"id": 1, "day": dt.datetime(2026, 1, 1, 12)}, "a datetime would lose its time"),
    ],
)
def test_row_0_is_refused_before_any_sql(
    pg_schema: PgSchema, typed: Table, row: dict[str, Any], expected: str
) -> None:
    with pg_schema.engine.connect() as conn, Statements(pg_schema.engine) as seen:
        with pytest.raises(BulkLoadError, match=expected.replace("(", r"\(")):
            copy_rows(conn, typed, [row])
        assert seen.sent == []
        assert not conn.in_transaction()


@pytest.mark.parametrize("rows", [None, 5, "abc", b"abc", {"id": 1}])
def test_rows_must_be_an_iterable_of_rows(pg_schema: PgSchema, typed: Table, rows: Any) -> None:
    with pg_schema.engine.connect() as conn:
        with pytest.raises(BulkLoadError, match=r"rows=.* is not accepted: pass an iterable"):
            copy_rows(conn, typed, rows)
        assert not conn.in_transaction()
    assert issubclass(BulkLoadError, PatternError)


def _good_then(bad: dict[str, Any]) -> Iterator[dict[str, Any]]:
    base = {"id": 0, "i8": 1, "num": Decimal(1), "f8": 1.0, "day": dt.date(2026, 1, 1)}
    for n in range(1, 4):
        yield {**base, "id": n}
    yield {**base, "id": 4, **bad}


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ({"i8": True}, "row 3 .*column 'i8' got bool True"),
        ({"num": True}, "row 3 .*column 'num' got bool True"),
        ({"day": dt.datetime(2026, 1, 1, 23, 59)}, "row 3 .*column 'day' got datetime"),
        ({"id": 2**31}, "row 3 .*out of range"),
    ],
)
def test_every_row_is_checked_not_only_row_0(
    pg_schema: PgSchema, typed: Table, bad: dict[str, Any], expected: str
) -> None:
    with pg_schema.engine.connect() as conn:
        with pytest.raises(BulkLoadError, match=expected):
            copy_rows(conn, typed, _good_then(bad))
        assert conn.scalar(select(func.count()).select_from(typed)) == 0
    assert ids(pg_schema.engine, typed) == []


def test_the_tables_own_types_are_checked_too(pg_schema: PgSchema) -> None:
    """A model without types (reflected loosely, or hand-written) still refuses True and
    datetimes: the checks by the database's column types run before each row is sent."""
    with pg_schema.engine.begin() as conn:
        conn.execute(text("CREATE TABLE loose (id smallint, d date, n numeric)"))
    loose = Table("loose", MetaData(), Column("id"), Column("d"), Column("n"))
    cases = [
        ((True, None, None), r"row 0 .*column 'id' \(smallint\) got bool True: a bool is not"),
        ((2**15, None, None), r"row 0 .*column 'id' \(smallint\) got int 32768: .*not a smallint"),
        ((1, dt.datetime(2026, 1, 1, 8), None), r"row 0 .*a datetime would lose its time"),
        ((1, None, True), r"row 0 .*column 'n' got bool True"),
    ]
    for row, expected in cases:
        with pg_schema.engine.connect() as conn:
            with pytest.raises(BulkLoadError, match=expected):
                copy_rows(conn, loose, [row])
            assert not conn.in_transaction()  # copy_rows began it, and rolled it back
            with pytest.raises(BulkLoadError, match=expected.replace("row 0", "row 1")):
                copy_rows(conn, loose, [(1, None, None), row])
            assert conn.scalar(text("SELECT count(*) FROM loose")) == 0
    with pg_schema.engine.begin() as conn:
        copy_rows(conn, loose, [(1, dt.date(2026, 1, 2), Decimal("1.5"))])
        assert conn.execute(text("SELECT * FROM loose")).one() == (
            1, dt.date(2026, 1, 2), Decimal("1.5"))


def test_valid_values_still_load(pg_schema: PgSchema, typed: Table) -> None:
    with pg_schema.engine.begin() as conn:
        assert copy_rows(conn, typed, _good_then({})) == 4
        assert copy_rows(conn, typed, [(9, 2**63 - 1, 3, 0.5, dt.date(2000, 2, 29))]) == 1
    assert ids(pg_schema.engine, typed) == [1, 2, 3, 4, 9]


def test_autocommit_connections_need_no_savepoint(pg_schema: PgSchema, pairs: Table) -> None:
    engine = pg_schema.engine.execution_options(isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        assert copy_rows(conn, pairs, [(1, "a"), (2, "b")]) == 2
        with pytest.raises(BulkLoadError, match="duplicate key"):
            copy_rows(conn, pairs, [(3, "c"), (1, "dup")])
        assert copy_rows(conn, pairs, [(4, "d")]) == 1  # the connection is still usable
    assert ids(pg_schema.engine, pairs) == [1, 2, 4]


def test_text_format_tables_are_checked_too(pg_schema: PgSchema) -> None:
    """A table with an enum goes as TEXT: no strict binary dumper, the checks still hold."""
    with pg_schema.engine.begin() as conn:
        conn.execute(text("CREATE TYPE mood AS ENUM ('ok', 'sad')"))
        conn.execute(text("CREATE TABLE moody (id int, m mood, d date)"))
    moody = Table("moody", MetaData(), Column("id"), Column("m"), Column("d"))
    for row, expected in [
        ((True, "ok", None), r"row 1 .*column 'id' got bool True: a bool is not a number"),
        ((2**31, "ok", None), r"row 1 .*out of range for the table's integer"),
        ((2, "ok", dt.datetime(2026, 1, 1, 9)), r"row 1 .*a datetime would lose its time"),
    ]:
        with pg_schema.engine.connect() as conn:
            with pytest.raises(BulkLoadError, match=expected):
                copy_rows(conn, moody, [(1, "sad", None), row])
            assert conn.scalar(text("SELECT count(*) FROM moody")) == 0
