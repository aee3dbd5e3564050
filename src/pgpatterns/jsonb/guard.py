"""Can this statement use its table's indexes? Names the predicates that cannot.

Examples:
    >>> report = index_report(session, select(Product).where(  # doctest: +SKIP
    ...     Product.attrs["color"].astext == "red"))
    >>> report.ok, report.unindexed  # doctest: +SKIP
    (False, ("Seq Scan on products: ((attrs ->> 'color'::text) = 'red'::text)",))
    >>> assert_indexable(session, select(Product).where(  # doctest: +SKIP
    ...     jsonb_eq(Product.attrs, "color", "red")))

The statement is explained (not run) with ``enable_seqscan`` off, inside a rolled-back
savepoint: that tells *whether an index can serve* each predicate, independently of the
table's size and statistics. A predicate is reported when it is left as a ``Filter`` of a
scan (the index did not serve it), and a sequential scan is reported even without a filter
(nothing could serve the ``ORDER BY`` or the read).

Warning:
    This answers "can", not "will": on a small or unselective query the planner may still
    rightly prefer a sequential scan. Use it in tests, next to the queries it guards.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.sql.base import Executable

from pgpatterns.errors import IndexUsageError
from pgpatterns.explain import Plan, explain, explain_async, nodes, plan_summary
from pgpatterns.jsonb._common import check_name

__all__ = [
    "IndexReport",
    "assert_indexable",
    "assert_indexable_async",
    "index_report",
    "index_report_async",
]

_SETTINGS = {"enable_seqscan": "off"}
_SCANS = ("Seq Scan", "Index Scan", "Index Only Scan", "Bitmap Heap Scan")


@dataclass(frozen=True)
class IndexReport:
    """What :func:`index_report` found: ``ok`` when every predicate is served by an index.

    Examples:
        >>> IndexReport(Plan({"Plan": {"Node Type": "Result"}}), ()).ok
        True

    Attributes:
        plan: The plan taken with ``enable_seqscan`` off.
        unindexed: One line per scan that leaves work to a filter or reads the whole table:
            ``"<scan> on <table>: <predicate>"``.
    """

    plan: Plan
    unindexed: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.unindexed

    def __str__(self) -> str:
        if self.ok:
            return f"every predicate is served by an index ({plan_summary(self.plan)})"
        return "not served by an index: " + "; ".join(self.unindexed)


def _relation(node: Mapping[str, Any]) -> str:
    return str(node.get("Relation Name", "?"))


def _report(plan: Plan, table: str | None) -> IndexReport:
    found = []
    for node in nodes(plan):
        kind = node["Node Type"]
        if kind not in _SCANS or (table is not None and _relation(node) != table.split(".")[-1]):
            continue
        predicate = node.get("Filter")
        if kind == "Seq Scan":
            what = predicate or "the whole table is read (no index serves the query)"
            found.append(f"Seq Scan on {_relation(node)}: {what}")
        elif predicate:
            found.append(f"{kind} on {_relation(node)}: {predicate}")
    return IndexReport(plan, tuple(found))


def index_report(
    conn: Connection | Session, stmt: Executable, *, table: str | None = None
) -> IndexReport:
    """Explain ``stmt`` with sequential scans disabled and list what no index serves.

    Examples:
        >>> index_report(session, stmt, table="products").ok  # doctest: +SKIP
        True

    Args:
        conn: A ``Connection`` or ``Session`` (:func:`index_report_async` for async).
        stmt: The statement to check.
        table: Only look at scans of this table (unqualified name); default all scans.
    """
    check_name("index_report", "table", table)
    return _report(explain(conn, stmt, settings=_SETTINGS), table)


async def index_report_async(
    conn: AsyncConnection | AsyncSession, stmt: Executable, *, table: str | None = None
) -> IndexReport:
    """The asyncio twin of :func:`index_report`."""
    check_name("index_report_async", "table", table)
    return _report(await explain_async(conn, stmt, settings=_SETTINGS), table)


def _raise(report: IndexReport) -> Plan:
    if not report.ok:
        raise IndexUsageError(
            f"{report}. Rewrite the predicate in an indexable form (pgpatterns.jsonb filters "
            "use @> / ? / @@; pgpatterns.arrays.array_has uses @>), or add the index that "
            "serves it (jsonb_gin, jsonb_path_index, array_gin)."
        )
    return report.plan


def assert_indexable(
    conn: Connection | Session, stmt: Executable, *, table: str | None = None
) -> Plan:
    """Raise :class:`IndexUsageError` naming each predicate no index can serve.

    Examples:
        >>> assert_indexable(session, select(Product).where(  # doctest: +SKIP
        ...     jsonb_eq(Product.attrs, "color", "red")), table="products")
    """
    return _raise(index_report(conn, stmt, table=table))


async def assert_indexable_async(
    conn: AsyncConnection | AsyncSession, stmt: Executable, *, table: str | None = None
) -> Plan:
    """The asyncio twin of :func:`assert_indexable`."""
    return _raise(await index_report_async(conn, stmt, table=table))
