"""citus: the same tenant workload on one node and on a Citus cluster (coordinator + 2 workers).

Runs only where Citus is installed and asked for (``PGPATTERNS_SERVER=local`` or
``PGPATTERNS_REQUIRE=citus``; see :mod:`pgpatterns.testing.citus`), else it is skipped.

Data: T tenants (default 200, quick 20), 20 projects per tenant and 25 tasks per project
(default 100,000 tasks, quick 10,000), ``TenantScoped`` with ``__tenant_primary_key__``.
One round runs 50 tenant transactions, each for a random tenant: set the tenant, then read
the 20 newest tasks of one of its projects (``ORDER BY id DESC LIMIT 20``), as the app role.

Question ``citus:tenant-page`` (latency per round of 50 transactions; ``tasks`` in the
report is Citus' task count per query from ``EXPLAIN``):

* pattern: the cluster, ``pgpatterns.citus.tenant_context`` + ``tenant_filtered`` (a router
  query: one shard);
* alternative: the cluster, ``tenant_context`` and row-level security only (the policy is
  not a constant the router planner can use: every shard is asked);
* limit: the same tables on the coordinator as plain local tables (one PostgreSQL node), the
  ``pgpatterns.rls`` initPlan policy and ``rls.tenant_context``.

Question ``citus:policy-form`` (one node, the same page query, 50 per round): the initPlan
policy ``tenant_id = (SELECT nullif(current_setting(...), '')::bigint)`` (baseline, what
``pgpatterns.rls`` declares) against the form :func:`pgpatterns.citus.distribute` declares
on Citus, ``tenant_id = nullif(current_setting(...), '')::bigint`` (pattern).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import BigInteger, Index, MetaData, Table, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from benchmarks.conftest import Scale, record
from pgpatterns import rls
from pgpatterns.bulk import copy_rows
from pgpatterns.citus import (
    citus_policy_expression,
    distribute,
    task_counts,
    tenant_context,
    tenant_filtered,
)
from pgpatterns.ddl import Policy, attached
from pgpatterns.explain import explain, plan_summary
from pgpatterns.testing.citus import APP_ROLE, CitusSchema, citus_missing, citus_schema, get_citus

PROJECTS, TASKS = 20, 25
PER_ROUND = 50


def _models(citus: bool) -> tuple[MetaData, Table]:
    class Base(DeclarativeBase):
        metadata = MetaData()

    class Task(rls.TenantScoped, Base):
        __tablename__ = "bench_tasks"
        __tenant_roles__ = (APP_ROLE,)
        __tenant_primary_key__ = True
        __tenant_index__ = False
        id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
        project_id: Mapped[int] = mapped_column(BigInteger)
        title: Mapped[str]

    table = Task.__table__
    assert isinstance(table, Table)
    Index("bench_tasks_project_idx", table.c.tenant_id, table.c.project_id, table.c.id)
    if citus:
        distribute(Base.metadata)
    return Base.metadata, table


def _rows(tenants: int) -> Iterator[tuple[int, int, int, str]]:
    for t in range(1, tenants + 1):
        for p in range(PROJECTS):
            for k in range(TASKS):
                pid = t * 1000 + p
                yield (t, pid * 100 + k, pid, f"task {k}")


@pytest.fixture(scope="module")
def cluster(scale: Scale) -> Iterator[dict[str, Any]]:
    why = citus_missing()
    if why is not None:
        pytest.skip(why)
    tenants = scale.pick(quick=20, default=200)
    made: dict[str, Any] = {"tenants": tenants}
    with citus_schema(get_citus()) as dist, citus_schema(get_citus()) as single, \
            citus_schema(get_citus()) as plain:
        for schema, kind in ((dist, "citus"), (single, "single"), (plain, "plain-form")):
            metadata, table = _models(kind == "citus")
            if kind == "plain-form":  # the Citus policy form on one node
                for obj in attached(metadata):
                    if isinstance(obj, Policy):
                        assert obj.using is not None
                        obj.using = citus_policy_expression(obj.using, where="bench")
                        obj.with_check = obj.using
            with schema.engine.begin() as conn:
                metadata.create_all(conn)
                copy_rows(conn, table, _rows(tenants),
                          columns=["tenant_id", "id", "project_id", "title"])
                conn.execute(text("ANALYZE bench_tasks"))
            made[kind] = (schema, table)
        yield made


def _page(table: Table, tenant: int, project: int) -> Any:
    return (select(table).where(table.c.project_id == project)
            .order_by(table.c.id.desc()).limit(20))


def _workload(schema: CitusSchema, table: Table, *, citus: bool, route: bool,
              tenants: int, seed: int) -> tuple[Any, Any]:
    rng = random.Random(seed)
    picks = [(t, t * 1000 + rng.randrange(PROJECTS))
             for t in (rng.randint(1, tenants) for _ in range(PER_ROUND))]

    def one(conn: Any, tenant: int, project: int) -> Any:
        if citus:
            tenant_context(conn, tenant)
        else:
            rls.tenant_context(conn, tenant)
        stmt = _page(table, tenant, project)
        return tenant_filtered(stmt, tenant) if route else stmt

    def run() -> None:
        with schema.app_engine.connect() as conn:
            for tenant, project in picks:
                with conn.begin():
                    rows = conn.execute(one(conn, tenant, project)).all()
                    assert len(rows) == 20 and all(r.tenant_id == tenant for r in rows)

    def plan() -> Any:
        with schema.app_engine.connect() as conn, conn.begin():
            tenant, project = picks[0]
            return explain(conn, one(conn, tenant, project), analyze=True)

    return run, plan


PAGE = "citus:tenant-page"
CASES = [
    ("cluster, router query (tenant_filtered)", "pattern", "citus", True, True),
    ("cluster, fan-out (RLS only)", "alternative", "citus", True, False),
    ("one node, local tables (rls initPlan policy)", "limit", "single", False, False),
]


@pytest.mark.parametrize("case", CASES, ids=[c[1] for c in CASES])
def test_tenant_page(benchmark: Any, scale: Scale, cluster: dict[str, Any], case: Any) -> None:
    label, role, kind, citus, route = case
    schema, table = cluster[kind]
    run, plan_of = _workload(schema, table, citus=citus, route=route,
                             tenants=cluster["tenants"], seed=scale.seed)
    plan = plan_of()
    tasks = task_counts(plan)
    record(benchmark, question=PAGE, case=label, role=role, rows=PER_ROUND, scale=scale,
           plan=plan_summary(plan), tasks=tasks[0] if tasks else 0,
           queries_per_round=PER_ROUND)
    benchmark.pedantic(run, rounds=scale.rounds, iterations=1, warmup_rounds=1)


FORM = "citus:policy-form"
FORMS = [
    ("nullif(current_setting(...))::bigint (Citus form)", "pattern", "plain-form"),
    ("(SELECT nullif(current_setting(...))::bigint) (initPlan form)", "baseline", "single"),
]


@pytest.mark.parametrize("case", FORMS, ids=[c[1] for c in FORMS])
def test_policy_form(benchmark: Any, scale: Scale, cluster: dict[str, Any], case: Any) -> None:
    label, role, kind = case
    schema, table = cluster[kind]
    run, plan_of = _workload(schema, table, citus=False, route=False,
                             tenants=cluster["tenants"], seed=scale.seed)
    record(benchmark, question=FORM, case=label, role=role, rows=PER_ROUND, scale=scale,
           plan=plan_summary(plan_of()))
    benchmark.pedantic(run, rounds=scale.rounds, iterations=1, warmup_rounds=1)

