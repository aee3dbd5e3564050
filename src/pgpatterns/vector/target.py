"""What a search runs against: the table, its vector column and spec, and the filter."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from sqlalchemy import Boolean, Column, Table, and_, inspect
from sqlalchemy import true as sql_true
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import QueryableAttribute, Session
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.sqltypes import NullType

from pgpatterns.errors import VectorArgumentError, VectorError
from pgpatterns.vector.spec import INFO_KEY, VectorSpec

__all__ = [
    "AsyncConn", "SyncConn", "Target", "Where", "check_session", "query_list", "resolve",
    "where_clause",
]

Where: TypeAlias = ColumnElement[bool] | Sequence[ColumnElement[bool]] | None
SyncConn: TypeAlias = Session | Connection
AsyncConn: TypeAlias = AsyncSession | AsyncConnection


@dataclass(frozen=True)
class Target:
    """What a search runs against: the selectable, its vector column and spec."""

    table: Table
    column: Column[Any]
    spec: VectorSpec
    entity: Any  # the mapped class, or None for a Core Table

    def primary_key(self) -> Column[Any]:
        keys = list(self.table.primary_key.columns)
        if len(keys) != 1:
            raise VectorError(
                f"table {self.table.name} needs a single-column primary key for this search "
                f"(it has {len(keys)}): results are matched by key. Add one."
            )
        return keys[0]


def resolve(model: Any, spec_or_column: Any) -> Target:
    """Find the table, vector column and spec from ``(Model, spec or column)``."""
    if isinstance(model, Table):
        table, entity = model, None
    else:
        mapper = inspect(model, raiseerr=False)
        local = getattr(mapper, "local_table", None)
        if not isinstance(local, Table):
            raise VectorError(
                f"vector search needs a mapped class or a Table, got {model!r}."
            )
        table, entity = local, model
    if isinstance(spec_or_column, VectorSpec):
        spec = spec_or_column
        tagged = [c for c in table.columns if c.info.get(INFO_KEY) == spec]
        if not tagged:
            wanted = type(spec.column_type)
            tagged = [
                c for c in table.columns
                if isinstance(c.type, wanted) and getattr(c.type, "dim", None) == spec.dim
            ]
        if len(tagged) != 1:
            raise VectorError(
                f"cannot tell which column of {table.name} {spec!r} describes ({len(tagged)} "
                "candidates): pass the column (Doc.embedding) instead, declared with "
                "spec.mapped_column()."
            )
        return Target(table, tagged[0], spec, entity)
    column = getattr(spec_or_column, "expression", spec_or_column)
    if not isinstance(column, Column) or column.table is not table:
        raise VectorError(
            f"{spec_or_column!r} is not a column of {table.name}: pass one of its vector "
            "columns (Doc.embedding) or the VectorSpec it was declared with."
        )
    found = column.info.get(INFO_KEY)
    if not isinstance(found, VectorSpec):
        raise VectorError(
            f"column {table.name}.{column.name} was not declared with a VectorSpec, so its "
            "metric and index are unknown: declare it with spec.mapped_column() / "
            "spec.column(), or pass the VectorSpec instead of the column."
        )
    return Target(table, column, found, entity)


def check_session(session: object, *, asyncio: bool = False) -> None:
    """``session`` must be a Session/Connection (or their asyncio twins with ``asyncio``)."""
    kinds: tuple[type, ...] = (AsyncSession, AsyncConnection) if asyncio else (
        Session, Connection)
    if not isinstance(session, kinds):
        wanted = "an AsyncSession or AsyncConnection" if asyncio else "a Session or Connection"
        raise VectorArgumentError(
            f"session={session!r:.80} is not accepted: pass {wanted}"
            + (" (the *_async twin takes the asyncio ones)." if not asyncio else "."),
            argument="session", given=session,
        )


def query_list(name: str, queries: object) -> list[Any]:
    """``list(queries)`` for a list/tuple/iterator of query vectors; None or a str refused."""
    if queries is None or isinstance(queries, (str, bytes, dict)) or not isinstance(
        queries, Iterable
    ):
        raise VectorArgumentError(
            f"{name}={queries!r:.80} is not accepted: pass a list of query vectors.",
            argument=name, given=queries,
        )
    return list(queries)


def where_clause(where: Where) -> ColumnElement[bool] | None:
    """``where`` as one boolean SQL expression (a list is AND-ed); None for no filter.

    Raises:
        VectorArgumentError: a raw SQL string, or anything else that is not a SQLAlchemy
            boolean expression (text is never spliced into the statement).
    """
    if where is None:
        return None
    if isinstance(where, QueryableAttribute):  # Doc.is_public: a boolean column
        where = where.__clause_element__()
    items = [where] if isinstance(where, ColumnElement) else where
    if isinstance(items, (str, bytes)) or not isinstance(items, (list, tuple)):
        raise _bad_where(where)
    items = [i.__clause_element__() if isinstance(i, QueryableAttribute) else i for i in items]
    for item in items:
        if not isinstance(item, ColumnElement) or not isinstance(
            item.type, (Boolean, NullType)
        ):
            raise _bad_where(item)
    if isinstance(where, ColumnElement):
        return where
    return and_(sql_true(), *items)


def _bad_where(value: object) -> VectorArgumentError:
    return VectorArgumentError(
        f"where={value!r:.80} is not accepted: pass a SQLAlchemy boolean expression on the "
        "searched model (Doc.tenant_id == 7), or a list of them (AND-ed). A SQL string is "
        "refused: user values are bound as parameters, never formatted into SQL.",
        argument="where", given=value,
    )
