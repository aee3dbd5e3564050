"""Value checks for copy_rows: what binary COPY would mangle, refused before it is sent.

Each column gets at most one check, fused from the model's declared type (known before any
SQL) and the table's own type (read from the catalog): a ``bool`` for a number column
(``True`` would be written as 1), an ``int`` outside the narrower of the two ranges, a
``datetime`` for a ``date`` column (its time would be dropped). Checks a dumper already makes
(binary ``smallint``/``integer``/``real`` ranges, ``bigint`` overflow) are not repeated, and
the loop tests exact types first, so a row costs a few comparisons per checked column.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import types as sqltypes

from pgpatterns._args import INT_RANGES
from pgpatterns.errors import BulkLoadError

__all__ = ["Checks", "ValueSpec", "check_rows", "db_spec", "fuse", "model_spec"]

INT, NUMBER, DATE = 1, 2, 3
_DB_INTS = {"int2": (-(2**15), 2**15 - 1), "int4": (-(2**31), 2**31 - 1),
            "int8": (-(2**63), 2**63 - 1)}
# binary dumpers that already refuse what the check would (see _adapt._STRICT): int2, int4
_DUMPER_CHECKED = frozenset({"int2", "int4", "float4"})


@dataclass(frozen=True)
class ValueSpec:
    """What a column accepts: ``kind`` (INT, NUMBER or DATE), an int range, a label."""

    kind: int
    lo: int
    hi: int
    label: str


# (position in the row, column name, kind, lo, hi, label): flat for a fast loop
Checks = list[tuple[int, str, int, int, int, str]]


def model_spec(type_: sqltypes.TypeEngine[Any]) -> ValueSpec | None:
    """The check the model's column type implies (``None``: nothing to check)."""
    if isinstance(type_, sqltypes.TypeDecorator):
        return None  # its own Python type; COPY sends what the dumper makes of it
    label = f"the model's {type(type_).__name__}"
    if isinstance(type_, sqltypes.Integer):
        for cls in type(type_).__mro__:
            if cls in INT_RANGES:
                return ValueSpec(INT, *INT_RANGES[cls], label)
    if isinstance(type_, (sqltypes.Numeric, sqltypes.Float)):  # Double is a Float
        return ValueSpec(NUMBER, 0, 0, label)
    if isinstance(type_, sqltypes.Date):
        return ValueSpec(DATE, 0, 0, label)
    return None


def db_spec(typname: str, type_label: str) -> ValueSpec | None:
    """The check the table's own (base) column type implies."""
    label = f"the table's {type_label}"
    if typname in _DB_INTS:
        return ValueSpec(INT, *_DB_INTS[typname], label)
    if typname in ("float4", "float8", "numeric"):
        return ValueSpec(NUMBER, 0, 0, label)
    if typname == "date":
        return ValueSpec(DATE, 0, 0, label)
    return None


def fuse(
    model: ValueSpec | None, db: ValueSpec | None, typname: str, binary: bool
) -> ValueSpec | None:
    """One check from both: the narrower int range; ``None`` when a dumper covers it."""
    if model is None or db is None:
        spec = model or db
    elif model.kind == INT and db.kind == INT:
        spec = model if (model.hi - model.lo) < (db.hi - db.lo) else db
    else:
        spec = db if db.kind == DATE or model.kind != INT else model
    if spec is not None and binary and typname in _DUMPER_CHECKED and spec is db:
        return None  # the strict binary dumper refuses bools and out-of-range values
    return spec


def flat(specs: Sequence[tuple[int, str, ValueSpec | None]]) -> Checks:
    return [(pos, name, s.kind, s.lo, s.hi, s.label) for pos, name, s in specs if s is not None]


def check_rows(
    values: Iterator[Sequence[Any]], checks: Checks, label: str, start: int = 0
) -> Iterator[Sequence[Any]]:
    """Yield ``values`` after checking each row (``start``: the first row's number)."""
    if not checks:
        yield from values
        return
    index = start
    for row in values:
        for position, name, kind, lo, hi, what in checks:
            value = row[position]
            kind_of = type(value)
            if kind == DATE:
                if isinstance(value, dt.datetime):
                    raise _refused(index, label, name, value, (
                        f"a datetime would lose its time in {what}: pass value.date() "
                        "(a datetime.date)"))
            elif kind_of is int:
                if kind == INT and not lo <= value <= hi:
                    raise _refused(index, label, name, value,
                                   f"out of range for {what} ({lo} to {hi})")
            elif kind_of is bool:
                raise _refused(index, label, name, value,
                               f"a bool is not a number: pass an int for {what} (True is not 1)")
        index += 1
        yield row


def _refused(index: int, label: str, name: str, value: Any, why: str) -> BulkLoadError:
    return BulkLoadError(
        f"row {index} for {label} could not be written: column {name!r} got "
        f"{type(value).__name__} {value!r:.80}: {why}. Nothing was written; fix the value "
        "(or the column's declared type)."
    )
