"""Read Citus' part of a plan: how many shard tasks a query runs.

Examples:
    >>> from pgpatterns.explain import Plan
    >>> plan = Plan({"Plan": {"Node Type": "Custom Scan", "Custom Plan Provider":
    ...     "Citus Adaptive", "Distributed Query": {"Job": {"Task Count": 1}}}})
    >>> task_counts(plan), is_router(plan)
    ([1], True)
"""

from __future__ import annotations

from typing import Any

from pgpatterns.explain import Plan

__all__ = ["is_router", "task_counts"]


def task_counts(plan: Plan) -> list[int]:
    """The ``Task Count`` of every Citus job in ``plan`` (subplans of CTEs included).

    Examples:
        >>> task_counts(Plan({"Plan": {"Node Type": "Seq Scan"}}))
        []

    ``[]``: the plan has no distributed part (a plain or reference-only query on the
    coordinator, or PostgreSQL without Citus).
    """
    found: list[int] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key == "Task Count" and isinstance(item, int):
                    found.append(item)
                else:
                    walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(dict(plan.raw))
    return found


def is_router(plan: Plan) -> bool:
    """Whether Citus runs the statement as one task on one shard group (a router query).

    Examples:
        >>> is_router(Plan({"Plan": {"Node Type": "Custom Scan", "Distributed Query":
        ...     {"Job": {"Task Count": 32}}}}))
        False
    """
    return task_counts(plan) == [1]
