"""Row-level security: tenant and owner policies in their fast form, request context, checks.

Examples:
    >>> from sqlalchemy import BigInteger, Column, Integer, MetaData, Table
    >>> from pgpatterns.ddl import attach
    >>> from pgpatterns.rls import enable_rls, policy, tenant_isolation
    >>> metadata = MetaData()
    >>> docs = Table("docs", metadata, Column("id", Integer, primary_key=True),
    ...              Column("tenant_id", BigInteger, nullable=False, index=True))
    >>> rls = enable_rls(docs)
    >>> same_tenant = tenant_isolation(docs.c.tenant_id)
    >>> attach(metadata, rls, policy("tenant", docs, to="app_user", using=same_tenant,
    ...                              with_check=same_tenant))

* Declare: :func:`enable_rls` and :func:`policy` (``pgpatterns.ddl`` objects), the mixin
  :class:`TenantScoped`, views with :func:`rls_view`, partitions with :func:`for_partitions`.
* Expressions that are evaluated once per statement: :func:`current_tenant`,
  :func:`current_user_id`, :func:`setting`, :func:`initplan`, :func:`tenant_isolation`,
  :func:`owner_only`, :func:`member_of`.
* Context: :func:`tenant_context` (``_async``), :func:`tenant_context_on_begin`,
  :func:`set_context` (``_async``): transaction-local, pool-safe.
* Check: :func:`check_rls` (``_async``) returns :class:`Finding` s.
* Supabase: :mod:`pgpatterns.rls.supabase`.

Warning:
    Superusers and roles with ``BYPASSRLS`` ignore every policy, and so does a table's owner
    unless RLS is forced (:func:`enable_rls` forces it by default). Test as the application
    role. ``security_invoker`` views need PostgreSQL 15+.
"""

from __future__ import annotations

from pgpatterns.rls.check import KINDS, Finding, check_rls, check_rls_async
from pgpatterns.rls.context import (
    context_statement,
    set_context,
    set_context_async,
    tenant_context,
    tenant_context_async,
    tenant_context_on_begin,
)
from pgpatterns.rls.expressions import (
    TENANT_SETTING,
    USER_SETTING,
    current_tenant,
    current_user_id,
    initplan,
    member_of,
    owner_only,
    setting,
    tenant_isolation,
)
from pgpatterns.rls.policies import check_roles, enable_rls, for_partitions, policy, rls_objects
from pgpatterns.rls.tenant import (
    TenantInfo,
    TenantScoped,
    secure_table,
    tenant_column,
    tenant_foreign_key,
    tenant_of,
    tenant_unique,
)
from pgpatterns.rls.views import rls_view

__all__ = [
    "KINDS",
    "TENANT_SETTING",
    "USER_SETTING",
    "Finding",
    "TenantInfo",
    "TenantScoped",
    "check_rls",
    "check_rls_async",
    "check_roles",
    "context_statement",
    "current_tenant",
    "current_user_id",
    "enable_rls",
    "for_partitions",
    "initplan",
    "member_of",
    "owner_only",
    "policy",
    "rls_objects",
    "rls_view",
    "secure_table",
    "set_context",
    "set_context_async",
    "setting",
    "tenant_column",
    "tenant_context",
    "tenant_context_async",
    "tenant_context_on_begin",
    "tenant_foreign_key",
    "tenant_isolation",
    "tenant_of",
    "tenant_unique",
]
