"""Views over row-level-secured tables that keep the querying user's policies.

Examples:
    >>> from sqlalchemy import BigInteger, Column, Integer, MetaData, Table, func, select
    >>> from pgpatterns.rls import enable_rls, rls_view
    >>> orders = Table("orders", MetaData(), Column("tenant_id", BigInteger),
    ...                Column("total", Integer))
    >>> _ = enable_rls(orders)
    >>> v = rls_view("order_totals", select(orders.c.tenant_id, func.sum(orders.c.total))
    ...              .group_by(orders.c.tenant_id))
    >>> "WITH (security_invoker = true)" in v.sql()
    True

A view runs its query with the rights of the view's *owner*, who usually owns the tables
too and so bypasses their row-level security: a plain view over a tenant table shows every
tenant's rows to everyone allowed to read the view. ``security_invoker = true``
(PostgreSQL 15+) makes it run as the querying user, so the table policies apply.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy.sql.selectable import Select, SelectBase
from sqlalchemy.sql.util import find_tables

from pgpatterns.ddl import View
from pgpatterns.ddl.base import OWNER_KEY
from pgpatterns.errors import RLSViewError
from pgpatterns.rls.policies import _RLS_KEY

__all__ = ["rls_view"]


def _secured_tables(selectable: SelectBase) -> list[str]:
    found = find_tables(selectable, include_joins=True, include_aliases=True)
    names = []
    for table in found:
        if not isinstance(table, Table):
            continue
        owner = table.info.get(OWNER_KEY)
        if table.info.get(_RLS_KEY) is not None:
            names.append(table.name)
        elif isinstance(owner, View) and not owner.security_invoker:
            continue  # a definer-rights view was already allowed explicitly
        elif isinstance(owner, View) and _secured_tables(owner.selectable):
            names.append(table.name)
    return names


def rls_view(
    name: str,
    selectable: SelectBase,
    *,
    security_invoker: bool = True,
    security_barrier: bool | None = None,
    allow_definer_rights: bool = False,
    **kw: Any,
) -> View:
    """A :class:`pgpatterns.ddl.View` that is safe over row-level-secured tables.

    Examples:
        >>> rls_view("all_orders", select(orders), security_invoker=False)  # doctest: +SKIP
        Traceback (most recent call last):
        ...
        pgpatterns.errors.RLSViewError: view 'all_orders' reads orders, which has row-level ...

    Args:
        name: The view's name.
        selectable: Its query.
        security_invoker: Run as the querying user (default); PostgreSQL 15+.
        security_barrier: Keep user-supplied conditions from being evaluated before the
            view's own ``WHERE`` (so a leaky function cannot see filtered-out rows). Default:
            on when the view runs with its owner's rights and filters rows (its ``WHERE`` is
            then the security boundary), off otherwise (it costs plan quality).
        allow_definer_rights: Required with ``security_invoker=False`` when the query reads
            a table whose RLS was enabled through :func:`enable_rls` (or a view over one):
            you then mean for everyone who can read the view to see all its rows.
        **kw: Passed to ``View`` (``schema=``, ``check_option=``, ``depends_on=`` ...).

    Warning:
        Only tables declared through :func:`enable_rls` (and ``TenantScoped``) are known
        here; ``check_rls`` finds definer-rights views over any RLS table in the database.
        Schema-diff tools have been known to drop ``security_invoker``: compare with
        ``pgpatterns.ddl.diff`` after a migration.
    """
    if not isinstance(selectable, SelectBase):
        raise RLSViewError(
            f"rls_view({name!r}): selectable must be a select(), got {selectable!r}."
        )
    if not security_invoker and not allow_definer_rights:
        secured = _secured_tables(selectable)
        if secured:
            raise RLSViewError(
                f"view {name!r} reads {', '.join(sorted(set(secured)))}, which has row-level "
                "security, but security_invoker=False runs the view as its owner, who "
                "bypasses the policies: every reader would see every row. Keep "
                "security_invoker=True, or pass allow_definer_rights=True if that is intended."
            )
    if security_barrier is None:
        filters = isinstance(selectable, Select) and selectable.whereclause is not None
        security_barrier = not security_invoker and filters
    return View(
        name,
        selectable,
        security_invoker=security_invoker,
        security_barrier=security_barrier,
        **kw,
    )
