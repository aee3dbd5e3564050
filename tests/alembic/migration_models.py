"""A small schema with one object of every pgpatterns.ddl kind, built fresh per call."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    func,
    select,
    text,
)

from pgpatterns.ddl import (
    CompositeForeignKey,
    Extension,
    Function,
    MaterializedView,
    Partition,
    Policy,
    RowLevelSecurity,
    Trigger,
    View,
    attach,
)


def build(**change: Any) -> tuple[MetaData, dict[str, Any]]:
    """The models; ``change`` plants one difference (see ``CHANGES``)."""
    md = MetaData()
    items = Table(
        "items",
        md,
        Column("id", Integer, primary_key=True),
        Column("tenant_id", BigInteger, nullable=False),
        Column("owner", Text, nullable=False),
        Column("price", Integer, nullable=False),
        Column("updated_at", DateTime),
        UniqueConstraint("id", "tenant_id", name="items_id_tenant_key"),
    )
    Index(
        "items_owner_idx",
        items.c.owner,
        postgresql_where=items.c.price > (5 if change.get("index_predicate") else 0),
    )
    parts = Table(
        "parts",
        md,
        Column("id", Integer, primary_key=True),
        Column("tenant_id", BigInteger, nullable=False),
        Column("item_id", ForeignKey("items.id"), nullable=False),
    )
    events = Table(
        "events",
        md,
        Column("id", Integer),
        Column("day", Date, nullable=False),
        postgresql_partition_by="RANGE (day)",
    )
    touch = Function(
        "touch",
        returns="trigger",
        language="plpgsql",
        body="BEGIN\n  NEW.updated_at := now();\n  RETURN NEW;\nEND"
        if not change.get("function_body")
        else "BEGIN\n  -- 100% sure: a second earlier\n"
        "  NEW.updated_at := now() - interval '1 second';\n  RETURN NEW;\nEND",
    )
    cheap = View(
        "cheap",
        select(items.c.id, items.c.owner).where(items.c.price < change.get("cheap_below", 10)),
    )
    objects: dict[str, Any] = {
        "trgm": Extension("pg_trgm"),
        "touch": touch,
        "trigger": Trigger(
            "items_touch",
            items,
            touch,
            timing=change.get("timing", "before"),
            events=change.get("events", ["update"]),
        ),
        "cheap": cheap,
        "cheap_alice": View(
            "cheap_alice", select(cheap.table.c.id).where(cheap.table.c.owner == "alice")
        ),
        "per_owner": MaterializedView(
            "per_owner",
            select(items.c.owner, func.count().label("n"))
            .where(items.c.price > change.get("matview_min", 0))
            .group_by(items.c.owner),
            indexes=[("per_owner_owner", ["owner"], not change.get("matview_index_plain"))],
        ),
        "rls": RowLevelSecurity(items, force=not change.get("rls_no_force")),
        "policy": Policy(
            "alice_only",
            items,
            using=items.c.owner == change.get("policy_owner", "alice"),
            permissive=not change.get("policy_restrictive"),
        ),
        "y2026": Partition(
            "events_2026", events, range_=("2026-01-01", change.get("partition_end", "2027-01-01"))
        ),
        "other": Partition("events_other", events, default=True),
        "fk": CompositeForeignKey(
            "parts_item_tenant_fkey",
            parts,
            ["item_id", "tenant_id"],
            items,
            ["id", "tenant_id"],
            ondelete=change.get("fk_ondelete"),
        ),
    }
    if change.get("extra_view"):
        objects["extra"] = View("cheap_ids", select(cheap.table.c.id))
    if change.get("no_policy"):
        del objects["policy"]
    attach(md, *objects.values())
    # what pgpatterns.rls does: the table's info points at its objects (not Python source)
    items.info["pgpatterns.rls"] = objects["rls"]
    items.info["note"] = "plain values are kept"
    return md, objects


CHANGES: list[dict[str, Any]] = [
    {"timing": "after"},
    {"events": ["insert", "update"]},
    {"function_body": True},
    {"cheap_below": 20},
    {"matview_min": 3},
    {"matview_index_plain": True},
    {"rls_no_force": True},
    {"policy_owner": "bob"},
    {"policy_restrictive": True},
    {"partition_end": "2026-07-01"},
    {"fk_ondelete": "cascade"},
    {"extra_view": True},
    {"no_policy": True},
    {"index_predicate": True},
]
"""One planted change per entry: every kind, created, replaced and dropped."""


_SNAPSHOT = {
    "class": "SELECT relname, relkind, relrowsecurity, relforcerowsecurity,"
    " coalesce(reloptions, '{}'), pg_get_expr(relpartbound, oid),"
    " CASE WHEN relkind IN ('v', 'm') THEN pg_get_viewdef(oid) END,"
    " coalesce(relacl::text, '') FROM pg_class"
    " WHERE relnamespace = to_regnamespace(:s)",
    "index": "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i"
    " JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relnamespace = to_regnamespace(:s)",
    "proc": "SELECT proname, prosrc, provolatile FROM pg_proc"
    " WHERE pronamespace = to_regnamespace(:s)",
    "trigger": "SELECT t.tgname, pg_get_triggerdef(t.oid) FROM pg_trigger t"
    " JOIN pg_class c ON c.oid = t.tgrelid WHERE c.relnamespace = to_regnamespace(:s)"
    " AND NOT t.tgisinternal",
    "policy": "SELECT p.polname, p.polrelid::regclass::text, p.polcmd, p.polpermissive,"
    " pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid)"
    " FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid"
    " WHERE c.relnamespace = to_regnamespace(:s)",
    "constraint": "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
    " WHERE connamespace = to_regnamespace(:s)",
    "extension": "SELECT extname FROM pg_extension WHERE CAST(:s AS text) IS NOT NULL",
}


def snapshot(conn: Connection, schema: str) -> dict[str, list[Any]]:
    """Every catalog row of ``schema`` a migration could change, keyed by names (not oids)."""
    return {
        key: sorted(
            tuple(map(str, r))
            for r in conn.execute(text(sql), {"s": schema})
            if not str(r[0]).startswith("alembic_version")
        )
        for key, sql in _SNAPSHOT.items()
    }
