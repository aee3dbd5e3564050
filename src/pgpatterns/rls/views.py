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

from pgpatterns.ddl import MaterializedView, View
from pgpatterns.ddl.base import OWNER_KEY
from pgpatterns.ddl.view import ViewBase
from pgpatterns.errors import RLSViewError, ViewRLSError
from pgpatterns.rls.policies import _RLS_KEY

__all__ = [
    "refuse_rls_bypass",
    "rls_sources",
    "rls_view",
    "secured_matviews",
    "secured_tables",
]


def rls_sources(selectable: SelectBase) -> list[str]:
    """Names of the row-level-secured tables ``selectable`` reads, sorted.

    Examples:
        >>> from sqlalchemy import Column, Integer, MetaData, Table, select
        >>> from pgpatterns.rls import enable_rls
        >>> t = Table("t", MetaData(), Column("id", Integer))
        >>> _ = enable_rls(t)
        >>> rls_sources(select(t.c.id))
        ['t']

    A table counts when its RLS was declared through :func:`enable_rls` (``TenantScoped``
    does that). Reading through a ``security_invoker`` view over one counts too, and so does
    reading a materialized view over one (a materialized view holds rows computed with its
    owner's rights; no policy applies to it). A definer-rights view that was explicitly
    allowed (``security_invoker=False``) is where that decision was already made: it does
    not count again.
    """
    found = find_tables(selectable, include_joins=True, include_aliases=True)
    names: set[str] = set()
    for table in found:
        if not isinstance(table, Table):
            continue
        owner = table.info.get(OWNER_KEY)
        if table.info.get(_RLS_KEY) is not None:
            names.add(table.name)
        elif isinstance(owner, View) and not owner.security_invoker:
            continue  # a definer-rights view was already allowed explicitly
        elif isinstance(owner, ViewBase) and secured_tables(owner.selectable):
            names.add(table.name)  # the view (or materialized view) the query names
    return sorted(names)


def secured_tables(selectable: SelectBase) -> list[Table]:
    """The declared row-level-secured tables ``selectable`` reads (see :func:`rls_sources`),
    looking through views and materialized views to the tables themselves."""
    found = find_tables(selectable, include_joins=True, include_aliases=True)
    tables: list[Table] = []
    for table in found:
        if not isinstance(table, Table):
            continue
        owner = table.info.get(OWNER_KEY)
        if table.info.get(_RLS_KEY) is not None:
            tables.append(table)
        elif isinstance(owner, View) and not owner.security_invoker:
            continue  # a definer-rights view was already allowed explicitly
        elif isinstance(owner, ViewBase):
            tables.extend(secured_tables(owner.selectable))
    return list(dict.fromkeys(tables))


def secured_matviews(selectable: SelectBase) -> list[str]:
    """Materialized views over row-level-secured tables that ``selectable`` reads (directly
    or through ``security_invoker`` views): no policy applies to their rows."""
    found = find_tables(selectable, include_joins=True, include_aliases=True)
    names: set[str] = set()
    for table in found:
        owner = table.info.get(OWNER_KEY) if isinstance(table, Table) else None
        if isinstance(owner, MaterializedView) and secured_tables(owner.selectable):
            names.add(table.name)
        elif isinstance(owner, View) and owner.security_invoker:
            names.update(secured_matviews(owner.selectable))
    return sorted(names)


def refuse_rls_bypass(
    what: str, selectable: SelectBase, *, security_invoker: bool, flag: str
) -> None:
    """Raise :class:`ViewRLSError` when a view declared as ``what`` would show rows of a
    row-level-secured table with its owner's rights; ``flag`` names the opt-out argument."""
    frozen = secured_matviews(selectable)
    if frozen:
        raise ViewRLSError(
            f"{what} reads the materialized view {', '.join(frozen)}, computed from "
            "row-level-secured tables with its owner's rights: no policy applies to its "
            "rows, whatever security_invoker says, so every reader would see every tenant. "
            "Declare it with pgpatterns.views.tenant_materialized_view() and read that (a "
            f"view filtered by the current tenant), or pass {flag}=True if every reader may "
            "see every row."
        )
    secured = rls_sources(selectable)
    if secured and not security_invoker:
        raise ViewRLSError(
            f"{what} reads {', '.join(secured)}, which has row-level security, but "
            "security_invoker=False runs the view as its owner, who bypasses the policies: "
            "every reader would see every row. Keep security_invoker=True, or pass "
            f"{flag}=True if that is intended."
        )


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
            a table whose RLS was enabled through :func:`enable_rls` (or a view over one),
            and with either setting when it reads a materialized view over such a table
            (no policy applies to a materialized view's rows): you then mean for everyone
            who can read the view to see all its rows.
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
    if not isinstance(name, str) or not name:
        raise RLSViewError(f"rls_view(): name must be a non-empty string, got {name!r}.")
    if not allow_definer_rights:
        refuse_rls_bypass(
            f"view {name!r}", selectable, security_invoker=security_invoker,
            flag="allow_definer_rights",
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
