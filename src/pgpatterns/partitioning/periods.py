"""Partition intervals: parse ``"1 month"``, align a key value to its period, step, name.

Examples:
    >>> import datetime as dt
    >>> from pgpatterns.partitioning.periods import Step
    >>> step = Step.parse("1 month")
    >>> step.align(dt.date(2026, 5, 17), "UTC")
    datetime.date(2026, 5, 1)
    >>> step.add(dt.date(2026, 12, 1), 1)
    datetime.date(2027, 1, 1)
    >>> step.label(dt.date(2026, 5, 1))
    '2026_05'
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pgpatterns.errors import PartitionBoundsError

__all__ = ["Step", "zone"]

_UNITS = {
    "hour": ("hours", 1), "day": ("days", 1), "week": ("days", 7),
    "month": ("months", 1), "quarter": ("months", 3), "year": ("months", 12),
}
_INTERVAL = re.compile(r"^\s*(\d+)?\s*(hour|day|week|month|quarter|year)s?\s*$", re.IGNORECASE)
_MONDAY = dt.date(1970, 1, 5)  # weeks (and multi-day steps) are counted from a Monday


def zone(name: str) -> ZoneInfo:
    """The ``ZoneInfo`` for ``name``, or a :class:`PartitionBoundsError` saying what is valid."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise PartitionBoundsError(
            f"timezone={name!r} is not a known time zone; use an IANA name such as 'UTC' or "
            "'Europe/Paris'."
        ) from exc


@dataclass(frozen=True)
class Step:
    """One partition's width: ``months``, ``days`` or ``hours`` (time keys) or ``number``."""

    unit: str  # "months" | "days" | "hours" | "number"
    size: int
    text: str

    @classmethod
    def parse(cls, interval: str | int) -> Step:
        """``"1 month"``, ``"3 months"``, ``"1 week"``, ``"1 day"``, ``"6 hours"``, ``"1 year"``
        or a positive integer (integer keys)."""
        if isinstance(interval, bool):
            raise PartitionBoundsError("interval must be a string like '1 month' or an int.")
        if isinstance(interval, int):
            if interval <= 0:
                raise PartitionBoundsError(
                    f"interval={interval} must be positive: it is the width of one partition."
                )
            return cls("number", interval, str(interval))
        match = _INTERVAL.match(interval) if isinstance(interval, str) else None
        if match is None:
            raise PartitionBoundsError(
                f"interval={interval!r} is not understood; use '<n> hour|day|week|month|"
                "quarter|year' (e.g. '1 month'), or an integer width for integer keys."
            )
        count = int(match.group(1) or 1)
        unit, factor = _UNITS[match.group(2).lower()]
        if count <= 0:
            raise PartitionBoundsError(f"interval={interval!r} must be positive.")
        return cls(unit, count * factor, interval.strip())

    def check_key(self, python_type: type | None, column: str) -> None:
        """Make sure this step fits a key column of ``python_type``."""
        if python_type is None:
            return
        numeric = issubclass(python_type, int)
        timelike = issubclass(python_type, dt.date)
        if (self.unit == "number") != numeric or not (numeric or timelike):
            kind = "an integer width" if numeric else "a time interval such as '1 month'"
            raise PartitionBoundsError(
                f"interval={self.text!r} does not fit key column {column} "
                f"({python_type.__name__}); give {kind}."
            )
        if self.unit == "hours" and not issubclass(python_type, dt.datetime):
            raise PartitionBoundsError(
                f"interval={self.text!r} is finer than a day but {column} is a date; use days."
            )

    def align(self, value: Any, tz: str) -> Any:
        """The start of the period that contains ``value``."""
        if self.unit == "number":
            return value - value % self.size
        if isinstance(value, dt.datetime) and value.tzinfo is not None:
            value = value.astimezone(zone(tz))
        if self.unit == "months":
            index = value.year * 12 + value.month - 1
            index -= index % self.size
            return self._replace(value, index // 12, index % 12 + 1, 1)
        day = value.date() if isinstance(value, dt.datetime) else value
        offset = (day - _MONDAY).days
        start = day - dt.timedelta(days=offset % self.size) if self.unit == "days" else day
        if not isinstance(value, dt.datetime):
            return start
        aligned = value.replace(
            year=start.year, month=start.month, day=start.day, hour=0, minute=0, second=0,
            microsecond=0,
        )
        if self.unit == "hours":
            aligned = value.replace(minute=0, second=0, microsecond=0)
            aligned -= dt.timedelta(hours=aligned.hour % self.size)
        return aligned

    def add(self, value: Any, count: int) -> Any:
        """``value`` moved by ``count`` steps (wall-clock in the value's own time zone)."""
        if self.unit == "number":
            return value + count * self.size
        if self.unit == "months":
            index = value.year * 12 + value.month - 1 + count * self.size
            return self._replace(value, index // 12, index % 12 + 1, value.day)
        if self.unit == "days":
            return value + dt.timedelta(days=count * self.size)
        return value + dt.timedelta(hours=count * self.size)

    def subtract_from(self, value: Any, count: int = 1) -> Any:
        """``value`` moved back by ``count`` steps."""
        return self.add(value, -count)

    @staticmethod
    def _replace(value: Any, year: int, month: int, day: int) -> Any:
        if isinstance(value, dt.datetime):
            return value.replace(year=year, month=month, day=day, hour=0, minute=0, second=0,
                                 microsecond=0)
        return dt.date(year, month, day)

    def label(self, value: Any) -> str:
        """The suffix for a partition starting at ``value`` (``2026_05``, ``2026_05_17`` ...)."""
        if self.unit == "number":
            return str(value).replace("-", "m")
        if self.unit == "months" and self.size % 12 == 0:
            return f"{value:%Y}"
        if self.unit == "months":
            return f"{value:%Y_%m}"
        if self.unit == "days":
            return f"{value:%Y_%m_%d}"
        return f"{value:%Y_%m_%d_%H}"
