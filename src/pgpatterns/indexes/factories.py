"""Index factories that validate what SQLAlchemy's ``postgresql_*`` options would let slip.

Examples:
    >>> from sqlalchemy import Column, DateTime, Integer, MetaData, Numeric, Table, Text
    >>> orders = Table("orders", MetaData(), Column("id", Integer, primary_key=True),
    ...                Column("customer_id", Integer), Column("status", Text),
    ...                Column("total", Numeric), Column("created_at", DateTime(True)))
    >>> partial_index(orders, "created_at", where=orders.c.status == "pending").name
    'orders_created_at_partial_idx'
    >>> covering_index(orders, ["customer_id"], include=["total"]).name
    'orders_customer_id_incl_idx'
    >>> brin_index(orders, "created_at", pages_per_range=32).name
    'orders_created_at_brin'

Each factory returns a SQLAlchemy :class:`~sqlalchemy.Index` already added to the table (so
``metadata.create_all`` creates it) and refuses, with
:class:`~pgpatterns.errors.IndexDefinitionError`: a column the table does not have, a
``where`` over another table's columns, an operator class the access method does not have
for the column's type, an INCLUDE column that is already a key column, a name PostgreSQL
would truncate or that is taken. :func:`check_index` runs the same checks on an Index you
wrote yourself, including ``postgresql_ops`` keys that match no column (SQLAlchemy drops
those silently).

Warning:
    - INCLUDE needs PostgreSQL 11+; BRIN ``*_minmax_multi_ops`` / ``*_bloom_ops`` need 14+.
    - ``gin_trgm_ops`` / ``gist_trgm_ops`` need ``pg_trgm``; GiST on scalar columns needs
      ``btree_gist``; ``gist_ltree_ops`` needs ``ltree``.
    - A partial index is used only when the query's WHERE implies the index predicate
      *as written at plan time*: ``status = 'pending'`` matches, ``status = $1`` in a
      generic plan does not. Use :func:`partial_predicate` (values inlined at execution).
    - BRIN pays off only when the column follows the physical row order (append-only time
      series). :func:`brin_index` warns with :class:`BrinCorrelationWarning` at CREATE INDEX
      when ``pg_stats.correlation`` (after ANALYZE) is below 0.9 in absolute value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Column, Index, Table, bindparam, event
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import BindParameter, ColumnElement

from pgpatterns._tables import resolve_column, resolve_table
from pgpatterns.errors import IndexDefinitionError
from pgpatterns.indexes._checks import (
    _METHODS,
    _check_expression,
    _check_ops,
    _columns,
    _finish,
    _name,
    _ops_map,
)
from pgpatterns.indexes.brin import _warn_uncorrelated

__all__ = [
    "brin_index",
    "covering_index",
    "expression_index",
    "gin_index",
    "gist_index",
    "partial_index",
    "partial_predicate",
]


# -- factories -------------------------------------------------------------------------------
def partial_index(
    table: Table | type[Any],
    *columns: Any,
    where: ColumnElement[bool],
    name: str | None = None,
    unique: bool = False,
    include: Sequence[Any] = (),
) -> Index:
    """An index over the rows matching ``where`` only (``CREATE INDEX ... WHERE``).

    Examples:
        >>> partial_index(Order, Order.created_at,
        ...               where=Order.status == "pending")  # doctest: +SKIP

    Small (1% of the rows → ~1% of the size) and cheap to maintain for rows outside the
    predicate; used only by queries whose WHERE implies ``where``.
    """
    tbl = resolve_table(table, IndexDefinitionError, "partial_index")
    owner = f"partial_index on {tbl.name}"
    if where is None or not isinstance(where, ColumnElement):
        raise IndexDefinitionError(
            f"{owner}: where= must be a SQL condition such as Order.status == 'pending'."
        )
    cols = _columns(tbl, columns, owner)
    _check_expression(tbl, where, owner, "where condition")
    empty = isinstance(include, (list, tuple)) and not include
    incl = [] if empty else [c.name for c in _columns(tbl, include, owner)]
    label = "_".join(c.name for c in cols)
    idx_name = _name(tbl, name, f"{tbl.name}_{label}_partial_idx", owner)
    kw: dict[str, Any] = {"postgresql_where": where}
    if incl:
        kw["postgresql_include"] = incl
    return _finish(Index(idx_name, *cols, unique=unique, **kw))


def partial_predicate(index: Index) -> ColumnElement[bool]:
    """A partial index's WHERE condition, for queries, with its values inlined at execution.

    Examples:
        >>> from sqlalchemy import Column, Integer, MetaData, Table, Text, select
        >>> t = Table("t", MetaData(), Column("id", Integer), Column("status", Text))
        >>> idx = partial_index(t, "id", where=t.c.status == "pending")
        >>> print(select(t.c.id).where(partial_predicate(idx)))
        SELECT t.id
        FROM t
        WHERE t.status = __[POSTCOMPILE_status_1]

    The planner uses a partial index only when the query's WHERE *provably implies* the
    index predicate at plan time. A bind parameter (``status = $1``) does not in a generic
    plan, which PostgreSQL may pick for a prepared statement (psycopg prepares after 5
    executions; always under ``plan_cache_mode = force_generic_plan``). The values here are
    rendered into the SQL text at execution (``literal_execute``), so every plan can use
    the index.
    """
    if not isinstance(index, Index):
        raise IndexDefinitionError(f"partial_predicate: {index!r:.80} is not a sqlalchemy Index.")
    where = index.dialect_options["postgresql"].get("where")
    if where is None:
        raise IndexDefinitionError(
            f"index {index.name}: it has no WHERE condition (not a partial index); build it "
            "with partial_index(..., where=...)."
        )

    def inline(element: Any) -> Any:
        if isinstance(element, BindParameter) and not element.literal_execute:
            return bindparam(element.key, element.value, type_=element.type,
                             literal_execute=True, unique=True)
        return None

    traverse: Any = visitors.replacement_traverse
    result: ColumnElement[bool] = traverse(where, {}, inline)
    return result


def covering_index(
    table: Table | type[Any],
    columns: Sequence[Any],
    *,
    include: Sequence[Any],
    name: str | None = None,
    unique: bool = False,
    where: ColumnElement[bool] | None = None,
) -> Index:
    """A B-tree on ``columns`` that also stores ``include`` columns (``INCLUDE``), so a query
    reading only these columns is answered by an Index Only Scan.

    Examples:
        >>> covering_index(Order, [Order.customer_id], include=[Order.total])  # doctest: +SKIP

    Index-only scans skip the heap only for pages marked all-visible: VACUUM (autovacuum) must
    keep up, otherwise "Heap Fetches" climbs and the benefit shrinks.
    """
    tbl = resolve_table(table, IndexDefinitionError, "covering_index")
    owner = f"covering_index on {tbl.name}"
    if isinstance(columns, (str, Column)):
        columns = [columns]
    cols = _columns(tbl, columns, owner)
    if not include:
        raise IndexDefinitionError(
            f"{owner}: include= is empty; a covering index adds INCLUDE columns. For a plain "
            "index use sqlalchemy.Index."
        )
    incl = _columns(tbl, include, owner)
    both = sorted({c.name for c in cols} & {c.name for c in incl})
    if both:
        raise IndexDefinitionError(
            f"{owner}: {', '.join(both)} is both a key column and in include=; a key column "
            "is already stored in the index. Remove it from include=."
        )
    if where is not None:
        _check_expression(tbl, where, owner, "where condition")
    label = "_".join(c.name for c in cols)
    idx_name = _name(tbl, name, f"{tbl.name}_{label}_incl_idx", owner)
    kw: dict[str, Any] = {"postgresql_include": [c.name for c in incl]}
    if where is not None:
        kw["postgresql_where"] = where
    return _finish(Index(idx_name, *cols, unique=unique, **kw))


def brin_index(
    table: Table | type[Any],
    column: Any,
    *,
    pages_per_range: int | None = None,
    ops: str | None = None,
    autosummarize: bool | None = None,
    name: str | None = None,
) -> Index:
    """A BRIN index (block-range summaries): tiny, for columns that follow insert order.

    Examples:
        >>> brin_index(Reading, Reading.recorded_at, pages_per_range=32)  # doctest: +SKIP

    ``pages_per_range`` (1..131072, PostgreSQL's default 128) trades size for precision:
    fewer pages per range = a bigger index that skips more. At CREATE INDEX on a table that
    has been ANALYZEd, a :class:`BrinCorrelationWarning` reports a column whose
    ``pg_stats.correlation`` is below 0.9 in absolute value (the index would skip little).
    """
    tbl = resolve_table(table, IndexDefinitionError, "brin_index")
    owner = f"brin_index on {tbl.name}"
    col = resolve_column(tbl, column, IndexDefinitionError, owner)
    with_: dict[str, Any] = {}
    if pages_per_range is not None:
        if (
            isinstance(pages_per_range, bool)
            or not isinstance(pages_per_range, int)
            or not 1 <= pages_per_range <= 131072
        ):
            raise IndexDefinitionError(
                f"{owner}: pages_per_range={pages_per_range!r} is out of range; PostgreSQL "
                "accepts an integer from 1 to 131072 (default 128)."
            )
        with_["pages_per_range"] = pages_per_range
    if autosummarize is not None:
        if not isinstance(autosummarize, bool):
            raise IndexDefinitionError(
                f"{owner}: autosummarize={autosummarize!r:.80} is not accepted: pass True, "
                "False or None."
            )
        with_["autosummarize"] = "on" if autosummarize else "off"
    idx_name = _name(tbl, name, f"{tbl.name}_{col.name}_brin", owner)
    kw: dict[str, Any] = {"postgresql_using": "brin"}
    if with_:
        kw["postgresql_with"] = with_
    if ops:
        kw["postgresql_ops"] = {col.name: ops}
    index = _finish(Index(idx_name, col, **kw))
    event.listen(index, "after_create", _warn_uncorrelated)
    return index


def gin_index(
    table: Table | type[Any],
    column: Any,
    *,
    ops: str | None = None,
    name: str | None = None,
    where: ColumnElement[bool] | None = None,
    fastupdate: bool | None = None,
) -> Index:
    """A GIN index on one jsonb, array, tsvector column (or text with ``gin_trgm_ops``).

    Examples:
        >>> gin_index(Post, Post.tags)  # doctest: +SKIP
        >>> gin_index(Product, Product.attrs, ops="jsonb_path_ops")  # doctest: +SKIP

    The operator class decides which operators the index serves (``jsonb_path_ops``: ``@>``
    only, but smaller); see :mod:`pgpatterns.jsonb` / :mod:`pgpatterns.arrays` for the
    queries. ``fastupdate=False`` trades insert speed for predictable query latency.
    """
    tbl = resolve_table(table, IndexDefinitionError, "gin_index")
    owner = f"gin_index on {tbl.name}"
    col = resolve_column(tbl, column, IndexDefinitionError, owner)
    if where is not None:
        _check_expression(tbl, where, owner, "where condition")
    idx_name = _name(tbl, name, f"{tbl.name}_{col.name}_gin", owner)
    kw: dict[str, Any] = {"postgresql_using": "gin"}
    if ops:
        kw["postgresql_ops"] = {col.name: ops}
    if where is not None:
        kw["postgresql_where"] = where
    if fastupdate is not None:
        kw["postgresql_with"] = {"fastupdate": "on" if fastupdate else "off"}
    if not ops:
        _check_ops("gin", col.name, col.type, None, owner)
    return _finish(Index(idx_name, col, **kw))


def gist_index(
    table: Table | type[Any],
    *columns: Any,
    ops: str | Mapping[str, str] | None = None,
    name: str | None = None,
    where: ColumnElement[bool] | None = None,
) -> Index:
    """A GiST index: ranges, geometry, ltree, full text, trigrams; scalars via btree_gist.

    Examples:
        >>> gist_index(Booking, Booking.room_id, Booking.during)  # doctest: +SKIP
    """
    tbl = resolve_table(table, IndexDefinitionError, "gist_index")
    owner = f"gist_index on {tbl.name}"
    cols = _columns(tbl, columns, owner)
    ops_map = _ops_map(cols, ops, owner)
    if where is not None:
        _check_expression(tbl, where, owner, "where condition")
    label = "_".join(c.name for c in cols)
    idx_name = _name(tbl, name, f"{tbl.name}_{label}_gist", owner)
    kw: dict[str, Any] = {"postgresql_using": "gist"}
    if ops_map:
        kw["postgresql_ops"] = ops_map
    if where is not None:
        kw["postgresql_where"] = where
    return _finish(Index(idx_name, *cols, **kw))


def expression_index(
    table: Table | type[Any],
    expression: ColumnElement[Any],
    *,
    name: str,
    ops: str | None = None,
    unique: bool = False,
    where: ColumnElement[bool] | None = None,
    using: str = "btree",
) -> Index:
    """An index on an expression, e.g. ``lower(email)`` for case-insensitive lookups.

    Examples:
        >>> expression_index(User, func.lower(User.email), name="users_email_lower_key",
        ...                  unique=True)  # doctest: +SKIP

    Queries must use the same expression (same functions, casts and collation) for the
    planner to match it. ``ops`` is keyed to the expression for you (the pgvector-python #65
    trap: an unlabelled expression's operator class is silently dropped otherwise).
    """
    tbl = resolve_table(table, IndexDefinitionError, "expression_index")
    owner = f"expression_index on {tbl.name}"
    if not isinstance(expression, ColumnElement):
        raise IndexDefinitionError(
            f"{owner}: {expression!r} is not a SQL expression; pass e.g. func.lower(User.email)."
        )
    _check_expression(tbl, expression, owner, "expression")
    if where is not None:
        _check_expression(tbl, where, owner, "where condition")
    idx_name = _name(tbl, name, "", owner)
    if ops is not None and (not isinstance(ops, str) or not ops or "\x00" in ops):
        raise IndexDefinitionError(
            f"{owner}: ops={ops!r:.80} is not accepted: pass an operator class name (str)."
        )
    if not isinstance(using, str) or using not in _METHODS:
        raise IndexDefinitionError(
            f"{owner}: using={using!r:.80} is not accepted: pass one of {', '.join(_METHODS)}."
        )
    kw: dict[str, Any] = {} if using == "btree" else {"postgresql_using": using}
    element: ColumnElement[Any] = expression
    if ops:
        element = expression.label(f"{idx_name}_expr")
        kw["postgresql_ops"] = {f"{idx_name}_expr": ops}
    if where is not None:
        kw["postgresql_where"] = where
    return _finish(Index(idx_name, element, unique=unique, **kw))
