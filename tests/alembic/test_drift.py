"""diff() misses nothing: every case from issue #18's "Why" is reported, and only in-sync
schemas compare equal."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from migration_models import build
from sqlalchemy import Column, Connection, Index, Integer, MetaData, Table, text

from pgpatterns.ddl import attach, diff
from pgpatterns.testing.plugin import PgSchema


@pytest.fixture
def synced(pg_schema: PgSchema) -> Iterator[tuple[Connection, MetaData, dict[str, Any]]]:
    md, objects = build()
    with pg_schema.engine.begin() as conn:
        md.create_all(conn)
    with pg_schema.engine.begin() as conn:
        assert diff(conn, md) == []
        yield conn, md, objects


def test_undeclared_permissive_policy_is_reported(synced: Any) -> None:
    conn, md, _ = synced
    conn.execute(text("CREATE POLICY open ON items USING (true)"))
    assert diff(conn, md) == ["policy open on items is in the database but not declared"]


def test_undeclared_trigger_view_and_function_are_reported(synced: Any) -> None:
    conn, md, _ = synced
    conn.execute(text("CREATE TRIGGER sneaky AFTER DELETE ON items EXECUTE FUNCTION touch()"))
    conn.execute(text("CREATE VIEW leak AS SELECT owner FROM items"))
    conn.execute(text("CREATE FUNCTION helper() RETURNS int LANGUAGE sql AS 'SELECT 1'"))
    found = diff(conn, md)
    assert len(found) == 3, found
    assert found[0].startswith("trigger sneaky on items is in the database but not declared")
    assert "view" in found[1] and "leak" in found[1]
    assert "function" in found[2] and "helper()" in found[2]


TRIGGER_CASES = {
    "after": "CREATE TRIGGER items_touch AFTER UPDATE ON items"
    " FOR EACH ROW EXECUTE FUNCTION touch()",
    "events": "CREATE TRIGGER items_touch BEFORE INSERT OR DELETE ON items"
    " FOR EACH ROW EXECUTE FUNCTION touch()",
    "when-false": "CREATE TRIGGER items_touch BEFORE UPDATE ON items"
    " FOR EACH ROW WHEN (false) EXECUTE FUNCTION touch()",
    "statement": "CREATE TRIGGER items_touch BEFORE UPDATE ON items"
    " FOR EACH STATEMENT EXECUTE FUNCTION touch()",
    "update-of": "CREATE TRIGGER items_touch BEFORE UPDATE OF price ON items"
    " FOR EACH ROW EXECUTE FUNCTION touch()",
}


def test_recreated_trigger_is_reported(synced: Any) -> None:
    conn, md, _ = synced
    for case, ddl in TRIGGER_CASES.items():
        with conn.begin_nested() as sp:
            conn.execute(text("DROP TRIGGER items_touch ON items"))
            conn.execute(text(ddl))
            found = diff(conn, md)
            assert found, case
            assert all(line.startswith("trigger items_touch on items:") for line in found), case
            sp.rollback()
    assert diff(conn, md) == []


def test_matview_unique_index_replaced_by_plain_one_is_reported(synced: Any) -> None:
    conn, md, _ = synced
    conn.execute(text("DROP INDEX per_owner_owner"))
    conn.execute(text("CREATE INDEX per_owner_owner ON per_owner (owner)"))
    found = diff(conn, md)
    assert len(found) == 1 and "index per_owner_owner is 'USING btree" in found[0], found


POLICY_CASES = {
    "using": "ALTER POLICY alice_only ON items USING (true)",
    "roles": "ALTER POLICY alice_only ON items TO pg_monitor",
    "permissive": "DROP POLICY alice_only ON items;"
    " CREATE POLICY alice_only ON items AS RESTRICTIVE USING (owner = 'alice')",
    "command": "DROP POLICY alice_only ON items;"
    " CREATE POLICY alice_only ON items FOR SELECT USING (owner = 'alice')",
    "with_check": "ALTER POLICY alice_only ON items WITH CHECK (true)",
}


def test_policy_parts_are_compared(synced: Any) -> None:
    conn, md, _ = synced
    for word, ddl in POLICY_CASES.items():
        with conn.begin_nested() as sp:
            conn.exec_driver_sql(ddl)
            found = diff(conn, md)
            assert len(found) == 1 and f"alice_only on items: {word} is" in found[0], found
            sp.rollback()


def test_matview_definition_change_is_reported(synced: Any) -> None:
    conn, md, _ = synced
    conn.execute(text("DROP MATERIALIZED VIEW per_owner"))
    conn.execute(text("CREATE MATERIALIZED VIEW per_owner AS SELECT owner, 1 AS n FROM items"))
    conn.execute(text("CREATE UNIQUE INDEX per_owner_owner ON per_owner (owner)"))
    found = diff(conn, md)
    assert len(found) == 1 and "per_owner: definition differs" in found[0], found


def test_table_index_predicate_change_is_reported(synced: Any) -> None:
    conn, md, _ = synced
    conn.execute(text("DROP INDEX items_owner_idx"))
    conn.execute(text("CREATE INDEX items_owner_idx ON items (owner) WHERE price > 1"))
    found = diff(conn, md)
    assert len(found) == 1 and "index items_owner_idx is" in found[0], found


@pytest.mark.requires_extension("vector")
def test_hnsw_option_change_is_reported(pg_schema: PgSchema) -> None:
    from pgvector.sqlalchemy import Vector

    md = MetaData()
    docs = Table("docs", md, Column("id", Integer, primary_key=True), Column("e", Vector(3)))
    Index(
        "docs_e_hnsw",
        docs.c.e,
        postgresql_using="hnsw",
        postgresql_with={"m": 16, "ef_construction": 64},
        postgresql_ops={"e": "vector_cosine_ops"},
    )
    attach(md)
    with pg_schema.engine.begin() as conn:
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
        md.create_all(conn)
        assert diff(conn, md) == []
        conn.execute(text("DROP INDEX docs_e_hnsw"))
        conn.execute(
            text(
                "CREATE INDEX docs_e_hnsw ON docs USING hnsw (e vector_cosine_ops)"
                " WITH (m = 24, ef_construction = 64)"
            )
        )
        found = diff(conn, md)
        assert len(found) == 1 and "m='24'" in found[0] and "m='16'" in found[0], found
        conn.execute(text("DROP INDEX docs_e_hnsw"))
        conn.execute(
            text(
                "CREATE INDEX docs_e_hnsw ON docs USING hnsw (e vector_l2_ops)"
                " WITH (m = 16, ef_construction = 64)"
            )
        )
        assert len(diff(conn, md)) == 1  # another operator class


def test_replacing_a_function_replaces_its_trigger_around_it(synced: Any) -> None:
    from pgpatterns.alembic import operations_for
    from pgpatterns.ddl.compare import compare

    conn, _, _ = synced
    changed, _ = build(function_body=True)
    findings = compare(conn, changed)
    assert [(f.action, f.label) for f in findings] == [
        ("replace", "function touch"),
        ("replace", "trigger items_touch on items"),  # found through pg_depend
    ]
    assert findings[1].lines == []  # not itself different: diff() does not report it
    front, drops, creates = operations_for(findings)
    assert front == []
    assert [d.label for d in drops] == ["trigger items_touch on items", "function touch"]
    assert [c.label for c in creates] == ["function touch", "trigger items_touch on items"]
    for op in [*drops, *creates]:
        for statement in op.sql:
            conn.exec_driver_sql(statement, execution_options={"no_parameters": True})
    assert diff(conn, changed) == []


def test_replacing_a_view_replaces_the_view_on_it(synced: Any) -> None:
    from pgpatterns.ddl.compare import compare

    conn, _, _ = synced
    findings = compare(conn, build(cheap_below=20)[0])
    assert [(f.action, f.label) for f in findings] == [
        ("replace", "view cheap"),
        ("replace", "view cheap_alice"),
    ]


def test_missing_extension_is_created_first() -> None:
    from pgpatterns.alembic import operations_for
    from pgpatterns.ddl.compare import Finding

    findings = [
        Finding("create", "extension", "extension vector", ["..."], create=["CREATE EXT"]),
        Finding("create", "view", "view v", ["..."], create=["CREATE VIEW"], undo=["DROP"]),
        Finding("drop", "policy", "policy p on t", ["..."], ["DROP POLICY"], ["CREATE POLICY"]),
    ]
    front, drops, creates = operations_for(findings)
    assert [o.label for o in front] == ["extension vector"]
    assert [o.label for o in drops] == ["policy p on t"]
    assert drops[0].reverse().sql == ["CREATE POLICY"]  # the downgrade re-creates it
    assert [o.label for o in creates] == ["view v"]


def test_exclude_constraint_keeps_its_operator_classes() -> None:
    from alembic.autogenerate import render_python_code
    from alembic.operations import ops
    from sqlalchemy import Text
    from sqlalchemy.dialects.postgresql import TSTZRANGE, ExcludeConstraint

    from pgpatterns.alembic import setup

    setup()
    md = MetaData()
    rooms = Table(
        "bookings",
        md,
        Column("room", Text),
        Column("during", TSTZRANGE),
        ExcludeConstraint(
            ("room", "="),
            ("during", "&&"),
            using="gist",
            name="no_overlap",
            ops={"room": "gist_text_ops"},
        ),
    )
    code = render_python_code(ops.UpgradeOps([ops.CreateTableOp.from_table(rooms)]))
    assert "ops={'room': 'gist_text_ops'}" in code
    constraint = next(c for c in rooms.constraints if isinstance(c, ExcludeConstraint))
    from alembic.ddl.postgresql import CreateExcludeConstraintOp

    code = render_python_code(
        ops.UpgradeOps([CreateExcludeConstraintOp.from_constraint(constraint)])
    )
    assert "create_exclude_constraint(" in code and "ops={'room': 'gist_text_ops'}" in code
