"""Generic-plan regression suite: every helper keeps its plan after psycopg prepares it (#22).

psycopg prepares a statement on its 6th execution (``prepare_threshold=5``); PostgreSQL then
plans the prepared statement with its values 5 more times and may switch to a *generic* plan
(planned once for any values) when that looks no more expensive. A helper whose fast plan
depends on seeing the values (a partial index, a JSONB containment selectivity, a LIMIT as
a parameter) can silently lose its index from the ~11th call on one connection.

Each case runs the helper's statement 12 times on one connection with psycopg's defaults,
then reads ``pg_prepared_statements``: if PostgreSQL chose the generic plan, that plan
(``plan_cache_mode = force_generic_plan``, ``EXPLAIN EXECUTE``) must still read the index the
first (custom) plan read, or prune partitions, and have the custom plan's shape (the same
node types in the same order). No timing is asserted here (benchmarks do). On PostgreSQL 18
the generic plan is chosen for trees, ``having_all`` and the tenant query, and kept for the
others; each case asserts whichever happened.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from psycopg import sql
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Engine,
    Index,
    MetaData,
    Table,
    Text,
    create_engine,
    event,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.pool import NullPool

from pgpatterns.arrays import array_has
from pgpatterns.associations import association_table, having_all, having_any
from pgpatterns.bulk import copy_rows
from pgpatterns.explain import Plan, explain, scan_types, uses_index
from pgpatterns.jsonb import jsonb_contains, jsonb_has_key
from pgpatterns.rls import TenantScoped, tenant_context
from pgpatterns.testing import Database
from pgpatterns.trees import AdjacencyListMixin, ancestors, descendants

N = 20_000


class Base(DeclarativeBase):
    metadata = MetaData()


class Node(AdjacencyListMixin, Base):
    __tablename__ = "gp_nodes"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)


class Post(Base):
    __tablename__ = "gp_posts"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    data: Mapped[dict[str, Any]] = mapped_column(JSONB)
    labels: Mapped[list[str]] = mapped_column(ARRAY(Text))
    __table_args__ = (
        Index("gp_posts_data_gin", "data", postgresql_using="gin",
              postgresql_ops={"data": "jsonb_path_ops"}),
        Index("gp_posts_keys_gin", "data", postgresql_using="gin"),
        Index("gp_posts_labels_gin", "labels", postgresql_using="gin"),
    )


class Tag(Base):
    __tablename__ = "gp_tags"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)


class Note(TenantScoped, Base):
    __tablename__ = "gp_notes"
    __tenant_roles__ = ("gp_app",)  # replaced by the database's app role below
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    __table_args__ = (Index("gp_notes_tenant_recent", "tenant_id", "created_at"),)


links = association_table(Post, Tag, name="gp_post_tags")
from sqlalchemy.orm import relationship  # noqa: E402

Post.tags = relationship(Tag, secondary=links, passive_deletes=True)  # type: ignore[attr-defined]

events = Table(
    "gp_events", Base.metadata,
    Column("id", BigInteger, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    postgresql_partition_by="RANGE (at)",
)
_DAYS = 20
_START = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


@dataclass
class World:
    engine: Engine
    app: Engine


_WORLD: dict[str, Any] = {}


@pytest.fixture(scope="module")
def _drop_world() -> Iterator[None]:
    yield
    if _WORLD:
        _WORLD["engine"].dispose()
        _WORLD["app"].dispose()
        _WORLD["database"].drop_schema(_WORLD["schema"])
        _WORLD.clear()


@pytest.fixture
def world(pg_database: Database, _drop_world: None) -> World:
    """Loaded by the first case into a schema of its own (kept for the module)."""
    if not _WORLD:
        schema = pg_database.create_schema("gp")
        options = pg_database.search_path_args(schema)
        engine = create_engine(pg_database.url, poolclass=NullPool, connect_args=options)
        app = create_engine(pg_database.app_url, poolclass=NullPool, connect_args=options)
        _WORLD.update(engine=engine, app=app, database=pg_database, schema=schema)
        _load(engine, pg_database.app_role)
    return World(_WORLD["engine"], _WORLD["app"])


def _load(engine: Engine, app_role: str) -> None:
    rng = random.Random(7)
    Note.__table__.info["pgpatterns.rls.policies"][0].to = (app_role,)  # type: ignore[union-attr]
    with engine.begin() as conn:
        Base.metadata.create_all(conn)
        for day in range(_DAYS):
            lo, hi = _START + dt.timedelta(days=day), _START + dt.timedelta(days=day + 1)
            conn.execute(text(
                f"CREATE TABLE gp_events_{day} PARTITION OF gp_events FOR VALUES FROM "
                f"('{lo.isoformat()}') TO ('{hi.isoformat()}')"))
        copy_rows(conn, Node.__table__, (
            (i, None if i < 10 else rng.randrange(1, i)) for i in range(1, N + 1)),
            columns=["id", "parent_id"])
        copy_rows(conn, Post.__table__, (
            (i, json.dumps({"kind": f"k{rng.randrange(200)}", f"key{i % 50}": 1}),
             [f"l{rng.randrange(300)}"]) for i in range(1, N + 1)),
            columns=["id", "data", "labels"])
        copy_rows(conn, Tag.__table__, ((i,) for i in range(1, 301)))
        pairs = {(rng.randrange(1, N + 1), min(rng.randrange(1, 301), rng.randrange(1, 301)))
                 for _ in range(3 * N)}
        copy_rows(conn, links, sorted(pairs))
        copy_rows(conn, Note.__table__, (
            (1 + i % 100, i, _START + dt.timedelta(seconds=i)) for i in range(1, N + 1)),
            columns=["tenant_id", "id", "created_at"])
        copy_rows(conn, events, (
            (i, _START + dt.timedelta(seconds=i * _DAYS * 86400 // N)) for i in range(N)))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))


def _placeholders(statement: str) -> list[str]:
    """Parameter names in the order psycopg numbers them ($1, $2, ...)."""
    return list(dict.fromkeys(re.findall(r"%\((\w+)\)s", statement)))


@dataclass
class Prepared:
    name: str
    generic_plans: int
    custom_plans: int
    args: list[Any]


def _run_prepared(conn: Connection, stmt: Any, times: int = 12) -> Prepared:
    """Run ``stmt`` ``times`` times on ``conn``; the prepared statement it became."""
    sent: list[tuple[str, Any]] = []

    def remember(c: Any, cursor: Any, statement: str, parameters: Any, *a: Any) -> None:
        sent.append((statement, parameters))

    before = set(conn.execute(text("SELECT name FROM pg_prepared_statements")).scalars())
    event.listen(conn, "before_cursor_execute", remember)
    try:
        first = conn.execute(stmt).all()
        for _ in range(times - 1):
            assert conn.execute(stmt).all() == first
    finally:
        event.remove(conn, "before_cursor_execute", remember)
    statement, params = sent[-1]
    rows = conn.execute(text(
        "SELECT name, generic_plans, custom_plans FROM pg_prepared_statements"
        " WHERE NOT (name = ANY(:before)) ORDER BY custom_plans + generic_plans DESC"),
        {"before": sorted(before)}).all()
    assert rows, "psycopg did not prepare the statement"
    args = [params[n] for n in _placeholders(statement)] if isinstance(params, dict) else []
    return Prepared(rows[0].name, rows[0].generic_plans, rows[0].custom_plans, args)


def _generic_plan(conn: Connection, prepared: Prepared) -> Plan:
    conn.execute(text("SELECT set_config('plan_cache_mode', 'force_generic_plan', true)"))
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur:
        args = sql.SQL(", ").join(map(sql.Literal, prepared.args))
        query = sql.SQL("EXPLAIN (FORMAT JSON) EXECUTE {}({})").format(
            sql.Identifier(prepared.name), args) if prepared.args else sql.SQL(
            "EXPLAIN (FORMAT JSON) EXECUTE {}").format(sql.Identifier(prepared.name))
        cur.execute(query, prepare=False)
        row = cur.fetchone()
    assert row is not None
    conn.execute(text("SELECT set_config('plan_cache_mode', 'auto', true)"))
    return Plan({"Plan": row[0][0]["Plan"]})


Check = Callable[[Plan], bool]


def _index(name: str) -> Check:
    return lambda plan: uses_index(plan, name)


def _pruned(plan: Plan) -> bool:
    text_ = json.dumps(plan.raw)
    scanned = len(re.findall(r'"Relation Name": "gp_events_\d+"', text_))
    return scanned <= 2 or '"Subplans Removed"' in text_


CASES: list[tuple[str, Callable[[], Any], Check, bool]] = [
    # (id, statement, what its plan must keep, run as the app role with a tenant)
    ("trees-descendants", lambda: descendants(Node, 5),
     _index("ix_gp_nodes_parent_id"), False),
    ("trees-ancestors", lambda: ancestors(Node, 19_999), _index("gp_nodes_pkey"), False),
    ("assoc-having-any", lambda: having_any(Post, Post.tags, [7]).limit(20),  # type: ignore[attr-defined]
     _index("gp_post_tags_tag_id_post_id_idx"), False),
    ("assoc-having-all", lambda: having_all(Post, Post.tags, [3, 9]),  # type: ignore[attr-defined]
     _index("gp_post_tags_tag_id_post_id_idx"), False),
    ("jsonb-contains", lambda: select(Post.id).where(jsonb_contains(Post.data, {"kind": "k7"})),
     _index("gp_posts_data_gin"), False),
    ("jsonb-has-key", lambda: select(Post.id).where(jsonb_has_key(Post.data, "key7")),
     _index("gp_posts_keys_gin"), False),
    ("arrays-has", lambda: select(Post.id).where(array_has(Post.labels, "l7")),
     _index("gp_posts_labels_gin"), False),
    ("rls-tenant-recent", lambda: select(Note.id).order_by(Note.created_at.desc()).limit(20),
     _index("gp_notes_tenant_recent"), True),
    ("partition-pruning", lambda: select(events.c.id).where(
        events.c.at >= _START + dt.timedelta(days=3), events.c.at < _START + dt.timedelta(
            days=3, hours=2)), _pruned, False),
]


@pytest.mark.parametrize(("case", "build", "check", "as_app"), CASES, ids=[c[0] for c in CASES])
def test_plan_survives_the_generic_switch(
    world: World, case: str, build: Callable[[], Any], check: Check, as_app: bool,
    pg_database: Database,
) -> None:
    stmt = build()
    engine = world.app if as_app else world.engine
    with engine.connect() as conn, conn.begin():
        if as_app:
            tenant_context(conn, 42)
        raw = conn.connection.driver_connection
        assert raw is not None and raw.prepare_threshold == 5
        custom = explain(conn, stmt)
        assert check(custom), f"{case}: the custom plan does not use the index"
        prepared = _run_prepared(conn, stmt)
        if prepared.generic_plans:
            plan = _generic_plan(conn, prepared)
            assert check(plan), f"{case}: the generic plan loses it: {json.dumps(plan.raw)[:800]}"
            assert scan_types(plan) == scan_types(custom), f"{case}: the generic plan's shape"
        else:
            assert prepared.custom_plans >= 5  # PostgreSQL kept planning with the values
