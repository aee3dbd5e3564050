"""A parsed ``EXPLAIN (FORMAT JSON)`` plan and the functions that read it."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pgpatterns.errors import ExplainError

__all__ = ["Plan", "has_seq_scan", "nodes", "plan_summary", "scan_types", "uses_index"]

_AGGREGATE = {"Hashed": "HashAggregate", "Sorted": "GroupAggregate", "Mixed": "MixedAggregate"}

@dataclass(frozen=True, repr=False)
class Plan:
    """A parsed ``EXPLAIN (FORMAT JSON)`` result; ``str(plan)`` is :func:`plan_summary`.

    Examples:
        >>> plan = Plan({"Plan": {"Node Type": "Seq Scan", "Relation Name": "items",
        ...                       "Plan Rows": 20000}})
        >>> plan.root["Node Type"], plan.execution_time
        ('Seq Scan', None)
        >>> plan
        Plan('Seq Scan on items; est. rows=20000')

    Attributes:
        raw: The one object of the JSON array: ``"Plan"`` (the top node) and top-level keys
            such as ``"Planning Time"``, ``"Execution Time"``, ``"Planning"``, ``"Triggers"``.
    """

    raw: Mapping[str, Any]

    @property
    def root(self) -> Mapping[str, Any]:
        """The top plan node, ``raw["Plan"]``."""
        root: Mapping[str, Any] = self.raw["Plan"]
        return root

    @property
    def analyzed(self) -> bool:
        """Whether the statement ran (``analyze=True``): actual rows and times are present."""
        return "Execution Time" in self.raw

    @property
    def execution_time(self) -> float | None:
        """``"Execution Time"`` in milliseconds; ``None`` without ``analyze``."""
        return _float(self.raw.get("Execution Time"))

    @property
    def planning_time(self) -> float | None:
        """``"Planning Time"`` in milliseconds; ``None`` without ``analyze``."""
        return _float(self.raw.get("Planning Time"))

    def __str__(self) -> str:
        return plan_summary(self)

    def __repr__(self) -> str:
        return f"Plan({plan_summary(self)!r})"


def nodes(plan: Plan) -> Iterator[Mapping[str, Any]]:
    """Every plan node, depth first in tree order, InitPlan and SubPlan children included.

    Examples:
        >>> plan = Plan({"Plan": {"Node Type": "Limit", "Plans": [
        ...     {"Node Type": "Seq Scan", "Relation Name": "items"}]}})
        >>> [node["Node Type"] for node in nodes(plan)]
        ['Limit', 'Seq Scan']
    """
    stack = [_check_plan(plan, "nodes").root]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(node.get("Plans", ())))


def scan_types(plan: Plan) -> list[str]:
    """The ``"Node Type"`` of every node (not only scans), in tree order.

    Examples:
        >>> scan_types(Plan({"Plan": {"Node Type": "Bitmap Heap Scan", "Plans": [
        ...     {"Node Type": "Bitmap Index Scan", "Index Name": "items_tags_idx"}]}}))
        ['Bitmap Heap Scan', 'Bitmap Index Scan']
    """
    return [str(node["Node Type"]) for node in nodes(_check_plan(plan, "scan_types"))]


def uses_index(plan: Plan, name: str) -> bool:
    """Whether any node (Index, Index Only or Bitmap Index Scan) reads index ``name``.

    Examples:
        >>> uses_index(Plan({"Plan": {"Node Type": "Bitmap Index Scan",
        ...                          "Index Name": "items_tags_idx"}}), "items_tags_idx")
        True

    ``name`` may be schema-qualified (``"app.items_code_idx"``); the schema is compared
    when the plan records it (``verbose=True``).
    """
    _check_plan(plan, "uses_index")
    _check_name(name, "uses_index", "name")
    return any(_matches(node.get("Index Name"), node, name) for node in nodes(plan))


def has_seq_scan(plan: Plan, table: str | None = None) -> bool:
    """Whether the plan has a Seq Scan (parallel or not), on ``table`` when given.

    Examples:
        >>> plan = Plan({"Plan": {"Node Type": "Seq Scan", "Relation Name": "items"}})
        >>> has_seq_scan(plan), has_seq_scan(plan, "items"), has_seq_scan(plan, "orders")
        (True, True, False)

    ``table`` is compared with the unqualified ``"Relation Name"``; a schema-qualified
    ``"schema.table"`` also compares the schema when the plan records it (``verbose=True``).
    """
    _check_plan(plan, "has_seq_scan")
    if table is not None:
        _check_name(table, "has_seq_scan", "table")
    return any(
        node["Node Type"] == "Seq Scan"
        and (table is None or _matches(node.get("Relation Name"), node, table))
        for node in nodes(plan)
    )


def plan_summary(plan: Plan) -> str:
    """One line: the nodes in tree order, top-node rows, execution time and buffers.

    Examples:
        >>> plan_summary(Plan({
        ...     "Plan": {"Node Type": "Limit", "Plan Rows": 10, "Actual Rows": 10.0,
        ...              "Shared Hit Blocks": 12, "Shared Read Blocks": 0, "Plans": [
        ...         {"Node Type": "Index Scan", "Index Name": "items_pkey",
        ...          "Relation Name": "items"}]},
        ...     "Execution Time": 0.42}))
        'Limit > Index Scan using items_pkey on items; rows=10; time=0.42ms; buffers hit=12 read=0'

    Rows are the top node's actual rows after ``analyze``, else its estimate (``est. rows=``);
    time and shared buffers appear after ``analyze`` (buffers with ``buffers=True``).
    """
    parts = [" > ".join(_label(node) for node in nodes(_check_plan(plan, "plan_summary")))]
    root = plan.root
    if "Actual Rows" in root:
        parts.append(f"rows={_number(root['Actual Rows'])}")
    elif "Plan Rows" in root:
        parts.append(f"est. rows={_number(root['Plan Rows'])}")
    if plan.execution_time is not None:
        parts.append(f"time={plan.execution_time:.2f}ms")
        if "Shared Hit Blocks" in root:
            hit, read = root["Shared Hit Blocks"], root.get("Shared Read Blocks", 0)
            parts.append(f"buffers hit={hit} read={read}")
    return "; ".join(parts).replace("\r", "\\r").replace("\n", "\\n")


def _check_plan(plan: object, where: str) -> Plan:
    if not isinstance(plan, Plan):
        raise ExplainError(
            f"{where}() takes a Plan from pgpatterns.explain.explain(), got {plan!r:.80}."
        )
    return plan


def _check_name(name: object, where: str, argument: str) -> str:
    if not isinstance(name, str) or not name:
        raise ExplainError(
            f"{where}(): {argument}={name!r:.80} is not accepted: pass a relation name "
            "(str), optionally schema-qualified."
        )
    return name


def _parse(value: Any) -> Plan:
    if isinstance(value, (str, bytes)):
        value = json.loads(value)
    top = value[0] if isinstance(value, list) and len(value) == 1 else None
    if not isinstance(top, dict) or "Plan" not in top:
        raise ExplainError(
            f"unexpected EXPLAIN output {str(value)[:200]!r}: expected a JSON array of one "
            "object with a 'Plan' key. Explain one statement at a time."
        )
    return Plan(top)


def _matches(found: str | None, node: Mapping[str, Any], wanted: str) -> bool:
    if found is None or found == wanted:
        return found is not None
    schema, dot, name = wanted.rpartition(".")
    return bool(dot) and found == name and node.get("Schema", schema) == schema


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _number(value: Any) -> str:
    number = float(value)  # PostgreSQL 18 reports fractional "Actual Rows" (per-loop average)
    return str(int(number)) if number.is_integer() else f"{number:.2f}"


def _label(node: Mapping[str, Any]) -> str:
    """A node as text EXPLAIN names it: ``Index Scan using items_pkey on items``."""
    kind = str(node["Node Type"])
    if kind == "Aggregate":
        kind = _AGGREGATE.get(node.get("Strategy", ""), kind)
    elif kind == "ModifyTable":
        kind = str(node.get("Operation", kind))
    if node.get("Parallel Aware"):
        kind = f"Parallel {kind}"
    relation = node.get("Relation Name")
    if relation is not None:
        if node.get("Schema"):
            relation = f"{node['Schema']}.{relation}"
        if node.get("Alias", node["Relation Name"]) != node["Relation Name"]:
            relation = f"{relation} {node['Alias']}"
    else:
        relation = node.get("CTE Name") or node.get("Function Name")
    index = node.get("Index Name")
    if index:
        return f"{kind} using {index} on {relation}" if relation else f"{kind} on {index}"
    return f"{kind} on {relation}" if relation else kind
