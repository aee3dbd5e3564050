"""Request context for policies: transaction-local settings that never outlive the transaction.

Examples:
    >>> from pgpatterns.rls import tenant_context
    >>> with Session(app_engine) as session, session.begin():  # doctest: +SKIP
    ...     tenant_context(session, tenant_id=42, user_id=7)
    ...     session.scalars(select(Doc)).all()  # only tenant 42's rows

The values are set with ``set_config(name, value, true)``: PostgreSQL discards them when the
transaction commits or rolls back, so a pooled connection (SQLAlchemy's pool, or PgBouncer in
transaction mode, which hands the server connection to another client after each
transaction) never carries one request's tenant into the next. A session-level ``SET``
would.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Connection, event, func, select, true
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker
from sqlalchemy.sql import Select

from pgpatterns._args import key_value
from pgpatterns.errors import ArgumentError, RLSContextError
from pgpatterns.rls.expressions import TENANT_SETTING, USER_SETTING, check_setting_name
from pgpatterns.rls.tenant import registered_tenant_type

__all__ = [
    "context_statement",
    "set_context",
    "set_context_async",
    "tenant_context",
    "tenant_context_async",
    "tenant_context_on_begin",
]

ContextValue = int | str | uuid.UUID | None
"""A setting value: an ``int``, a ``str`` or a ``UUID``; ``None`` means unset (``''``)."""


def _text(name: str, value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (int, str, uuid.UUID)):
        raise RLSContextError(
            f"{name}={value!r} cannot be a setting value: pass an int, a str or a uuid.UUID "
            "(the policy casts the text back to the column's type)."
        )
    if isinstance(value, str) and (not value or "\x00" in value):
        raise RLSContextError(
            f"{name}={value!r} is empty or contains NUL; an empty value reads as unset. "
            "Pass None to clear a value, or a real id."
        )
    type_ = registered_tenant_type(name)
    if type_ is not None:
        try:
            value = key_value("tenant_context", name, value, type_)
        except ArgumentError as exc:
            raise RLSContextError(
                f"{name}={value!r} does not fit the tenant column type {type_} declared for "
                f"this setting; every policy would fail on it (or match nothing). Pass the "
                f"request's tenant id as that type. ({exc})"
            ) from None
    return str(value)


def context_statement(values: Mapping[str, ContextValue]) -> Select[Any]:
    """``SELECT set_config(name, value, true), ...``: the statement the actions execute.

    Examples:
        >>> print(context_statement({"app.tenant_id": 42}))
        SELECT set_config(:set_config_2, :set_config_3, true) AS set_config_1

    Names are validated; values are bind parameters (``None`` becomes ``''``: unset).
    """
    if not isinstance(values, Mapping):
        raise RLSContextError(
            f"settings must be a mapping of name -> value (e.g. {{'app.tenant_id': 42}}), got "
            f"{type(values).__name__}."
        )
    if not values:
        raise RLSContextError("no settings given: pass at least one name -> value.")
    calls = [
        func.set_config(check_setting_name(name), _text(name, value), true())
        for name, value in values.items()
    ]
    return select(*calls)


def _values(
    tenant_id: ContextValue, user_id: ContextValue, tenant_setting: str, user_setting: str
) -> dict[str, ContextValue]:
    check_setting_name(tenant_setting)
    check_setting_name(user_setting)
    if tenant_id is None:
        raise RLSContextError(
            "tenant_context(): tenant_id is None; every statement would see no rows. Pass "
            "the request's tenant id (or use set_context() to set other settings)."
        )
    return {tenant_setting: tenant_id, user_setting: user_id}


def _check_connection(conn: Connection, where: str) -> None:
    dbapi = conn.connection.dbapi_connection
    if not conn.in_transaction() or getattr(dbapi, "autocommit", False):
        raise RLSContextError(
            f"{where} needs a transaction: the values are transaction-local and would be gone "
            "before the next statement. Call it inside `with session.begin():` / "
            "`with engine.begin() as conn:` (not on an AUTOCOMMIT connection)."
        )


def _sync_target(target: Session | Connection, where: str) -> Connection:
    if isinstance(target, Session):
        if not target.in_transaction():
            raise RLSContextError(
                f"{where} needs a transaction: Session has none yet, and the values are "
                "transaction-local. Call it inside `with session.begin():` (or after the "
                "session's first statement)."
            )
        conn = target.connection()
    elif isinstance(target, Connection):
        conn = target
    else:
        raise RLSContextError(
            f"{where} takes a Session or Connection, got {type(target).__name__}; for "
            "AsyncSession/AsyncConnection use the *_async twin."
        )
    _check_connection(conn, where)
    return conn


def set_context(target: Session | Connection, values: Mapping[str, ContextValue]) -> None:
    """Set transaction-local settings (``set_config(name, value, true)``) in ``target``.

    Examples:
        >>> set_context(session, {"app.tenant_id": 42, "app.region": "eu"})  # doctest: +SKIP

    Raises:
        RLSContextError: no transaction is open, or a name or value is invalid (before any
            SQL is sent).
    """
    stmt = context_statement(values)
    _sync_target(target, "set_context()").execute(stmt)


async def set_context_async(
    target: AsyncSession | AsyncConnection, values: Mapping[str, ContextValue]
) -> None:
    """The asyncio twin of :func:`set_context`.

    Examples:
        >>> await set_context_async(session, {"app.tenant_id": 42})  # doctest: +SKIP
    """
    stmt = context_statement(values)
    where = "set_context_async()"
    if isinstance(target, AsyncSession):
        if not target.in_transaction():
            raise RLSContextError(
                f"{where} needs a transaction: AsyncSession has none yet, and the values are "
                "transaction-local. Call it inside `async with session.begin():`."
            )
        conn = await target.connection()
    elif isinstance(target, AsyncConnection):
        conn = target
    else:
        raise RLSContextError(
            f"{where} takes an AsyncSession or AsyncConnection, got {type(target).__name__}; "
            "use set_context() for Session/Connection."
        )
    _check_connection(conn.sync_connection or _no_sync(), where)
    await conn.execute(stmt)


def _no_sync() -> Connection:
    raise RLSContextError("the AsyncConnection is closed or not started; begin() it first.")


def tenant_context(
    session: Session | Connection,
    tenant_id: ContextValue,
    user_id: ContextValue = None,
    *,
    tenant_setting: str = TENANT_SETTING,
    user_setting: str = USER_SETTING,
) -> None:
    """Make the current transaction act for ``tenant_id`` (and ``user_id``).

    Examples:
        >>> with Session(app_engine) as session, session.begin():  # doctest: +SKIP
        ...     tenant_context(session, 42, user_id=7)

    Sets ``app.tenant_id`` and ``app.user_id`` (read by :func:`current_tenant` and
    :func:`current_user_id`) with ``set_config(..., true)``; ``user_id=None`` clears a user
    set earlier in the transaction. The values end with the transaction (commit, rollback,
    or the rollback of a savepoint they were set in).

    Raises:
        RLSContextError: outside a transaction, on an AUTOCOMMIT connection, or with a value
            that is not an int/str/UUID; raised before any SQL is sent.
    """
    set_context(session, _values(tenant_id, user_id, tenant_setting, user_setting))


async def tenant_context_async(
    session: AsyncSession | AsyncConnection,
    tenant_id: ContextValue,
    user_id: ContextValue = None,
    *,
    tenant_setting: str = TENANT_SETTING,
    user_setting: str = USER_SETTING,
) -> None:
    """The asyncio twin of :func:`tenant_context`.

    Examples:
        >>> async with AsyncSession(engine) as session, session.begin():  # doctest: +SKIP
        ...     await tenant_context_async(session, 42)
    """
    await set_context_async(session, _values(tenant_id, user_id, tenant_setting, user_setting))


ContextSource = Callable[[], "ContextValue | tuple[ContextValue, ContextValue]"]


def tenant_context_on_begin(
    target: Session | sessionmaker[Any] | type[Session] | AsyncSession,
    current: ContextSource,
    *,
    tenant_setting: str = TENANT_SETTING,
    user_setting: str = USER_SETTING,
) -> Callable[[], None]:
    """Set the context at the start of every transaction of ``target`` (``after_begin``).

    Examples:
        >>> request_tenant = ContextVar("tenant", default=None)  # doctest: +SKIP
        >>> SessionLocal = sessionmaker(app_engine)  # doctest: +SKIP
        >>> stop = tenant_context_on_begin(SessionLocal, request_tenant.get)  # doctest: +SKIP

    ``current()`` is called when a transaction begins and returns the tenant id, a
    ``(tenant_id, user_id)`` pair, or ``None`` (nothing is set: policies then match no
    row). Typical source: a ``ContextVar`` your web framework sets per request. For an
    ``AsyncSession`` instance the listener goes on its ``sync_session``; for
    ``async_sessionmaker`` pass a ``Session`` subclass as its ``sync_session_class`` and
    register on that class. Returns a function that removes the listener.
    """
    if isinstance(target, AsyncSession):
        target = target.sync_session
    if not (
        isinstance(target, (Session, sessionmaker))
        or (isinstance(target, type) and issubclass(target, Session))
    ):
        raise RLSContextError(
            f"tenant_context_on_begin(): target must be a Session, sessionmaker, Session "
            f"subclass or AsyncSession, got {target!r}."
        )
    if not callable(current):
        raise RLSContextError("tenant_context_on_begin(): current must be a callable.")
    check_setting_name(tenant_setting)
    check_setting_name(user_setting)

    def after_begin(session: Session, transaction: SessionTransaction, conn: Connection) -> None:
        value = current()
        if value is None:
            return
        tenant, user = value if isinstance(value, tuple) else (value, None)
        conn.execute(context_statement(_values(tenant, user, tenant_setting, user_setting)))

    event.listen(target, "after_begin", after_begin)

    def remove() -> None:
        event.remove(target, "after_begin", after_begin)

    return remove
