"""doctor: ``pgpatterns doctor`` over a schema of 1,000 tables (issue 19: under 2 s).

Data: one schema ``bench_doctor`` with N tables (1,000 at every scale, as in the issue): each
has an identity key, ``UNIQUE (tenant_id, id)``, a composite tenant foreign key to the
previous table with its index, row-level security forced with a tenant policy, and every fourth
table a ``security_invoker`` view. Every tenth table carries problems (an unindexed foreign key, a
duplicate index, a definer view over it), so the lints have something to report.

Question ``doctor:1000-tables``:

* ``doctor()`` (pattern): every lint, catalogs and statistics only, on one connection;
* ``check_rls(plans=False)`` (alternative): the row-level security lints alone;
* ``pgpatterns doctor URL`` (alternative): the command line end to end, a new Python process
  (imports, connection, report) each round;
* ``one pg_class scan`` (limit): the cheapest catalog read of the schema.
"""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import pytest
from sqlalchemy import Engine, text

from benchmarks.conftest import Scale, record
from pgpatterns.doctor import doctor
from pgpatterns.rls import check_rls

SCHEMA = "bench_doctor"
TABLES = 1000
QUESTION = "doctor:1000-tables"

_BUILD = """
DO $$
DECLARE s text := 'bench_doctor'; i int;
BEGIN
  FOR i IN %(lo)s..%(hi)s LOOP
    EXECUTE format('CREATE TABLE %%I.%%I (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,'
      ' tenant_id int NOT NULL, prev_id bigint, note text, UNIQUE (tenant_id, id))',
      s, 't' || i);
    IF i > 1 THEN
      EXECUTE format('ALTER TABLE %%I.%%I ADD FOREIGN KEY (tenant_id, prev_id)'
        ' REFERENCES %%I.%%I (tenant_id, id)', s, 't' || i, s, 't' || (i - 1));
      IF i %% 10 <> 0 THEN
        EXECUTE format('CREATE INDEX ON %%I.%%I (prev_id)', s, 't' || i);
      END IF;
    END IF;
    EXECUTE format('ALTER TABLE %%I.%%I ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY',
      s, 't' || i);
    EXECUTE format('CREATE POLICY tenant ON %%I.%%I USING'
      ' (tenant_id = current_setting(''app.tenant_id'')::int)', s, 't' || i);
    IF i %% 4 = 0 THEN
      EXECUTE format('CREATE VIEW %%I.%%I WITH (security_invoker = true) AS'
        ' SELECT id, tenant_id FROM %%I.%%I', s, 'v' || i, s, 't' || i);
    END IF;
    IF i %% 10 = 0 THEN
      EXECUTE format('CREATE INDEX ON %%I.%%I (note)', s, 't' || i);
      EXECUTE format('CREATE INDEX ON %%I.%%I (note)', s, 't' || i);
      EXECUTE format('CREATE VIEW %%I.%%I AS SELECT id FROM %%I.%%I', s, 'leak' || i,
        s, 't' || i);
    END IF;
  END LOOP;
END $$
"""


BATCH = 100  # tables per transaction (one transaction for all runs out of lock slots)


def _drop(engine: Engine) -> None:
    with engine.connect() as conn:
        if not conn.execute(text("SELECT to_regnamespace(:s)"), {"s": SCHEMA}).scalar():
            return
    for hi in range(TABLES, 0, -BATCH):
        with engine.begin() as conn:
            names = ", ".join(f"{SCHEMA}.t{i}" for i in range(max(1, hi - BATCH + 1), hi + 1))
            conn.execute(text(f"DROP TABLE IF EXISTS {names} CASCADE"))
    with engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))


@pytest.fixture(scope="module")
def schema(pg_module_engine: Engine) -> Any:
    _drop(pg_module_engine)  # leftovers of an interrupted run
    with pg_module_engine.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {SCHEMA}"))
    for lo in range(1, TABLES + 1, BATCH):
        with pg_module_engine.begin() as conn:
            conn.execute(text(_BUILD % {"lo": lo, "hi": lo + BATCH - 1}))
    yield SCHEMA
    _drop(pg_module_engine)


def _expected_findings() -> int:
    problems = TABLES // 10
    # per problem table: unindexed FK, duplicate index, view without security_invoker
    return 3 * problems


def test_doctor(benchmark: Any, pg_module_engine: Engine, schema: str, scale: Scale) -> None:
    with pg_module_engine.connect() as conn:
        record(benchmark, question=QUESTION, case="doctor() (every lint)", role="pattern",
               rows=TABLES, scale=scale, plan="catalog queries only",
               target_seconds=2.0)
        findings = benchmark.pedantic(lambda: doctor(conn, schemas=[schema]),
                                      rounds=max(scale.rounds, 5), warmup_rounds=1)
    assert len(findings) == _expected_findings(), [str(f) for f in findings[:5]]


def test_check_rls(benchmark: Any, pg_module_engine: Engine, schema: str,
                   scale: Scale) -> None:
    with pg_module_engine.connect() as conn:
        record(benchmark, question=QUESTION, case="check_rls(plans=False)",
               role="alternative", rows=TABLES, scale=scale, plan="catalog queries only")
        findings = benchmark.pedantic(
            lambda: check_rls(conn, schemas=[schema], plans=False),
            rounds=max(scale.rounds, 5), warmup_rounds=1)
    assert len(findings) == TABLES // 10


def test_cli(benchmark: Any, pg_module_engine: Engine, pg_database: Any, schema: str,
             scale: Scale) -> None:
    url = pg_database.url.render_as_string(hide_password=False)
    command = [sys.executable, "-m", "pgpatterns", "doctor", url, "--schema", schema,
               "--format", "json", "--fail-on", "never"]

    def run() -> int:
        return subprocess.run(command, capture_output=True, check=True).returncode

    record(benchmark, question=QUESTION, case="pgpatterns doctor URL (new process)",
           role="alternative", rows=TABLES, scale=scale, plan="python start + catalogs",
           target_seconds=2.0)
    began = time.monotonic()
    assert benchmark.pedantic(run, rounds=3, warmup_rounds=1) == 0
    assert time.monotonic() - began > 0


def test_limit(benchmark: Any, pg_module_engine: Engine, schema: str, scale: Scale) -> None:
    stmt = text("SELECT count(*) FROM pg_class c JOIN pg_namespace n"
                " ON n.oid = c.relnamespace WHERE n.nspname = :s")
    with pg_module_engine.connect() as conn:
        record(benchmark, question=QUESTION, case="one pg_class scan", role="limit",
               rows=TABLES, scale=scale, plan="one catalog query")
        count = benchmark.pedantic(lambda: conn.execute(stmt, {"s": schema}).scalar(),
                                   rounds=max(scale.rounds, 5), warmup_rounds=1)
    assert count and count > TABLES
