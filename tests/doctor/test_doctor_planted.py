"""The doctor finds every planted problem, and nothing else, in a schema full of them."""

from __future__ import annotations

from collections import Counter

from doctor_planted import plant
from sqlalchemy import Engine, text

from pgpatterns.doctor import LINTS, doctor, doctor_async
from pgpatterns.testing import Database
from pgpatterns.testing.plugin import PgSchema


def test_every_planted_problem_is_found(pg_schema: PgSchema, pg_database: Database,
                                         pg_engine: Engine) -> None:
    want = plant(pg_schema.engine, pg_schema.name, pg_database.app_role)
    with pg_engine.connect() as conn:
        path_before = conn.execute(text("SHOW search_path")).scalar()
        findings = doctor(conn, schemas=[pg_schema.name])
        assert conn.execute(text("SHOW search_path")).scalar() == path_before
    got = {(f.id, f.object) for f in findings}
    assert got - want == set(), "unexpected findings"
    assert want - got == set(), "planted problems not found"
    assert len(findings) == len(want) >= 40
    # every lint that can be planted on one database is exercised
    plantable = set(LINTS) - {"pgvector_outdated", "policy_per_row_call"}  # see test_api
    assert {f.id for f in findings} == plantable
    for f in findings:
        assert f.severity in ("info", "warning", "error")
        assert f.message and f.fix and f.pattern.startswith("pgpatterns")
        assert f.evidence, f
    severities = Counter(f.severity for f in findings if f.id == "sequence_near_overflow")
    assert severities == {"error": 1, "warning": 1}  # 93% and 79% of an integer column


def test_fixes_clear_the_findings(pg_schema: PgSchema, pg_database: Database,
                                  pg_engine: Engine) -> None:
    plant(pg_schema.engine, pg_schema.name, pg_database.app_role)
    lints = ["unindexed_foreign_key", "duplicate_index", "invalid_index", "btree_array_index",
             "definer_function_search_path", "policy_exists_rls_disabled", "rls_not_forced",
             "view_without_security_invoker", "fk_type_mismatch", "overlapping_index",
             "link_table_without_reverse_index", "unindexed_policy_column"]
    with pg_engine.connect() as conn:
        before = doctor(conn, schemas=[pg_schema.name], lints=lints)
    assert {f.id for f in before} == set(lints)
    with pg_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"DELETE FROM {pg_schema.name}.inv WHERE id = 2"))  # the cause
        for f in before:  # the proposed DDL is valid and does fix it
            for stmt in f.fix.split(";\n"):
                if stmt.strip() and not stmt.lstrip().startswith("--"):
                    conn.execute(text(stmt))
    with pg_engine.connect() as conn:
        after = doctor(conn, schemas=[pg_schema.name], lints=lints)
    assert after == []


async def test_async_twin(pg_schema: PgSchema, pg_database: Database,
                          pg_async_engine: object) -> None:
    with pg_schema.engine.begin() as conn:
        conn.execute(text(f"CREATE TABLE {pg_schema.name}.lonely (x int)"))
    async with pg_async_engine.connect() as conn:  # type: ignore[attr-defined]
        findings = await doctor_async(conn, schemas=[pg_schema.name])
    assert [(f.id, f.object) for f in findings] == [
        ("no_primary_key", f"{pg_schema.name}.lonely")]
