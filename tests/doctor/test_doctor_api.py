"""The doctor's API edges: arguments refused before any SQL, plans, versions, reports."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, event, text

from pgpatterns.doctor import Finding, at_least, doctor, without_baseline
from pgpatterns.doctor.report import to_sarif, to_text
from pgpatterns.doctor.security import MIN_PGVECTOR, version_below
from pgpatterns.errors import ArgumentError
from pgpatterns.testing import Database
from pgpatterns.testing.plugin import PgSchema


def test_bad_arguments_send_no_sql(pg_engine: Engine) -> None:
    sent: list[str] = []
    with pg_engine.connect() as conn:
        event.listen(conn, "before_cursor_execute", lambda *a: sent.append(a[2]))
        with pytest.raises(ArgumentError, match=r"unknown lint ids \['nope'\]"):
            doctor(conn, lints=["nope"])
        with pytest.raises(ArgumentError, match="unknown lint ids"):
            doctor(conn, exclude=["no_such_lint"])
        with pytest.raises(ArgumentError, match="schemas must be a list"):
            doctor(conn, schemas="public")
    assert sent == []
    with pytest.raises(ArgumentError, match="doctor_async"):
        doctor(object())  # type: ignore[arg-type]
    with pytest.raises(ArgumentError, match="severity must be one of"):
        at_least([], "fatal")


@pytest.mark.parametrize(("version", "old"), [
    ("0.5.1", True), ("0.8.1", True), ("0.8.2", False), ("0.8.6", False), ("0.10.0", False),
    ("1.0", False),
])
def test_pgvector_version_rule(version: str, old: bool) -> None:
    assert version_below(version, MIN_PGVECTOR) is old


def test_policy_per_row_call_needs_plans(pg_schema: PgSchema, pg_database: Database,
                                         pg_engine: Engine) -> None:
    s, role = pg_schema.name, pg_database.app_role
    with pg_schema.engine.begin() as conn:
        conn.execute(text(f"""
            CREATE FUNCTION {s}.my_tenant() RETURNS int LANGUAGE plpgsql STABLE
              AS 'BEGIN RETURN 1; END';
            CREATE TABLE {s}.slow (id int PRIMARY KEY, tenant_id int NOT NULL);
            CREATE INDEX ON {s}.slow (tenant_id);
            ALTER TABLE {s}.slow ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
            CREATE POLICY t ON {s}.slow TO {role} USING (tenant_id = {s}.my_tenant());
            GRANT EXECUTE ON FUNCTION {s}.my_tenant() TO {role};
        """))
    with pg_engine.connect() as conn:
        assert doctor(conn, schemas=[s]) == []  # catalogs only: the plan is not read
        found = doctor(conn, schemas=[s], plans=True, role=role)
    assert [(f.id, f.object) for f in found] == [("policy_per_row_call", f"{s}.slow")]


def test_text_sarif_and_baseline() -> None:
    f = Finding("no_primary_key", "warning", "app.notes", "no key", {"table": "app.notes"},
                "pgpatterns.columns.IdentityPrimaryKey", "ALTER TABLE app.notes ...;\n-- or")
    out = to_text([f])
    assert "WARNING no_primary_key  app.notes" in out and "fix: ALTER TABLE" in out
    assert out.endswith("0 error, 1 warning, 0 info")
    assert to_text([]) == "no findings"
    (result,) = to_sarif([f])["runs"][0]["results"]
    assert result["level"] == "warning" and result["ruleId"] == "no_primary_key"
    assert without_baseline([f], {"no_primary_key:app.notes"}) == []
    assert at_least([f], "error") == [] and at_least([f], "info") == [f]


def test_autocommit_connection_and_app_role(pg_schema: PgSchema) -> None:
    s = pg_schema.name
    with pg_schema.engine.begin() as conn:
        conn.execute(text(f"CREATE TABLE {s}.lonely (x int)"))
    want = [("no_primary_key", f"{s}.lonely")]
    with pg_schema.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        before = conn.execute(text("SHOW search_path")).scalar()
        assert [(f.id, f.object) for f in doctor(conn, schemas=[s])] == want
        assert conn.execute(text("SHOW search_path")).scalar() == before
    with pg_schema.app_engine.connect() as conn:  # catalogs only: no privilege needed
        assert [(f.id, f.object) for f in doctor(conn, schemas=[s])] == want
