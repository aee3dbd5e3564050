"""Sort keys of a keyset ordering: columns, directions, the total-order and NOT NULL rules."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import UnaryExpression

from pgpatterns.errors import PaginationError

__all__ = ["Key", "fingerprint", "sort_keys"]


@dataclass(frozen=True)
class Key:
    column: Column[Any]
    descending: bool


_SEEN: dict[tuple[int, ...], tuple[tuple[Any, ...], list[Key]]] = {}


def sort_keys(where: str, order_by: object) -> list[Key]:
    """The checked keys of ``order_by`` (remembered for an ``order_by`` seen before)."""
    if isinstance(order_by, (list, tuple)):
        items = tuple(order_by)
        seen = _SEEN.get(tuple(map(id, items)))
        if seen is not None and all(a is b for a, b in zip(seen[0], items, strict=True)):
            return seen[1]
        keys = _sort_keys(where, order_by)
        if len(_SEEN) >= 256:
            _SEEN.clear()
        _SEEN[tuple(map(id, items))] = (items, keys)  # holding items keeps their ids unique
        return keys
    return _sort_keys(where, order_by)


def _sort_keys(where: str, order_by: object) -> list[Key]:
    if isinstance(order_by, (str, bytes)) or not isinstance(order_by, Sequence) or not order_by:
        raise PaginationError(
            f"{where}(): order_by={order_by!r} is not accepted: pass a non-empty list of "
            f"columns, e.g. order_by=[Post.created_at.desc(), Post.id.desc()].")
    keys: list[Key] = []
    for item in order_by:
        descending, expr = False, item
        element = expr.__clause_element__() if hasattr(expr, "__clause_element__") else expr
        if isinstance(element, UnaryExpression):
            if element.modifier not in (operators.asc_op, operators.desc_op):
                raise PaginationError(
                    f"{where}(): order_by item {item!r} uses NULLS FIRST/LAST: sort columns "
                    f"must be NOT NULL; pass col, col.asc() or col.desc().")
            descending = element.modifier is operators.desc_op
            element = element.element
        if not isinstance(element, Column) or element.table is None:
            raise PaginationError(
                f"{where}(): order_by item {item!r} is not a table column: keyset pagination "
                f"sorts by table columns (Post.created_at, posts.c.id, or their .desc()).")
        if element.nullable and not element.primary_key:
            raise PaginationError(
                f"{where}(): order_by column {element.table.name}.{element.name} is nullable: "
                f"NULLs fall outside every comparison, so rows would be skipped. Declare it "
                f"nullable=False (NOT NULL), or sort by a NOT NULL column.")
        if any(k.column is element for k in keys):
            raise PaginationError(f"{where}(): order_by names {element.name!r} twice.")
        keys.append(Key(element, descending))
    _require_unique(where, keys)
    return keys


def _require_unique(where: str, keys: list[Key]) -> None:
    table = keys[-1].column.table
    names = {k.column.name for k in keys if k.column.table is table}
    candidates: list[set[str]] = []
    for constraint in getattr(table, "constraints", ()):
        kind = type(constraint).__name__
        if kind in ("PrimaryKeyConstraint", "UniqueConstraint"):
            candidates.append({c.name for c in constraint.columns})
    candidates += [{c.name for c in ix.columns} for ix in getattr(table, "indexes", ())
                   if ix.unique and ix.columns and len(ix.columns) == len(ix.expressions)]
    candidates += [{c.name} for c in table.columns if c.unique]
    if not any(cand and cand <= names for cand in candidates):
        pk = ", ".join(c.name for c in table.primary_key.columns) or "a unique column"
        raise PaginationError(
            f"{where}(): order_by {[k.column.name for k in keys]} is not a total order: rows "
            f"with equal keys could be skipped or repeated between pages. End it with "
            f"{table.name}'s primary key or a unique column, e.g. order_by=[..., {pk}].")


def fingerprint(keys: list[Key]) -> str:
    shape = [[str(k.column.table.name), k.column.name, k.descending] for k in keys]
    return hashlib.sha256(json.dumps(shape).encode()).hexdigest()[:16]
