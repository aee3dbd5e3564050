"""Shared internals of :mod:`pgpatterns.jsonb` and :mod:`pgpatterns.arrays` (not public).

Examples:
    >>> split_path("attrs.size")
    ('attrs', 'size')
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeAlias

from sqlalchemy import Text, bindparam
from sqlalchemy.dialects.postgresql import JSON, JSONB
from sqlalchemy.sql.elements import BindParameter, ColumnElement

from pgpatterns.errors import ArgumentError, JsonbError, JsonbPathError

__all__ = [
    "JsonScalar",
    "PathLike",
    "check_flag",
    "check_items",
    "check_name",
    "check_scalar",
    "describe_path",
    "jsonb_column",
    "jsonpath_literal",
    "jsonpath_path",
    "key_literal",
    "resolve_column",
    "split_path",
]

PathLike: TypeAlias = "str | Sequence[str]"
"""A path into a document: ``"a.b"`` (dots separate keys) or ``("a", "b")`` (keys as given,
for keys that contain dots)."""

JsonScalar: TypeAlias = "str | int | float | bool | None"
"""A JSON scalar value: string, number, boolean or null (``None``)."""


def resolve_column(column: Any, *, owner: str, error: type[Exception]) -> ColumnElement[Any]:
    """The Core column expression of a ``Column``, ORM attribute or column expression."""
    if hasattr(column, "__clause_element__"):
        column = column.__clause_element__()
    if not isinstance(column, ColumnElement):
        raise error(
            f"{owner}() needs a column (a Table column or an ORM attribute such as "
            f"Product.attrs), got {type(column).__name__}."
        )
    return column


def jsonb_column(column: Any, *, owner: str) -> ColumnElement[Any]:
    """``column`` resolved and checked to be JSONB (not json, whose operators differ)."""
    col = resolve_column(column, owner=owner, error=JsonbError)
    if isinstance(col.type, JSONB):
        return col
    name = getattr(col, "key", None) or str(col)
    if isinstance(col.type, JSON):
        why = (
            "it is json, which has no containment/existence operators and no GIN operator "
            "class; declare it sqlalchemy.dialects.postgresql.JSONB (and ALTER the column "
            "TYPE jsonb)"
        )
    else:
        why = f"its type is {col.type!r}; these helpers work on JSONB columns only"
    raise JsonbError(f"{owner}(): column {name!r} is not JSONB: {why}.")


def split_path(path: object, *, owner: str = "path") -> tuple[str, ...]:
    """Normalize ``"a.b"`` or ``("a", "b")`` into a tuple of non-empty keys.

    Examples:
        >>> split_path(("a.b", "c"))
        ('a.b', 'c')
    """
    if isinstance(path, str):
        keys: tuple[object, ...] = tuple(path.split("."))
    elif isinstance(path, Sequence) and not isinstance(path, (bytes, bytearray)):
        keys = tuple(path)
    else:
        raise JsonbPathError(
            f"{owner}: a path is a string like 'dims.width' or a tuple of keys like "
            f"('dims', 'width'), got {type(path).__name__}."
        )
    if not keys or any(not isinstance(k, str) or not k or "\x00" in k for k in keys):
        raise JsonbPathError(
            f"{owner}: invalid path {path!r:.80}: every key must be a non-empty string without "
            "NUL (no leading, trailing or doubled dots). Pass a tuple for keys containing dots."
        )
    return keys  # type: ignore[return-value]


def check_name(owner: str, argument: str, value: object, *, optional: bool = True) -> None:
    """``value`` must be a non-empty ``str`` without NUL (or None when ``optional``)."""
    if value is None and optional:
        return
    if not isinstance(value, str) or not value or "\x00" in value:
        raise ArgumentError(
            f"{owner}(): {argument}={value!r:.80} is not accepted: pass a non-empty name "
            "(str, no NUL)" + (" or None." if optional else "."),
            argument=argument, given=value,
        )


def check_flag(owner: str, argument: str, value: object) -> bool:
    """``value`` must be a ``bool``."""
    if not isinstance(value, bool):
        raise ArgumentError(
            f"{owner}(): {argument}={value!r:.80} is not accepted: pass True or False.",
            argument=argument, given=value,
        )
    return value


def check_items(owner: str, argument: str, values: object) -> list[Any]:
    """``list(values)`` for a list/tuple/set/iterator; None, str, bytes or a mapping refused."""
    if values is None or isinstance(values, (str, bytes, bytearray, Mapping)) or not isinstance(
        values, Iterable
    ):
        raise ArgumentError(
            f"{owner}(): {argument}={values!r:.80} is not accepted: pass a list of values "
            "(wrap a single value in a list).", argument=argument, given=values,
        )
    return list(values)


def describe_path(keys: Sequence[str]) -> str:
    """A path as users write it: ``dims.width`` (a tuple repr when a key has a dot)."""
    return ".".join(keys) if not any("." in k for k in keys) else repr(tuple(keys))


def check_scalar(value: object, *, owner: str, hint: str) -> None:
    """Raise unless ``value`` is a JSON scalar (finite numbers only)."""
    if value is None or isinstance(value, (str, bool, int)):
        if isinstance(value, str) and "\x00" in value:
            raise JsonbError(f"{owner}(): JSONB strings cannot contain NUL (\\u0000).")
        return
    if isinstance(value, float):
        if math.isfinite(value):
            return
        raise JsonbError(f"{owner}(): {value!r} is not a JSON number; JSON has no NaN/inf.")
    raise JsonbError(
        f"{owner}() compares a JSON scalar (str, int, float, bool or None), got "
        f"{type(value).__name__} {value!r}. {hint}"
    )


def key_literal(key: str) -> BindParameter[str]:
    """A path key rendered inline as a SQL string literal (not a server-side parameter).

    Expression indexes match the query only when the keys are constants: with a ``$1``
    parameter a generic plan (psycopg prepares a statement after 5 executions) no longer
    matches ``(doc ->> 'price')``. ``literal_execute`` renders the key with the dialect's
    own literal quoting, at execution time, and in DDL.
    """
    return bindparam(None, key, type_=Text, literal_execute=True)


def jsonpath_literal(value: JsonScalar) -> str:
    """A JSON scalar in jsonpath syntax (strings double-quoted with JSON escapes)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    # jsonpath string and number literals accept JSON's syntax (escapes, exponents).
    return json.dumps(value, ensure_ascii=False)


def jsonpath_path(keys: Sequence[str]) -> str:
    """``$."a"."b"``: every key quoted, so any key text is safe."""
    return "$" + "".join("." + json.dumps(k, ensure_ascii=False) for k in keys)
