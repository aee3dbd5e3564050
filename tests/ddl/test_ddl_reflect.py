"""diff(): in sync right after create_all; every planted difference is reported."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from pgpatterns.ddl import Extension, attach, diff
from pgpatterns.testing.plugin import PgSchema

PLANTED = [
    ("ALTER VIEW cheap RESET (security_invoker)", "view cheap: options are []"),
    (
        "CREATE OR REPLACE VIEW cheap AS SELECT id, owner FROM items WHERE price < 20",
        "view cheap: definition differs",
    ),
    ("ALTER POLICY alice_only ON items USING (owner = 'bob')", "policy alice_only on items: using"),
    (
        "CREATE OR REPLACE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS "
        "$$BEGIN RETURN NEW; END$$",
        "function touch: body is",
    ),
    ("DROP TRIGGER items_touch ON items", "trigger items_touch on items does not exist"),
    ("ALTER TABLE items DISABLE ROW LEVEL SECURITY", "row level security on items is disabled"),
    ("ALTER TABLE items NO FORCE ROW LEVEL SECURITY", "FORCE is False, declared True"),
    ("DROP INDEX per_owner_owner", "index per_owner_owner is missing"),
    ("ALTER TABLE events DETACH PARTITION events_2026", "is not attached to events"),
]


@pytest.fixture
def created(pg_schema: PgSchema, declared: Any) -> Any:
    md, o = declared
    attach(md, *list(o.values())[2:])
    with pg_schema.engine.begin() as conn:
        md.create_all(conn)
    return md, o


def test_in_sync_after_create(pg_schema: PgSchema, created: Any) -> None:
    md, _ = created
    with pg_schema.engine.connect() as conn:
        assert diff(conn, md) == []
        # diff only reads: the throw-away twins were rolled back
        assert (
            conn.execute(
                text("SELECT count(*) FROM pg_class WHERE relname LIKE 'pgp_tmp%'")
            ).scalar()
            == 0
        )


@pytest.mark.parametrize(("plant", "expected"), PLANTED, ids=[p[1][:30] for p in PLANTED])
def test_planted_difference_is_found(
    pg_schema: PgSchema, created: Any, plant: str, expected: str
) -> None:
    md, _ = created
    with pg_schema.engine.connect() as conn:
        conn.execute(text(plant))
        found = diff(conn, md)
        conn.rollback()
    assert any(expected in line for line in found), found
    assert len(found) <= 2, found  # only the planted object is reported


def test_partition_bound_and_missing_objects(pg_schema: PgSchema, created: Any) -> None:
    _md, o = created
    with pg_schema.engine.connect() as conn:
        conn.execute(text("ALTER TABLE events DETACH PARTITION events_2026"))
        conn.execute(
            text(
                "ALTER TABLE events ATTACH PARTITION events_2026 "
                "FOR VALUES FROM ('2026-01-01') TO ('2026-07-01')"
            )
        )
        assert diff(conn, [o["y2026"]]) == [
            "partition events_2026: bound is FOR VALUES FROM ('2026-01-01 00:00:00') TO "
            "('2026-07-01 00:00:00'), declared FOR VALUES FROM ('2026-01-01 00:00:00') TO "
            "('2027-01-01 00:00:00')"
        ]
        conn.execute(text("DROP VIEW cheap_alice"))
        assert diff(conn, [o["cheap"], o["cheap_alice"]]) == [
            "view cheap_alice does not exist in the database"
        ]
        assert diff(conn, [Extension("surely_not_installed")]) == [
            "extension surely_not_installed is not installed"
        ]
        conn.rollback()
