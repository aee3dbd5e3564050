"""tenant: what tenant keys by construction cost on the write path.

Data: F folders per tenant for 10 tenants (default 1000, quick 100). Each round inserts D
documents (default 20000, quick 2000) that reference a random folder of the same tenant, as
the application role inside ``tenant_context`` (one multi-row ``INSERT`` per 1000 rows), then
the documents are removed outside the timing.

Question ``tenant:insert-referencing-rows``:

* pattern: ``TenantScoped`` models as pgpatterns declares them now: ``UNIQUE (tenant_id,
  id)`` on folders and the composite key ``(tenant_id, folder_id) -> folders (tenant_id,
  id)`` beside the plain one (the database refuses a cross-tenant reference);
* alternative: the same tables with the plain foreign key only (the form before: a row can
  point at another tenant's folder);
* limit: the plain foreign key, no row-level security, written by the owner.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import BigInteger, Engine, ForeignKey, MetaData, Table, insert, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from benchmarks.conftest import Scale, record
from pgpatterns.bulk import copy_rows
from pgpatterns.ddl import CompositeForeignKey, attached
from pgpatterns.explain import explain, plan_summary
from pgpatterns.rls import TenantScoped, tenant_context

TENANTS = 10
QUESTION = "tenant:insert-referencing-rows"


def _tables(prefix: str, role: str, *, composite: bool) -> tuple[MetaData, Table, Table]:
    class Base(DeclarativeBase):
        metadata = MetaData()

    class Folder(TenantScoped, Base):
        __tablename__ = f"{prefix}_folders"
        __tenant_roles__ = (role,)
        id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)

    class Doc(TenantScoped, Base):
        __tablename__ = f"{prefix}_docs"
        __tenant_roles__ = (role,)
        id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
        folder_id: Mapped[int] = mapped_column(ForeignKey(f"{prefix}_folders.id"))

    if not composite:  # the form before this release: the plain key only
        objects = attached(Base.metadata)
        keep = [o for o in objects if not isinstance(o, CompositeForeignKey)]
        Base.metadata.info["pgpatterns.ddl.objects"] = keep
    folders, docs = Folder.__table__, Doc.__table__
    assert isinstance(folders, Table) and isinstance(docs, Table)
    return Base.metadata, folders, docs


CASES = [
    ("composite tenant key + RLS (pattern)", "pattern", "bench_tk_c", True, True),
    ("plain foreign key + RLS (before)", "alternative", "bench_tk_p", False, True),
    ("plain foreign key, no RLS (owner)", "limit", "bench_tk_p", False, False),
]


_LOADED: dict[str, Any] = {}


@pytest.fixture(scope="module")
def _cleanup(pg_module_engine: Engine) -> Iterator[None]:
    yield
    with pg_module_engine.begin() as conn:
        for metadata, _, _ in _LOADED.pop("tables", {}).values():
            metadata.drop_all(conn)
    _LOADED.clear()


@pytest.fixture
def data(scale: Scale, pg_engine: Engine, pg_database: Any, _cleanup: None) -> dict[str, Any]:
    """Loaded by the first case (the policies name the app role, known per test)."""
    if not _LOADED:
        _LOADED.update(_load(scale, pg_engine, pg_database.app_role))
    return _LOADED


def _load(scale: Scale, engine: Engine, role: str) -> dict[str, Any]:
    per_tenant = scale.pick(quick=100, default=1000)
    docs = scale.pick(quick=2000, default=20000)
    made = {}
    with engine.begin() as conn:
        for prefix, composite in (("bench_tk_c", True), ("bench_tk_p", False)):
            metadata, folders, doc_table = _tables(prefix, role, composite=composite)
            metadata.drop_all(conn)
            metadata.create_all(conn)
            copy_rows(conn, folders, ((t, t * 10**6 + i) for t in range(1, TENANTS + 1)
                                      for i in range(per_tenant)), columns=["tenant_id", "id"])
            conn.execute(text(f"ANALYZE {folders.name}"))
            made[prefix] = (metadata, folders, doc_table)
    rng = random.Random(scale.seed)
    tenant = 3
    rows = [{"id": i, "folder_id": tenant * 10**6 + rng.randrange(per_tenant)}
            for i in range(1, docs + 1)]
    return {"tables": made, "rows": rows, "tenant": tenant}


@pytest.mark.parametrize("case", CASES, ids=[c[1] for c in CASES])
def test_insert_referencing_rows(benchmark: Any, pg_engine: Engine, pg_app_engine: Engine,
                                 scale: Scale, data: dict[str, Any], case: Any) -> None:
    label, role, prefix, _, rls = case
    _, _, docs = data["tables"][prefix]
    engine = pg_app_engine if rls else pg_engine
    rows = data["rows"] if rls else [{**r, "tenant_id": data["tenant"]} for r in data["rows"]]
    batches = [rows[i:i + 1000] for i in range(0, len(rows), 1000)]

    def reset() -> None:
        with pg_engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {docs.name}"))

    def run() -> None:
        with engine.begin() as conn:
            if rls:
                tenant_context(conn, data["tenant"])
            for batch in batches:
                conn.execute(insert(docs), batch)

    reset()
    with engine.connect() as conn, conn.begin():
        if rls:
            tenant_context(conn, data["tenant"])
        plan = plan_summary(explain(conn, insert(docs).values(batches[0][:10]), analyze=True))
    record(benchmark, question=QUESTION, case=label, role=role, rows=len(rows), scale=scale,
           plan=plan)
    benchmark.pedantic(run, setup=reset, rounds=scale.rounds, iterations=1, warmup_rounds=1)
    with pg_engine.connect() as conn:
        assert conn.scalar(text(f"SELECT count(*) FROM {docs.name}")) == len(rows)
