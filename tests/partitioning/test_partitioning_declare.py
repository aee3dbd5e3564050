"""Declaration and validation of partitioned tables (compile-only, no database)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.schema import CreateTable

from pgpatterns.ddl import MAXVALUE, MINVALUE, attached
from pgpatterns.ddl.base import pg_dialect
from pgpatterns.errors import PartitionBoundsError, PartitionError, PartitionKeyError
from pgpatterns.partitioning import (
    default_partition,
    hash_partitions,
    list_partition,
    partition_by,
    range_partition,
)
from pgpatterns.partitioning.periods import Step


def _events(*extra: object, pk: tuple[str, ...] = ("id", "at")) -> Table:
    return Table(
        "events", MetaData(), Column("id", BigInteger), Column("at", DateTime(timezone=True)),
        Column("email", Text), PrimaryKeyConstraint(*pk), *extra,  # type: ignore[arg-type]
    )


def test_range_declaration_renders_table_and_partitions() -> None:
    t = _events()
    scheme = partition_by(t, "range", "at", interval="1 month", partitions=[
        range_partition("2026-01-01", "2026-02-01"),
        range_partition("2026-02-01", "2026-03-01"),
        default_partition(),
    ])
    ddl = str(CreateTable(t).compile(dialect=pg_dialect()))
    assert ddl.rstrip().endswith("PARTITION BY RANGE (at)")
    assert [p.sql() for p in scheme.partitions] == [
        "CREATE TABLE events_p2026_01 PARTITION OF events FOR VALUES FROM "
        "('2026-01-01 00:00:00+00:00') TO ('2026-02-01 00:00:00+00:00')",
        "CREATE TABLE events_p2026_02 PARTITION OF events FOR VALUES FROM "
        "('2026-02-01 00:00:00+00:00') TO ('2026-03-01 00:00:00+00:00')",
        "CREATE TABLE events_default PARTITION OF events DEFAULT",
    ]
    assert attached(t.metadata) == scheme.partitions


def test_declared_on_an_orm_model() -> None:
    class Base(DeclarativeBase):
        pass

    class Reading(Base):
        __tablename__ = "readings"
        sensor: Mapped[int] = mapped_column(Integer, primary_key=True)
        day: Mapped[dt.date] = mapped_column(Date, primary_key=True)

    scheme = partition_by(Reading, "range", "day", interval="1 week", partitions=[
        range_partition(MINVALUE, dt.date(2026, 1, 5)),
        range_partition(dt.date(2026, 1, 5), dt.date(2026, 1, 12)),
        range_partition(dt.date(2026, 1, 12), MAXVALUE),
    ])
    assert [p.name for p in scheme.partitions] == [
        "readings_pmin", "readings_p2026_01_05", "readings_p2026_01_12"
    ]
    assert "FROM (MINVALUE) TO ('2026-01-05')" in scheme.partitions[0].sql()


def test_list_and_hash() -> None:
    t = Table("users", MetaData(), Column("id", Integer), Column("region", Text),
              PrimaryKeyConstraint("id", "region"))
    scheme = partition_by(t, "list", "region", partitions=[
        list_partition("fr", "be"), list_partition("de", name="users_dach"), default_partition()])
    assert [p.sql().split(" FOR ")[-1] for p in scheme.partitions[:2]] == [
        "VALUES IN ('fr', 'be')", "VALUES IN ('de')"
    ]
    h = Table("h", MetaData(), Column("id", Integer, primary_key=True))
    hashed = partition_by(h, "hash", "id", partitions=hash_partitions(4))
    assert hashed.partitions[3].sql() == (
        "CREATE TABLE h_h3 PARTITION OF h FOR VALUES WITH (MODULUS 4, REMAINDER 3)"
    )


@pytest.mark.parametrize(
    ("extra", "pk", "match"),
    [
        ((), ("id",), r"primary key \(id\) does not include partition key column\(s\) at.*"
                      r"PrimaryKeyConstraint\('id', 'at'\)"),
        ((UniqueConstraint("email", name="uq_email"),), ("id", "at"),
         r"unique constraint uq_email \(email\) does not include .* at"),
        ((Index("ix_email", "email", unique=True),), ("id", "at"),
         r"unique index ix_email \(email\) does not include"),
    ],
)
def test_unique_constraints_must_include_the_key(
    extra: tuple[object, ...], pk: tuple[str, ...], match: str
) -> None:
    t = _events(*extra, pk=pk)
    with pytest.raises(PartitionKeyError, match=match):
        partition_by(t, "range", "at")
    assert t.dialect_options["postgresql"]["partition_by"] is None  # nothing was changed


def test_expression_key_with_uniques_is_refused() -> None:
    t = _events()
    with pytest.raises(PartitionKeyError, match=r"expression partition key.*generated column"):
        partition_by(t, "range", func.date_trunc("month", t.c.at))
    t2 = Table("logs", MetaData(), Column("at", DateTime))
    scheme = partition_by(t2, "range", func.date_trunc("month", t2.c.at))
    assert scheme.partition_by == "RANGE ((date_trunc('month', at)))"


@pytest.mark.parametrize(
    ("parts", "match"),
    [
        ([range_partition(0, 10), range_partition(5, 20)], r"m_p0 \[0, 10\) and m_p5 .* overlap"),
        ([range_partition(0, 10), range_partition(20, 30)], r"no partition covers \[10, 20\)"),
        ([range_partition(10, 10)], "lower bound .* must be below"),
        ([range_partition(0, 10, name="x"), range_partition(10, 20, name="x")], "used twice"),
        ([list_partition(1)], "ListSpec given for a range-partitioned table"),
        ([default_partition(), default_partition(name="d2")], "at most one default"),
    ],
)
def test_range_bounds_are_checked(parts: list[object], match: str) -> None:
    t = Table("m", MetaData(), Column("n", Integer))
    with pytest.raises(PartitionBoundsError, match=match):
        partition_by(t, "range", "n", partitions=parts)  # type: ignore[arg-type]
    assert attached(t.metadata) == []


def test_gaps_can_be_allowed() -> None:
    t = Table("m", MetaData(), Column("n", Integer))
    s = partition_by(t, "range", "n", partitions=[range_partition(0, 10), range_partition(20, 30)],
                     allow_gaps=True)
    assert len(s.partitions) == 2


def test_list_and_hash_errors() -> None:
    t = Table("u", MetaData(), Column("r", Text))
    with pytest.raises(PartitionBoundsError, match="value 'fr' is in list partitions u_fr and u_x"):
        partition_by(t, "list", "r", partitions=[list_partition("fr"),
                                                 list_partition("fr", name="u_x")])
    h = Table("h", MetaData(), Column("id", Integer))
    with pytest.raises(PartitionBoundsError, match=r"lack remainders \[0\]"):
        partition_by(h, "hash", "id", partitions=[s for s in hash_partitions(4) if s.remainder])
    h2 = Table("h2", MetaData(), Column("id", Integer))
    with pytest.raises(PartitionBoundsError, match="cannot have a default"):
        partition_by(h2, "hash", "id", partitions=[*hash_partitions(2), default_partition()])


def test_other_declaration_errors() -> None:
    t = Table("m", MetaData(), Column("n", Integer), Column("at", Date))
    with pytest.raises(PartitionError, match="method='ranges'"):
        partition_by(t, "ranges", "n")
    with pytest.raises(PartitionKeyError, match=r"\['nope'\] names no column"):
        partition_by(t, "range", "nope")
    with pytest.raises(PartitionBoundsError, match="does not fit key column n"):
        partition_by(t, "range", "n", interval="1 month")
    with pytest.raises(PartitionBoundsError, match="finer than a day"):
        partition_by(t, "range", "at", interval="6 hours")
    with pytest.raises(PartitionBoundsError, match="not understood"):
        partition_by(t, "range", "at", interval="monthly")
    with pytest.raises(PartitionKeyError, match="list partitioning takes exactly one"):
        partition_by(t, "list", ["n", "at"])
    with pytest.raises(PartitionError, match="expected a Table or a mapped class"):
        partition_by("events", "range", "n")
    partition_by(t, "range", "at", interval="1 month")
    with pytest.raises(PartitionError, match="already called"):
        partition_by(t, "range", "at")


_STEPS = st.sampled_from(["1 day", "3 days", "1 week", "1 month", "3 months", "1 year"])


@given(_STEPS, st.datetimes(min_value=dt.datetime(1990, 1, 1), max_value=dt.datetime(2100, 1, 1),
                            timezones=st.just(dt.timezone.utc)),
       st.sampled_from(["UTC", "Europe/Paris", "America/New_York"]))
def test_periods_contain_their_values(interval: str, value: dt.datetime, tz: str) -> None:
    step = Step.parse(interval)
    start = step.align(value, tz)
    end = step.add(start, 1)
    assert start <= value < end
    assert step.align(start, tz) == start  # idempotent
    assert step.align(end, tz) == end  # the next period starts where this one ends


@given(st.integers(min_value=1, max_value=10_000), st.integers(-10**9, 10**9))
def test_integer_periods(width: int, value: int) -> None:
    step = Step.parse(width)
    start = step.align(value, "UTC")
    assert start <= value < step.add(start, 1)
    assert start % width == 0
