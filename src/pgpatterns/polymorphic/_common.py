"""Shared helpers of the polymorphic family: mapper checks and rendering."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, Table, inspect, literal, literal_column
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Mapper
from sqlalchemy.schema import AddConstraint, CreateIndex, Index
from sqlalchemy.sql.elements import ClauseElement, ColumnElement
from sqlalchemy.sql.schema import Constraint

from pgpatterns.errors import PolymorphicError

__all__: list[str] = []

MAX_IDENTIFIER = 63


def check_identifier(helper: str, argument: str, value: object, *, optional: bool = False) -> None:
    """``value`` must be a Python identifier (a ``str``), or None when ``optional``."""
    if value is None and optional:
        return
    if not isinstance(value, str) or not value.isidentifier():
        raise PolymorphicError(
            f"{helper}: {argument}={value!r:.80} is not accepted: pass a name that is a "
            "Python identifier (it becomes an attribute and a column)."
        )


def base_mapper(cls: type, helper: str) -> Mapper[Any]:
    """The mapper of ``cls``, checked to be the root of a polymorphic hierarchy."""
    try:
        mapper: Mapper[Any] = inspect(cls)
    except Exception as exc:
        raise PolymorphicError(
            f"{helper}: {cls!r} is not a mapped class; pass the base class of the hierarchy."
        ) from exc
    if mapper.inherits is not None:
        raise PolymorphicError(
            f"{helper}: {cls.__name__} inherits from {mapper.inherits.class_.__name__}; "
            "pass the base class of the hierarchy."
        )
    if mapper.polymorphic_on is None:
        raise PolymorphicError(
            f"{helper}: {cls.__name__} has no discriminator; add "
            "__mapper_args__ = {'polymorphic_on': 'type', 'polymorphic_identity': ...}."
        )
    return mapper


def discriminator(mapper: Mapper[Any], helper: str) -> Column[Any]:
    column = mapper.polymorphic_on
    if not isinstance(column, Column):
        raise PolymorphicError(
            f"{helper}: the discriminator of {mapper.class_.__name__} must be a plain "
            "column (polymorphic_on='type'), not an expression."
        )
    return column


def identities(mapper: Mapper[Any], helper: str) -> tuple[str, ...]:
    """Identities of ``mapper`` and its descendants; every concrete class must have one."""
    found = []
    for sub in mapper.self_and_descendants:
        abstract = sub.polymorphic_abstract
        if sub.polymorphic_identity is None and not abstract:
            raise PolymorphicError(
                f"{helper}: {sub.class_.__name__} has no polymorphic_identity; add "
                "__mapper_args__ = {'polymorphic_identity': '...'} (or "
                "'polymorphic_abstract': True for a class never stored itself)."
            )
        if sub.polymorphic_identity is not None:
            found.append(str(sub.polymorphic_identity))
    return tuple(found)


def constraint_name(helper: str, *parts: str) -> str:
    name = "_".join(parts)
    if len(name) > MAX_IDENTIFIER:
        raise PolymorphicError(
            f"{helper}: the generated name {name!r} is longer than PostgreSQL's "
            f"{MAX_IDENTIFIER} characters; use shorter table or identity names."
        )
    return name


def has_constraint(table: Table, name: str) -> bool:
    return any(c.name == name for c in table.constraints) or any(
        i.name == name for i in table.indexes
    )


def render(items: list[Constraint | Index]) -> list[str]:
    """``ALTER TABLE ... ADD CONSTRAINT`` / ``CREATE INDEX`` text for a migration."""
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    out = []
    for item in items:
        ddl: ClauseElement = CreateIndex(item) if isinstance(item, Index) else AddConstraint(item)
        out.append(str(ddl.compile(dialect=dialect)).strip())
    return out


def sql_text(element: ClauseElement) -> str:
    """``element`` as PostgreSQL text, values inlined (for PL/pgSQL bodies)."""
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    return str(element.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


def raise_sql(message: str, constraint: str, errcode: str = "check_violation") -> str:
    """A PL/pgSQL RAISE naming ``constraint``, so drivers report it like a real one."""
    return (
        f"RAISE EXCEPTION USING ERRCODE = {sql_text(literal(errcode))}, "
        f"MESSAGE = {sql_text(literal(message))}, "
        f"CONSTRAINT = {sql_text(literal(constraint))};"
    )


def row_value(record: str, name: str) -> ColumnElement[Any]:
    """``NEW.<name>`` / ``OLD.<name>`` inside a PL/pgSQL body (never added to a FROM list,
    unlike a table-bound column); ``name`` is quoted by the dialect's preparer."""
    prep = postgresql.dialect().identifier_preparer  # type: ignore[no-untyped-call]
    return literal_column(f"{record}.{prep.quote(name)}")
