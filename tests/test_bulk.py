"""pgpatterns.bulk: COPY-based loading against a real PostgreSQL (sync and async)."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import numpy as np
import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Computed,
    Connection,
    Date,
    DateTime,
    Double,
    Engine,
    Enum,
    Identity,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Table,
    Text,
    Uuid,
    func,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, REAL
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.pool import NullPool

from pgpatterns.bulk import copy_rows, copy_rows_async
from pgpatterns.errors import BulkLoadError, PatternError
from pgpatterns.testing.plugin import PgSchema

ODD_NAME = 'Bulk "Types" tbl'  # a space, a double quote and mixed case


def types_table(schema: str | None) -> Table:
    return Table(
        ODD_NAME,
        MetaData(),
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("small", SmallInteger),
        Column("i4", Integer),
        Column("i8", BigInteger),
        Column("num", Numeric),
        Column("f8", Double),
        Column("f4", REAL),
        Column("Mixed Col", Text, key="mixed"),
        Column("vc", String(20)),
        Column("flag", Boolean),
        Column("day", Date),
        Column("ts", DateTime),
        Column("tstz", DateTime(timezone=True)),
        Column("uid", Uuid),
        Column("blob", LargeBinary),
        Column("jb", JSONB),
        Column("js", JSON),
        Column("ints", ARRAY(Integer)),
        Column("texts", ARRAY(Text)),
        Column("vec", Vector(3)),
        schema=schema,
    )


def items_table(schema: str | None = None) -> Table:
    return Table(
        "items",
        MetaData(),
        Column("id", Integer, Identity(), primary_key=True),
        Column("name", Text, nullable=False),
        Column("qty", Integer, CheckConstraint("qty >= 0", name="qty_not_negative")),
        Column("doubled", Integer, Computed("qty * 2", persisted=True)),
        schema=schema,
    )


def count(engine: Engine, table: Table) -> int:
    """Row count seen by a fresh connection (so: what was committed)."""
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


@pytest.fixture
def items(pg_schema: PgSchema) -> Table:
    table = items_table(pg_schema.name)
    table.metadata.create_all(pg_schema.engine)
    return table


# -- round trip -------------------------------------------------------------------------------

SAFE_TEXT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20
)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | SAFE_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(SAFE_TEXT, inner, max_size=4),
    max_leaves=12,
)
ZONES = st.timezones() | st.builds(
    dt.timezone, st.timedeltas(min_value=dt.timedelta(hours=-23), max_value=dt.timedelta(hours=23))
)
MIN_DT, MAX_DT = dt.datetime(2, 1, 1), dt.datetime(9998, 12, 31)
INT4 = st.integers(-(2**31), 2**31 - 1)
VECTORS = st.lists(
    st.floats(width=32, allow_nan=False, allow_infinity=False), min_size=3, max_size=3
)

ROWS = st.fixed_dictionaries(
    {
        "small": st.none() | st.integers(-(2**15), 2**15 - 1),
        "i4": st.none() | INT4,
        "i8": st.none() | st.integers(-(2**63), 2**63 - 1),
        "num": st.none()
        | st.builds(
            lambda digits, places: Decimal(digits).scaleb(-places),
            st.integers(-(10**45), 10**45),
            st.integers(0, 30),
        )
        # numeric's infinities exist since PostgreSQL 14 (NaN is left out: NaN != NaN)
        | st.sampled_from([Decimal("Infinity"), Decimal("-Infinity")]),
        "f8": st.none() | st.floats(allow_nan=False),
        "f4": st.none() | st.floats(width=32, allow_nan=False),
        "Mixed Col": st.none() | SAFE_TEXT,
        "vc": st.none() | SAFE_TEXT,
        "flag": st.none() | st.booleans(),
        "day": st.none() | st.dates(),
        "ts": st.none() | st.datetimes(MIN_DT, MAX_DT),
        "tstz": st.none() | st.datetimes(MIN_DT, MAX_DT, timezones=ZONES),
        "uid": st.none() | st.uuids(),
        "blob": st.none() | st.binary(max_size=40),
        "jb": JSON_VALUES,
        "js": JSON_VALUES,
        "ints": st.none() | st.lists(st.none() | INT4, max_size=5),
        "texts": st.none() | st.lists(st.none() | SAFE_TEXT, max_size=5),
        "vec": st.none() | VECTORS | VECTORS.map(lambda v: np.array(v, dtype=np.float32)),
    }
)


@pytest.fixture
def types_conn(pg_schema: PgSchema) -> Iterator[tuple[Connection, Table]]:
    table = types_table(pg_schema.name)
    table.metadata.create_all(pg_schema.engine)
    with pg_schema.engine.connect() as conn:
        yield conn, table


def _normal(name: str, value: Any) -> Any:
    # real and vector values come back as float4's shortest text parsed as a float64:
    # compare them as float4, the type the columns store.
    if name in ("vec", "f4") and value is not None:
        return np.asarray(value, dtype=np.float32).tolist()
    if name in ("jb", "js"):
        return _json_numbers(value)
    if name == "tstz" and value is not None:
        # PEP 495: a time in a DST gap or fold never equals a time in another zone; compare
        # the instants (psycopg sends utcoffset() of the value, as astimezone() uses).
        return value.astimezone(dt.timezone.utc)
    return value


def _json_numbers(value: Any) -> Any:
    # jsonb stores numbers as numeric and prints 5.0e16 as 50000000000000000: compare numbers
    # by their decimal value, as JSON does.
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return Decimal(repr(value))
    if isinstance(value, list):
        return [_json_numbers(v) for v in value]
    return {k: _json_numbers(v) for k, v in value.items()}


@pytest.mark.requires_extension("vector")
@given(rows=st.lists(ROWS, max_size=6), as_tuples=st.booleans())
def test_round_trip_every_supported_type(
    types_conn: tuple[Connection, Table], rows: list[dict[str, Any]], as_tuples: bool
) -> None:
    conn, table = types_conn
    rows = [{"id": index, **row} for index, row in enumerate(rows)]
    names = [c.name for c in table.columns]
    trans = conn.begin()
    try:
        payload: list[Any] = [tuple(r[n] for n in names) for r in rows] if as_tuples else rows
        assert copy_rows(conn, table, payload) == len(rows)
        back = conn.execute(select(table).order_by(table.c.id)).all()
        assert len(back) == len(rows)
        for want, got in zip(rows, back, strict=True):
            for name, value in zip(names, got, strict=True):
                assert _normal(name, value) == _normal(name, want[name]), name
    finally:
        trans.rollback()


def test_text_fallback_for_types_without_binary_dumper(pg_schema: PgSchema) -> None:
    mood = Enum("happy", "sad", "so-so", name="mood")
    table = Table(
        "moods",
        MetaData(),
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("mood", mood),
        Column("doc", JSONB),
        Column("tags", ARRAY(Text)),
        Column("note", Text),
    )
    table.metadata.create_all(pg_schema.engine)
    rows = [
        (1, "so-so", {"a": [1, "tab\there"]}, ["x", None, 'q"uote'], "line\nbreak\\"),
        (2, None, None, [], None),
    ]
    with pg_schema.engine.begin() as conn:
        assert copy_rows(conn, table, rows) == 2
        assert [tuple(r) for r in conn.execute(select(table).order_by(table.c.id))] == rows
    with pg_schema.engine.connect() as conn, pytest.raises(BulkLoadError) as info:
        copy_rows(conn, table, [(3, 7, None, None, None)])
    assert "column 'mood' (mood) got int" in str(info.value)
    assert "pass a str" in str(info.value)


def test_column_types_come_from_the_database(pg_schema: PgSchema) -> None:
    """The model says Integer, the table has bigint and a domain: binary COPY still fits."""
    with pg_schema.engine.begin() as conn:
        conn.execute(text("CREATE DOMAIN positive AS integer CHECK (VALUE > 0)"))
        conn.execute(text("CREATE TABLE drift (id bigint, score positive)"))
    table = Table("drift", MetaData(), Column("id", Integer), Column("score", Integer))
    with pg_schema.engine.begin() as conn:
        # binary int4 into a bigint column would be refused: the OIDs are the table's
        assert copy_rows(conn, table, [(2**31 - 1, 5)]) == 1
        assert conn.execute(select(table)).one() == (2**31 - 1, 5)
    with pg_schema.engine.connect() as conn, pytest.raises(BulkLoadError) as info:
        copy_rows(conn, table, [(2**40, 5)])  # the model's type is checked before any SQL
    assert "out of range for the model's Integer" in str(info.value)
    with pg_schema.engine.connect() as conn, pytest.raises(BulkLoadError) as info:
        copy_rows(conn, table, [(1, -1)])
    assert "violates check constraint" in str(info.value)
    assert isinstance(info.value.__cause__, psycopg.errors.CheckViolation)


def test_binary_format_rejects_ambiguous_datetimes(pg_schema: PgSchema) -> None:
    table = types_table(None)
    table.metadata.create_all(pg_schema.engine)
    with pg_schema.engine.connect() as conn, pytest.raises(BulkLoadError) as info:
        copy_rows(conn, table, [{"id": 1, "tstz": dt.datetime(2024, 1, 1)}])
    message = str(info.value)
    assert "row 0" in message and "column 'tstz' (timestamp with time zone)" in message
    assert count(pg_schema.engine, table) == 0


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("small", 2**15, "column 'small' got int 32768: out of range for the model's Small"),
        ("ints", [1, -(2**31) - 1], "column 'ints' (integer[]) got list"),
        ("f4", 1e300, "column 'f4' (real) got float 1e+300: 1e+300 is not a real"),
        ("flag", "no", "column 'flag' (boolean) got str 'no': 'no' is not a boolean"),
        ("num", 1.5, "column 'num' (numeric) got float 1.5"),
    ],
)
def test_binary_values_are_checked_not_mangled(
    pg_schema: PgSchema, column: str, value: Any, expected: str
) -> None:
    """psycopg's C dumpers would send 32768 as -32768, 1e300 as Infinity, 'no' as true."""
    table = types_table(None)
    table.metadata.create_all(pg_schema.engine)
    with pg_schema.engine.connect() as conn:
        with pytest.raises(BulkLoadError, match=re.escape(expected)):
            copy_rows(conn, table, [{"id": 1, column: value}])
        conn.rollback()
    assert count(pg_schema.engine, table) == 0


