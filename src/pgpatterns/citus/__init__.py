"""The tenant patterns on Citus: distributed and reference tables, router queries, policies
that work on shards.

Examples:
    >>> from pgpatterns.citus import distribute, route_by_tenant, tenant_context
    >>> distribute(Base.metadata)  # doctest: +SKIP
    >>> Base.metadata.create_all(owner_engine)  # doctest: +SKIP
    >>> route_by_tenant(SessionLocal)  # doctest: +SKIP
    >>> with SessionLocal() as session, session.begin():  # doctest: +SKIP
    ...     tenant_context(session, 42)  # SET LOCAL, propagated to the workers
    ...     session.scalars(select(Doc)).all()  # a router query to tenant 42's shard

* Declare: :class:`DistributedTable`, :class:`ReferenceTable` (``pgpatterns.ddl`` kinds),
  :func:`distribute` for a whole tenant schema, :func:`citus_policy_expression`.
* Context: :func:`tenant_context` (``_async``), :func:`tenant_context_on_begin`,
  :func:`context_statements`.
* Routing: :func:`tenant_filtered`, :func:`route_by_tenant`; plans: :func:`task_counts`,
  :func:`is_router`.

Warning:
    Needs the Citus extension (tested with Citus 13.2.2 on PostgreSQL 15) and
    ``__tenant_primary_key__ = True`` on every ``TenantScoped`` model. See
    ``docs/recipes/citus.md`` for the support matrix.
"""

from __future__ import annotations

from pgpatterns.citus.context import (
    context_statements,
    route_by_tenant,
    tenant_context,
    tenant_context_async,
    tenant_context_on_begin,
    tenant_filtered,
)
from pgpatterns.citus.ddl import DistributedTable, ReferenceTable, table_distribution
from pgpatterns.citus.distribute import citus_policy_expression, distribute, distribution_of
from pgpatterns.citus.explain import is_router, task_counts

__all__ = [
    "DistributedTable",
    "ReferenceTable",
    "citus_policy_expression",
    "context_statements",
    "distribute",
    "distribution_of",
    "is_router",
    "route_by_tenant",
    "table_distribution",
    "task_counts",
    "tenant_context",
    "tenant_context_async",
    "tenant_context_on_begin",
    "tenant_filtered",
]
