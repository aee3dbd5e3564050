"""``index_report``: what a table's indexes cost, whether they are used, and what is missing.

Examples:
    >>> report = index_report(session, Order)  # doctest: +SKIP
    >>> print(report)  # doctest: +SKIP
    orders: 4 indexes, 3.1 MB
      orders_pkey                     2.2 MB  scans=12   unique
      orders_status_idx               0.9 MB  scans=0    UNUSED
    duplicates: orders_status_idx2 = orders_status_idx
    foreign keys without an index: orders_customer_id_fkey (customer_id)

Reads ``pg_stat_user_indexes`` (scan counters since the last statistics reset),
``pg_index`` and ``pg_constraint``. Counters are cumulative and per server: an index unused
on the primary may serve a replica's queries, so read the report on every node before
dropping anything.

Warning:
    Statistics are flushed to the shared counters at the end of each transaction (at most
    about once a second per backend): scans from the last moment may not show yet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table, TextClause, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from pgpatterns._tables import resolve_table
from pgpatterns.ddl.base import regname
from pgpatterns.errors import IndexDefinitionError

__all__ = ["IndexReport", "IndexStats", "index_report", "index_report_async"]


@dataclass(frozen=True)
class IndexStats:
    """One index of the table."""

    name: str
    definition: str
    size_bytes: int
    scans: int
    unique: bool
    primary: bool
    valid: bool

    @property
    def used(self) -> bool:
        """Whether any scan used the index since statistics were last reset."""
        return self.scans > 0


@dataclass(frozen=True)
class IndexReport:
    """Indexes of one table, plus duplicates, unused indexes and unindexed foreign keys."""

    table: str
    indexes: list[IndexStats]
    duplicates: list[tuple[str, str]] = field(default_factory=list)
    unindexed_foreign_keys: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)

    @property
    def unused(self) -> list[str]:
        """Indexes never scanned that enforce nothing (not primary key, not unique)."""
        return [i.name for i in self.indexes if not i.used and not i.unique and not i.primary]

    @property
    def total_bytes(self) -> int:
        return sum(i.size_bytes for i in self.indexes)

    def __getitem__(self, name: str) -> IndexStats:
        for index in self.indexes:
            if index.name == name:
                return index
        raise KeyError(name)

    def __str__(self) -> str:
        lines = [f"{self.table}: {len(self.indexes)} indexes, {_mb(self.total_bytes)}"]
        width = max((len(i.name) for i in self.indexes), default=0)
        for i in self.indexes:
            flags = " ".join(
                f for f, on in (("primary", i.primary), ("unique", i.unique and not i.primary),
                                ("INVALID", not i.valid),
                                ("UNUSED", i.name in self.unused)) if on
            )
            lines.append(f"  {i.name:<{width}}  {_mb(i.size_bytes):>9}  scans={i.scans:<6} {flags}")
        if self.duplicates:
            dup = ", ".join(f"{a} = {b}" for a, b in self.duplicates)
            lines.append(f"duplicates: {dup}")
        if self.unindexed_foreign_keys:
            fks = ", ".join(f"{n} ({', '.join(c)})" for n, c in self.unindexed_foreign_keys)
            lines.append(f"foreign keys without an index: {fks}")
        return "\n".join(lines)


def _mb(size: int) -> str:
    return f"{size / 1_048_576:.1f} MB"


_INDEXES = text(
    "SELECT c.relname AS name, pg_get_indexdef(i.indexrelid) AS definition,"
    " pg_relation_size(i.indexrelid) AS size_bytes, coalesce(s.idx_scan, 0) AS scans,"
    " i.indisunique AS unique, i.indisprimary AS primary, i.indisvalid AS valid,"
    " i.indkey::text AS keys, i.indclass::text AS classes,"
    " coalesce(pg_get_expr(i.indexprs, i.indrelid), '') AS exprs,"
    " coalesce(pg_get_expr(i.indpred, i.indrelid), '') AS pred, am.amname AS method"
    " FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
    " JOIN pg_am am ON am.oid = c.relam"
    " LEFT JOIN pg_stat_user_indexes s ON s.indexrelid = i.indexrelid"
    " WHERE i.indrelid = to_regclass(:t) ORDER BY c.relname"
)

# FKs whose columns are not the leading columns (in any order) of some index
_UNINDEXED_FKS = text(
    "SELECT con.conname AS name, array_agg(a.attname::text ORDER BY k.ord) AS columns"
    " FROM pg_constraint con"
    " CROSS JOIN LATERAL unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)"
    " JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum"
    " WHERE con.contype = 'f' AND con.conrelid = to_regclass(:t)"
    " AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = con.conrelid"
    "   AND i.indpred IS NULL"
    "   AND (i.indkey::int2[])[0:cardinality(con.conkey) - 1] @> con.conkey"
    "   AND (i.indkey::int2[])[0:cardinality(con.conkey) - 1] <@ con.conkey)"
    " GROUP BY con.conname ORDER BY con.conname"
)


def _statements(table: object) -> tuple[Table, dict[str, str], TextClause, TextClause]:
    tbl = resolve_table(table, IndexDefinitionError, "index_report")
    return tbl, {"t": regname(tbl.name, tbl.schema)}, _INDEXES, _UNINDEXED_FKS


def _build(tbl: Table, rows: list[Any], fks: list[Any]) -> IndexReport:
    indexes = [
        IndexStats(
            name=r.name, definition=r.definition, size_bytes=int(r.size_bytes),
            scans=int(r.scans), unique=bool(r.unique), primary=bool(r.primary),
            valid=bool(r.valid),
        )
        for r in rows
    ]
    seen: dict[tuple[Any, ...], str] = {}
    duplicates: list[tuple[str, str]] = []
    for r in rows:
        key = (r.method, r.keys, r.classes, r.exprs, r.pred)
        if key in seen:
            duplicates.append((r.name, seen[key]))
        else:
            seen[key] = r.name
    unindexed = [(f.name, tuple(f.columns)) for f in fks]
    return IndexReport(tbl.fullname, indexes, duplicates, unindexed)


def index_report(session: Session, table: Table | type[Any]) -> IndexReport:
    """Size, scan count and flags of each index of ``table``; duplicates; unindexed FKs.

    Examples:
        >>> report = index_report(session, Order)  # doctest: +SKIP
        >>> report.unused, report.duplicates, report.unindexed_foreign_keys  # doctest: +SKIP
        (['orders_status_idx'], [], [('orders_customer_id_fkey', ('customer_id',))])

    Raises:
        IndexDefinitionError: ``table`` is not a Table or a mapped class.
    """
    tbl, params, idx_stmt, fk_stmt = _statements(table)
    rows = list(session.execute(idx_stmt, params))
    if not rows and session.execute(text("SELECT to_regclass(:t)"), params).scalar() is None:
        raise _missing(tbl)
    return _build(tbl, rows, list(session.execute(fk_stmt, params)))


async def index_report_async(session: AsyncSession, table: Table | type[Any]) -> IndexReport:
    """The asyncio twin of :func:`index_report` (same statements, same report).

    Examples:
        >>> report = await index_report_async(session, Order)  # doctest: +SKIP
    """
    tbl, params, idx_stmt, fk_stmt = _statements(table)
    rows = list(await session.execute(idx_stmt, params))
    if not rows:
        found = await session.execute(text("SELECT to_regclass(:t)"), params)
        if found.scalar() is None:
            raise _missing(tbl)
    return _build(tbl, rows, list(await session.execute(fk_stmt, params)))


def _missing(tbl: Table) -> IndexDefinitionError:
    return IndexDefinitionError(
        f"index_report: table {tbl.fullname} does not exist in the database (or is not on "
        "the search_path); create it first or pass the table with its schema."
    )
