"""Arguments of partition maintenance, checked before any SQL is sent."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pgpatterns._args import INT_RANGES
from pgpatterns.errors import PartitionBoundsError
from pgpatterns.partitioning.bounds import show
from pgpatterns.partitioning.declare import PartitionScheme, coerce, python_type
from pgpatterns.partitioning.periods import Step

__all__ = ["MAX_AHEAD", "check_ahead", "check_now", "window"]

MAX_AHEAD = 10_000


def check_now(scheme: PartitionScheme, now: Any, where: str) -> Any:
    """``now`` as a value of the key's type (ISO strings are parsed), before any SQL."""
    if now is None:
        return None
    column = scheme.key_column
    value = coerce(column, now, scheme.timezone)
    kind = python_type(column)
    wrong = kind is not None and (
        not isinstance(value, kind)
        or (kind is dt.date and isinstance(value, dt.datetime))
        or (kind is int and isinstance(value, bool))
    )
    if wrong:
        examples = {dt.datetime: "datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)",
                    dt.date: "datetime.date(2026, 1, 1)", int: "1000"}
        example = examples.get(kind, "a value") if kind is not None else "a value"
        raise PartitionBoundsError(
            f"{where}(): now={now!r} is not accepted for the {kind.__name__ if kind else ''} "
            f"key {column.name!r} of {scheme.table.name}: pass a {kind.__name__ if kind else ''}"
            f" (e.g. {example}) or an ISO string, or leave it out for the current time."
        )
    return value


def check_ahead(ahead: object, where: str) -> int:
    if isinstance(ahead, bool) or not isinstance(ahead, int) or not 0 <= ahead <= MAX_AHEAD:
        raise PartitionBoundsError(
            f"{where}(): ahead={ahead!r} is not accepted: pass an int from 0 to {MAX_AHEAD} "
            "(periods after the current one; thousands of partitions slow every query)."
        )
    return ahead


def window(scheme: PartitionScheme, step: Step, ahead: int, now: Any) -> list[tuple[Any, Any]]:
    """The periods from the one holding ``now`` to ``ahead`` later, checked to exist."""
    try:
        start = step.align(now, scheme.timezone)
        periods = [(step.add(start, k), step.add(start, k + 1)) for k in range(ahead + 1)]
    except (OverflowError, ValueError) as exc:
        raise PartitionBoundsError(
            f"{scheme.table.name}: {ahead} periods of {step.text} after {show(now)} go past "
            f"the largest value of the key ({exc}); pass a smaller ahead=."
        ) from exc
    lo, hi = _int_bounds(scheme)
    if isinstance(periods[-1][1], int) and not lo <= periods[0][0] <= periods[-1][1] <= hi:
        raise PartitionBoundsError(
            f"{scheme.table.name}: {ahead} periods of {step.text} after {now} go past the "
            f"range of the key column ({lo} to {hi}); pass a smaller ahead=."
        )
    return periods


def _int_bounds(scheme: PartitionScheme) -> tuple[int, int]:
    for cls in type(scheme.key_column.type).__mro__:
        if cls in INT_RANGES:
            return INT_RANGES[cls]
    return (-(2**63), 2**63 - 1)
