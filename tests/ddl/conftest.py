"""Shared helpers for the pgpatterns.ddl tests: a catalog snapshot of one schema."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Integer,
    MetaData,
    Table,
    Text,
    func,
    select,
    text,
)

from pgpatterns.ddl import (
    Extension,
    Function,
    MaterializedView,
    Partition,
    Policy,
    RowLevelSecurity,
    Trigger,
    View,
)

_SNAPSHOT = {
    "class": "SELECT relname, relkind, relrowsecurity, relforcerowsecurity,"
    " coalesce(reloptions, '{}') FROM pg_class WHERE relnamespace = to_regnamespace(:s)",
    "proc": "SELECT proname, prosrc, provolatile FROM pg_proc"
    " WHERE pronamespace = to_regnamespace(:s)",
    "trigger": "SELECT t.tgname, t.tgrelid::regclass::text FROM pg_trigger t"
    " JOIN pg_class c ON c.oid = t.tgrelid WHERE c.relnamespace = to_regnamespace(:s)",
    "policy": "SELECT p.polname, p.polrelid::regclass::text FROM pg_policy p"
    " JOIN pg_class c ON c.oid = p.polrelid WHERE c.relnamespace = to_regnamespace(:s)",
    "namespace": "SELECT nspname FROM pg_namespace WHERE nspname = :s",
    "extension": "SELECT extname FROM pg_extension WHERE CAST(:s AS text) IS NOT NULL",
}


def catalog_snapshot(conn: Connection, schema: str) -> dict[str, list[Any]]:
    """Every catalog row of ``schema`` that a schema object could leave behind."""
    return {
        key: sorted(tuple(r) for r in conn.execute(text(sql), {"s": schema}))
        for key, sql in _SNAPSHOT.items()
    }


@pytest.fixture
def snapshot() -> Any:
    return catalog_snapshot


def _build() -> tuple[MetaData, dict[str, Any]]:
    md = MetaData()
    items = Table(
        "items",
        md,
        Column("id", Integer, primary_key=True),
        Column("owner", Text, nullable=False),
        Column("price", Integer, nullable=False),
        Column("updated_at", DateTime),
    )
    events = Table(
        "events",
        md,
        Column("id", Integer),
        Column("created_at", DateTime, nullable=False),
        postgresql_partition_by="RANGE (created_at)",
    )
    touch = Function(
        "touch",
        returns="trigger",
        language="plpgsql",
        body="BEGIN NEW.updated_at := '2001-02-03'; RETURN NEW; END",
    )
    cheap = View("cheap", select(items.c.id, items.c.owner).where(items.c.price < 10))
    o: dict[str, Any] = {
        "items": items,
        "events": events,
        "trgm": Extension("pg_trgm"),
        "touch": touch,
        "trigger": Trigger("items_touch", items, touch, events=["update"]),
        "cheap": cheap,
        "cheap_alice": View(
            "cheap_alice", select(cheap.table.c.id).where(cheap.table.c.owner == "alice")
        ),
        "per_owner": MaterializedView(
            "per_owner",
            select(items.c.owner, func.count().label("n")).group_by(items.c.owner),
            indexes=[("per_owner_owner", ["owner"], True)],
        ),
        "rls": RowLevelSecurity(items),
        "policy": Policy("alice_only", items, using=items.c.owner == "alice"),
        "y2026": Partition("events_2026", events, range_=("2026-01-01", "2027-01-01")),
        "other": Partition("events_other", events, default=True),
    }
    return md, o


@pytest.fixture
def declared() -> tuple[MetaData, dict[str, Any]]:
    """A MetaData with two tables plus one object of each kind (not attached), by name."""
    return _build()
