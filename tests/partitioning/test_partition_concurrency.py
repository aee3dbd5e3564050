"""ensure_partitions and retain under concurrency at every isolation level (issue #17).

Each session takes its snapshot (first statement) before any of them runs maintenance, so
at REPEATABLE READ and SERIALIZABLE all but the first see a catalog without the partitions
the others committed; they used to fail with a raw DuplicateTable.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable

import pytest
from sqlalchemy import BigInteger, Column, Date, MetaData, PrimaryKeyConstraint, Table, text
from sqlalchemy.orm import Session

from pgpatterns.errors import ConcurrentUpdateError, PartitionError
from pgpatterns.partitioning import (
    ensure_partitions,
    existing_partitions,
    partition_by,
    range_partition,
    retain,
)
from pgpatterns.testing.plugin import PgSchema

LEVELS = ["READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE"]
THREADS = 8
MAY = dt.date(2026, 5, 10)


def events(*months: int) -> Table:
    t = Table("events", MetaData(), Column("id", BigInteger), Column("day", Date),
              PrimaryKeyConstraint("id", "day"))
    partition_by(t, "range", "day", interval="1 month", partitions=[
        range_partition(dt.date(2026, m, 1), dt.date(2026, m + 1, 1)) for m in months
    ])
    return t


def names(pg_schema: PgSchema, table: Table) -> list[str]:
    with Session(pg_schema.engine) as s:
        return sorted(p.name for p in existing_partitions(s, table))


def race(
    pg_schema: PgSchema, level: str, jobs: list[Callable[[Session], list[str]]]
) -> list[tuple[int, list[str]]]:
    """Run ``jobs`` in threads, each in its own transaction at ``level`` whose snapshot is
    taken before any job starts; retry a job on a typed retryable error (bounded)."""
    engine = pg_schema.engine.execution_options(isolation_level=level)
    barrier = threading.Barrier(len(jobs))
    results: list[tuple[int, list[str]]] = []
    failures: list[BaseException] = []

    def run(index: int, job: Callable[[Session], list[str]]) -> None:
        try:
            for attempt in range(5):
                with Session(engine) as s:
                    s.execute(text("SELECT 1"))  # the snapshot, at REPEATABLE READ and above
                    if attempt == 0:
                        barrier.wait(timeout=30)
                    try:
                        done = job(s)
                        s.commit()
                    except ConcurrentUpdateError:
                        s.rollback()
                        continue
                    results.append((index, done))
                    return
            raise AssertionError(f"job {index} kept losing races")
        except BaseException as exc:  # reported by the assert below
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(jobs)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert not any(th.is_alive() for th in threads)
    assert failures == [], failures
    return results


@pytest.mark.parametrize("level", LEVELS)
def test_concurrent_ensure_is_idempotent(pg_schema: PgSchema, level: str) -> None:
    t = events()
    t.metadata.create_all(pg_schema.engine)
    jobs = [lambda s: ensure_partitions(s, t, ahead=3, now=MAY)] * THREADS
    results = race(pg_schema, level, jobs)
    expected = [f"events_p2026_{m:02d}" for m in range(5, 9)]
    assert len(results) == THREADS
    assert sorted(n for _, made in results for n in made) == expected  # each made once
    assert names(pg_schema, t) == expected


@pytest.mark.parametrize("level", LEVELS)
def test_ensure_racing_retain_ends_consistent(pg_schema: PgSchema, level: str) -> None:
    t = events(1, 2, 3, 4)
    t.metadata.create_all(pg_schema.engine)
    ensure: Callable[[Session], list[str]] = lambda s: ensure_partitions(  # noqa: E731
        s, t, ahead=2, now=MAY)
    drop: Callable[[Session], list[str]] = lambda s: retain(  # noqa: E731
        s, t, keep="2 months", now=MAY, mode="drop")
    jobs = [ensure, drop] * (THREADS // 2)
    results = race(pg_schema, level, jobs)
    made = sorted(n for i, r in results if i % 2 == 0 for n in r)
    removed = sorted(n for i, r in results if i % 2 == 1 for n in r)
    # model: months 1-2 end on or before March 10 (now - keep) and go, once; 5-7 are made once
    assert made == ["events_p2026_05", "events_p2026_06", "events_p2026_07"]
    assert removed == ["events_p2026_01", "events_p2026_02"]
    assert names(pg_schema, t) == [f"events_p2026_{m:02d}" for m in range(3, 8)]
    with pg_schema.engine.connect() as conn:  # dropped, not left behind detached
        left = conn.execute(text(
            "SELECT count(*) FROM pg_class WHERE relname IN ('events_p2026_01', 'events_p2026_02')"
            " AND relnamespace = to_regnamespace(:s)"), {"s": pg_schema.name}).scalar()
    assert left == 0


def test_same_name_with_other_bounds_is_an_error(pg_schema: PgSchema) -> None:
    """Taken as 'already made' only when the existing partition has the very same bounds."""
    t = events()
    t.metadata.create_all(pg_schema.engine)
    engine = pg_schema.engine.execution_options(isolation_level="REPEATABLE READ")
    with Session(engine) as stale:
        stale.execute(text("SELECT 1"))  # snapshot before the other partition exists
        with pg_schema.engine.begin() as conn:
            conn.execute(text(
                "CREATE TABLE events_p2026_05 PARTITION OF events"
                " FOR VALUES FROM ('2026-05-01') TO ('2026-05-20')"))
        with pytest.raises(PartitionError, match="exists with other bounds"):
            ensure_partitions(stale, t, ahead=0, now=MAY)
