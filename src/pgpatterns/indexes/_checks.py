"""Validation shared by the index factories, and :func:`check_index` for hand-made indexes.

Examples:
    >>> from sqlalchemy import Column, Index, Integer, MetaData, Table
    >>> t = Table("t", MetaData(), Column("a", Integer))
    >>> check_index(Index("t_a_idx", t.c.a)).name
    't_a_idx'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Column, Index, Table
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import ColumnClause, ColumnElement, Label

from pgpatterns._tables import check_identifier, resolve_column, type_name
from pgpatterns.errors import IndexDefinitionError
from pgpatterns.indexes._opclass import DEFAULT, allowed, family

__all__ = ["check_index"]

_METHODS = ("btree", "hash", "gist", "spgist", "gin", "brin", "hnsw", "ivfflat")
BRIN_MIN_CORRELATION = 0.9


# -- shared --------------------------------------------------------------------------------
def _columns(tbl: Table, columns: Sequence[Any], owner: str) -> list[Column[Any]]:
    if isinstance(columns, (str, bytes, Mapping)) or not isinstance(columns, Iterable):
        raise IndexDefinitionError(
            f"{owner}: columns={columns!r:.80} is not accepted: pass a list of columns "
            "(names, Table columns or ORM attributes)."
        )
    columns = list(columns)
    if not columns:
        raise IndexDefinitionError(f"{owner}: no columns given; pass at least one column.")
    cols = [resolve_column(tbl, c, IndexDefinitionError, owner) for c in columns]
    names = [c.name for c in cols]
    if len(set(names)) != len(names):
        raise IndexDefinitionError(f"{owner}: a column is listed twice in {names}; list it once.")
    return cols


def _check_expression(tbl: Table, expr: ColumnElement[Any], owner: str, what: str) -> None:
    """Every column an expression mentions must be ``tbl``'s."""
    if hasattr(expr, "__clause_element__"):
        expr = expr.__clause_element__()
    if not isinstance(expr, ColumnElement):
        raise IndexDefinitionError(
            f"{owner}: the {what} {expr!r:.80} is not a SQLAlchemy expression: pass e.g. "
            "Order.status == 'pending'. SQL strings are refused (never formatted into DDL)."
        )
    found = False
    for element in visitors.iterate(expr):
        if isinstance(element, ColumnClause) and not isinstance(element, Label):
            if element.is_literal:
                continue
            found = True
            other = element.table
            if other is not None and other is not tbl:
                raise IndexDefinitionError(
                    f"{owner}: the {what} uses {getattr(other, 'name', other)}.{element.name}; "
                    f"an index can only mention columns of {tbl.name}."
                )
            if element.name not in tbl.c:
                raise IndexDefinitionError(
                    f"{owner}: the {what} mentions {element.name!r}, which is not a column of "
                    f"{tbl.name}; fix the expression."
                )
    if what == "expression" and not found:
        raise IndexDefinitionError(
            f"{owner}: the expression mentions no column of {tbl.name}; an index on a "
            "constant is useless. Pass an expression over the table's columns."
        )


def _check_ops(method: str, col_name: str, type_: Any, ops: str | None, owner: str) -> None:
    if ops is not None and (not isinstance(ops, str) or not ops or "\x00" in ops):
        raise IndexDefinitionError(
            f"{owner}: ops={ops!r:.80} is not accepted: pass an operator class name (str) "
            "such as 'gin_trgm_ops', or None for the default."
        )
    fam = family(type_)
    if fam.startswith("other:"):
        return  # a type this table does not know (extension types): PostgreSQL decides
    choices = allowed(method, fam)
    wanted = ops or DEFAULT
    if wanted in choices:
        return
    named = sorted(c for c in choices if c != DEFAULT)
    if not choices:
        raise IndexDefinitionError(
            f"{owner}: {method.upper()} cannot index {col_name} ({type_name(type_)}): no "
            f"operator class of {method} handles that type. Use another index method."
        )
    if ops is None:
        raise IndexDefinitionError(
            f"{owner}: {method.upper()} has no default operator class for {col_name} "
            f"({type_name(type_)}); pass ops= one of {', '.join(named)}."
        )
    raise IndexDefinitionError(
        f"{owner}: operator class {ops!r} does not exist for {method.upper()} on {col_name} "
        f"({type_name(type_)}); use one of {', '.join(named) or '(none: omit ops)'}."
    )


