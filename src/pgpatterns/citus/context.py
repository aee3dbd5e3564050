"""Tenant context that reaches Citus workers, and a tenant filter that makes queries router
queries.

Examples:
    >>> from pgpatterns.citus import route_by_tenant, tenant_context
    >>> route_by_tenant(SessionLocal)  # doctest: +SKIP
    >>> with SessionLocal() as session, session.begin():  # doctest: +SKIP
    ...     tenant_context(session, 42)
    ...     session.scalars(select(Doc)).all()  # one shard: WHERE docs.tenant_id = 42

``pgpatterns.rls.tenant_context`` sets the tenant with ``SELECT set_config(..., true)``,
which Citus runs on the coordinator only: the policies evaluated on the workers' shards
see no tenant and match no row. :func:`tenant_context` sends ``SET LOCAL
citus.propagate_set_commands = 'local'`` and ``SET LOCAL app.tenant_id = '42'``: Citus
repeats ``SET LOCAL`` on every worker connection of the transaction, and the value still
ends with the transaction (pool-safe, like ``set_config(..., true)``).

Row-level security alone makes Citus fan a query out to every shard (the policy's
setting is not a constant the router planner can use). :func:`tenant_filtered` adds
``tenant_id = <tenant>`` for every tenant-scoped table in every ``SELECT`` of a statement
(CTEs and subqueries included); :func:`route_by_tenant` does it for every statement a
session executes in a transaction that :func:`tenant_context` started for a tenant.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, TypeVar, cast

from sqlalchemy import Connection, Table, bindparam, event, literal
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import ORMExecuteState, Session, aliased, sessionmaker
from sqlalchemy.orm.util import AliasedInsp
from sqlalchemy.sql import Executable, visitors
from sqlalchemy.sql.selectable import Alias, Join, Select
from sqlalchemy.types import BigInteger, TypeEngine

from pgpatterns._args import key_value
from pgpatterns.ddl.base import pg_dialect
from pgpatterns.errors import ArgumentError, RLSContextError
from pgpatterns.rls import TENANT_SETTING
from pgpatterns.rls.expressions import check_setting_name
from pgpatterns.rls.tenant import registered_tenant_type, tenant_of

__all__ = [
    "context_statements",
    "route_by_tenant",
    "tenant_context",
    "tenant_context_async",
    "tenant_context_on_begin",
    "tenant_filtered",
]

_INFO = "pgpatterns.citus.tenant"  # Session.info: (root transaction, tenant value)
S = TypeVar("S", bound=Executable)


def _value(tenant_id: object, setting: str) -> int | str | uuid.UUID | None:
    if tenant_id is None:
        return None
    type_: TypeEngine[Any] = registered_tenant_type(setting) or BigInteger()
    try:
        return key_value("tenant_context", "tenant_id", tenant_id, type_)  # type: ignore[no-any-return]
    except ArgumentError as exc:
        raise RLSContextError(
            f"tenant_id={tenant_id!r} does not fit the tenant column type {type_} declared "
            f"for {setting!r}; pass the request's tenant id as that type. ({exc})"
        ) from None


def context_statements(tenant_id: object, *, setting: str = TENANT_SETTING) -> list[str]:
    """The two ``SET LOCAL`` statements :func:`tenant_context` runs.

    Examples:
        >>> context_statements(42)
        ["SET LOCAL citus.propagate_set_commands = 'local'", "SET LOCAL app.tenant_id = '42'"]

    ``SET`` takes no bind parameters: the value is checked against the tenant column type
    (an int, a UUID ...) and rendered as a literal by the dialect; ``None`` sets ``''``,
    which the tenant policy reads as no tenant (no row).
    """
    name = check_setting_name(setting)
    value = _value(tenant_id, name)
    dialect = pg_dialect()
    prep = dialect.identifier_preparer
    target = ".".join(prep.quote(part) for part in name.split("."))
    text_value = "" if value is None else str(value)
    rendered = literal(text_value).compile(dialect=dialect, compile_kwargs={"literal_binds": True})
    return [
        "SET LOCAL citus.propagate_set_commands = 'local'",
        f"SET LOCAL {target} = {rendered}",
    ]


def _check_tx(conn: Connection, where: str) -> None:
    driver = conn.connection.driver_connection  # no round trip (unlike get_isolation_level)
    if not conn.in_transaction() or bool(getattr(driver, "autocommit", False)):
        raise RLSContextError(
            f"{where}: SET LOCAL only lasts until the end of the current transaction; call it "
            "inside session.begin() (not on an AUTOCOMMIT connection)."
        )


def tenant_context(
    session: Session | Connection, tenant_id: object, *, setting: str = TENANT_SETTING
) -> None:
    """Act for ``tenant_id`` in the current transaction, on the coordinator and the workers.

    Examples:
        >>> with Session(app_engine) as session, session.begin():  # doctest: +SKIP
        ...     tenant_context(session, 42)

    Raises:
        RLSContextError: outside a transaction, or a value that does not fit the tenant
            column type; raised before any SQL is sent.
    """
    statements = context_statements(tenant_id, setting=setting)
    conn = session.connection() if isinstance(session, Session) else session
    _check_tx(conn, "tenant_context")
    for stmt in statements:
        conn.exec_driver_sql(stmt.replace("%", "%%"))
    if isinstance(session, Session):
        _remember(session, tenant_id, setting)


async def tenant_context_async(
    session: AsyncSession | AsyncConnection, tenant_id: object, *, setting: str = TENANT_SETTING
) -> None:
    """The asyncio twin of :func:`tenant_context`.

    Examples:
        >>> async with AsyncSession(engine) as session, session.begin():  # doctest: +SKIP
        ...     await tenant_context_async(session, 42)
    """
    statements = context_statements(tenant_id, setting=setting)
    conn = await session.connection() if isinstance(session, AsyncSession) else session
    if conn.sync_connection is None:
        raise RLSContextError("tenant_context_async: the AsyncConnection is not started.")
    _check_tx(conn.sync_connection, "tenant_context_async")
    for stmt in statements:
        await conn.exec_driver_sql(stmt.replace("%", "%%"))
    if isinstance(session, AsyncSession):
        _remember(session.sync_session, tenant_id, setting)


def tenant_context_on_begin(
    target: Session | sessionmaker[Any] | type[Session],
    current: Callable[[], object],
    *,
    setting: str = TENANT_SETTING,
) -> Callable[[], None]:
    """Run :func:`tenant_context` at the start of every transaction of ``target``.

    Examples:
        >>> request_tenant = ContextVar("tenant", default=None)  # doctest: +SKIP
        >>> stop = tenant_context_on_begin(SessionLocal, request_tenant.get)  # doctest: +SKIP

    The Citus twin of ``pgpatterns.rls.tenant_context_on_begin`` (an ``after_begin``
    listener): ``current()`` returns the tenant id, or ``None`` to set nothing (policies then
    match no row). Combined with :func:`route_by_tenant`, every statement of the
    transaction is also filtered by that tenant. For ``AsyncSession`` register on its
    ``sync_session_class``. Returns a function that removes the listener.
    """
    _check_target("tenant_context_on_begin", target)
    if not callable(current):
        raise RLSContextError("tenant_context_on_begin(): current must be a callable.")
    check_setting_name(setting)

    def after_begin(session: Session, transaction: Any, conn: Connection) -> None:
        value = current()
        if value is None:
            return
        for stmt in context_statements(value, setting=setting):
            conn.exec_driver_sql(stmt.replace("%", "%%"))
        _remember(session, value, setting)

    event.listen(target, "after_begin", after_begin)

    def remove() -> None:
        event.remove(target, "after_begin", after_begin)

    return remove


def _check_target(where: str, target: object) -> None:
    if not (
        isinstance(target, (Session, sessionmaker))
        or (isinstance(target, type) and issubclass(target, Session))
    ):
        raise RLSContextError(
            f"{where}(): target must be a Session, sessionmaker or Session subclass, "
            f"got {target!r}."
        )


def _remember(session: Session, tenant_id: object, setting: str) -> None:
    root = session.get_transaction()
    session.info[_INFO] = (root, _value(tenant_id, setting))


def _tenant_froms(frm: Any) -> list[tuple[Any, Table]]:
    """The tenant-scoped tables (or aliases of them) a FROM element names directly."""
    if isinstance(frm, Join):
        return _tenant_froms(frm.left) + _tenant_froms(frm.right)
    base = frm.element if isinstance(frm, Alias) else frm
    if isinstance(base, Table) and tenant_of(base) is not None:
        return [(frm, base)]
    return []


def tenant_filtered(statement: S, tenant_id: object) -> S:
    """``statement`` with ``tenant_id = :tenant`` added for every tenant-scoped table that
    every ``SELECT`` in it reads (CTEs, recursive ones too, subqueries and ``UNION`` parts).

    Examples:
        >>> from sqlalchemy import select
        >>> print(tenant_filtered(select(Doc), 42))  # doctest: +SKIP
        SELECT docs.tenant_id, docs.id ... WHERE docs.tenant_id = :tenant_id_1

    Citus routes a query to one shard when each distributed table in it is filtered on the
    distribution column; row-level security still applies (the filter only narrows).
    ``UPDATE``/``DELETE`` statements get the filter on their target table too.
    """
    if tenant_id is None:
        return statement
    clones: dict[int, Any] = {}  # id(original CTE) -> its clone in the new statement

    def visit_cte(cte: Any) -> None:
        original = getattr(cte, "_is_clone_of", None)
        if original is not None:
            clones[id(original)] = cte

    def visit_select(select: Select[Any]) -> None:
        # an ORM entity aliased to a CTE (trees.descendants selects aliased(Model, cte))
        # still names the original CTE: point it at the clone that carries the filters
        fixed = [_realias(c, clones) for c in select._raw_columns]
        if any(a is not b for a, b in zip(fixed, select._raw_columns, strict=True)):
            select._raw_columns = fixed
            select._reset_memoizations()
        crit = []
        for frm in select.get_final_froms():
            for named, table in _tenant_froms(frm):
                info = tenant_of(table)
                assert info is not None
                col = named.c[info.column.name]
                crit.append(col == bindparam(None, tenant_id, type_=info.type_))
        if crit:
            select._where_criteria += tuple(crit)

    def visit_dml(stmt: Any) -> None:
        table = stmt.table
        info = tenant_of(table)
        if info is not None and hasattr(stmt, "_where_criteria"):
            col = table.c[info.column.name]
            stmt._where_criteria += (col == bindparam(None, tenant_id, type_=info.type_),)

    visits: dict[str, Any] = {
        "cte": visit_cte, "select": visit_select, "update": visit_dml, "delete": visit_dml,
    }
    result: S = visitors.cloned_traverse(cast(Any, statement), {}, visits)
    return result


def _realias(column: Any, clones: dict[int, Any]) -> Any:
    """``column`` (a select's entry), re-aliased to the cloned CTE if it is an ORM entity
    aliased to a CTE that was cloned."""
    insp = getattr(column, "_annotations", {}).get("parententity")
    if not isinstance(insp, AliasedInsp):
        return column
    selectable = insp.selectable
    base = selectable._deannotate() if hasattr(selectable, "_deannotate") else selectable
    for candidate in (selectable, base, getattr(base, "element", None)):
        if candidate is not None and id(candidate) in clones:
            alias = aliased(insp.mapper.class_, clones[id(candidate)], name=insp.name)
            return sa_inspect(alias).__clause_element__()
    return column


def _on_execute(state: ORMExecuteState) -> None:
    remembered = state.session.info.get(_INFO)
    if remembered is None:
        return
    root, tenant = remembered
    if root is not state.session.get_transaction() or root is None:
        state.session.info.pop(_INFO, None)  # a later transaction: no tenant any more
        return
    if state.is_select or state.is_update or state.is_delete:
        state.statement = tenant_filtered(state.statement, tenant)


def route_by_tenant(target: Session | sessionmaker[Any] | type[Session]) -> None:
    """Filter every statement of ``target`` by the tenant :func:`tenant_context` set.

    Examples:
        >>> SessionLocal = sessionmaker(app_engine)  # doctest: +SKIP
        >>> route_by_tenant(SessionLocal)  # doctest: +SKIP

    A ``do_orm_execute`` hook: in a transaction where :func:`tenant_context` set a tenant,
    every ``session.execute`` / ``scalars`` (lazy and eager relationship loads included)
    runs :func:`tenant_filtered`, so Citus routes it to the tenant's shard. For
    ``AsyncSession`` register on its ``sync_session_class`` (a ``Session`` subclass).
    """
    _check_target("route_by_tenant", target)
    if not event.contains(target, "do_orm_execute", _on_execute):
        event.listen(target, "do_orm_execute", _on_execute)
