"""BRIN support: the column's physical-order correlation and the warning when it is low.

Examples:
    >>> brin_correlation(conn, readings, "recorded_at")  # doctest: +SKIP
    0.9999
"""

from __future__ import annotations

import warnings
from typing import Any

from sqlalchemy import Connection, Index, Table, text

from pgpatterns._tables import resolve_column, resolve_table
from pgpatterns.ddl.base import regname
from pgpatterns.errors import IndexDefinitionError

__all__ = ["BRIN_MIN_CORRELATION", "BrinCorrelationWarning", "brin_correlation"]

BRIN_MIN_CORRELATION = 0.9


class BrinCorrelationWarning(UserWarning):
    """A BRIN index on a column whose values do not follow the table's physical order."""



def brin_correlation(connection: Connection, table: Table, column: str) -> float | None:
    """``pg_stats.correlation`` of ``table.column`` (None before ANALYZE).

    Examples:
        >>> brin_correlation(conn, readings, "recorded_at")  # doctest: +SKIP
        0.9999
    """
    table = resolve_table(table, IndexDefinitionError, "brin_correlation")
    column = resolve_column(table, column, IndexDefinitionError, "brin_correlation").name
    if not isinstance(connection, Connection):
        raise IndexDefinitionError(
            f"brin_correlation: connection={connection!r:.80} is not a Connection; pass "
            "session.connection() or engine.connect()."
        )
    row = connection.execute(
        text(
            "SELECT s.correlation FROM pg_stats s JOIN pg_class c ON c.relname = s.tablename"
            " JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = s.schemaname"
            " WHERE c.oid = to_regclass(:t) AND s.attname = :c"
        ),
        {"t": regname(table.name, table.schema), "c": column},
    ).first()
    return None if row is None or row[0] is None else float(row[0])


def _warn_uncorrelated(index: Index, connection: Connection, **kw: Any) -> None:
    table = index.table
    if table is None:
        return
    col = next(iter(index.columns), None)
    if col is None:
        return
    corr = brin_correlation(connection, table, col.name)
    if corr is not None and abs(corr) < BRIN_MIN_CORRELATION:
        warnings.warn(
            f"BRIN index {index.name}: {table.name}.{col.name} has correlation {corr:.3f} with "
            f"the physical row order (pg_stats); below {BRIN_MIN_CORRELATION} most block "
            "ranges overlap the searched values and the index skips little. Use a B-tree, or "
            "load/CLUSTER the table in this column's order.",
            BrinCorrelationWarning,
            stacklevel=2,
        )
