"""Refresh a materialized view (concurrently when it can), and replace it keeping its indexes.

Examples:
    >>> from sqlalchemy import column, select, table, MetaData
    >>> from pgpatterns.views import materialized_view, refresh_stmt
    >>> t = table("t", column("day"), column("n"))
    >>> mv = materialized_view("daily", select(t.c.day, t.c.n), metadata=MetaData(),
    ...                        unique_key=["day"])
    >>> print(refresh_stmt(mv).compile())
    REFRESH MATERIALIZED VIEW CONCURRENTLY daily
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, Connection, Index, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import DDLCompiler
from sqlalchemy.sql.ddl import ExecutableDDLElement

from pgpatterns.ddl import MaterializedView
from pgpatterns.ddl.base import qualified, regname
from pgpatterns.errors import ViewRefreshError
from pgpatterns.rls.views import secured_tables
from pgpatterns.views.declare import as_view, check_session
from pgpatterns.views.tenant import tenant_rows

__all__ = [
    "RefreshMaterializedView",
    "concurrent_refresh_index",
    "refresh",
    "refresh_async",
    "refresh_stmt",
]


class RefreshMaterializedView(ExecutableDDLElement):
    """``REFRESH MATERIALIZED VIEW [CONCURRENTLY] name [WITH NO DATA]`` (executable).

    ``schema`` overrides the view's own (used to schedule a fully qualified command).
    """

    inherit_cache = False

    def __init__(
        self,
        mv: MaterializedView,
        *,
        concurrently: bool,
        with_data: bool = True,
        schema: str | None = None,
    ) -> None:
        self.mv = mv
        self.concurrently = concurrently
        self.with_data = with_data
        self.schema = schema if schema is not None else mv.schema


@compiles(RefreshMaterializedView, "postgresql")
def _compile_refresh(element: RefreshMaterializedView, compiler: DDLCompiler, **kw: Any) -> str:
    how = " CONCURRENTLY" if element.concurrently else ""
    data = "" if element.with_data else " WITH NO DATA"
    name = qualified(compiler, element.mv.name, element.schema)
    return f"REFRESH MATERIALIZED VIEW{how} {name}{data}"


@compiles(RefreshMaterializedView)
def _compile_refresh_default(
    element: RefreshMaterializedView, compiler: DDLCompiler, **kw: Any
) -> str:
    return _compile_refresh(element, compiler, **kw)


def concurrent_refresh_index(mv: MaterializedView) -> Index | None:
    """The declared unique index that lets ``REFRESH ... CONCURRENTLY`` run, if any.

    PostgreSQL needs a UNIQUE index that uses only column names (no expressions) and has no
    WHERE clause, so that it can match old and new rows one to one.
    """
    for index in mv._indexes:
        plain = all(isinstance(e, Column) for e in index.expressions)
        partial = index.dialect_options["postgresql"]["where"] is not None
        if index.unique and plain and not partial:
            return index
    return None


def refresh_stmt(
    mv: Any, *, concurrently: bool = True, with_data: bool = True
) -> RefreshMaterializedView:
    """The ``REFRESH`` statement for ``mv`` (a materialized view or a ReadOnlyView class).

    Examples:
        >>> refresh_stmt(mv, concurrently=False)  # doctest: +SKIP

    Raises:
        ViewRefreshError: ``concurrently=True`` but no unique index on plain columns is
            declared, or ``concurrently`` with ``with_data=False``.
    """
    _check_flag("concurrently", concurrently)
    _check_flag("with_data", with_data)
    found = as_view(mv)
    obj = found if isinstance(found, MaterializedView) else tenant_rows(found)
    if obj is None:
        raise ViewRefreshError(
            f"{found.describe()} is a plain view: it is computed on every read and has nothing "
            "to refresh; refresh only materialized views."
        )
    if concurrently and not with_data:
        raise ViewRefreshError(
            f"refresh {obj.describe()}: CONCURRENTLY cannot be combined with WITH NO DATA "
            "(PostgreSQL refuses it); pass concurrently=False to empty it."
        )
    if concurrently and concurrent_refresh_index(obj) is None:
        declared = [str(i.name) for i in obj._indexes] or "none"
        raise ViewRefreshError(
            f"cannot refresh {obj.describe()} CONCURRENTLY: PostgreSQL needs a UNIQUE index "
            "on plain columns (no expression, no WHERE) to match old and new rows, and none "
            f"is declared (indexes: {declared}). Declare unique_key=[...] on "
            "materialized_view() with columns that identify a row, or pass "
            "concurrently=False (that blocks readers while it runs)."
        )
    return RefreshMaterializedView(obj, concurrently=concurrently, with_data=with_data)


def _check_flag(name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise ViewRefreshError(f"refresh: {name} must be True or False, got {value!r}.")


_POPULATED = text("SELECT relispopulated FROM pg_class WHERE oid = to_regclass(:n)")
# Secured source tables whose policies apply to the materialized view's owner, who runs the
# refresh's query: not a superuser, no BYPASSRLS, and not the table's owner with RLS unforced.
_FILTERED = text(
    "SELECT c.oid::regclass::text AS source, o.rolname AS owner"
    " FROM unnest(CAST(:tables AS text[])) AS t(n)"
    " JOIN pg_class c ON c.oid = to_regclass(t.n)"
    " JOIN pg_roles o ON o.oid = (SELECT relowner FROM pg_class WHERE oid = to_regclass(:mv))"
    " WHERE c.relrowsecurity AND NOT o.rolsuper AND NOT o.rolbypassrls"
    " AND (c.relforcerowsecurity OR c.relowner <> o.oid) ORDER BY 1"
)


def _sources(stmt: RefreshMaterializedView) -> list[str]:
    return [regname(t.name, t.schema) for t in secured_tables(stmt.mv.selectable)]


def _refuse_filtered(stmt: RefreshMaterializedView, rows: list[Any]) -> None:
    if not rows:
        return
    owner = rows[0].owner
    sources = ", ".join(r.source for r in rows)
    raise ViewRefreshError(
        f"cannot refresh {stmt.mv.describe()}: PostgreSQL runs its query as its owner "
        f"{owner!r}, and the row-level security of {sources} applies to that role, so the "
        "refresh would compute it from the rows those policies show it (none, under FORCE "
        f"ROW LEVEL SECURITY) and readers would see a wrong, likely empty, result. Make the "
        f"owner a role that sees every row: ALTER ROLE {owner} BYPASSRLS (a maintenance role "
        "that owns the view), or let the tables' owner own it with RLS not forced."
    )


def _plan(stmt: RefreshMaterializedView, populated: bool | None) -> RefreshMaterializedView:
    if populated is None:
        raise ViewRefreshError(
            f"{stmt.mv.describe()} does not exist in the database; create it first "
            "(metadata.create_all, or the migration that runs mv.sql())."
        )
    if stmt.concurrently and not populated:
        # Never populated (WITH NO DATA): nobody can read it yet, so nothing to keep
        # unblocked, and PostgreSQL refuses CONCURRENTLY here. Fill it plainly once.
        return RefreshMaterializedView(stmt.mv, concurrently=False, with_data=True)
    return stmt


def refresh(session: Session | Connection, mv: Any, *, concurrently: bool = True) -> None:
    """Refresh ``mv`` inside the caller's transaction.

    Examples:
        >>> refresh(session, shop_totals)  # doctest: +SKIP
        >>> session.commit()  # doctest: +SKIP

    ``concurrently=True`` (default) lets readers keep reading the old contents while the
    new ones are computed; it needs a unique key (:func:`materialized_view` ``unique_key``),
    checked before any SQL is sent. A view never populated (``with_data=False``) is filled
    with a plain refresh the first time. ``mv`` may be the reader view of a
    :func:`~pgpatterns.views.tenant_materialized_view`: its private rows are refreshed.

    Raises:
        ViewRefreshError: no unique key for ``CONCURRENTLY``; the view does not exist; or it
            reads row-level-secured tables whose policies apply to its owner (who runs the
            refresh's query): the refresh would silently compute it from the rows the owner
            may see, none under ``FORCE ROW LEVEL SECURITY``.

    Warning:
        A concurrent refresh is slower than a plain one (it diffs old and new rows) and
        still takes an EXCLUSIVE lock: two refreshes of one view run one after the other.
        Commit soon after: the lock is held until the transaction ends.
    """
    stmt = refresh_stmt(mv, concurrently=concurrently)
    check_session("refresh()", session)
    name = regname(stmt.mv.name, stmt.mv.schema)
    sources = _sources(stmt)
    if sources:
        _refuse_filtered(stmt, list(session.execute(_FILTERED, {"tables": sources, "mv": name})))
    populated = session.execute(_POPULATED, {"n": name}).scalar()
    session.execute(_plan(stmt, populated))


async def refresh_async(session: AsyncSession, mv: Any, *, concurrently: bool = True) -> None:
    """:func:`refresh` for an ``AsyncSession`` (same statements, same checks)."""
    stmt = refresh_stmt(mv, concurrently=concurrently)
    check_session("refresh_async()", session, is_async=True)
    name = regname(stmt.mv.name, stmt.mv.schema)
    sources = _sources(stmt)
    if sources:
        found = await session.execute(_FILTERED, {"tables": sources, "mv": name})
        _refuse_filtered(stmt, list(found))
    populated = (await session.execute(_POPULATED, {"n": name})).scalar()
    await session.execute(_plan(stmt, populated))
