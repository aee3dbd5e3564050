"""partitioning: monthly range partitions (pgpatterns.partitioning) vs one big table.

Data: N events (default 10**7 as in the issue, quick 10**5) spread evenly over 24 months,
stored three ways with the same rows: ``bench_part_events`` partitioned by month (pattern),
``bench_part_flat_btree`` with a B-tree on ``at`` and ``bench_part_flat_brin`` with a BRIN
index on ``at``.

Questions:

* ``partitioning:one-month-aggregate``: count and sum per kind over one month. Target: the
  pruned query reads at least 10x fewer buffers than the unpartitioned seq scan (``buffers``
  and ``buffers_vs_pruned`` in each case's extra info; the time ratio is smaller because
  the seq scan runs with parallel workers).
* ``partitioning:retention``: remove the oldest month: ``retain(..., mode="drop")`` (detach
  + drop) vs ``DELETE`` of that month + ``VACUUM`` (target: at least 100x slower).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    Table,
    delete,
    func,
    select,
    text,
)
from sqlalchemy.orm import Session

from benchmarks.conftest import Scale, record
from pgpatterns.bulk import copy_rows
from pgpatterns.explain import explain, plan_summary
from pgpatterns.partitioning import ensure_partitions, partition_by, retain

UTC = dt.timezone.utc
START = dt.datetime(2024, 1, 1, tzinfo=UTC)
MONTHS = 24
MONTH = (dt.datetime(2025, 3, 1, tzinfo=UTC), dt.datetime(2025, 4, 1, tzinfo=UTC))
OLDEST = (START, dt.datetime(2024, 2, 1, tzinfo=UTC))

metadata = MetaData()


def _columns() -> list[Any]:
    return [Column("id", BigInteger, nullable=False),
            Column("at", DateTime(timezone=True), nullable=False),
            Column("kind", SmallInteger, nullable=False), Column("amount", Integer, nullable=False)]


events = Table("bench_part_events", metadata, *_columns(), PrimaryKeyConstraint("id", "at"))
partition_by(events, "range", "at", interval="1 month")
flat_btree = Table("bench_part_flat_btree", metadata, *_columns(),
                   PrimaryKeyConstraint("id"), Index("bench_part_flat_btree_at", "at"))
flat_brin = Table("bench_part_flat_brin", metadata, *_columns(), PrimaryKeyConstraint("id"),
                  Index("bench_part_flat_brin_at", "at", postgresql_using="brin"))
stash = Table("bench_part_stash", metadata, *_columns())  # the oldest month, to restore it
TABLES = [events, flat_btree, flat_brin, stash]


def _rows(scale: Scale) -> tuple[int, Iterator[tuple[int, dt.datetime, int, int]]]:
    n = scale.pick(quick=10**5, default=10**7)
    rng = np.random.default_rng(scale.seed)
    span = (START.replace(year=2026) - START).total_seconds()
    seconds = np.sort(rng.uniform(0, span, n)).tolist()
    kinds = rng.integers(0, 8, n).tolist()
    amounts = rng.integers(1, 10_000, n).tolist()
    return n, ((i, START + dt.timedelta(seconds=s), k, a)
               for i, (s, k, a) in enumerate(zip(seconds, kinds, amounts, strict=True)))


@pytest.fixture(scope="module")
def _module() -> Iterator[dict[str, Any]]:
    state: dict[str, Any] = {}
    yield state
    if "engine" in state:
        metadata.drop_all(state["engine"])


@pytest.fixture
def loaded(pg_engine: Engine, scale: Scale, _module: dict[str, Any]) -> int:
    if "n" not in _module:
        _module["engine"] = pg_engine
        with Session(pg_engine) as s:
            metadata.drop_all(s.connection())
            metadata.create_all(s.connection())
            ensure_partitions(s, events, ahead=MONTHS - 1, now=START)
            s.commit()
        n, rows = _rows(scale)
        with pg_engine.begin() as conn:
            copy_rows(conn, events, rows)
            for table in (flat_btree, flat_brin):
                conn.execute(table.insert().from_select(["id", "at", "kind", "amount"],
                                                        select(events)))
            conn.execute(stash.insert().from_select(
                ["id", "at", "kind", "amount"], select(events).where(_in(events, OLDEST))))
        with pg_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE bench_part_events, bench_part_flat_btree,"
                              " bench_part_flat_brin, bench_part_stash"))
        _module["n"] = n
    result: int = _module["n"]
    return result


def _in(table: Table, bounds: tuple[dt.datetime, dt.datetime]) -> Any:
    return (table.c.at >= bounds[0]) & (table.c.at < bounds[1])


def _aggregate(table: Table) -> Any:
    return (select(table.c.kind, func.count(), func.sum(table.c.amount))
            .where(_in(table, MONTH)).group_by(table.c.kind).order_by(table.c.kind))


_SEQ = {"enable_bitmapscan": "off", "enable_indexscan": "off", "enable_indexonlyscan": "off"}
AGGREGATE_CASES = {
    "partitioned by month (pruned)": ("pattern", events, {}),
    "one table + B-tree on at": ("alternative", flat_btree, {}),
    "one table + BRIN on at": ("alternative", flat_brin, {}),
    "one table, seq scan": ("baseline", flat_brin, _SEQ),
}


def _buffers(plan: Any) -> int:
    root = plan.root
    return int(root.get("Shared Hit Blocks", 0)) + int(root.get("Shared Read Blocks", 0))


@pytest.mark.parametrize("case", list(AGGREGATE_CASES))
def test_one_month_aggregate(benchmark: Any, pg_engine: Engine, loaded: int, scale: Scale,
                             case: str) -> None:
    role, table, settings = AGGREGATE_CASES[case]
    stmt = _aggregate(table)
    with Session(pg_engine) as s:
        plan = explain(s, stmt, analyze=True, buffers=True, settings=settings or None)
        pruned = explain(s, _aggregate(events), analyze=True, buffers=True)
        expected = s.execute(_aggregate(events)).all()
    target = {"buffers_target": "pruned reads >= 10x fewer"} if role == "baseline" else {}
    record(benchmark, question="partitioning:one-month-aggregate", case=case, role=role,
           rows=loaded, scale=scale, plan=plan_summary(plan), buffers=_buffers(plan),
           buffers_vs_pruned=round(_buffers(plan) / max(_buffers(pruned), 1), 1), **target)

    def run() -> list[Any]:
        with pg_engine.connect() as conn, conn.begin():
            for name, value in settings.items():
                conn.execute(select(func.set_config(name, value, True)))
            return list(conn.execute(stmt).all())

    found = benchmark.pedantic(run, rounds=scale.rounds, iterations=1, warmup_rounds=1)
    assert found == expected and len(found) == 8


def _restore_partition(engine: Engine) -> None:
    with Session(engine) as s:
        if ensure_partitions(s, events, ahead=0, now=START):  # dropped by the last round
            s.execute(events.insert().from_select(["id", "at", "kind", "amount"], select(stash)))
        s.commit()


def _restore_rows(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(flat_btree.insert().from_select(["id", "at", "kind", "amount"],
                                                     select(stash)))


def _count(engine: Engine, table: Table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(
            _in(table, OLDEST))).scalar_one())


def test_retention_retain(benchmark: Any, pg_engine: Engine, loaded: int, scale: Scale) -> None:
    record(benchmark, question="partitioning:retention", case="retain(mode='drop')",
           role="pattern", rows=_count(pg_engine, stash), scale=scale,
           plan="ALTER TABLE ... DETACH PARTITION; DROP TABLE")
    now = START.replace(year=2025) + dt.timedelta(days=20)

    def run() -> list[str]:
        with Session(pg_engine) as s:
            gone = retain(s, events, before=OLDEST[1], now=now, mode="drop")
            s.commit()
        return gone

    gone = benchmark.pedantic(run, setup=lambda: _restore_partition(pg_engine),
                              rounds=scale.rounds, iterations=1, warmup_rounds=0)
    assert gone == ["bench_part_events_p2024_01"]
    assert _count(pg_engine, events) == 0


def test_retention_handwritten(benchmark: Any, pg_engine: Engine, loaded: int,
                               scale: Scale) -> None:
    record(benchmark, question="partitioning:retention", case="hand-written DETACH + DROP",
           role="limit", rows=_count(pg_engine, stash), scale=scale,
           plan="ALTER TABLE ... DETACH PARTITION; DROP TABLE")

    def run() -> None:
        with pg_engine.begin() as conn:
            conn.execute(text("ALTER TABLE bench_part_events DETACH PARTITION "
                              "bench_part_events_p2024_01"))
            conn.execute(text("DROP TABLE bench_part_events_p2024_01"))

    benchmark.pedantic(run, setup=lambda: _restore_partition(pg_engine),
                       rounds=scale.rounds, iterations=1, warmup_rounds=0)
    assert _count(pg_engine, events) == 0


def test_retention_delete_vacuum(benchmark: Any, pg_engine: Engine, loaded: int,
                                 scale: Scale) -> None:
    rounds = min(scale.rounds, 3)
    record(benchmark, question="partitioning:retention", case="DELETE month + VACUUM",
           role="baseline", rows=_count(pg_engine, stash), scale=scale,
           plan="Delete on bench_part_flat_btree (index range) + VACUUM",
           slower_by_at_least=100, note=f"{rounds} rounds")
    stmt = delete(flat_btree).where(_in(flat_btree, OLDEST))

    def run() -> None:
        with pg_engine.begin() as conn:
            conn.execute(stmt)
        with pg_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM bench_part_flat_btree"))

    with pg_engine.begin() as conn:  # start from the same state as every round
        conn.execute(stmt)
    benchmark.pedantic(run, setup=lambda: _restore_rows(pg_engine), rounds=rounds,
                       iterations=1, warmup_rounds=0)
    assert _count(pg_engine, flat_btree) == 0
