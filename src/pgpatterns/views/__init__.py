"""Views and materialized views: declared in Python, read through the ORM, refreshed safely.

Examples:
    >>> from sqlalchemy import Column, Date, Integer, MetaData, Table, func, select
    >>> from pgpatterns.views import materialized_view, refresh_stmt
    >>> metadata = MetaData()
    >>> orders = Table("orders", metadata, Column("day", Date), Column("cents", Integer))
    >>> daily = materialized_view(
    ...     "daily_sales",
    ...     select(orders.c.day, func.sum(orders.c.cents).label("cents")).group_by(orders.c.day),
    ...     metadata=metadata,
    ...     unique_key=["day"],
    ... )
    >>> print(refresh_stmt(daily).compile())
    REFRESH MATERIALIZED VIEW CONCURRENTLY daily_sales

* Declare: :func:`view`, :func:`materialized_view` (built on :mod:`pgpatterns.ddl`:
  created by ``metadata.create_all``, rendered by ``.sql()``, compared by ``ddl.diff``).
  Over row-level-secured tables: :func:`tenant_materialized_view` (the others refuse to
  show every tenant's rows to every reader, see :class:`~pgpatterns.errors.ViewRLSError`).
* Map: :class:`ReadOnlyView` (queries work, flushes of its instances raise).
* Maintain: :func:`refresh` (``_async``), :func:`replace_materialized_view` (``_async``)
  keeps indexes and grants, :func:`schedule_refresh` (``_async``) through pg_cron.

Warning:
    ``security_invoker`` views need PostgreSQL 15+. ``REFRESH ... CONCURRENTLY`` needs a
    unique index on plain columns (``unique_key=``) and a populated view; it does not block
    readers, but it is slower than a plain refresh. pg_cron scheduling needs pg_cron 1.4+.
"""

from __future__ import annotations

from pgpatterns.views.declare import (
    KEY_INFO,
    ReadOnlyView,
    as_view,
    materialized_view,
    view,
    view_key,
)
from pgpatterns.views.refresh import (
    RefreshMaterializedView,
    concurrent_refresh_index,
    refresh,
    refresh_async,
    refresh_stmt,
)
from pgpatterns.views.replace import (
    Replaced,
    replace_materialized_view,
    replace_materialized_view_async,
)
from pgpatterns.views.schedule import (
    schedule_refresh,
    schedule_refresh_async,
    unschedule_refresh,
    unschedule_refresh_async,
)
from pgpatterns.views.tenant import ROWS_INFO, tenant_materialized_view, tenant_rows

__all__ = [
    "KEY_INFO",
    "ROWS_INFO",
    "ReadOnlyView",
    "RefreshMaterializedView",
    "Replaced",
    "as_view",
    "concurrent_refresh_index",
    "materialized_view",
    "refresh",
    "refresh_async",
    "refresh_stmt",
    "replace_materialized_view",
    "replace_materialized_view_async",
    "schedule_refresh",
    "schedule_refresh_async",
    "tenant_materialized_view",
    "tenant_rows",
    "unschedule_refresh",
    "unschedule_refresh_async",
    "view",
    "view_key",
]
