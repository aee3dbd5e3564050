"""attach(): objects are created after the tables in dependency order and dropped before."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import (
    MetaData,
    func,
    insert,
    select,
    text,
    update,
)

from pgpatterns.ddl import (
    Function,
    MaterializedView,
    Policy,
    View,
    attach,
    attached,
    create_all,
    diff,
    drop_all,
)
from pgpatterns.errors import DDLDependencyError, DDLNameError
from pgpatterns.testing.plugin import PgSchema

Snapshot = Callable[[Any, str], dict[str, list[Any]]]
Declared = tuple[MetaData, dict[str, Any]]


def test_round_trip_leaves_catalog_as_before(
    pg_schema: PgSchema, snapshot: Snapshot, declared: Declared
) -> None:
    md, o = declared
    # declared in reverse dependency order on purpose
    attach(md, o["cheap_alice"], o["policy"], o["trigger"], *reversed(list(o.values())[2:]))
    with pg_schema.engine.begin() as conn:
        before = snapshot(conn, pg_schema.name)
        md.create_all(conn)
        during = snapshot(conn, pg_schema.name)
        md.create_all(conn)  # checkfirst (the default) skips what exists
        conn.execute(
            insert(o["items"]),
            [{"id": 1, "owner": "alice", "price": 5}, {"id": 2, "owner": "bob", "price": 50}],
        )
        conn.execute(update(o["items"]).values(price=6).where(o["items"].c.id == 1))
        stamped = conn.execute(
            select(o["items"].c.updated_at).where(o["items"].c.id == 1)
        ).scalar_one()
        alice = conn.execute(select(o["cheap_alice"].table)).all()
        conn.execute(insert(o["events"]).values(id=1, created_at=func.now()))
    with pg_schema.engine.begin() as conn:
        md.drop_all(conn)
        after = snapshot(conn, pg_schema.name)
    assert after == before
    names = {row[0] for row in during["class"]}
    assert {
        "items",
        "cheap",
        "cheap_alice",
        "per_owner",
        "per_owner_owner",
        "events",
        "events_2026",
        "events_other",
    } <= names
    assert [r[0] for r in during["proc"]] == ["touch"]
    assert [r[0] for r in during["trigger"]] == ["items_touch"]
    assert [r[0] for r in during["policy"]] == ["alice_only"]
    assert str(stamped) == "2001-02-03 00:00:00"
    assert alice == [(1,)]
    assert before["extension"] == after["extension"]  # extensions are kept on drop


def test_dependency_order(declared: Declared) -> None:
    md, o = declared
    attach(
        md,
        o["cheap_alice"],
        o["policy"],
        o["trigger"],
        o["y2026"],
        o["cheap"],
        o["rls"],
        o["touch"],
    )
    assert [x.describe() for x in attached(md)] == [
        "view cheap",
        "view cheap_alice",
        "row level security on items",
        "policy alice_only on items",
        "function touch",
        "trigger items_touch on items",
        "partition events_2026",
    ]
    attach(md, o["cheap"])  # attaching again is a no-op
    assert len(attached(md)) == 7


def test_module_create_all_and_drop_all(
    pg_schema: PgSchema, snapshot: Snapshot, declared: Declared
) -> None:
    md, o = declared
    with pg_schema.engine.begin() as conn:
        md.create_all(conn)  # tables only: nothing attached
        before = snapshot(conn, pg_schema.name)
        create_all(conn, o["cheap_alice"], o["cheap"], o["trigger"], o["touch"])
        assert {"cheap", "cheap_alice"} <= {r[0] for r in snapshot(conn, pg_schema.name)["class"]}
        drop_all(conn, o["cheap_alice"], o["cheap"], o["trigger"], o["touch"])
        assert snapshot(conn, pg_schema.name) == before


def test_missing_dependency_is_named(
    pg_schema: PgSchema, snapshot: Snapshot, declared: Declared
) -> None:
    md, o = declared
    with pytest.raises(
        DDLDependencyError,
        match=r"view cheap_alice depends on view cheap.*"
        r"attach view cheap",
    ):
        attach(md, o["cheap_alice"])
    assert attached(md) == []
    with pg_schema.engine.begin() as conn:
        before = snapshot(conn, pg_schema.name)
        with pytest.raises(DDLDependencyError, match="function touch"):
            create_all(conn, o["trigger"])
        assert snapshot(conn, pg_schema.name) == before


def test_name_collision(pg_schema: PgSchema, snapshot: Snapshot, declared: Declared) -> None:
    md, o = declared
    attach(md, o["cheap"])
    twin = View("cheap", select(o["items"].c.id))
    with pytest.raises(DDLNameError, match="declared twice"):
        attach(md, twin)
    assert attached(md) == [o["cheap"]]
    with pytest.raises(DDLNameError):
        attach(MetaData(), Policy("p", o["items"]), Policy("p", o["items"], command="select"))
    # views, materialized views and partitions share one namespace
    with pytest.raises(DDLNameError):
        attach(MetaData(), twin, MaterializedView("cheap", select(o["items"].c.id)))
    # the same policy name on two tables is fine (policies are per table)
    attach(MetaData(), Policy("p", o["items"]), Policy("p", o["events"]))
    with pg_schema.engine.begin() as conn:
        before = snapshot(conn, pg_schema.name)
        with pytest.raises(DDLNameError):
            create_all(conn, o["cheap"], twin)
        assert snapshot(conn, pg_schema.name) == before


def test_cycle_is_reported() -> None:
    a = Function("a", returns="int", body="SELECT 1")
    b = Function("b", returns="int", body="SELECT 2", depends_on=[a])
    a.depends_on = (b,)
    with pytest.raises(DDLDependencyError, match=r"cycle: function a -> function b -> function a"):
        attach(MetaData(), a, b)


def test_drop_all_with_nothing_created_is_quiet(pg_schema: PgSchema, declared: Declared) -> None:
    md, o = declared
    attach(md, *list(o.values())[2:])
    with pg_schema.engine.begin() as conn:
        md.drop_all(conn)  # checkfirst: nothing exists, nothing is dropped
        assert (
            conn.execute(
                text("SELECT count(*) FROM pg_extension WHERE extname = 'pg_trgm'")
            ).scalar()
            == 1
        )


async def test_async_engine_round_trip(pg_schema: PgSchema, declared: Declared) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    md, o = declared
    attach(md, o["cheap"], o["cheap_alice"], o["touch"], o["trigger"])
    engine = create_async_engine(
        pg_schema.engine.url, connect_args={"options": f"-c search_path={pg_schema.name},public"}
    )
    try:
        async with engine.begin() as conn:
            await conn.run_sync(md.create_all)
            assert await conn.run_sync(lambda c: diff(c, md)) == []
            await conn.run_sync(md.drop_all)
            assert not await conn.run_sync(o["cheap"].exists)
    finally:
        await engine.dispose()
