"""Private helpers shared by columns/constraints/indexes/denormalize: resolve tables and columns.

Examples:
    >>> from sqlalchemy import Column, Integer, MetaData, Table
    >>> t = Table("t", MetaData(), Column("id", Integer))
    >>> resolve_column(t, "id", ValueError, "demo").name
    'id'
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, Table, inspect
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeEngine

__all__ = [
    "MAX_IDENTIFIER",
    "check_identifier",
    "pg_dialect",
    "resolve_column",
    "resolve_table",
    "type_name",
]

MAX_IDENTIFIER = 63
"""PostgreSQL truncates longer identifiers silently (NAMEDATALEN - 1)."""


def pg_dialect() -> Dialect:
    return postgresql.dialect()  # type: ignore[no-untyped-call]


def resolve_table(target: object, error: type[Exception], owner: str) -> Table:
    """A Table from a Table, a mapped class or an ORM instance's class."""
    if isinstance(target, Table):
        return target
    if isinstance(target, type):
        mapper: Any = inspect(target, raiseerr=False)
        local = getattr(mapper, "local_table", None)
        if isinstance(local, Table):
            return local
    raise error(
        f"{owner}: {target!r} is not a Table or a mapped class; pass the table "
        "(e.g. Order.__table__) or the declarative class after it is defined."
    )


def resolve_column(
    table: Table, column: object, error: type[Exception], owner: str
) -> Column[Any]:
    """``table``'s column named by a string, a Column, or an ORM attribute."""
    name: object = column
    if isinstance(column, str):
        name = column
    elif isinstance(column, ColumnElement) or hasattr(column, "__clause_element__"):
        element: Any = column
        if hasattr(column, "__clause_element__"):
            element = column.__clause_element__()
        col_table = getattr(element, "table", None)
        name = getattr(element, "key", None) or getattr(element, "name", None)
        if col_table is not None and col_table is not table and isinstance(col_table, Table):
            raise error(
                f"{owner}: column {col_table.name}.{name} belongs to another table, not "
                f"{table.name}; pass a column of {table.name}."
            )
    if isinstance(name, str) and name in table.c:
        return table.c[name]
    known = ", ".join(table.c.keys()) or "(none)"
    raise error(
        f"{owner}: table {table.name} has no column {name!r}; its columns are {known}. "
        "Check the spelling or add the column first."
    )


def type_name(type_: TypeEngine[Any]) -> str:
    """The type as PostgreSQL DDL spells it (``TIMESTAMP WITH TIME ZONE``, ``VARCHAR(20)``)."""
    return str(type_.compile(dialect=pg_dialect()))


def check_identifier(name: str, error: type[Exception], owner: str) -> str:
    """Refuse names PostgreSQL would truncate (a silent collision waiting to happen)."""
    if not isinstance(name, str):
        raise error(f"{owner}: name={name!r} must be a str (an identifier).")
    if not name or len(name.encode()) > MAX_IDENTIFIER:
        raise error(
            f"{owner}: name {name!r} is {len(name.encode())} bytes; PostgreSQL truncates "
            f"identifiers to {MAX_IDENTIFIER} bytes, so two long names could collide. "
            "Pass a shorter name=."
        )
    return name
