"""pgpatterns.constraints: EXCLUDE no_overlap (incl. concurrent inserts) and CHECK helpers."""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

import pytest
from sqlalchemy import (
    Column,
    Date,
    DateTime,
    Engine,
    Integer,
    MetaData,
    Table,
    Text,
    insert,
    text,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import TSTZRANGE
from sqlalchemy.exc import IntegrityError
from sqlalchemy.schema import CreateTable

from pgpatterns.constraints import check, no_overlap, translate_errors
from pgpatterns.errors import ConstraintError, OverlapError
from pgpatterns.testing.plugin import PgSchema

DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]
T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone.utc)


def _bookings(metadata: MetaData | None = None) -> Table:
    table = Table(
        "bookings",
        metadata or MetaData(),
        Column("id", Integer, primary_key=True),
        Column("room_id", Integer, nullable=False),
        Column("starts_at", DateTime(timezone=True), nullable=False),
        Column("ends_at", DateTime(timezone=True), nullable=False),
        Column("status", Text, nullable=False, server_default="confirmed"),
        Column("guests", Integer, nullable=False, server_default="1"),
        check.positive("guests"),
        check.one_of("status", ["confirmed", "cancelled"]),
    )
    no_overlap(table, ("starts_at", "ends_at"), "room_id",
               where=table.c.status != "cancelled")
    return table


def _at(hours: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=hours)


# -- compile-only ------------------------------------------------------------------------
def test_no_overlap_ddl() -> None:
    ddl = str(CreateTable(_bookings()).compile(dialect=DIALECT))
    assert (
        "CONSTRAINT bookings_no_overlap EXCLUDE USING gist (room_id WITH =, "
        "tstzrange(starts_at, ends_at, '[)') WITH &&) WHERE (bookings.status != 'cancelled')"
    ) in ddl
    assert "CONSTRAINT guests_positive CHECK (guests > 0)" in ddl
    assert "CONSTRAINT status_one_of CHECK (status IN ('confirmed', 'cancelled'))" in ddl


def test_no_overlap_on_range_and_date_columns() -> None:
    t = Table("stays", MetaData(), Column("id", Integer), Column("during", TSTZRANGE),
              Column("a", Date), Column("b", Date))
    assert no_overlap(t, "during", name="stays_during_excl").name == "stays_during_excl"
    ex = no_overlap(t, (t.c.a, t.c.b), "id", name="stays_dates_excl", bounds="[]")
    assert "daterange(a, b, '[]') WITH &&" in str(CreateTable(t).compile(dialect=DIALECT))
    assert ex in t.constraints


@pytest.mark.parametrize(
    ("args", "kwargs", "fragment"),
    [
        (("nope", "room_id"), {}, "has no column 'nope'"),
        (("room_id",), {}, "not a range type"),
        ((("starts_at", "room_id"),), {}, "same type"),
        ((("starts_at", "ends_at"), "starts_at"), {}, "both a range bound"),
        ((("starts_at", "ends_at"),), {"bounds": "[["}, "bounds="),
        ((("starts_at", "ends_at"),), {"name": "bookings_no_overlap"}, "already has"),
        ((("starts_at", "ends_at"),), {"name": "x" * 70}, "truncates"),
    ],
)
def test_no_overlap_bad_input(args: tuple[Any, ...], kwargs: dict[str, Any], fragment: str
                              ) -> None:
    table = _bookings()
    before = set(table.constraints)
    with pytest.raises(ConstraintError, match=fragment):
        no_overlap(table, *args, **kwargs)
    assert set(table.constraints) == before  # nothing half-added


def test_check_helpers() -> None:
    t = Table("t", MetaData(), Column("a", Integer), Column("b", Integer), Column("s", Text))
    assert check.between(t.c.a, 1, 5).name == "a_between"
    assert check.positive(t.c.a, allow_zero=True).name == "a_non_negative"
    assert check.not_blank("s").name == "s_not_blank"
    assert check.exactly_one("a", t.c.b).name == "exactly_one_of_a_b"
    for bad, fragment in [
        (lambda: check.between("a", 5, 1), "empty range"),
        (lambda: check.one_of("s", []), "non-empty"),
        (lambda: check.one_of("s", ["x", 1]), "mix types"),
        (lambda: check.one_of("s", ["x", "x"]), "duplicates"),
        (lambda: check.exactly_one("a"), "at least two"),
        (lambda: check(t.c.a > 1, name=""), "name is required"),
    ]:
        with pytest.raises(ConstraintError, match=fragment):
            bad()


