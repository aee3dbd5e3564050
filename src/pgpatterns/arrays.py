"""Native arrays: membership tests a GIN index serves, and atomic element updates.

Examples:
    >>> from sqlalchemy import Column, Integer, MetaData, Table, Text
    >>> from sqlalchemy.dialects.postgresql import ARRAY
    >>> posts = Table("posts", MetaData(), Column("id", Integer), Column("tags", ARRAY(Text)))
    >>> from sqlalchemy.dialects import postgresql
    >>> print(array_has(posts.c.tags, "sql").compile(dialect=postgresql.dialect()))
    posts.tags @> %(param_1)s::TEXT[]
    >>> array_gin(posts.c.tags).name
    'posts_tags_gin'

| filter | SQL | served by |
|---|---|---|
| ``array_has(col, v)`` | ``col @> ARRAY[v]`` | ``array_gin(col)`` |
| ``array_has_all(col, vs)`` | ``col @> vs`` | ``array_gin(col)`` |
| ``array_has_any(col, vs)`` | ``col && vs`` | ``array_gin(col)`` |
| ``v = ANY(col)`` | (what users write) | nothing: scans the table |

Warning:
    ``@>`` and ``&&`` need both sides of the same array type: ``varchar[] @> text[]`` is an
    error ("operator does not exist"), and casting the column instead would bypass its
    index. The value is cast to the column's declared type; when the model's type is not
    the database's (``ARRAY(String)`` for a ``text[]`` column) pass ``array_type=``.
    Arrays holding NULLs never "contain" NULL; :func:`append_to_array` rejects ``None``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Boolean, Index, case, func, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.sql import bindparam
from sqlalchemy.sql.dml import Update
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import ARRAY, NullType, TypeEngine

from pgpatterns._args import key_value
from pgpatterns.errors import ArgumentError, ArrayError
from pgpatterns.jsonb._common import check_flag, check_items, check_name, resolve_column
from pgpatterns.jsonb.guard import (
    IndexReport,
    assert_indexable,
    assert_indexable_async,
    index_report,
    index_report_async,
)

__all__ = [
    "IndexReport",
    "append_stmt",
    "append_to_array",
    "append_to_array_async",
    "array_gin",
    "array_has",
    "array_has_all",
    "array_has_any",
    "assert_indexable",
    "assert_indexable_async",
    "index_report",
    "index_report_async",
    "remove_from_array",
    "remove_from_array_async",
    "remove_stmt",
]


def _array_column(column: Any, owner: str) -> ColumnElement[Any]:
    col = resolve_column(column, owner=owner, error=ArrayError)
    if not isinstance(col.type, ARRAY):
        raise ArrayError(
            f"{owner}(): column {getattr(col, 'key', col)!r} is {col.type!r}, not an array; "
            "declare it sqlalchemy.dialects.postgresql.ARRAY(<element type>)."
        )
    return col


def _check_value(col: ColumnElement[Any], value: object, owner: str, type_: ARRAY[Any]) -> None:
    if value is None:
        raise ArrayError(
            f"{owner}(): None cannot be looked for or kept unique in an array (NULL is never "
            "equal to anything, so @> never matches it); store a sentinel value instead."
        )
    if isinstance(value, (list, tuple, set, frozenset)):
        raise ArrayError(
            f"{owner}() takes one element, got {type(value).__name__} {value!r}; use "
            "array_has_all()/array_has_any() for several."
        )
    try:
        python_type = type_.item_type.python_type
    except NotImplementedError:
        return
    if not isinstance(value, python_type) or (isinstance(value, bool) and python_type is int):
        raise ArrayError(
            f"{owner}(): {getattr(col, 'key', col)} holds {type_.item_type} elements, got "
            f"{type(value).__name__} {value!r:.80}; convert the value (or pass array_type= "
            "when the column's database type differs from the model)."
        )
    try:  # in range for the element type (2**63 in a bigint[]), no NUL in text
        key_value(owner, "value", value, type_.item_type)
    except ArgumentError as exc:
        raise ArrayError(str(exc)) from exc


def _values(
    column: Any, values: Iterable[Any], owner: str, array_type: TypeEngine[Any] | None
) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
    col = _array_column(column, owner)
    type_ = array_type if array_type is not None else col.type
    if not isinstance(type_, ARRAY):
        raise ArrayError(f"{owner}(): array_type must be an ARRAY type, got {type_!r}.")
    if isinstance(values, (str, bytes)):
        raise ArrayError(f"{owner}() takes a list of elements, got the string {values!r:.80}.")
    items = check_items(owner, "values", values)
    for item in items:
        _check_value(col, item, owner, type_)
    # The psycopg dialect renders the parameter with the array type's cast (":p::TEXT[]").
    return col, bindparam(None, items, type_=type_)


def array_has(
    column: Any, value: Any, *, array_type: TypeEngine[Any] | None = None
) -> ColumnElement[bool]:
    """The array contains ``value``: ``col @> ARRAY[value]`` (GIN-indexable, unlike ``= ANY``).

    Examples:
        >>> select(Post).where(array_has(Post.tags, "postgres"))  # doctest: +SKIP
    """
    col, array = _values(column, [value], "array_has", array_type)
    return col.op("@>", return_type=Boolean)(array)


def array_has_all(
    column: Any, values: Iterable[Any], *, array_type: TypeEngine[Any] | None = None
) -> ColumnElement[bool]:
    """The array contains every one of ``values``: ``col @> :values``."""
    col, array = _values(column, values, "array_has_all", array_type)
    return col.op("@>", return_type=Boolean)(array)


def array_has_any(
    column: Any, values: Iterable[Any], *, array_type: TypeEngine[Any] | None = None
) -> ColumnElement[bool]:
    """The array shares at least one element with ``values``: ``col && :values``."""
    col, array = _values(column, values, "array_has_any", array_type)
    return col.op("&&", return_type=Boolean)(array)


def array_gin(column: Any, *, name: str | None = None) -> Index:
    """A GIN index on an array column, serving ``@>``, ``<@``, ``&&`` and ``=``.

    Examples:
        >>> array_gin(Post.tags)  # doctest: +SKIP
    """
    col = _array_column(column, "array_gin")
    check_name("array_gin", "name", name)
    table = getattr(getattr(col, "table", None), "name", None)
    default = f"{table}_{getattr(col, 'name', 'array')}_gin" if table else None
    if (name or default) is None:
        raise ArrayError("array_gin() indexes a table column: pass name= for an expression.")
    return Index(name or default, col, postgresql_using="gin")


def _target(column: Any) -> Any:
    """What ``update()`` targets: the ORM entity for an attribute, else the column's table."""
    entity = getattr(column, "class_", None)
    if entity is not None:
        return entity
    table = getattr(resolve_column(column, owner="update", error=ArrayError), "table", None)
    if table is None:
        raise ArrayError("append/remove need a table column or an ORM attribute.")
    return table


