"""Index factories (partial, covering, BRIN, GIN, GiST, expression) and ``index_report``.

Examples:
    >>> from pgpatterns.indexes import brin_index, covering_index, partial_index
    >>> partial_index(Order, Order.created_at, where=Order.status == "pending")  # doctest: +SKIP
    >>> covering_index(Order, [Order.customer_id], include=[Order.total])  # doctest: +SKIP
    >>> brin_index(Reading, Reading.recorded_at, pages_per_range=32)  # doctest: +SKIP
    >>> print(index_report(session, Order))  # doctest: +SKIP

Factories live in :mod:`pgpatterns.indexes.factories` (validation in ``_checks``), BRIN
correlation in :mod:`pgpatterns.indexes.brin`, the report in
:mod:`pgpatterns.indexes.report`; see their module docs for the planner gotchas.
"""

from __future__ import annotations

from pgpatterns.indexes._checks import check_index
from pgpatterns.indexes.brin import BrinCorrelationWarning, brin_correlation
from pgpatterns.indexes.factories import (
    brin_index,
    covering_index,
    expression_index,
    gin_index,
    gist_index,
    partial_index,
    partial_predicate,
)
from pgpatterns.indexes.report import IndexReport, IndexStats, index_report, index_report_async

__all__ = [
    "BrinCorrelationWarning",
    "IndexReport",
    "IndexStats",
    "brin_correlation",
    "brin_index",
    "check_index",
    "covering_index",
    "expression_index",
    "gin_index",
    "gist_index",
    "index_report",
    "index_report_async",
    "partial_index",
    "partial_predicate",
]
