"""Policy expressions in their fast form: settings and function calls evaluated once.

Examples:
    >>> from sqlalchemy import BigInteger, Column, MetaData, Table
    >>> from pgpatterns.rls import tenant_isolation
    >>> docs = Table("docs", MetaData(), Column("tenant_id", BigInteger))
    >>> sql = tenant_isolation(docs.c.tenant_id).compile(compile_kwargs={"literal_binds": True})
    >>> print(str(sql).replace(" AS nullif_1", ""))
    docs.tenant_id = (SELECT CAST(nullif(current_setting('app.tenant_id', true), '') AS BIGINT))

A policy is added to every query on its table. Written ``tenant_id = current_setting(...)`` or
``user_id = auth.uid()``, the call can be evaluated once per *row*; written as an uncorrelated
scalar subquery ``(SELECT ...)`` PostgreSQL evaluates it once per *statement* (an initPlan)
and compares the column with a constant, which an index on the column can serve.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import ARRAY, Table, any_, cast, func, select, true
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import ColumnClause, ColumnElement
from sqlalchemy.sql.selectable import FromClause, Select
from sqlalchemy.types import BigInteger, TypeEngine

from pgpatterns.errors import RLSExpressionError

__all__ = [
    "TENANT_SETTING",
    "USER_SETTING",
    "current_tenant",
    "current_user_id",
    "initplan",
    "member_of",
    "owner_only",
    "setting",
    "tenant_isolation",
]

TENANT_SETTING = "app.tenant_id"
"""The transaction-local setting :func:`current_tenant` reads (set by ``tenant_context``)."""
USER_SETTING = "app.user_id"
"""The transaction-local setting :func:`current_user_id` reads."""

# Custom settings need a prefix ("app.tenant_id"): PostgreSQL rejects unprefixed names.
_SETTING_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+\Z")

TypeArg = TypeEngine[Any] | type[TypeEngine[Any]]


def check_setting_name(name: object) -> str:
    """``name`` if it is a valid custom setting name, else :class:`RLSExpressionError`."""
    if not isinstance(name, str) or not _SETTING_NAME.match(name):
        raise RLSExpressionError(
            f"invalid setting name {name!r}: custom settings are 'prefix.name' identifiers "
            "(PostgreSQL rejects names without a dot); use e.g. 'app.tenant_id'."
        )
    return name


def _type(type_: object, what: str) -> TypeEngine[Any]:
    if isinstance(type_, type) and issubclass(type_, TypeEngine):
        return type_()
    if isinstance(type_, TypeEngine):
        return type_
    raise RLSExpressionError(
        f"{what}: type_={type_!r} is not a SQLAlchemy type; the setting is text and is cast to "
        "it, so pass e.g. sqlalchemy.BigInteger or sqlalchemy.Uuid."
    )


def _affinity(type_: TypeEngine[Any]) -> type[Any]:
    affinity: type[Any] = type_._type_affinity or type(type_)
    return affinity


def initplan(expr: ColumnElement[Any]) -> ColumnElement[Any]:
    """``(SELECT expr)``: evaluated once per statement (an initPlan), not once per row.

    Examples:
        >>> from sqlalchemy import func
        >>> print(initplan(func.auth.uid()))
        (SELECT auth.uid() AS uid_1)

    Use it for a function call in a policy that does not depend on the row (``auth.uid()``,
    ``is_admin()``, ``current_setting(...)``).

    Raises:
        RLSExpressionError: ``expr`` references a column of the row; a subquery that reads
            the row is *correlated* and runs once per row, so wrapping would not help.
    """
    if not isinstance(expr, ColumnElement):
        raise RLSExpressionError(
            f"initplan() takes a SQL expression (e.g. func.is_admin()), got {expr!r}."
        )
    outer = _row_references(expr)
    if outer:
        names = ", ".join(sorted(outer))
        raise RLSExpressionError(
            f"initplan() cannot make an initPlan of an expression that references the row "
            f"({names}): a subquery that reads the row is correlated and still runs once per "
            "row. Wrap only the part that does not depend on the row, e.g. "
            "col == initplan(func.auth.uid())."
        )
    return select(expr).scalar_subquery()


def _row_references(expr: ColumnElement[Any]) -> set[str]:
    """Columns of ``expr`` whose table is not in the FROM of a subquery inside ``expr``."""
    inner: set[FromClause] = set()
    columns: list[ColumnClause[Any]] = []
    for element in visitors.iterate(expr):
        if isinstance(element, Select):
            for frm in element.get_final_froms():
                # joins and aliases expand to their parts
                inner.update(f for f in visitors.iterate(frm) if isinstance(f, FromClause))
        elif isinstance(element, ColumnClause) and element.table is not None:
            columns.append(element)
    return {
        f"{getattr(c.table, 'name', '?')}.{c.name}" for c in columns if c.table not in inner
    }


def setting(name: str, type_: TypeArg = BigInteger) -> ColumnElement[Any]:
    """``(SELECT nullif(current_setting(name, true), '')::type_)``: a setting, once per statement.

    Examples:
        >>> from sqlalchemy import Text
        >>> print(setting("request.org", Text).compile(compile_kwargs={"literal_binds": True}))
        (SELECT CAST(nullif(current_setting('request.org', true), '') AS TEXT) AS nullif_1)

    ``current_setting(name, true)`` returns NULL for a setting never set and ``''`` for one
    set earlier in the session and reset at the end of its transaction; both read as NULL,
    so a policy comparing a column with it matches no row (fail closed).
    """
    check_setting_name(name)
    target = _type(type_, f"setting({name!r})")
    value = func.nullif(func.current_setting(name, true()), "")
    return select(cast(value, target)).scalar_subquery()


def current_tenant(
    type_: TypeArg = BigInteger, *, name: str = TENANT_SETTING
) -> ColumnElement[Any]:
    """The current tenant (``app.tenant_id``, set by ``tenant_context``), once per statement.

    Examples:
        >>> "current_setting('app.tenant_id', true)" in str(
        ...     current_tenant().compile(compile_kwargs={"literal_binds": True}))
        True
    """
    return setting(name, type_)


def current_user_id(
    type_: TypeArg = BigInteger, *, name: str = USER_SETTING
) -> ColumnElement[Any]:
    """The current application user (``app.user_id``), once per statement.

    Examples:
        >>> "'app.user_id'" in str(current_user_id().compile(
        ...     compile_kwargs={"literal_binds": True}))
        True
    """
    return setting(name, type_)


def _column(value: object, what: str) -> ColumnClause[Any]:
    if not isinstance(value, ColumnClause) or not isinstance(value.table, Table):
        raise RLSExpressionError(
            f"{what}: expected a table column such as docs.c.tenant_id, got {value!r}."
        )
    return value


def _compare(column: ColumnClause[Any], value: ColumnElement[Any] | None, default: Any,
             what: str) -> ColumnElement[Any]:
    if value is None:
        value = default(column.type)
    elif not isinstance(value, ColumnElement):
        raise RLSExpressionError(
            f"{what}: the value must be a SQL expression such as current_tenant(), got "
            f"{value!r}; a literal would make every user see the same rows."
        )
    elif _row_references(value):
        raise RLSExpressionError(
            f"{what}: the value references the row ({', '.join(sorted(_row_references(value)))})"
            "; it must be evaluated once per statement. Pass current_tenant(), "
            "current_user_id(), setting(...) or initplan(func.your_function())."
        )
    if _affinity(value.type) is not _affinity(column.type) and not value.type._isnull:
        raise RLSExpressionError(
            f"{what}: {getattr(column.table, 'name', '?')}.{column.name} is {column.type!r} "
            "but the value is "
            f"{value.type!r}; PostgreSQL would cast the column for every row (no index) or "
            f"fail. Read the setting as the column's type, e.g. current_tenant({column.type!r})."
        )
    return column == value


def tenant_isolation(
    column: ColumnClause[Any], *, tenant: ColumnElement[Any] | None = None
) -> ColumnElement[Any]:
    """``column = (SELECT current tenant)``: rows of the tenant in ``app.tenant_id`` only.

    Examples:
        >>> from sqlalchemy import Column, Integer, MetaData, String, Table
        >>> t = Table("t", MetaData(), Column("tenant_id", Integer))
        >>> tenant_isolation(t.c.tenant_id, tenant=current_tenant(String))
        Traceback (most recent call last):
        ...
        pgpatterns.errors.RLSExpressionError: tenant_isolation(): t.tenant_id is Integer() ...

    ``tenant`` defaults to :func:`current_tenant` read as the column's type. Give the table
    an index whose leading column is ``column`` (``TenantScoped`` does).
    """
    col = _column(column, "tenant_isolation()")
    return _compare(col, tenant, current_tenant, "tenant_isolation()")


def owner_only(
    column: ColumnClause[Any], *, user: ColumnElement[Any] | None = None
) -> ColumnElement[Any]:
    """``column = (SELECT current user)``: rows owned by the user in ``app.user_id`` only.

    Examples:
        >>> from sqlalchemy import Column, Integer, MetaData, Table
        >>> notes = Table("notes", MetaData(), Column("user_id", Integer))
        >>> sql = owner_only(notes.c.user_id).compile(compile_kwargs={"literal_binds": True})
        >>> str(sql).startswith("notes.user_id = (SELECT CAST(nullif(current_setting('app.user_id'")
        True

    ``user`` defaults to :func:`current_user_id` read as the column's type; pass
    ``pgpatterns.rls.supabase.auth_uid()`` for Supabase.
    """
    col = _column(column, "owner_only()")
    return _compare(col, user, current_user_id, "owner_only()")


def member_of(
    column: ColumnClause[Any],
    membership: Table,
    *,
    group_column: str | None = None,
    user_column: str = "user_id",
    user: ColumnElement[Any] | None = None,
) -> ColumnElement[Any]:
    """The row's group is one of the current user's: ``column = ANY (ARRAY(SELECT group ...))``.

    Examples:
        >>> from sqlalchemy import Column, Integer, MetaData, Table
        >>> md = MetaData()
        >>> docs = Table("docs", md, Column("team_id", Integer))
        >>> members = Table("members", md, Column("team_id", Integer), Column("user_id", Integer))
        >>> sql = str(member_of(docs.c.team_id, members).compile(
        ...     compile_kwargs={"literal_binds": True}))
        >>> print(" ".join(sql.split(" = (SELECT")[0].split()))
        docs.team_id = ANY (array((SELECT members.team_id FROM members WHERE members.user_id

    This is ``column IN (SELECT group FROM membership WHERE user = (SELECT current user))``
    in the form the planner serves best: the user's groups are collected once per statement
    (an initPlan) into an array, and ``column = ANY (array)`` is an index condition on
    ``column``. (A policy's ``IN (SELECT ...)`` is not turned into a join, so it would filter
    every row against a hashed subplan.) A policy that joins back to the row (``me IN
    (SELECT user FROM membership WHERE group = row.group)``) runs its subquery for every row.

    Args:
        column: The row's group column (``docs.c.team_id``).
        membership: The table linking users to groups.
        group_column: The group column of ``membership`` (default: ``column``'s name).
        user_column: The user column of ``membership``.
        user: The current user (default :func:`current_user_id` as ``user_column``'s type).

    Warning:
        The subquery reads ``membership`` as the querying role: if that table has row-level
        security too, its policy must let a user see their own memberships (and must not
        itself call ``member_of`` on ``membership``: infinite recursion).
    """
    col = _column(column, "member_of()")
    if not isinstance(membership, Table):
        raise RLSExpressionError(
            f"member_of(): membership must be a sqlalchemy Table, got {membership!r}."
        )
    group_name = group_column or col.name
    for name in (group_name, user_column):
        if name not in membership.c:
            raise RLSExpressionError(
                f"member_of(): {membership.name} has no column {name!r}; pass "
                "group_column= / user_column= with the names of its group and user columns."
            )
    who = _compare(membership.c[user_column], user, current_user_id, "member_of()")
    groups = select(membership.c[group_name]).where(who).scalar_subquery()
    return col == any_(func.array(groups, type_=ARRAY(membership.c[group_name].type)))