# -- shapes of input ---------------------------------------------------------------------------


def test_dicts_fill_defaults_and_identity(pg_schema: PgSchema, items: Table) -> None:
    with pg_schema.engine.begin() as conn:
        assert copy_rows(conn, items, [{"name": "a", "qty": 2}, {"name": "b", "qty": None}]) == 2
        rows = conn.execute(select(items.c.name, items.c.qty, items.c.doubled).order_by("id"))
        assert rows.all() == [("a", 2, 4), ("b", None, None)]


def test_tuples_default_to_every_non_generated_column(pg_schema: PgSchema, items: Table) -> None:
    with pg_schema.engine.begin() as conn:
        assert copy_rows(conn, items, [(10, "a", 1), [11, "b", 2]]) == 2
        assert copy_rows(conn, items, [("c", 3)], columns=["name", "qty"]) == 1
    assert count(pg_schema.engine, items) == 3


def test_empty_input_sends_nothing(pg_schema: PgSchema, items: Table) -> None:
    with pg_schema.engine.connect() as conn:
        assert copy_rows(conn, items, iter([])) == 0
        assert not conn.in_transaction()


def test_a_generator_is_streamed(pg_schema: PgSchema, items: Table) -> None:
    """While the generator is still producing, PostgreSQL has already stored earlier rows."""
    seen_by_server: list[int] = []

    def rows() -> Iterator[tuple[str, int]]:
        for n in range(50_000):
            if n == 40_000:
                seen_by_server.append(_copy_progress(pg_schema.engine, items))
            yield (f"item {n}", n % 7)

    with pg_schema.engine.begin() as conn:
        assert copy_rows(conn, items, rows(), columns=["name", "qty"]) == 50_000
    assert seen_by_server and seen_by_server[0] > 0, seen_by_server
    assert count(pg_schema.engine, items) == 50_000