def _name(tbl: Table, name: str | None, default: str, owner: str) -> str:
    if name is not None and (not isinstance(name, str) or not name or "\x00" in name):
        raise IndexDefinitionError(
            f"{owner}: name={name!r:.80} is not accepted: pass a non-empty str without NUL, "
            "or None for the default name."
        )
    final = check_identifier(name or default, IndexDefinitionError, owner)
    taken = {i.name for i in tbl.indexes} | {c.name for c in tbl.constraints if c.name}
    if final in taken:
        raise IndexDefinitionError(
            f"{owner}: table {tbl.name} already has an index or constraint named {final!r}; "
            "pass another name=."
        )
    return final


def _ops_map(cols: Sequence[Column[Any]], ops: str | Mapping[str, str] | None, owner: str
             ) -> dict[str, str]:
    if ops is None:
        return {}
    if isinstance(ops, str):
        if len(cols) != 1:
            raise IndexDefinitionError(
                f"{owner}: ops={ops!r} is ambiguous with {len(cols)} columns; pass a dict "
                "{column_name: operator_class}."
            )
        return {cols[0].name: ops}
    if not isinstance(ops, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in ops.items()
    ):
        raise IndexDefinitionError(
            f"{owner}: ops={ops!r:.80} is not accepted: pass an operator class name (str) or a "
            "dict {column_name: operator_class}."
        )
    names = {c.name for c in cols}
    stray = sorted(set(ops) - names)
    if stray:
        raise IndexDefinitionError(
            f"{owner}: ops names {stray}, which are not key columns of this index "
            f"({sorted(names)}); SQLAlchemy would drop them silently. Use the column names."
        )
    return dict(ops)


def check_index(index: Index) -> Index:
    """Validate an :class:`~sqlalchemy.Index` (the factories call this; so can you).

    Examples:
        >>> from sqlalchemy import Column, Integer, MetaData, Table
        >>> t = Table("t", MetaData(), Column("embedding", Integer))
        >>> check_index(Index("t_idx", t.c.embedding, postgresql_ops={"emb": "int4_ops"}))
        Traceback (most recent call last):
        ...
        pgpatterns.errors.IndexDefinitionError: index t_idx: postgresql_ops key 'emb' ...

    Checks that every ``postgresql_ops`` key names a key column (or an expression's label),
    that INCLUDE columns exist and are not key columns, that ``postgresql_using`` is a known
    access method, and that each column's operator class exists for its type.
    """
    if not isinstance(index, Index):
        raise IndexDefinitionError(f"check_index: {index!r:.80} is not a sqlalchemy Index.")
    owner = f"index {index.name}"
    opts = index.dialect_options["postgresql"]
    method = (opts.get("using") or "btree").lower()
    if method not in _METHODS:
        raise IndexDefinitionError(
            f"{owner}: postgresql_using={method!r} is not an index access method; use one of "
            f"{', '.join(_METHODS)}."
        )
    keys: dict[str, Any] = {}
    for expr in index.expressions:
        name = getattr(expr, "name", None)
        if isinstance(name, str):
            keys[name] = expr
    ops: Mapping[str, str] = opts.get("ops") or {}
    for key in ops:
        if key not in keys:
            raise IndexDefinitionError(
                f"{owner}: postgresql_ops key {key!r} matches no key column or labelled "
                f"expression ({sorted(keys) or 'none'}); SQLAlchemy would drop the operator "
                "class silently. Key it by the column name (or .label() the expression)."
            )
    tbl = index.table
    include = [getattr(c, "name", c) for c in (opts.get("include") or [])]
    if tbl is not None:
        for col in include:
            if col not in tbl.c:
                raise IndexDefinitionError(f"{owner}: INCLUDE column {col!r} is not in {tbl.name}.")
        both = sorted(set(include) & set(keys))
        if both:
            raise IndexDefinitionError(
                f"{owner}: {', '.join(both)} is both a key column and in INCLUDE; a key column "
                "is already stored in the index. Remove it from include=."
            )
        for col in index.columns:
            _check_ops(method, col.name, col.type, ops.get(col.name), owner)
    return index


def _finish(index: Index) -> Index:
    try:
        return check_index(index)
    except IndexDefinitionError:
        table = index.table
        if table is not None:
            table.indexes.discard(index)  # nothing half-created: the table stays as it was
        raise
