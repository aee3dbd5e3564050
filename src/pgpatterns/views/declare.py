"""Declare views and materialized views on a MetaData, and map them as read-only ORM classes.

Examples:
    >>> from sqlalchemy import Column, Integer, MetaData, Table, func, select
    >>> from pgpatterns.views import materialized_view
    >>> metadata = MetaData()
    >>> sales = Table("sales", metadata, Column("shop", Integer), Column("cents", Integer))
    >>> totals = materialized_view(
    ...     "shop_totals",
    ...     select(sales.c.shop, func.sum(sales.c.cents).label("cents")).group_by(sales.c.shop),
    ...     metadata=metadata,
    ...     unique_key=["shop"],
    ... )
    >>> print(totals.sql().splitlines()[-1])
    CREATE UNIQUE INDEX shop_totals_key ON shop_totals (shop)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from sqlalchemy import Connection, Index, MetaData, Table, event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.sql.selectable import SelectBase

from pgpatterns.ddl import MaterializedView, SchemaObject, View, attach
from pgpatterns.ddl.base import short_name
from pgpatterns.ddl.view import ViewBase
from pgpatterns.errors import ReadOnlyViewError, ViewError, ViewRLSError
from pgpatterns.rls.views import refuse_rls_bypass, rls_sources

__all__ = ["KEY_INFO", "ReadOnlyView", "as_view", "materialized_view", "view", "view_key"]

KEY_INFO = "pgpatterns.views.key"
"""``view.table.info`` key holding the column names that identify one row of the view."""

IndexSpec = Index | tuple[str, Sequence[str], bool]


def view(
    name: str,
    selectable: SelectBase,
    *,
    metadata: MetaData,
    schema: str | None = None,
    key: Sequence[str] | None = None,
    security_invoker: bool = True,
    security_barrier: bool = False,
    check_option: str | None = None,
    depends_on: Sequence[SchemaObject | Table] = (),
    allow_definer_rights: bool = False,
) -> View:
    """A :class:`pgpatterns.ddl.View` attached to ``metadata`` (created by ``create_all``).

    Examples:
        >>> from sqlalchemy import Column, Integer, MetaData, Table, select
        >>> md = MetaData()
        >>> t = Table("t", md, Column("id", Integer), Column("n", Integer))
        >>> v = view("big_t", select(t.c.id).where(t.c.n > 10), metadata=md, key=["id"])
        >>> v.table.info["pgpatterns.views.key"]
        ('id',)

    ``key`` names the columns that identify a row; :class:`ReadOnlyView` maps them as the
    ORM primary key. ``security_invoker=True`` (the default) runs the view with the querying
    user's privileges and row-level security.

    Raises:
        ViewRLSError: ``security_invoker=False`` over a table whose row-level security was
            declared (``enable_rls`` / ``TenantScoped``), or any view over a materialized
            view of such a table: every reader would see every tenant's rows. Pass
            ``allow_definer_rights=True`` when that is what you mean; for per-tenant
            aggregates use :func:`~pgpatterns.views.tenant_materialized_view`.

    Warning:
        ``security_invoker`` needs PostgreSQL 15+. A simple view (one table, no aggregates)
        is *auto-updatable* in PostgreSQL: Core ``insert(v.table)`` writes through it. Only
        ORM classes mapped with :class:`ReadOnlyView` refuse writes.
    """
    _check_name("view", name)
    _check_selectable(f"view {name}", selectable)
    _check_flags(
        f"view {name}", security_invoker=security_invoker, security_barrier=security_barrier,
        allow_definer_rights=allow_definer_rights,
    )
    if not allow_definer_rights:
        refuse_rls_bypass(
            f"view {name}", selectable, security_invoker=security_invoker,
            flag="allow_definer_rights",
        )
    made = View(
        name,
        selectable,
        schema=schema,
        depends_on=depends_on,
        security_invoker=security_invoker,
        security_barrier=security_barrier,
        check_option=check_option,
    )
    _set_key(made, key)
    _attach(metadata, made)
    return made


def materialized_view(
    name: str,
    selectable: SelectBase,
    *,
    metadata: MetaData,
    schema: str | None = None,
    indexes: Sequence[IndexSpec] = (),
    unique_key: Sequence[str] | None = None,
    with_data: bool = True,
    depends_on: Sequence[SchemaObject | Table] = (),
    allow_rls: bool = False,
) -> MaterializedView:
    """A :class:`pgpatterns.ddl.MaterializedView` with its indexes, attached to ``metadata``.

    Examples:
        >>> from sqlalchemy import column, select, table, MetaData
        >>> t = table("t", column("day"), column("n"))
        >>> materialized_view("mv", select(t.c.n), metadata=MetaData(), unique_key=["day"])
        Traceback (most recent call last):
        ...
        pgpatterns.errors.ViewError: materialized view mv: unique_key names columns ['day'] ...

    ``unique_key`` creates the unique index ``<name>_key`` on those plain columns: it is
    what ``REFRESH MATERIALIZED VIEW CONCURRENTLY`` (:func:`~pgpatterns.views.refresh`)
    needs, and it becomes the ORM primary key of a :class:`ReadOnlyView`. ``indexes`` are
    ``Index`` objects over ``mv.table.c`` or ``(name, columns, unique)`` tuples.
    ``with_data=False`` creates it empty and unreadable until the first refresh.

    Raises:
        ViewRLSError: the query reads a table whose row-level security was declared
            (``enable_rls`` / ``TenantScoped``). No policy applies to a materialized view:
            every reader would see every tenant, and under ``FORCE ROW LEVEL SECURITY`` a
            refresh by an owner without ``BYPASSRLS`` computes it from no rows at all. Use
            :func:`~pgpatterns.views.tenant_materialized_view`, or pass ``allow_rls=True``
            when every reader may see every row (and refresh as a role that bypasses RLS).
        ViewError: ``unique_key`` names columns the query does not produce.

    Warning:
        A materialized view is a snapshot: it shows what the query returned at the last
        refresh. Rows whose ``unique_key`` is NULL are compared as distinct by a concurrent
        refresh, so keep the key columns NOT NULL in the query.
    """
    _check_name("materialized view", name)
    _check_selectable(f"materialized view {name}", selectable)
    _check_flags(f"materialized view {name}", with_data=with_data, allow_rls=allow_rls)
    secured = rls_sources(selectable)
    if secured and not allow_rls:
        raise ViewRLSError(
            f"materialized view {name} reads {', '.join(secured)}, which has row-level "
            "security: a materialized view has no policies, so every reader would see every "
            "tenant's rows (and with FORCE ROW LEVEL SECURITY an owner without BYPASSRLS "
            "refreshes it from no rows). Declare it with tenant_materialized_view(..., "
            "readers=[...]) to read it per tenant, or pass allow_rls=True if every reader "
            "may see every row."
        )
    specs = _index_specs(name, selectable, indexes, unique_key)
    made = MaterializedView(
        name,
        selectable,
        schema=schema,
        depends_on=depends_on,
        with_data=with_data,
        indexes=specs,
    )
    _set_key(made, unique_key)
    _attach(metadata, made)
    return made


def _index_specs(
    name: str, selectable: SelectBase, indexes: Sequence[IndexSpec], unique_key: Any
) -> list[IndexSpec]:
    if isinstance(indexes, (str, bytes)) or not isinstance(indexes, Sequence):
        raise ViewError(
            f"materialized view {name}: indexes must be a list of Index objects or "
            f"(name, columns, unique) tuples, got {indexes!r}."
        )
    specs: list[IndexSpec] = list(indexes)
    if unique_key is not None:
        cols = _key_columns(f"materialized view {name}", selectable, unique_key)
        specs.insert(0, (short_name(name, suffix="_key"), cols, True))
    return specs


def _check_name(what: str, name: object) -> None:
    if not isinstance(name, str) or not name or "\x00" in name:
        raise ViewError(
            f"{what} name must be a non-empty string without NUL characters, got {name!r}; "
            "pass the name the view is created under."
        )


def _check_flags(what: str, **flags: object) -> None:
    for flag, value in flags.items():
        if not isinstance(value, bool):
            raise ViewError(f"{what}: {flag} must be True or False, got {value!r}.")


def _check_selectable(what: str, selectable: object) -> None:
    if not isinstance(selectable, SelectBase):
        raise ViewError(
            f"{what}: selectable must be a select() (got {type(selectable).__name__}); a view "
            "is defined by a query, e.g. select(orders.c.day, func.sum(orders.c.cents))."
        )


def check_session(what: str, session: object, *, is_async: bool = False) -> None:
    """Raise :class:`ViewError` unless ``session`` is a Session/Connection (or AsyncSession)."""
    kinds: tuple[type, ...] = (
        (AsyncSession, AsyncConnection) if is_async else (Session, Connection)
    )
    if not isinstance(session, kinds):
        wanted = "an AsyncSession" if is_async else "a Session or Connection"
        raise ViewError(
            f"{what}: the first argument must be {wanted}, got {type(session).__name__}; "
            "pass the session whose transaction should run it."
        )


def _key_columns(what: str, selectable: SelectBase, key: Sequence[str]) -> list[str]:
    if not isinstance(key, (str, Sequence)) or not all(
        isinstance(c, str) for c in ([key] if isinstance(key, str) else key)
    ):
        raise ViewError(f"{what}: a key is a list of column names, got {key!r}.")
    cols = [key] if isinstance(key, str) else list(key)
    produced = list(selectable.selected_columns.keys())
    missing = [c for c in cols if c not in produced]
    if not cols or missing:
        raise ViewError(
            f"{what}: unique_key names columns {missing or cols} that the query does not "
            f"produce; a key is made of plain output columns, use some of {produced}."
        )
    return cols


def _set_key(obj: ViewBase, key: Sequence[str] | None) -> None:
    if key is None:
        return
    cols = _key_columns(obj.describe(), obj.selectable, key)
    obj.table.info[KEY_INFO] = tuple(cols)


def _attach(metadata: MetaData, obj: ViewBase) -> None:
    if not isinstance(metadata, MetaData):
        raise ViewError(
            f"{obj.describe()}: metadata must be the sqlalchemy MetaData of your tables "
            f"(got {type(metadata).__name__}); pass metadata=Base.metadata."
        )
    attach(metadata, obj)


def view_key(obj: ViewBase) -> tuple[str, ...]:
    """The key columns declared with ``key=`` / ``unique_key=`` (empty when none)."""
    return tuple(as_view(obj).table.info.get(KEY_INFO, ()))


def as_view(target: Any) -> ViewBase:
    """The view object behind ``target``: a ddl view, or a :class:`ReadOnlyView` class."""
    if isinstance(target, ViewBase):
        return target
    found = getattr(target, "__view__", None)
    if isinstance(found, ViewBase):
        return found
    raise ViewError(
        f"expected a view, a materialized view or a ReadOnlyView class, got {target!r}; "
        "pass what view()/materialized_view() returned."
    )


class ReadOnlyView:
    """Mixin mapping an ORM class onto a view: query it like a table, writes raise.

    Examples:
        >>> from sqlalchemy import Column, Integer, MetaData, Table, select  # doctest: +SKIP
        >>> class ShopTotal(ReadOnlyView, Base):  # doctest: +SKIP
        ...     __view__ = totals                 # from materialized_view(..., unique_key=)

    Put ``ReadOnlyView`` *before* the declarative base. ``__view__`` is what
    :func:`view` / :func:`materialized_view` returned; its ``key`` / ``unique_key`` becomes
    the mapper's primary key (or set ``__view_key__ = ("col", ...)``). Adding, changing or
    deleting an instance raises :class:`~pgpatterns.errors.ReadOnlyViewError` at flush,
    before any INSERT/UPDATE/DELETE is sent for it.
    """

    __view__: ClassVar[ViewBase]
    __view_key__: ClassVar[Sequence[str]]

    def __init_subclass__(cls, **kw: Any) -> None:
        target = cls.__dict__.get("__view__")
        if target is not None:
            obj = as_view(target)
            key = cls.__dict__.get("__view_key__") or view_key(obj)
            if not key:
                raise ViewError(
                    f"{cls.__name__}: {obj.describe()} has no key, and the ORM needs one to "
                    "tell rows apart; declare key=[...] on view() (unique_key=[...] on "
                    'materialized_view()) or set __view_key__ = ("col", ...) on the class.'
                )
            cols = _key_columns(f"{cls.__name__} ({obj.describe()})", obj.selectable, key)
            cls.__table__ = obj.table  # type: ignore[attr-defined]
            args = dict(cls.__dict__.get("__mapper_args__", {}))
            args.setdefault("primary_key", [obj.table.c[c] for c in cols])
            cls.__mapper_args__ = args  # type: ignore[attr-defined]
        super().__init_subclass__(**kw)
        if target is not None:
            for verb in ("insert", "update", "delete"):
                event.listen(cls, f"before_{verb}", _refuse(cls, verb))


def _refuse(cls: type, verb: str) -> Any:
    obj = as_view(cls)

    def refuse(mapper: Any, connection: Any, target: Any) -> None:
        raise ReadOnlyViewError(
            f"cannot {verb} {cls.__name__}: it maps {obj.describe()}, which is read-only "
            "(a view shows rows computed from other tables); write to the underlying tables "
            "instead, then refresh the materialized view if it is one."
        )

    return refuse