def _copy_progress(engine: Engine, table: Table) -> int:
    query = text(
        "SELECT coalesce(max(tuples_processed), 0) FROM pg_stat_progress_copy"
        " WHERE relid = to_regclass(:name)"
    )
    deadline = time.monotonic() + 10
    with engine.connect() as other:
        while True:
            done = other.execute(query, {"name": f"{table.schema}.{table.name}"}).scalar_one()
            if done or time.monotonic() > deadline:
                return int(done)
            time.sleep(0.01)


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "bulk_items"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    name: Mapped[str]


def test_session_and_mapped_class(pg_session: Session) -> None:
    Base.metadata.create_all(pg_session.connection())
    pg_session.add(Item(id=0, name="pending"))  # flushed first: the session autoflushes
    assert copy_rows(pg_session, Item, ({"id": n, "name": str(n)} for n in range(1, 101))) == 100
    assert pg_session.scalar(select(func.count()).select_from(Item)) == 101


async def test_async_session_and_connection(pg_async_session: AsyncSession) -> None:
    await pg_async_session.run_sync(lambda s: Base.metadata.create_all(s.connection()))
    rows = ((n, f"name {n}") for n in range(1_000))
    assert await copy_rows_async(pg_async_session, Item, rows) == 1_000
    conn = await pg_async_session.connection()
    assert await copy_rows_async(conn, Item.__table__, [{"id": -1, "name": "x"}]) == 1
    assert await pg_async_session.scalar(select(func.count()).select_from(Item)) == 1_001


