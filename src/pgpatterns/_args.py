"""Argument checks shared by every family: values checked against a column's type, before SQL.

Examples:
    >>> from sqlalchemy import BigInteger, Column
    >>> key_value("move", "new_parent", 2**70, Column("id", BigInteger).type)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pgpatterns.errors.ArgumentError: move(): new_parent=1180591620717411303424 is out of ...

Each check raises :class:`~pgpatterns.errors.ArgumentError` (a ``TypeError`` and a
``ValueError`` too) naming the function, the argument, what was given and what is accepted.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Collection, Iterable
from typing import Any

from sqlalchemy import types as sqltypes

from pgpatterns.errors import ArgumentError

__all__ = ["INT_RANGES", "collection", "integer", "key_value", "key_values", "whole_number"]

INT_RANGES: dict[type[Any], tuple[int, int]] = {
    sqltypes.SmallInteger: (-(2**15), 2**15 - 1),
    sqltypes.BigInteger: (-(2**63), 2**63 - 1),
    sqltypes.Integer: (-(2**31), 2**31 - 1),  # after its subclasses (MRO order below)
}


def _int_range(type_: sqltypes.TypeEngine[Any]) -> tuple[int, int] | None:
    for cls in type(type_).__mro__:
        if cls in INT_RANGES:
            return INT_RANGES[cls]
    return None


def _fail(where: str, name: str, value: object, accepted: str) -> ArgumentError:
    return ArgumentError(
        f"{where}(): {name}={value!r} is not accepted: {accepted}.", argument=name, given=value
    )


def integer(where: str, name: str, value: object, lo: int, hi: int) -> int:
    """``value`` if it is an ``int`` (not a ``bool``) in ``[lo, hi]``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(where, name, value, f"pass an int from {lo} to {hi}")
    if not lo <= value <= hi:
        raise ArgumentError(
            f"{where}(): {name}={value!r} is out of range: pass an int from {lo} to {hi}.",
            argument=name,
            given=value,
        )
    return value


def whole_number(where: str, name: str, value: object, *, minimum: int = 0) -> int:
    """A count/limit: an ``int`` from ``minimum`` to 2**63 - 1 (a bigint)."""
    return integer(where, name, value, minimum, 2**63 - 1)


def key_value(where: str, name: str, value: object, type_: sqltypes.TypeEngine[Any]) -> Any:
    """``value`` if PostgreSQL can compare it with a column of ``type_`` without an error.

    Integers are range-checked for smallint/integer/bigint, UUID columns take ``uuid.UUID``
    (or its string form), text columns take ``str`` without NUL; other types pass through.
    """
    if value is None:
        raise _fail(where, name, value, "a key is required (got None)")
    if _int_range(type_) is not None:
        lo, hi = _int_range(type_) or (0, 0)
        return integer(where, name, value, lo, hi)
    if isinstance(type_, sqltypes.Uuid):
        if isinstance(value, uuid.UUID):
            return value
        if isinstance(value, str):
            try:
                return uuid.UUID(value) if type_.as_uuid else str(uuid.UUID(value))
            except ValueError:
                pass
        raise _fail(where, name, value, "pass a uuid.UUID (or its string form)")
    if isinstance(type_, sqltypes.String):
        if isinstance(value, str) and "\x00" not in value:
            return value
        raise _fail(where, name, value, "pass a str without NUL characters")
    numeric = isinstance(type_, (sqltypes.Numeric, sqltypes.Float))
    if numeric and isinstance(value, float) and not math.isfinite(value):
        raise _fail(where, name, value, "pass a finite number")
    if isinstance(type_, sqltypes.Date) and isinstance(value, dt.datetime):
        raise _fail(where, name, value, "pass a datetime.date, not a datetime")
    return value


def collection(where: str, name: str, value: object) -> list[Any]:
    """``list(value)`` for a collection; ``None``, a ``str``/``bytes`` or a mapping is refused.

    ``None`` is never taken as "empty": ``sync(..., None)`` unlinking everything is the bug
    this guards against.
    """
    if value is None or isinstance(value, (str, bytes, dict)) or not isinstance(
        value, (Collection, Iterable)
    ):
        raise _fail(where, name, value, "pass a list, tuple or set (use [] for none)")
    return list(value)


def key_values(
    where: str, name: str, values: object, type_: sqltypes.TypeEngine[Any]
) -> list[Any]:
    """:func:`collection` of keys, each checked by :func:`key_value`."""
    return [key_value(where, f"{name}[{i}]", v, type_) for i, v in enumerate(
        collection(where, name, values))]
