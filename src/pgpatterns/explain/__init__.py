"""Plan inspection: prove that a query shape hits the index it was designed for.

Examples:
    >>> from pgpatterns.explain import explain, has_seq_scan, uses_index
    >>> plan = explain(session, select(Item).where(Item.code == "c42"))  # doctest: +SKIP
    >>> uses_index(plan, "items_code_idx"), has_seq_scan(plan, "items")  # doctest: +SKIP
    (True, False)
    >>> str(plan)  # doctest: +SKIP
    'Index Scan using items_code_idx on items; est. rows=1'

:func:`explain` (:func:`explain_async`) runs ``EXPLAIN (FORMAT JSON ...)`` on the statement as
SQLAlchemy compiles it, bind parameters kept, and returns a :class:`Plan` that the functions
:func:`nodes`, :func:`scan_types`, :func:`uses_index`, :func:`has_seq_scan` and
:func:`plan_summary` read. :func:`explain_stmt` only builds the ``EXPLAIN`` statement.
"""

from pgpatterns.explain.plan import (
    Plan,
    has_seq_scan,
    nodes,
    plan_summary,
    scan_types,
    uses_index,
)
from pgpatterns.explain.run import SettingValue, explain, explain_async, explain_stmt

__all__ = [
    "Plan",
    "SettingValue",
    "explain",
    "explain_async",
    "explain_stmt",
    "has_seq_scan",
    "nodes",
    "plan_summary",
    "scan_types",
    "uses_index",
]