def _where(where: object, owner: str) -> ColumnElement[bool]:
    if where is None or isinstance(where, bool):
        raise ArrayError(
            f"{owner}() needs where=<condition> (e.g. Post.id == 42); pass "
            "where=sqlalchemy.true() to change every row on purpose."
        )
    if hasattr(where, "__clause_element__"):  # a boolean ORM attribute
        where = where.__clause_element__()
    if not isinstance(where, ColumnElement) or not isinstance(where.type, (Boolean, NullType)):
        raise ArrayError(
            f"{owner}(): where={where!r:.80} is not a SQLAlchemy boolean expression: pass a "
            "condition such as Post.id == 42. SQL strings are refused: values are bound as "
            "parameters, never formatted into SQL."
        )
    return where


def append_stmt(column: Any, value: Any, *, where: Any, as_set: bool = True) -> Update:
    """``UPDATE ... SET col = array_cat(col, ARRAY[v])``, skipping rows already holding it.

    Examples:
        >>> stmt = append_stmt(Post.tags, "sql", where=Post.id == 7)  # doctest: +SKIP

    With ``as_set`` (the default) the row is left as is when the value is already present
    (``CASE WHEN col @> ARRAY[v] THEN col ELSE array_cat(col, ARRAY[v]) END``), so concurrent
    appends of the same value cannot duplicate it: the UPDATE takes the row lock and
    re-evaluates on the latest version. A NULL array becomes ``{v}``.
    """
    check_flag("append_to_array", "as_set", as_set)
    col, array = _values(column, [value], "append_to_array", None)
    appended = func.array_cat(col, array, type_=col.type)  # NULL || {v} = {v}
    new = case((col.op("@>", return_type=Boolean)(array), col), else_=appended) if as_set \
        else appended
    return update(_target(column)).where(_where(where, "append_to_array")).values(
        {column: new}
    )


def remove_stmt(column: Any, value: Any, *, where: Any) -> Update:
    """``UPDATE ... SET col = array_remove(col, :v)``: every occurrence, in one statement."""
    col, _ = _values(column, [value], "remove_from_array", None)
    element = bindparam(None, value, type_=col.type.item_type)  # type: ignore[attr-defined]
    removed = func.array_remove(col, element, type_=col.type)
    return update(_target(column)).where(_where(where, "remove_from_array")).values(
        {column: removed}
    )


def append_to_array(
    session: Session | Connection, column: Any, value: Any, *, where: Any, as_set: bool = True
) -> int:
    """Append ``value`` to the array of the rows matching ``where``; returns rows updated.

    Examples:
        >>> append_to_array(session, Post.tags, "sql", where=Post.id == 7)  # doctest: +SKIP
        1

    One UPDATE, atomic under concurrency (no read-modify-write in Python). Runs in the
    caller's transaction; does not commit. See :func:`append_stmt`.
    """
    result = session.execute(append_stmt(column, value, where=where, as_set=as_set))
    return int(result.rowcount)  # type: ignore[attr-defined]


async def append_to_array_async(
    session: AsyncSession | AsyncConnection,
    column: Any,
    value: Any,
    *,
    where: Any,
    as_set: bool = True,
) -> int:
    """The asyncio twin of :func:`append_to_array`."""
    result = await session.execute(append_stmt(column, value, where=where, as_set=as_set))
    return int(result.rowcount)  # type: ignore[attr-defined]


def remove_from_array(session: Session | Connection, column: Any, value: Any, *, where: Any) -> int:
    """Remove every occurrence of ``value`` from the matching rows' arrays; rows updated."""
    result = session.execute(remove_stmt(column, value, where=where))
    return int(result.rowcount)  # type: ignore[attr-defined]


async def remove_from_array_async(
    session: AsyncSession | AsyncConnection, column: Any, value: Any, *, where: Any
) -> int:
    """The asyncio twin of :func:`remove_from_array`."""
    result = await session.execute(remove_stmt(column, value, where=where))
    return int(result.rowcount)  # type: ignore[attr-defined]
