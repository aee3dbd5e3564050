"""Per-tenant materialized views over row-level-secured tables: private rows, a filtered door.

Examples:
    >>> from sqlalchemy import BigInteger, Column, Integer, MetaData, Table, func, select
    >>> from pgpatterns.rls import enable_rls
    >>> from pgpatterns.views import tenant_materialized_view
    >>> md = MetaData()
    >>> sales = Table("sales", md, Column("tenant_id", BigInteger), Column("shop", Integer),
    ...               Column("cents", Integer))
    >>> _ = enable_rls(sales)
    >>> totals = tenant_materialized_view(
    ...     "shop_totals",
    ...     select(sales.c.tenant_id, sales.c.shop, func.sum(sales.c.cents).label("cents"))
    ...     .group_by(sales.c.tenant_id, sales.c.shop),
    ...     metadata=md, readers=["app_user"], unique_key=["tenant_id", "shop"])
    >>> print(totals.sql().split(";\\n")[-1])
    GRANT SELECT ON shop_totals TO app_user

Why this shape. A materialized view has no row-level security: its rows were computed once,
with its owner's rights, and whoever may ``SELECT`` it sees all of them. A
``security_invoker`` view over it does not help either: it reads the materialized view with
the *reader's* privileges, so the application role would need ``SELECT`` on the
materialized view itself, and could then read every tenant's rows from it directly. So:

* the rows live in a materialized view ``<name>_mv`` that keeps ``tenant_id``; ``SELECT``
  on it is revoked from ``PUBLIC`` and from ``readers`` (only its owner reads it);
* readers use the view ``<name>``: it runs with its owner's rights (``security_invoker =
  false``, so it may read the private rows), filters them by the current tenant
  (``pgpatterns.rls.current_tenant()``, the setting ``tenant_context`` sets, exactly as the
  tables' policies do) and is a ``security_barrier`` view, so a condition or function a
  reader adds cannot run before that filter and see other tenants' rows. ``readers`` are
  granted ``SELECT`` on it. No context set: no rows (the setting reads as NULL).
* the refresh runs as the materialized view's owner (PostgreSQL runs a refresh's query as
  the owner whoever issues it), who must see every tenant's rows: a superuser, a role with
  ``BYPASSRLS`` (the usual migration/maintenance role), or the tables' owner when their RLS
  is not forced. :func:`~pgpatterns.views.refresh` checks that before refreshing and raises
  :class:`~pgpatterns.errors.ViewRefreshError` rather than silently computing it from no
  rows. Refresh from a maintenance connection or pg_cron
  (:func:`~pgpatterns.views.schedule_refresh`); nothing here lets the application role
  refresh (an expensive statement it could repeat at will).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from sqlalchemy import MetaData, Table, select
from sqlalchemy.sql.compiler import DDLCompiler
from sqlalchemy.sql.selectable import SelectBase

from pgpatterns.ddl import MaterializedView, SchemaObject, View
from pgpatterns.ddl.base import qualified, short_name
from pgpatterns.errors import ViewError
from pgpatterns.rls.expressions import TENANT_SETTING, current_tenant
from pgpatterns.views.declare import (
    IndexSpec,
    _attach,
    _check_flags,
    _check_name,
    _check_selectable,
    _index_specs,
    _set_key,
)

__all__ = ["ROWS_INFO", "tenant_materialized_view", "tenant_rows"]

ROWS_INFO = "pgpatterns.views.rows"
"""``view.table.info`` key: the private materialized view behind a per-tenant view."""


def _roles(compiler: DDLCompiler, roles: Sequence[str]) -> str:
    return ", ".join(compiler.preparer.quote(r) for r in roles)


@dataclass(eq=False)
class PrivateMaterializedView(MaterializedView):
    """A materialized view whose ``SELECT`` is revoked from ``PUBLIC`` and ``revoke_from``."""

    kind: ClassVar[str] = "materialized view"

    revoke_from: Sequence[str] = field(default=(), kw_only=True)

    def statement_count(self, action: str) -> int:
        return super().statement_count(action) + (1 if action == "create" else 0)

    def render_create(self, compiler: DDLCompiler) -> list[str]:
        target = qualified(compiler, self.name, self.schema)
        who = ", ".join(["PUBLIC", *(compiler.preparer.quote(r) for r in self.revoke_from)])
        return [*super().render_create(compiler), f"REVOKE ALL ON {target} FROM {who}"]


@dataclass(eq=False)
class GrantedView(View):
    """A view created together with ``GRANT SELECT ... TO`` its ``readers``."""

    readers: Sequence[str] = field(default=(), kw_only=True)

    def statement_count(self, action: str) -> int:
        return super().statement_count(action) + (1 if action == "create" else 0)

    def render_create(self, compiler: DDLCompiler) -> list[str]:
        target = qualified(compiler, self.name, self.schema)
        grant = f"GRANT SELECT ON {target} TO {_roles(compiler, self.readers)}"
        return [*super().render_create(compiler), grant]


def _readers(name: str, readers: object) -> tuple[str, ...]:
    roles = (readers,) if isinstance(readers, str) else readers
    ok = isinstance(roles, Sequence) and roles and all(
        isinstance(r, str) and r and r.lower() != "public" for r in roles
    )
    if not ok:
        raise ViewError(
            f"tenant_materialized_view {name}: readers must name the role(s) the application "
            f"connects as (e.g. readers=['app_user']), not PUBLIC; got {readers!r}. They are "
            "granted SELECT on the filtered view and refused the materialized view."
        )
    return tuple(roles)  # type: ignore[arg-type]


def tenant_materialized_view(
    name: str,
    selectable: SelectBase,
    *,
    metadata: MetaData,
    readers: Sequence[str],
    unique_key: Sequence[str] | None = None,
    tenant_column: str = "tenant_id",
    setting: str = TENANT_SETTING,
    schema: str | None = None,
    indexes: Sequence[IndexSpec] = (),
    with_data: bool = True,
    depends_on: Sequence[SchemaObject | Table] = (),
) -> View:
    """A materialized view of tenant rows, read per tenant through the view it returns.

    Examples:
        >>> totals = tenant_materialized_view("shop_totals", per_shop, metadata=md,
        ...     readers=["app_user"], unique_key=["tenant_id", "shop"])  # doctest: +SKIP
        >>> with app_engine.begin() as conn:  # doctest: +SKIP
        ...     tenant_context(conn, 1)
        ...     conn.execute(select(totals.table)).all()  # tenant 1's rows only

    Returns the reader view ``name`` (query ``view.table``, map it with
    :class:`~pgpatterns.views.ReadOnlyView`, pass it to :func:`~pgpatterns.views.refresh`);
    the materialized view ``<name>_mv`` is :func:`tenant_rows` of it. Both are attached to
    ``metadata``. See the module docstring for why the rows are private and the reader view
    runs with its owner's rights.

    Args:
        name: The reader view's name (the materialized view gets ``<name>_mv``).
        selectable: The query; it must produce ``tenant_column``.
        metadata: The MetaData of your tables (``create_all`` creates both).
        readers: Roles granted ``SELECT`` on the reader view and refused the rows.
        unique_key: Columns identifying a row, ``tenant_column`` among them; needed for
            ``REFRESH ... CONCURRENTLY``. The unique index leads with ``tenant_column``
            (without a key, a plain index on it is created).
        tenant_column: The column holding the tenant (``TenantScoped``: ``tenant_id``).
        setting: The setting holding the current tenant (``tenant_context`` sets it).
        schema: As for :func:`~pgpatterns.views.materialized_view`.
        indexes: As for :func:`~pgpatterns.views.materialized_view`.
        with_data: As for :func:`~pgpatterns.views.materialized_view`.
        depends_on: As for :func:`~pgpatterns.views.materialized_view`.

    Raises:
        ViewError: before any SQL, when the query does not produce ``tenant_column``, the
            key leaves it out, ``readers`` is empty or PUBLIC.
    """
    _check_name("tenant_materialized_view", name)
    _check_selectable(f"tenant_materialized_view {name}", selectable)
    _check_flags(f"tenant_materialized_view {name}", with_data=with_data)
    roles = _readers(name, readers)
    produced = list(selectable.selected_columns.keys())
    if not isinstance(tenant_column, str) or tenant_column not in produced:
        raise ViewError(
            f"tenant_materialized_view {name}: the query must produce the tenant column "
            f"{tenant_column!r} (it produces {produced}); select it and group by it, so each "
            "row belongs to one tenant and the reader view can filter on it."
        )
    key: list[str] | None = None
    if unique_key is not None:
        given = [unique_key] if isinstance(unique_key, str) else list(unique_key)
        if tenant_column not in given:
            raise ViewError(
                f"tenant_materialized_view {name}: unique_key={given!r} leaves out "
                f"{tenant_column!r}; rows of different tenants share those values, so the "
                f"key is {[tenant_column, *given]!r}."
            )
        key = [tenant_column, *(c for c in given if c != tenant_column)]
    mv_name = short_name(name, suffix="_mv")
    specs = _index_specs(mv_name, selectable, indexes, key)
    if key is None:
        specs.append((short_name(mv_name, suffix="_tenant"), [tenant_column], False))
    rows = PrivateMaterializedView(
        mv_name, selectable, schema=schema, depends_on=depends_on, with_data=with_data,
        indexes=specs, revoke_from=roles,
    )
    tenant_col = rows.table.c[tenant_column]
    mine = tenant_col == current_tenant(tenant_col.type, name=setting)
    reader = GrantedView(
        name, select(*rows.table.c).where(mine), schema=schema, depends_on=(rows,),
        security_invoker=False, security_barrier=True, readers=roles,
    )
    _set_key(rows, key)
    _set_key(reader, key)
    reader.table.info[ROWS_INFO] = rows
    _attach(metadata, rows)
    _attach(metadata, reader)
    return reader


def tenant_rows(target: Any) -> MaterializedView | None:
    """The private materialized view behind a :func:`tenant_materialized_view` reader view
    (or a ReadOnlyView class mapped onto one); ``None`` for any other view."""
    obj = target if isinstance(target, View) else getattr(target, "__view__", None)
    found = obj.table.info.get(ROWS_INFO) if isinstance(obj, View) else None
    return found if isinstance(found, MaterializedView) else None
