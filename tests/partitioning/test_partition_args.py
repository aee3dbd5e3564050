"""Hostile identifiers and bad arguments for partitioning (issue #17).

Identifiers go through the dialect's quoting only (``%``, quotes, spaces, unicode, 63
bytes); bad ``now``/``ahead``/``hash_`` values are typed errors raised before any SQL.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    Engine,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    event,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.orm import Session

from pgpatterns.ddl import Partition
from pgpatterns.ddl.base import short_name
from pgpatterns.errors import DDLOptionError, PartitionBoundsError, PatternError
from pgpatterns.partitioning import (
    check_default_partition,
    ensure_partitions,
    existing_partitions,
    partition_by,
    range_partition,
    retain,
)
from pgpatterns.testing.plugin import PgSchema

JAN = dt.date(2026, 1, 10)


def events(name: str, key: str, *, key_type: Any = Date) -> Table:
    t = Table(name, MetaData(), Column("id", BigInteger), Column(key, key_type),
              PrimaryKeyConstraint("id", key))
    jan = range_partition("2026-01-01", "2026-02-01", name=short_name(name, "jan"))
    partition_by(t, "range", key, interval="1 month", partitions=[jan])
    return t


def lifecycle(engine: Engine, t: Table) -> None:
    """Declare, create, ensure, write, retain: every path that renders the names."""
    key = t.c[list(t.c.keys())[1]]
    t.metadata.create_all(engine)
    try:
        with Session(engine) as s:
            made = ensure_partitions(s, t, ahead=1, now=JAN)
            s.execute(insert(t).values({"id": 1, key.name: dt.date(2026, 2, 3)}))
            removed = retain(s, t, before=dt.date(2026, 2, 1), now=dt.date(2026, 2, 10),
                             mode="drop")
            s.commit()
            left = [p.name for p in existing_partitions(s, t)]
            assert s.scalar(select(func.count()).select_from(t)) == 1
        assert len(made) == 1 and made[0] in left
        assert removed == [short_name(t.name, "jan")] and len(left) == 1
    finally:
        t.metadata.drop_all(engine)


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ("events", "k d%s%%"),  # psycopg used to read %s as a placeholder
        ("ev%x", "day"),  # retain used to double the % twice
        ('Ev "q" \'x\' %(n)s', "été 字 %%"),
        ("t" * 63, "k" * 63),  # 63 bytes: generated partition names are shortened
    ],
)
def test_issue_names(pg_schema: PgSchema, table: str, key: str) -> None:
    lifecycle(pg_schema.engine, events(table, key))


HOSTILE = st.lists(
    st.sampled_from([*"%sd x\"'é字_()", "%s", "%%", "%(a)s", "k" * 20]), min_size=1, max_size=12,
).map(lambda parts: "".join(parts).strip() or "%").filter(
    lambda s: len(s.encode()) <= 63 and s != "id"
)


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(table=HOSTILE, key=HOSTILE)
def test_hostile_names_on_every_path(pg_schema: PgSchema, table: str, key: str) -> None:
    lifecycle(pg_schema.engine, events(table, key))


def test_a_63_byte_table_gets_distinct_shortened_partition_names(pg_schema: PgSchema) -> None:
    t = events("é" * 31 + "x", "day")  # 63 bytes
    t.metadata.create_all(pg_schema.engine)
    with Session(pg_schema.engine) as s:
        made = ensure_partitions(s, t, ahead=2, now=JAN)
        s.commit()
    assert len(set(made)) == 2 and all(len(n.encode()) <= 63 for n in made)
    assert [n[-9:] for n in made] == ["_p2026_02", "_p2026_03"]  # the period stays readable


# -- arguments checked before any SQL ------------------------------------------------------


@contextmanager
def no_sql(engine: Engine) -> Iterator[list[str]]:
    sent: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(statement)

    event.listen(engine, "before_cursor_execute", seen)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert sent == []


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"now": "garbage"}, "bound 'garbage' is not a valid date"),
        ({"now": dt.datetime(2026, 1, 1, 12)}, "now=.* is not accepted for the date key"),
        ({"now": 20260101}, "now=20260101 is not accepted"),
        ({"ahead": 10**9}, r"ahead=1000000000 is not accepted: pass an int from 0 to 10000"),
        ({"ahead": -1}, "ahead=-1 is not accepted"),
        ({"ahead": True}, "ahead=True is not accepted"),
        ({"ahead": "3"}, "ahead='3' is not accepted"),
        ({"ahead": 9_000, "interval": "1 year"}, "go past the largest value of the key"),
    ],
)
def test_ensure_arguments_are_checked_before_sql(
    pg_schema: PgSchema, kwargs: dict[str, Any], expected: str
) -> None:
    t = events("events", "day")
    t.metadata.create_all(pg_schema.engine)
    for action in (ensure_partitions, check_default_partition):
        with (
            Session(pg_schema.engine) as s,
            no_sql(pg_schema.engine),
            pytest.raises(PartitionBoundsError, match=expected),
        ):
            action(s, t, **kwargs)


def test_an_iso_string_is_a_valid_now(pg_schema: PgSchema) -> None:
    t = events("events", "day")
    t.metadata.create_all(pg_schema.engine)
    with Session(pg_schema.engine) as s:
        assert ensure_partitions(s, t, ahead=1, now="2026-01-01") == ["events_p2026_02"]
        with pytest.raises(PartitionBoundsError, match="now=True is not accepted"):
            retain(s, t, keep="1 month", now=True)


def test_integer_keys_stay_in_the_column_range(pg_schema: PgSchema) -> None:
    t = Table("counts", MetaData(), Column("n", Integer, primary_key=True))
    partition_by(t, "range", "n", interval=1000)
    t.metadata.create_all(pg_schema.engine)
    with (
        Session(pg_schema.engine) as s,
        no_sql(pg_schema.engine),
        pytest.raises(PartitionBoundsError, match="go past the range of the key column"),
    ):
        ensure_partitions(s, t, ahead=5, now=2**31 - 2000)


@pytest.mark.parametrize(
    "hash_",
    [(0, 0), (2, 5), (2, -1), (-3, 0), (True, 0), (2, 1.0), (2,), "ab", (2**31, 0)],
)
def test_partition_hash_bounds_are_checked(hash_: Any) -> None:
    parent = Table("h", MetaData(), Column("id", Integer), postgresql_partition_by="HASH (id)")
    with pytest.raises(DDLOptionError, match=r"hash_=.* is not accepted"):
        Partition("h_0", parent, hash_=hash_)
    assert issubclass(DDLOptionError, PatternError)


def test_valid_hash_partitions_are_created(pg_schema: PgSchema) -> None:
    metadata = MetaData()
    parent = Table("h", metadata, Column("id", Integer), postgresql_partition_by="HASH (id)")
    parts = [Partition(f"h_{r}", parent, hash_=(3, r)) for r in range(3)]
    with pg_schema.engine.begin() as conn:
        parent.create(conn)
        for part in parts:
            for ddl in part.create_ddl():
                conn.execute(ddl)
        conn.execute(insert(parent), [{"id": i} for i in range(30)])
        assert conn.execute(text("SELECT count(*) FROM h")).scalar() == 30
