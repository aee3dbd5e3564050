"""PostgreSQL 14's ``SEARCH`` and ``CYCLE`` clauses for a SQLAlchemy recursive CTE.

Examples:
    >>> from sqlalchemy import column, select, table
    >>> from sqlalchemy.dialects import postgresql
    >>> nodes = table("nodes", column("id"), column("parent_id"))
    >>> cte = select(nodes.c.id).where(nodes.c.parent_id.is_(None)).cte("t", recursive=True)
    >>> cte = cte.union_all(select(nodes.c.id).join(cte, nodes.c.parent_id == cte.c.id))
    >>> cte = with_search(cte, "id", set_="ord")
    >>> order = cte_column(cte, "ord")
    >>> sql = str(select(cte.c.id).order_by(order).compile(dialect=postgresql.dialect()))
    >>> "SEARCH DEPTH FIRST BY id SET ord" in sql
    True

SQLAlchemy renders a CTE's suffixes after its closing parenthesis, which is where
PostgreSQL expects these clauses; the elements here render them with every identifier
quoted by the dialect's preparer (SQLAlchemy has no construct for them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import roles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement, ColumnClause
from sqlalchemy.sql.selectable import CTE
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import TypeEngine

__all__ = ["CycleClause", "SearchClause", "cte_column", "with_cycle", "with_search"]


def _names(columns: Sequence[str | ColumnElement[Any]]) -> list[str]:
    return [c if isinstance(c, str) else str(getattr(c, "name", c)) for c in columns]


class SearchClause(roles.StatementOptionRole, ClauseElement):
    """``SEARCH {DEPTH|BREADTH} FIRST BY a, b SET ord`` (a CTE suffix)."""

    __visit_name__ = "pgpatterns_search_clause"
    inherit_cache = True
    _traverse_internals = [
        ("by", InternalTraversal.dp_string_list),
        ("set_", InternalTraversal.dp_string),
        ("breadth_first", InternalTraversal.dp_boolean),
    ]

    def __init__(self, by: Sequence[str], set_: str, breadth_first: bool) -> None:
        self.by = list(by)
        self.set_ = set_
        self.breadth_first = breadth_first


class CycleClause(roles.StatementOptionRole, ClauseElement):
    """``CYCLE a, b SET is_cycle USING path`` (a CTE suffix)."""

    __visit_name__ = "pgpatterns_cycle_clause"
    inherit_cache = True
    _traverse_internals = [
        ("columns", InternalTraversal.dp_string_list),
        ("set_", InternalTraversal.dp_string),
        ("using", InternalTraversal.dp_string),
    ]

    def __init__(self, columns: Sequence[str], set_: str, using: str) -> None:
        self.columns = list(columns)
        self.set_ = set_
        self.using = using


@compiles(SearchClause, "postgresql")
def _compile_search(element: SearchClause, compiler: SQLCompiler, **kw: Any) -> str:
    quote = compiler.preparer.quote
    kind = "BREADTH" if element.breadth_first else "DEPTH"
    by = ", ".join(quote(c) for c in element.by)
    return f"SEARCH {kind} FIRST BY {by} SET {quote(element.set_)}"


@compiles(CycleClause, "postgresql")
def _compile_cycle(element: CycleClause, compiler: SQLCompiler, **kw: Any) -> str:
    quote = compiler.preparer.quote
    cols = ", ".join(quote(c) for c in element.columns)
    return f"CYCLE {cols} SET {quote(element.set_)} USING {quote(element.using)}"


def with_search(
    cte: CTE,
    *by: str | ColumnElement[Any],
    set_: str = "search_order",
    breadth_first: bool = False,
) -> CTE:
    """A copy of a recursive CTE with ``SEARCH ... FIRST BY <by> SET <set_>``.

    Examples:
        >>> cte = with_search(cte, "position", "id")  # doctest: +SKIP
        >>> select(cte).order_by(cte_column(cte, "search_order"))  # doctest: +SKIP

    Add the clauses first, then take columns (``cte.c``, :func:`cte_column`) from the final
    CTE: each call returns a new CTE object, and columns of an earlier one would name a
    second, unrelated CTE.

    Warning:
        Needs PostgreSQL 14+. The ordering column is an array of records: PostgreSQL builds
        and sorts it row by row, which costs several times the plain recursion on large
        subtrees (see the trees recipe); an array of keys sorts much faster.
    """
    clause: Any = SearchClause(_names(by), set_, breadth_first)  # a StatementOptionRole
    return cte.suffix_with(clause, dialect="postgresql")


def with_cycle(
    cte: CTE,
    *columns: str | ColumnElement[Any],
    set_: str = "is_cycle",
    using: str = "cycle_path",
) -> CTE:
    """A copy of a recursive CTE with ``CYCLE <columns> SET <set_> USING <using>``.

    Examples:
        >>> cte = with_cycle(cte, "id")  # doctest: +SKIP
        >>> select(cte).where(~cte_column(cte, "is_cycle", Boolean()))  # doctest: +SKIP

    The boolean ``set_`` column is true on the row that closed a cycle (PostgreSQL stops
    recursing there).

    Warning:
        Needs PostgreSQL 14+; costs like :func:`with_search` (an array of records per row).
    """
    clause: Any = CycleClause(_names(columns), set_, using)  # a StatementOptionRole
    return cte.suffix_with(clause, dialect="postgresql")


def cte_column(cte: CTE, name: str, type_: TypeEngine[Any] | None = None) -> ColumnClause[Any]:
    """A column that a ``SEARCH``/``CYCLE`` clause adds to ``cte`` (not in ``cte.c``).

    Examples:
        >>> from sqlalchemy import column, select
        >>> cte_column(select(column("id")).cte("t"), "search_order").table.name
        't'
    """
    return ColumnClause(name, type_, _selectable=cte)
