"""Constraints in the database: EXCLUDE for non-overlapping ranges, readable CHECK rules.

Examples:
    >>> from sqlalchemy import Column, DateTime, Integer, MetaData, Table
    >>> from pgpatterns.constraints import check, no_overlap
    >>> bookings = Table("bookings", MetaData(), Column("id", Integer, primary_key=True),
    ...                  Column("room_id", Integer), Column("starts_at", DateTime(True)),
    ...                  Column("ends_at", DateTime(True)), Column("guests", Integer))
    >>> ex = no_overlap(bookings, ("starts_at", "ends_at"), "room_id")
    >>> ex.name
    'bookings_no_overlap'
    >>> bookings.append_constraint(check.positive(bookings.c.guests))

:func:`no_overlap` is an ``EXCLUDE USING gist`` constraint: two rows with equal
``equal_columns`` may not have overlapping ranges (bookings of one room, prices of one product
over time). Inserting an overlapping row fails with SQLSTATE 23P01, which
:func:`translate_errors` turns into :class:`~pgpatterns.errors.OverlapError`; the check runs
inside PostgreSQL, so it also holds between concurrent transactions (the second waits for the
first and then fails), which an application-side "SELECT, then INSERT" does not.

Warning:
    - Equality columns of scalar types (``room_id integer``) need the ``btree_gist``
      extension (``attach(metadata, Extension("btree_gist"))``); ``CREATE TABLE`` is refused
      with :class:`~pgpatterns.errors.ConstraintError` before any SQL is sent when it is
      not installed.
    - Ranges built from two columns are half-open (``'[)'``) by default: a booking ending at
      11:00 does not overlap one starting at 11:00. An end before its start makes PostgreSQL
      reject the row (``range lower bound must be less than or equal to range upper bound``).
    - The constraint's GiST index serves ``&&`` queries on the same expression too.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Connection,
    Date,
    DateTime,
    Integer,
    Numeric,
    Table,
    Text,
    event,
    func,
    literal,
    text,
)
from sqlalchemy.dialects.postgresql import ExcludeConstraint
from sqlalchemy.dialects.postgresql.ranges import AbstractRange
from sqlalchemy.sql.elements import ColumnElement

from pgpatterns._tables import check_identifier, resolve_column, resolve_table, type_name
from pgpatterns.errors import ConstraintError, OverlapError

__all__ = ["check", "no_overlap", "overlap_error", "translate_errors"]

_BOUNDS = ("[)", "[]", "(]", "()")
_EXCLUSION_VIOLATION = "23P01"


def _range_function(first: Any, second: Any) -> str:
    """The range constructor for two bound columns of the same type."""
    a, b = first.type, second.type
    for kind, fn in (
        (BigInteger, "int8range"),
        (Integer, "int4range"),
        (Numeric, "numrange"),
        (Date, "daterange"),
    ):
        if isinstance(a, kind) and isinstance(b, kind) and not isinstance(a, DateTime):
            return fn
    if isinstance(a, DateTime) and isinstance(b, DateTime) and a.timezone == b.timezone:
        return "tstzrange" if a.timezone else "tsrange"
    raise ConstraintError(
        f"no_overlap: cannot build a range from {first.name} ({type_name(a)}) and "
        f"{second.name} ({type_name(b)}): both bounds must have the same type among "
        "timestamptz, timestamp, date, integer, bigint and numeric. Use matching column types "
        "or pass one range column."
    )


def no_overlap(
    table: Table | type[Any],
    range_: Any,
    *equal_columns: Any,
    name: str | None = None,
    where: ColumnElement[bool] | None = None,
    bounds: str = "[)",
) -> ExcludeConstraint:
    """Forbid overlapping ranges among rows with the same ``equal_columns``.

    Examples:
        >>> no_overlap(bookings, "during", "room_id")  # a tstzrange column  # doctest: +SKIP
        >>> no_overlap(Booking, (Booking.starts_at, Booking.ends_at), Booking.room_id,
        ...            where=Booking.status != "cancelled")  # doctest: +SKIP

    Args:
        table: the Table or mapped class; the constraint is added to it and returned.
        range_: a range-typed column, or ``(start, end)`` columns of the same type
            (``tstzrange(start, end, bounds)`` is built from them).
        equal_columns: columns that must be equal for two rows to conflict (the room).
        name: the constraint name (default ``<table>_no_overlap``).
        where: only rows matching this predicate take part (a partial constraint).
        bounds: ``'[)'`` (default), ``'[]'``, ``'(]'`` or ``'()'`` for two-column ranges.

    Raises:
        ConstraintError: a column is missing or of the wrong type, a bound string is
            invalid, or the name is taken; at ``CREATE TABLE``, ``btree_gist`` is missing.
    """
    tbl = resolve_table(table, ConstraintError, "no_overlap")
    owner = f"no_overlap on {tbl.name}"
    if bounds not in _BOUNDS:
        raise ConstraintError(
            f"{owner}: bounds={bounds!r} is not a range bound spec; pass one of "
            f"{', '.join(map(repr, _BOUNDS))} ('[)' = start included, end excluded)."
        )
    if isinstance(range_, (tuple, list)):
        if len(range_) != 2:
            raise ConstraintError(f"{owner}: pass (start, end), not {len(range_)} columns.")
        start, end = (resolve_column(tbl, c, ConstraintError, owner) for c in range_)
        fn = _range_function(start, end)
        range_expr: Any = getattr(func, fn)(start, end, literal(bounds, Text()))
        range_cols = {start.name, end.name}
    else:
        col = resolve_column(tbl, range_, ConstraintError, owner)
        if not isinstance(col.type, AbstractRange):
            raise ConstraintError(
                f"{owner}: column {col.name} is {type_name(col.type)}, not a range type; pass "
                "a tstzrange/daterange/... column, or (start, end) columns to build one."
            )
        range_expr, range_cols = col, {col.name}
    equal = [resolve_column(tbl, c, ConstraintError, owner) for c in equal_columns]
    for col in equal:
        if col.name in range_cols:
            raise ConstraintError(
                f"{owner}: {col.name} is both a range bound and an equality column; "
                "list it only once."
            )
    name = check_identifier(name or f"{tbl.name}_no_overlap", ConstraintError, owner)
    if any(getattr(c, "name", None) == name for c in (*tbl.constraints, *tbl.indexes)):
        raise ConstraintError(
            f"{owner}: table {tbl.name} already has a constraint or index named {name!r}; "
            "pass another name=."
        )
    elements: list[tuple[Any, str]] = [(c, "=") for c in equal] + [(range_expr, "&&")]
    if where is not None and not isinstance(where, ColumnElement):
        raise ConstraintError(
            f"{owner}: where= must be a SQLAlchemy boolean expression (e.g. "
            f"{tbl.name}.c.status != 'cancelled'), got {type(where).__name__}."
        )
    constraint = ExcludeConstraint(*elements, name=name, using="gist", where=where)
    tbl.append_constraint(constraint)
    if equal:
        event.listen(tbl, "before_create", _require_btree_gist(name, [c.name for c in equal]))
    return constraint


def _require_btree_gist(name: str, columns: Sequence[str]) -> Any:
    def check(target: Table, connection: Connection, **kw: Any) -> None:
        found = connection.execute(
            text("SELECT 1 FROM pg_extension WHERE extname = 'btree_gist'")
        ).first()
        if found is None:
            raise ConstraintError(
                f"cannot create {target.name}: exclusion constraint {name} compares "
                f"{', '.join(columns)} with '=' inside a GiST index, which needs the "
                "btree_gist extension, and it is not installed in this database. Run "
                "CREATE EXTENSION btree_gist (or attach(metadata, Extension('btree_gist')))."
            )

    return check


# -- errors ------------------------------------------------------------------------------
_DETAIL = re.compile(r"^Key (?P<key>.*) conflicts with existing key (?P<existing>.*?)\.?$", re.S)


def overlap_error(exc: BaseException) -> OverlapError | None:
    """The :class:`OverlapError` for an exclusion violation (SQLSTATE 23P01), else None.

    Examples:
        >>> overlap_error(ValueError("x")) is None
        True
    """
    orig = getattr(exc, "orig", exc)
    if getattr(orig, "sqlstate", None) != _EXCLUSION_VIOLATION:
        return None
    diag = getattr(orig, "diag", None)
    constraint = getattr(diag, "constraint_name", None)
    table = getattr(diag, "table_name", None) or "the table"
    detail = getattr(diag, "message_detail", None) or ""
    match = _DETAIL.match(detail)
    key, existing = (match["key"], match["existing"]) if match else (detail, "")
    message = (
        f"row rejected by {constraint or 'an exclusion constraint'} on {table}: it overlaps "
        f"an existing row, existing key {existing or '(not reported)'}; new key {key}. "
        "Choose a range that does not overlap, or change/delete the existing row first."
    )
    return OverlapError(message, constraint=constraint, key=key, conflicting=existing)


@contextmanager
def translate_errors() -> Iterator[None]:
    """Turn exclusion violations raised inside the block into :class:`OverlapError`.

    Examples:
        >>> with translate_errors():  # doctest: +SKIP
        ...     session.add(Booking(room_id=1, starts_at=nine, ends_at=ten))
        ...     session.flush()
        Traceback (most recent call last):
        ...
        pgpatterns.errors.OverlapError: row rejected by bookings_no_overlap on bookings: ...

    Works around sync and async code alike (``await session.flush()`` inside a plain
    ``with``). The original database error is ``__cause__``; the transaction is aborted as
    usual, so flush inside ``session.begin_nested()`` to keep the session usable. A deadlock
    or serialization failure (concurrent writers of overlapping rows can deadlock while
    each checks the other's row) becomes :class:`~pgpatterns.errors.ConcurrentUpdateError`:
    retry the transaction.
    """
    from pgpatterns.translate import concurrent, guard

    # two writers checking each other's uncommitted rows against the same exclusion
    # constraint can deadlock (PostgreSQL's documented behaviour): retry either one
    with guard(overlap_error, concurrent):
        yield


# -- CHECK helpers -----------------------------------------------------------------------
def _target(column: Any) -> tuple[ColumnElement[Any], str]:
    """A column expression and its name from a Column, ORM attribute or a plain name."""
    if isinstance(column, str):
        if not column:
            raise ConstraintError("check: an empty column name; pass the column's name.")
        from sqlalchemy import column as column_clause

        return column_clause(column), column
    element = column.__clause_element__() if hasattr(column, "__clause_element__") else column
    name = getattr(element, "name", None)
    if not isinstance(element, ColumnElement) or not isinstance(name, str):
        raise ConstraintError(
            f"check: {column!r} is not a column; pass a Column, a mapped attribute or a name."
        )
    from sqlalchemy import column as column_clause

    # unbound: CHECK constraints render bare names (the table is the constraint's own)
    return column_clause(name, type_=element.type), name


class _Check:
    """Readable, named CHECK constraints: ``check.positive(col)``, ``check.one_of(...)``."""

    def __call__(self, condition: ColumnElement[bool] | str, *, name: str) -> CheckConstraint:
        """A CHECK with your own condition; ``name`` is required (it is the error message).

        Examples:
            >>> from sqlalchemy import column
            >>> check(column("qty") <= column("stock"), name="qty_within_stock").name
            'qty_within_stock'
        """
        if not isinstance(name, str) or not name:
            raise ConstraintError(
                "check: name is required; the constraint name is what a violation reports, so "
                "pick one that says the rule (e.g. 'price_positive')."
            )
        check_identifier(name, ConstraintError, "check")
        return CheckConstraint(condition, name=name)

    def positive(self, column: Any, *, allow_zero: bool = False, name: str | None = None
                 ) -> CheckConstraint:
        """``col > 0`` (``>= 0`` with ``allow_zero``), named ``<col>_positive``."""
        col, label = _target(column)
        cond = col >= 0 if allow_zero else col > 0
        return self(cond, name=name or f"{label}_{'non_negative' if allow_zero else 'positive'}")

    def between(self, column: Any, low: Any, high: Any, *, name: str | None = None
                ) -> CheckConstraint:
        """``col BETWEEN low AND high`` (both included), named ``<col>_between``.

        ``None`` and NaN bounds are refused: ``BETWEEN NULL AND 5`` is NULL for every row,
        and a CHECK that is NULL passes, so it would constrain nothing.
        """
        for label_, bound in (("low", low), ("high", high)):
            if bound is None or _is_nan(bound):
                raise ConstraintError(
                    f"check.between: {label_}={bound!r} would make the CHECK NULL (or never "
                    "true), so it would constrain nothing (or everything); pass a value."
                )
        try:
            empty = bool(low > high)
        except TypeError as exc:
            raise ConstraintError(
                f"check.between: low={low!r} and high={high!r} cannot be compared; pass two "
                "values of the column's type."
            ) from exc
        if empty:
            raise ConstraintError(
                f"check.between: low={low!r} and high={high!r} describe an empty range; pass "
                "low <= high (both are included)."
            )
        col, label = _target(column)
        return self(col.between(low, high), name=name or f"{label}_between")

    def one_of(self, column: Any, values: Sequence[Any], *, name: str | None = None
               ) -> CheckConstraint:
        """``col IN (values)``, named ``<col>_one_of``: an enum you can extend in a migration.

        Examples:
            >>> check.one_of("s", ["a", None])
            Traceback (most recent call last):
            ...
            pgpatterns.errors.ConstraintError: check.one_of: values contain None: ...

        ``None`` is refused: ``s IN ('a', NULL)`` is NULL (not false) for every other value,
        and a CHECK that is NULL passes, so the constraint would accept anything. NULL is
        allowed by any CHECK already; forbid it with ``nullable=False`` on the column.
        """
        if values is None or isinstance(values, (str, bytes, dict)) or not isinstance(
            values, Iterable
        ):
            raise ConstraintError(
                f"check.one_of: values={values!r} is not a list of allowed values; pass a "
                "list, e.g. ['pending', 'paid', 'shipped']."
            )
        values = list(values)
        if not values or isinstance(values[0], (list, tuple)):
            raise ConstraintError(
                "check.one_of: values must be a non-empty list of allowed values, e.g. "
                "['pending', 'paid', 'shipped']."
            )
        if any(v is None for v in values):
            raise ConstraintError(
                "check.one_of: values contain None: 'IN (..., NULL)' is never false, so the "
                "CHECK would accept every value. NULL passes a CHECK anyway; remove None and "
                "use nullable=False on the column to forbid NULL."
            )
        if any(_is_nan(v) for v in values):
            raise ConstraintError(
                "check.one_of: values contain NaN, which equals nothing in Python and only "
                "itself in PostgreSQL; list real values."
            )
        kinds = {type(v) for v in values}
        if len(kinds) > 1:
            raise ConstraintError(
                f"check.one_of: values mix types ({', '.join(sorted(k.__name__ for k in kinds))}"
                "); the column has one type, so pass values of that type only."
            )
        if len(set(values)) != len(values):
            raise ConstraintError("check.one_of: values contain duplicates; list each once.")
        col, label = _target(column)
        return self(col.in_(values), name=name or f"{label}_one_of")

    def not_blank(self, column: Any, *, name: str | None = None) -> CheckConstraint:
        """``btrim(col) <> ''``: no empty or whitespace-only text, named ``<col>_not_blank``."""
        col, label = _target(column)
        return self(func.btrim(col) != "", name=name or f"{label}_not_blank")

    def exactly_one(self, *columns: Any, name: str | None = None) -> CheckConstraint:
        """``num_nonnulls(a, b, ...) = 1``: exactly one of the columns is set."""
        if len(columns) < 2:
            raise ConstraintError(
                "check.exactly_one: pass at least two columns (one of them must be set)."
            )
        targets = [_target(c) for c in columns]
        labels = "_".join(label for _, label in targets)
        cond = func.num_nonnulls(*(c for c, _ in targets)) == 1
        return self(cond, name=name or f"exactly_one_of_{labels}")


def _is_nan(value: Any) -> bool:
    if isinstance(value, Decimal):
        return value.is_nan()
    return isinstance(value, float) and math.isnan(value)


check = _Check()
"""Named CHECK constraint helpers; see :class:`_Check`'s methods."""
