"""Partitioned tables on a real PostgreSQL: routing, ensure/retain, pruning, RLS, async."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
    insert,
    literal_column,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from pgpatterns.ddl import attach
from pgpatterns.errors import (
    DefaultPartitionConflictError,
    PartitionError,
    PartitionRetentionError,
)
from pgpatterns.explain import explain, nodes
from pgpatterns.partitioning import (
    check_default_partition,
    default_partition,
    ensure_partitions,
    ensure_partitions_async,
    existing_partitions,
    partition_by,
    retain,
    retain_async,
    run_pg_partman_maintenance,
    use_pg_partman,
)
from pgpatterns.partitioning.periods import Step
from pgpatterns.rls import enable_rls, policy, tenant_isolation
from pgpatterns.testing import Database
from pgpatterns.testing.plugin import PgSchema

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 5, 17, 12, tzinfo=UTC)


def _events(default: bool = False, interval: str = "1 month") -> Table:
    t = Table(
        "events", MetaData(),
        Column("id", BigInteger, nullable=False),
        Column("at", DateTime(timezone=True), nullable=False),
        Column("kind", Text), PrimaryKeyConstraint("id", "at"), Index("events_kind", "kind"),
    )
    partition_by(t, "range", "at", interval=interval,
                 partitions=[default_partition()] if default else [])
    return t


def _names(conn: Any, table: Any) -> list[str]:
    return sorted(p.name for p in existing_partitions(conn, table) if not p.is_default)


def test_ensure_creates_ahead_is_idempotent_and_fills_gaps(pg_schema: PgSchema) -> None:
    t = _events()
    with Session(pg_schema.engine) as s:
        t.metadata.create_all(s.connection())
        made = ensure_partitions(s, t, ahead=3, now=NOW)
        assert made == [f"events_p2026_0{m}" for m in (5, 6, 7, 8)]
        assert ensure_partitions(s, t, ahead=3, now=NOW) == []  # idempotent
        s.execute(text("DROP TABLE events_p2026_06"))  # a gap in the middle
        assert ensure_partitions(s, t, ahead=4, now=NOW) == ["events_p2026_06", "events_p2026_09"]
        # a hand-made partition covering half a period: the rest is created around it
        s.execute(text("CREATE TABLE odd PARTITION OF events FOR VALUES FROM "
                       "('2026-10-01 00:00+00') TO ('2026-10-15 00:00+00')"))
        assert ensure_partitions(s, t, ahead=5, now=NOW) == ["events_p2026_10"]
        parts = {p.name: p for p in existing_partitions(s, t)}
        assert parts["events_p2026_10"].low == dt.datetime(2026, 10, 15, tzinfo=UTC)
        assert parts["events_p2026_10"].high == dt.datetime(2026, 11, 1, tzinfo=UTC)
        # the index declared on the parent reaches the new partitions
        idx = s.execute(text("SELECT count(*) FROM pg_indexes WHERE tablename = 'events_p2026_09'"
                             " AND indexdef LIKE '%(kind)%'")).scalar()
        assert idx == 1


def test_routing_matches_the_python_model_of_bounds(pg_engine: Engine) -> None:
    @settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None,
              max_examples=25)
    @given(
        interval=st.sampled_from(["1 day", "1 week", "1 month", "3 months", "1 year"]),
        now=st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2090, 1, 1)),
        ahead=st.integers(0, 6),
        offsets=st.lists(st.floats(0, 0.999), min_size=1, max_size=20),
    )
    def check(interval: str, now: dt.date, ahead: int, offsets: list[float]) -> None:
        step = Step.parse(interval)
        t = Table("routed", MetaData(), Column("day", Date, nullable=False))
        partition_by(t, "range", "day", interval=interval)
        start = step.align(now, "UTC")
        span = (step.add(start, ahead + 1) - start).days
        days = [start + dt.timedelta(days=int(f * span)) for f in offsets]
        with pg_engine.connect() as conn, conn.begin():
            t.metadata.create_all(conn)
            ensure_partitions(conn, t, ahead=ahead, now=now)
            conn.execute(insert(t), [{"day": d} for d in days])
            rows = conn.execute(select(t.c.day, literal_column("tableoid::regclass::text"))).all()
            conn.rollback()
        for day, where in rows:
            assert where == f"routed_p{step.label(step.align(day, 'UTC'))}"
        assert sorted(d for d, _ in rows) == sorted(days)

    check()


def test_concurrent_ensure_creates_each_partition_once(pg_schema: PgSchema) -> None:
    t = _events()
    with pg_schema.engine.begin() as conn:
        t.metadata.create_all(conn)
    results: list[Any] = []
    barrier = threading.Barrier(3)

    def run() -> None:
        barrier.wait()
        try:
            with Session(pg_schema.engine) as s:
                results.append(ensure_partitions(s, t, ahead=5, now=NOW))
                s.commit()
        except Exception as exc:  # pragma: no cover - reported by the assert below
            results.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    created = sorted(n for r in results for n in r)
    assert created == [f"events_p2026_{m:02d}" for m in range(5, 11)], results


def test_default_partition_conflict_is_reported_and_nothing_created(pg_schema: PgSchema) -> None:
    t = _events(default=True)
    with Session(pg_schema.engine) as s:
        t.metadata.create_all(s.connection())
        s.execute(insert(t), [{"id": 1, "at": dt.datetime(2026, 6, 3, tzinfo=UTC)}])
        blocked = check_default_partition(s, t, ahead=2, now=NOW)
        assert [(b.low.month, b.rows) for b in blocked] == [(6, 1)]
        with pytest.raises(DefaultPartitionConflictError, match=r"1 rows in \[2026-06-01"):
            ensure_partitions(s, t, ahead=2, now=NOW)
        assert _names(s, t) == []


def _filled(engine: Engine) -> Table:
    t = _events()
    with Session(engine) as s:
        t.metadata.create_all(s.connection())
        ensure_partitions(s, t, ahead=0, now=dt.datetime(2025, 1, 1, tzinfo=UTC))
        ensure_partitions(s, t, ahead=16, now=dt.datetime(2025, 2, 1, tzinfo=UTC))
        s.execute(text("INSERT INTO events SELECT g, timestamptz '2025-01-01'"
                       " + g * interval '1 hour' FROM generate_series(0, 12000) g"))
        s.commit()
    return t


def test_retain_detaches_then_drops_and_refuses_the_current_partition(pg_schema: PgSchema) -> None:
    t = _filled(pg_schema.engine)
    with Session(pg_schema.engine) as s:
        with pytest.raises(PartitionRetentionError, match=r"events_p2026_05 .* receives writes"):
            retain(s, t, before=dt.datetime(2026, 7, 1, tzinfo=UTC), now=NOW)
        with pytest.raises(PartitionRetentionError, match=r"cannot DETACH CONCURRENTLY.*block"):
            retain(s, t, keep="12 months", now=NOW, concurrently=True)
        assert len(_names(s, t)) == 18  # nothing was detached
        gone = retain(s, t, keep="12 months", now=NOW)  # detach: standalone tables remain
        assert gone == ["events_p2025_01", "events_p2025_02", "events_p2025_03", "events_p2025_04"]
        assert s.execute(text("SELECT count(*) FROM events_p2025_01")).scalar() == 744
        assert retain(s, t, keep="12 months", now=NOW) == []  # idempotent
        dropped = retain(s, t, keep="6 months", now=NOW, mode="drop")
        assert dropped[0] == "events_p2025_05" and dropped[-1] == "events_p2025_10"
        assert s.execute(text("SELECT to_regclass('events_p2025_05')")).scalar() is None
        assert min(_names(s, t)) == "events_p2025_11"


def test_retain_detaches_concurrently_in_autocommit(pg_schema: PgSchema) -> None:
    t = _filled(pg_schema.engine)
    auto = pg_schema.engine.execution_options(isolation_level="AUTOCOMMIT")
    with Session(auto) as s:
        assert retain(s, t, keep="14 months", now=NOW, mode="drop") == [
            "events_p2025_01", "events_p2025_02"
        ]
    with pg_schema.engine.connect() as conn:
        assert min(_names(conn, t)) == "events_p2025_03"


def test_one_month_query_touches_one_partition(pg_schema: PgSchema) -> None:
    t = _filled(pg_schema.engine)
    month = (t.c.at >= dt.datetime(2025, 6, 1, tzinfo=UTC)) & (
        t.c.at < dt.datetime(2025, 7, 1, tzinfo=UTC))
    with pg_schema.engine.connect() as conn:
        conn.execute(text("ANALYZE events"))
        pruned = explain(conn, select(func.count()).where(month))
        naive = explain(conn, select(func.count()).where(
            func.date_trunc("month", t.c.at) == dt.datetime(2025, 6, 1, tzinfo=UTC)))
    scanned = {n["Relation Name"] for n in nodes(pruned) if "Relation Name" in n}
    assert scanned == {"events_p2025_06"}
    assert len({n["Relation Name"] for n in nodes(naive) if "Relation Name" in n}) == 18


def test_rls_declared_on_the_parent_reaches_new_partitions(pg_schema: PgSchema,
                                                           pg_database: Database) -> None:
    t = Table("docs", MetaData(), Column("tenant_id", Integer, nullable=False),
              Column("day", Date, nullable=False), PrimaryKeyConstraint("tenant_id", "day"))
    partition_by(t, "range", "day", interval="1 month")
    rls = enable_rls(t)
    attach(t.metadata, rls, policy("tenant", t, to=[pg_database.app_role],
                                   using=tenant_isolation(t.c.tenant_id)))
    with Session(pg_schema.engine) as s:
        t.metadata.create_all(s.connection())
        ensure_partitions(s, t, ahead=1, now=dt.date(2026, 1, 10))
        rows = s.execute(text(
            "SELECT c.relname, c.relrowsecurity, count(p.polname) FROM pg_class c"
            " LEFT JOIN pg_policy p ON p.polrelid = c.oid"
            " WHERE c.relname LIKE 'docs_p%' AND c.relkind = 'r'"
            " GROUP BY 1, 2 ORDER BY 1")).all()
    assert rows == [("docs_p2026_01", True, 1), ("docs_p2026_02", True, 1)]


async def test_async_ensure_and_retain(pg_schema: PgSchema, pg_database: Database) -> None:
    t = _events()
    with pg_schema.engine.begin() as conn:
        t.metadata.create_all(conn)
    args = pg_database.search_path_args(pg_schema.name)
    engine = create_async_engine(pg_database.url, poolclass=NullPool, connect_args=args)
    try:
        async with AsyncSession(engine) as s:
            made = await ensure_partitions_async(s, t, ahead=2, now=NOW)
            assert made == ["events_p2026_05", "events_p2026_06", "events_p2026_07"]
            gone = await retain_async(s, t, keep="1 month", now=dt.datetime(2026, 8, 2, tzinfo=UTC),
                                      mode="drop")
            assert gone == ["events_p2026_05", "events_p2026_06"]
            await s.commit()
    finally:
        await engine.dispose()


@pytest.mark.requires_extension("pg_partman")
def test_use_pg_partman_takes_over_maintenance(pg_schema: PgSchema) -> None:
    t = _events()
    with pg_schema.engine.begin() as conn:
        conn.execute(text("CREATE SCHEMA IF NOT EXISTS partman"))
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS pg_partman SCHEMA partman"))
        t.metadata.create_all(conn)
    with Session(pg_schema.engine) as s:
        config = use_pg_partman(s, t, premake=2, retention="12 months")
        run_pg_partman_maintenance(s, t)
        s.commit()
        names = _names(s, t)
        row = s.execute(text("SELECT retention, premake FROM partman.part_config"
                             " WHERE parent_table = :p"), {"p": config.parent_table}).one()
    assert config.parent_table == f"{pg_schema.name}.events"
    assert row == ("12 months", 2)
    assert len(names) >= 3  # current month and the premade ones
    with pg_schema.engine.begin() as conn:  # rows are routed without a hand-made partition
        conn.execute(insert(t).values(id=1, at=dt.datetime.now(UTC)))
        assert conn.execute(select(func.count()).select_from(t)).scalar() == 1


def test_missing_parent_is_a_clear_error(pg_schema: PgSchema) -> None:
    t = _events()
    with Session(pg_schema.engine) as s, pytest.raises(PartitionError, match="does not exist"):
        ensure_partitions(s, t)
