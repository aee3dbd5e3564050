"""migrations: how long autogenerate's comparison takes for 50, 500 and 2,000 declared objects.

* ``migrations:autogenerate-<n>``: ``produce_migrations`` (what ``alembic revision
  --autogenerate`` and ``alembic check`` run) on an in-sync schema of ``n`` declared objects
  (per table: a trigger, row-level security, a policy and a view; one trigger function),
  with :func:`pgpatterns.alembic.setup` (pattern) vs Alembic alone, comparing only the
  tables (limit: what the schema objects add on top). Target (issue #18): 500 objects in
  under 10 s on a 2-core machine (alembic_utils users report ~150 triggers in 71 s).
  ``extra`` holds where the time goes: seconds per kind of object, measured once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from alembic.autogenerate import produce_migrations
from alembic.migration import MigrationContext
from sqlalchemy import Column, Connection, Engine, Integer, MetaData, Table, Text, select, text

from benchmarks.conftest import Scale, record
from pgpatterns.alembic import setup
from pgpatterns.ddl import Function, Policy, RowLevelSecurity, Trigger, View, attach, diff
from pgpatterns.ddl.compare import compare

SIZES = (50, 500, 2000)
SCHEMA = "bench_migrations"


def build(n: int) -> MetaData:
    """``n`` declared objects (plus one function) over ``n // 4`` tables in ``SCHEMA``."""
    md = MetaData()
    touch = Function(
        "touch", schema=SCHEMA, returns="trigger", language="plpgsql",
        body="BEGIN NEW.note := 'x'; RETURN NEW; END",
    )
    objects: list[Any] = [touch]
    for i in range(n // 4):
        t = Table(f"t{i}", md, Column("id", Integer, primary_key=True), Column("owner", Text),
                  Column("note", Text), schema=SCHEMA)
        objects += [
            Trigger(f"t{i}_touch", t, touch, events=["update"]),
            RowLevelSecurity(t),
            Policy(f"t{i}_own", t, using=t.c.owner == "alice"),
            View(f"v{i}", select(t.c.id, t.c.owner).where(t.c.owner != "bob"), schema=SCHEMA),
        ]
    attach(md, *objects)
    return md


@pytest.fixture(scope="module")
def schemas(pg_module_engine: Engine) -> Iterator[dict[int, MetaData]]:
    built: dict[int, MetaData] = {}
    with pg_module_engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
    yield built
    with pg_module_engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))


def _prepare(engine: Engine, n: int) -> MetaData:
    md = build(n)
    with engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {SCHEMA}"))
        md.create_all(conn)
    return md


def _autogenerate(conn: Connection, md: MetaData, *, pgpatterns: bool) -> Any:
    opts = {
        "target_metadata": md,
        "include_schemas": True,
        "include_name": lambda name, kind, _: kind != "schema" or name == SCHEMA,
        "pgpatterns": pgpatterns,
    }
    context = MigrationContext.configure(connection=conn, opts=opts)
    return produce_migrations(context, md)


def _where_time_goes(conn: Connection, md: MetaData) -> dict[str, float]:
    spent: dict[str, float] = {}
    for obj in md.info["pgpatterns.ddl.objects"]:
        start = time.perf_counter()
        obj.reflect_diff(conn)
        spent[obj.kind] = spent.get(obj.kind, 0.0) + time.perf_counter() - start
    start = time.perf_counter()
    compare(conn, md)
    spent["compare() in all"] = time.perf_counter() - start
    return {k: round(v, 3) for k, v in spent.items()}


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("pgpatterns", [True, False], ids=["pgpatterns", "alembic-alone"])
def test_autogenerate(
    benchmark: Any, pg_module_engine: Engine, schemas: dict[int, MetaData], scale: Scale,
    n: int, pgpatterns: bool,
) -> None:
    setup()
    if n not in schemas:
        schemas.clear()
        schemas[n] = _prepare(pg_module_engine, n)
    md = schemas[n]
    record(
        benchmark, question=f"migrations:autogenerate-{n}",
        case="pgpatterns.alembic (tables + schema objects)" if pgpatterns
        else "Alembic alone (tables only)",
        role="pattern" if pgpatterns else "limit", rows=n, scale=scale,
        plan=f"{n} objects on {n // 4} tables, in sync",
    )
    with pg_module_engine.connect() as conn:
        if pgpatterns:
            assert diff(conn, md) == []
            benchmark.extra_info.update(_where_time_goes(conn, md))
            conn.rollback()
        result = benchmark.pedantic(
            lambda: _autogenerate(conn, md, pgpatterns=pgpatterns),
            rounds=1 if n >= 2000 else 2, iterations=1,
        )
    assert result.upgrade_ops.is_empty()