async def test_async_errors_write_nothing(pg_schema: PgSchema, items: Table) -> None:
    engine = create_async_engine(pg_schema.engine.url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            rows = [{"name": "ok", "qty": 1}, {"name": "ok"}]
            with pytest.raises(BulkLoadError, match=r"row 1 .* missing \['qty'\]"):
                await copy_rows_async(conn, items, rows)
            await conn.rollback()
            with pytest.raises(BulkLoadError, match="violates not-null") as info:
                await copy_rows_async(conn, items, [("a", 1), (None, 2)], columns=["name", "qty"])
            assert isinstance(info.value.__cause__, psycopg.errors.NotNullViolation)
            await conn.rollback()
            with pytest.raises(BulkLoadError, match="has no column 'nope'"):
                await copy_rows_async(conn, items, [{"nope": 1}])
            assert not conn.in_transaction()
    finally:
        await engine.dispose()
    assert count(pg_schema.engine, items) == 0


# -- validation before any SQL -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "rows", "columns", "expected"),
    [
        (
            "items",
            [(1,)],
            ["nme"],
            r"has no column 'nme' \(named in columns\); its columns are id,",
        ),
        ("items", [{"nme": "a"}], None, r"has no column 'nme' \(named in the keys of row 0\)"),
        ("items", [{"name": "a"}], ["name", "qty"], "row 0 for"),
        ("items", [(1, "a")], None, r'row 0 for "t_\w+"\."items" has 2 values, expected 3'),
        ("items", [("a",)], ["name", "name"], "column 'name' is named twice"),
        ("items", [(1,)], ["doubled"], "'doubled' of .* is a generated column"),
        ("items", ["abc"], None, "row 0 for .* is a str: rows must be dicts"),
        ("items", [(1,)], "name", "got the string 'name': write columns=\\['name'\\]"),
        ("items", [{}], None, "no columns to copy"),
        (object(), [(1,)], None, "needs a sqlalchemy Table or a class mapped to one"),
        ("select", [(1,)], None, "needs a sqlalchemy Table"),
    ],
)
def test_invalid_input_is_rejected_before_any_sql(
    pg_schema: PgSchema, items: Table, table: Any, rows: Any, columns: Any, expected: str
) -> None:
    target = {"items": items, "select": select(items)}.get(table, table)
    with pg_schema.engine.connect() as conn:
        with pytest.raises(BulkLoadError, match=expected):
            copy_rows(conn, target, rows, columns=columns)
        assert not conn.in_transaction()  # nothing was sent
    assert issubclass(BulkLoadError, PatternError)


def _good_then(bad: Any) -> Iterator[Any]:
    yield {"name": "a", "qty": 1}
    yield {"name": "b", "qty": 2}
    yield {"name": "c", "qty": 3}
    yield bad


@pytest.mark.parametrize(
    ("rows", "columns", "expected"),
    [
        (_good_then({"name": "d", "qtty": 4}), None, r"row 3 .*missing \['qty'\], unexpected"),
        (_good_then(("d", 4)), None, "row 3 .* is a tuple but row 0 was a dict"),
        (iter([("a", 1), ("b", 2), ("c",)]), ["name", "qty"], "row 2 .*1 values, expected 2"),
        (iter([("a", 1), {"name": "b"}]), ["name", "qty"], "row 1 .* is a dict but row 0 was"),
        (iter([("a", 1), ("b", "two")]), ["name", "qty"], "row 1 .*column 'qty' \\(integer\\)"),
    ],
)
def test_invalid_later_rows_abort_the_copy(
    pg_schema: PgSchema, items: Table, rows: Any, columns: Any, expected: str
) -> None:
    with pg_schema.engine.connect() as conn:
        with pytest.raises(BulkLoadError, match=expected):
            copy_rows(conn, items, rows, columns=columns)
        conn.rollback()  # nothing was written (the savepoint was rolled back)
    assert count(pg_schema.engine, items) == 0


def test_missing_table_in_database(pg_schema: PgSchema) -> None:
    with pg_schema.engine.connect() as conn, pytest.raises(BulkLoadError, match="does not exist"):
        copy_rows(conn, items_table(), [("a", 1)], columns=["name", "qty"])


@pytest.mark.parametrize(
    ("row", "cause", "message"),
    [
        ({"name": None, "qty": 1}, psycopg.errors.NotNullViolation, 'null value in column "name"'),
        ({"name": "x", "qty": -1}, psycopg.errors.CheckViolation, "qty_not_negative"),
    ],
)
def test_database_errors_become_bulk_load_errors(
    pg_schema: PgSchema, items: Table, row: dict[str, Any], cause: type, message: str
) -> None:
    rows = [{"name": "ok", "qty": 1}, row]
    with pg_schema.engine.connect() as conn:
        with pytest.raises(BulkLoadError) as info:
            copy_rows(conn, items, rows)
        conn.rollback()
    text_ = str(info.value)
    assert f'COPY into "{pg_schema.name}"."items" failed' in text_
    assert message in text_ and "line 2" in text_
    assert isinstance(info.value.__cause__, cause)
    assert count(pg_schema.engine, items) == 0