# -- real PostgreSQL ---------------------------------------------------------------------
@pytest.fixture
def bookings(pg_schema: PgSchema) -> Table:
    metadata = MetaData()
    table = _bookings(metadata)
    table.append_constraint(check.not_blank("status"))
    Table("guests_or_group", metadata, Column("id", Integer, primary_key=True),
          Column("person", Integer), Column("team", Integer),
          check.exactly_one("person", "team"))
    with pg_schema.engine.begin() as conn:
        metadata.create_all(conn)
    return table


def _book(engine: Engine, table: Table, room: int, start: float, end: float, **kw: Any) -> None:
    with engine.begin() as conn:
        conn.execute(insert(table).values(room_id=room, starts_at=_at(start), ends_at=_at(end),
                                          **kw))


def test_overlap_rejected_with_typed_error(pg_schema: PgSchema, bookings: Table) -> None:
    engine = pg_schema.engine
    _book(engine, bookings, 1, 0, 2)
    _book(engine, bookings, 1, 2, 3)  # adjacent: '[)' ranges do not overlap
    _book(engine, bookings, 2, 0, 2)  # another room
    _book(engine, bookings, 1, 0, 3, status="cancelled")  # cancelled rows are excluded
    with pytest.raises(OverlapError) as info, translate_errors():
        _book(engine, bookings, 1, 1, 1.5)
    err = info.value
    assert err.constraint == "bookings_no_overlap"
    assert "(room_id, tstzrange(starts_at, ends_at, '[)'::text))=(1, " in err.conflicting
    assert "2026-03-02 09:00:00+00" in err.conflicting
    assert "bookings_no_overlap on bookings" in str(err)
    assert isinstance(err.__cause__, IntegrityError)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM bookings")).scalar() == 4


def test_check_constraints_enforced(pg_schema: PgSchema, bookings: Table) -> None:
    engine = pg_schema.engine
    for kwargs, name in [({"guests": 0}, "guests_positive"), ({"status": "maybe"},
                                                             "status_one_of")]:
        with pytest.raises(IntegrityError, match=name):
            _book(engine, bookings, 3, 0, 1, **kwargs)
    with engine.begin() as conn, pytest.raises(IntegrityError, match="exactly_one_of_person"):
        conn.execute(text("INSERT INTO guests_or_group (id, person, team) VALUES (1, 1, 1)"))


def test_overlap_under_concurrent_inserts(pg_schema: PgSchema, bookings: Table) -> None:
    """The second of two overlapping inserts waits for the first, then fails."""
    engine = pg_schema.engine
    outcome: dict[str, BaseException | None] = {}

    def second() -> None:
        try:
            with translate_errors():
                _book(engine, bookings, 7, 1, 3)
            outcome["error"] = None
        except BaseException as exc:
            outcome["error"] = exc

    with engine.connect() as first:
        first.begin()
        first.execute(insert(bookings).values(room_id=7, starts_at=_at(0), ends_at=_at(2)))
        worker = threading.Thread(target=second)
        worker.start()
        time.sleep(0.5)
        assert worker.is_alive(), "the second insert should wait for the first transaction"
        first.commit()
    worker.join(10)
    assert isinstance(outcome["error"], OverlapError)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM bookings WHERE room_id = 7")).scalar() == 1


def test_missing_btree_gist_is_reported_before_create(pg_schema: PgSchema) -> None:
    """btree_gist is dropped inside a transaction that is rolled back afterwards."""
    metadata = MetaData()
    _bookings(metadata)
    with pg_schema.engine.connect() as conn:
        conn.begin()
        conn.execute(text("DROP EXTENSION btree_gist CASCADE"))
        with pytest.raises(ConstraintError, match="needs the btree_gist extension"):
            metadata.create_all(conn)
        exists = conn.execute(text("SELECT to_regclass('bookings')")).scalar()
        conn.rollback()
    assert exists is None
