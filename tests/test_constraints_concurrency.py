"""no_overlap under 8 concurrent writers, and CHECK helpers that would constrain nothing.

Issue #17: ``check.one_of("s", [None])`` rendered ``CHECK (s IN (NULL))``, which accepted
every value; the concurrency test checks the final rows against a model.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
import time
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    Table,
    Text,
    insert,
    select,
    text,
)
from sqlalchemy.exc import IntegrityError

from pgpatterns.constraints import check, no_overlap, translate_errors
from pgpatterns.errors import ConcurrentUpdateError, ConstraintError, OverlapError
from pgpatterns.testing.plugin import PgSchema

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone.utc)
THREADS = 8


def rooms() -> Table:
    table = Table(
        "rooms_booked", MetaData(),
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("room_id", Integer, nullable=False),
        Column("starts_at", DateTime(timezone=True), nullable=False),
        Column("ends_at", DateTime(timezone=True), nullable=False),
    )
    no_overlap(table, ("starts_at", "ends_at"), "room_id")
    return table


def overlaps(a: tuple[int, int, int], b: tuple[int, int, int]) -> bool:
    return a[0] == b[0] and a[1] < b[2] and b[1] < a[2]  # same room, '[)' ranges


@pytest.mark.parametrize("level", ["READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE"])
@pytest.mark.parametrize("seed", [1, 2])
def test_concurrent_overlapping_inserts(pg_schema: PgSchema, level: str, seed: int) -> None:
    table = rooms()
    table.metadata.create_all(pg_schema.engine)
    rng = random.Random(seed)
    # 8 writers x 4 bookings each over 2 rooms and 12 hours: many overlaps between writers
    wanted = {
        n: (rng.randint(1, 2), start, start + rng.randint(1, 3))
        for n, start in ((n, rng.randint(0, 10)) for n in range(THREADS * 4))
    }
    engine = pg_schema.engine.execution_options(isolation_level=level)
    barrier = threading.Barrier(THREADS)
    refused: list[int] = []
    retried: list[int] = []
    failures: list[BaseException] = []

    def writer(ids: list[int]) -> None:
        barrier.wait(timeout=30)
        for n in ids:
            room, start, end = wanted[n]
            for _attempt in range(20):  # the documented retry contract
                try:
                    with translate_errors(), engine.begin() as conn:
                        conn.execute(insert(table).values(
                            id=n, room_id=room, starts_at=T0 + dt.timedelta(hours=start),
                            ends_at=T0 + dt.timedelta(hours=end)))
                        time.sleep(0.005)  # hold the row uncommitted: overlapping writers wait
                except ConcurrentUpdateError:
                    retried.append(n)  # a deadlock between two overlapping writers: retry
                    continue
                except OverlapError as exc:
                    assert exc.constraint == "rooms_booked_no_overlap"
                    assert isinstance(exc.__cause__, IntegrityError)
                    refused.append(n)
                except BaseException as exc:  # reported by the assert below
                    failures.append(exc)
                break

    threads = [threading.Thread(target=writer, args=(list(range(i, THREADS * 4, THREADS)),))
               for i in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert not any(th.is_alive() for th in threads)
    assert failures == []  # every refusal was the typed OverlapError
    with pg_schema.engine.connect() as conn:
        kept = set(conn.scalars(select(table.c.id)))
    # model: the survivors never overlap, and each refused booking overlaps a survivor
    assert kept | set(refused) == set(wanted) and not kept & set(refused)
    for a in kept:
        for b in kept:
            assert a == b or not overlaps(wanted[a], wanted[b]), (a, b)
    for n in refused:
        assert any(overlaps(wanted[n], wanted[k]) for k in kept), n


# -- CHECK helpers that would constrain nothing -----------------------------------------


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda: check.one_of("s", [None]), "values contain None"),
        (lambda: check.one_of("s", ["a", None]), "values contain None"),
        (lambda: check.one_of("s", None), "values=None is not a list"),  # type: ignore[arg-type]
        (lambda: check.one_of("s", "abc"), "values='abc' is not a list"),
        (lambda: check.one_of("s", {"a": 1}), "is not a list"),  # type: ignore[arg-type]
        (lambda: check.one_of("n", [1.0, float("nan")]), "values contain NaN"),
        (lambda: check.between("n", None, 5), "low=None would make the CHECK NULL"),
        (lambda: check.between("n", 1, float("nan")), "high=nan"),
        (lambda: check.between("n", Decimal("NaN"), 1), "low=Decimal"),
        (lambda: check.between("n", 1, "x"), "cannot be compared"),
    ],
)
def test_check_helpers_refuse_what_constrains_nothing(make: Any, fragment: str) -> None:
    with pytest.raises(ConstraintError, match=fragment):
        make()


def test_one_of_is_enforced(pg_schema: PgSchema) -> None:
    t = Table("orders", MetaData(), Column("id", Integer, primary_key=True),
              Column("s", Text), check.one_of("s", ["paid", "open"]))
    t.metadata.create_all(pg_schema.engine)
    with pg_schema.engine.begin() as conn:
        conn.execute(insert(t), [{"id": 1, "s": "paid"}, {"id": 2, "s": None}])
    with pg_schema.engine.begin() as conn, pytest.raises(IntegrityError, match="s_one_of"):
        conn.execute(insert(t).values(id=3, s="anything"))
    with pg_schema.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM orders")).scalar() == 2
