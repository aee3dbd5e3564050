"""JSONB filters that compile to the operators a GIN index serves.

Examples:
    >>> from sqlalchemy import Column, Integer, MetaData, Table
    >>> from sqlalchemy.dialects.postgresql import JSONB
    >>> products = Table("products", MetaData(), Column("id", Integer),
    ...                  Column("attrs", JSONB))
    >>> from sqlalchemy.dialects import postgresql
    >>> print(jsonb_eq(products.c.attrs, "dims.unit", "cm").compile(dialect=postgresql.dialect()))
    products.attrs @> %(param_1)s::JSONB

Each filter is a boolean column expression to use in ``where()``:

| filter | SQL | GIN operator class serving it |
|---|---|---|
| ``jsonb_eq(col, "a.b", v)`` | ``col @> {a:{b:v}}`` | ``jsonb_path_ops``, ``jsonb_ops`` |
| ``jsonb_in(col, "a.b", [v, w])`` | ``col @> ANY(...)`` | ``jsonb_path_ops``, ``jsonb_ops`` |
| ``jsonb_array_has(col, "tags", v)`` | ``col @> {tags:[v]}`` | ``jsonb_path_ops``, ``jsonb_ops`` |
| ``jsonb_contains(col, {...})`` | ``col @> {...}`` | ``jsonb_path_ops``, ``jsonb_ops`` |
| ``jsonb_path_eq(col, "a.b", v)`` | ``col @@ '$.a.b==v'`` | ``jsonb_path_ops``, ``jsonb_ops`` |
| ``jsonb_has_key(col, "k")`` | ``col ? 'k'`` | ``jsonb_ops`` only |
| ``jsonb_has_any_key(col, ks)`` | ``col ?| ks`` | ``jsonb_ops`` only |
| ``jsonb_has_all_keys(col, ks)`` | ``col ?& ks`` | ``jsonb_ops`` only |

Warning:
    The forms users usually write, ``doc['a'].astext == 'x'`` (``->>`` equality) and
    ``doc->'a' ? 'k'``, cannot use a GIN index on ``doc`` at all: they scan the table.
    ``@>`` compares structure: ``jsonb_eq(col, "a", 1)`` does not match ``{"a": [1]}`` nor
    ``{"a": "1"}``; numbers compare numerically (``1`` matches ``1.0``). ``jsonb_path_eq``
    uses jsonpath's lax mode, so it also matches inside arrays (``{"a": [1, 2]}``).
    jsonpath (``@@``) needs PostgreSQL 12+.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Boolean, Text, any_, bindparam, cast
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, JSONPATH
from sqlalchemy.sql.elements import ColumnElement

from pgpatterns.errors import JsonbError, JsonbPathError
from pgpatterns.jsonb._common import (
    JsonScalar,
    PathLike,
    check_items,
    check_scalar,
    jsonb_column,
    jsonpath_literal,
    jsonpath_path,
    split_path,
)

__all__ = [
    "OPERATORS",
    "jsonb_array_has",
    "jsonb_contains",
    "jsonb_eq",
    "jsonb_has_all_keys",
    "jsonb_has_any_key",
    "jsonb_has_key",
    "jsonb_in",
    "jsonb_path_eq",
]

OPERATORS: Mapping[str, frozenset[str]] = {
    "path": frozenset({"@>", "@?", "@@"}),
    "default": frozenset({"@>", "@?", "@@", "?", "?|", "?&"}),
}
"""The operators each GIN operator class (``jsonb_path_ops`` = ``"path"``, ``jsonb_ops`` =
``"default"``) can serve."""

_CONTAINMENT_HINT = "To match a sub-document, use jsonb_contains(column, {...})."


def nest(keys: Sequence[str], value: Any) -> Any:
    """``("a", "b"), v`` -> ``{"a": {"b": v}}``."""
    for key in reversed(keys):
        value = {key: value}
    return value


def _contains(col: ColumnElement[Any], document: Any) -> ColumnElement[bool]:
    return col.op("@>", return_type=Boolean)(bindparam(None, document, type_=JSONB))


def jsonb_eq(column: Any, path: PathLike, value: JsonScalar) -> ColumnElement[bool]:
    """The value at ``path`` equals the JSON scalar ``value``: ``col @> '{"a": {"b": v}}'``.

    Examples:
        >>> select(Product).where(jsonb_eq(Product.attrs, "dims.unit", "cm"))  # doctest: +SKIP

    ``None`` matches JSON ``null`` (the key present with a null value), not a missing key.

    Raises:
        JsonbError: ``value`` is not a JSON scalar (use :func:`jsonb_contains`), or the
            column is not JSONB.
        JsonbPathError: ``path`` is malformed.
    """
    col = jsonb_column(column, owner="jsonb_eq")
    keys = split_path(path, owner="jsonb_eq")
    check_scalar(value, owner="jsonb_eq", hint=_CONTAINMENT_HINT)
    return _contains(col, nest(keys, value))


def jsonb_in(column: Any, path: PathLike, values: Iterable[JsonScalar]) -> ColumnElement[bool]:
    """The value at ``path`` is one of ``values``: ``col @> ANY(ARRAY[...]::jsonb[])``.

    Examples:
        >>> jsonb_in(Product.attrs, "color", ["red", "blue"])  # doctest: +SKIP

    One array parameter (so the statement is cached once whatever the number of values);
    a GIN index serves it with one bitmap scan per value. An empty ``values`` matches nothing.
    """
    col = jsonb_column(column, owner="jsonb_in")
    keys = split_path(path, owner="jsonb_in")
    if isinstance(values, (str, bytes, Mapping)):
        raise JsonbError(
            f"jsonb_in() takes a list of values, got {type(values).__name__} {values!r:.80}; "
            "wrap a single value in a list, or use jsonb_eq()."
        )
    docs = []
    for value in check_items("jsonb_in", "values", values):
        check_scalar(value, owner="jsonb_in", hint=_CONTAINMENT_HINT)
        docs.append(nest(keys, value))
    array = bindparam(None, docs, type_=ARRAY(JSONB))
    return col.op("@>", return_type=Boolean)(any_(array))


def jsonb_array_has(column: Any, path: PathLike, *values: JsonScalar) -> ColumnElement[bool]:
    """The array at ``path`` contains every one of ``values``: ``col @> '{"tags": [v]}'``.

    Examples:
        >>> jsonb_array_has(Product.attrs, "tags", "eco", "sale")  # doctest: +SKIP
    """
    col = jsonb_column(column, owner="jsonb_array_has")
    keys = split_path(path, owner="jsonb_array_has")
    if not values:
        raise JsonbError("jsonb_array_has() needs at least one value to look for.")
    for value in values:
        check_scalar(value, owner="jsonb_array_has", hint=_CONTAINMENT_HINT)
    return _contains(col, nest(keys, list(values)))


def jsonb_contains(column: Any, fragment: Mapping[str, Any]) -> ColumnElement[bool]:
    """The document contains ``fragment`` (JSONB containment, ``@>``), nested as it is.

    Examples:
        >>> jsonb_contains(Event.payload, {"user": {"plan": "pro"}})  # doctest: +SKIP
    """
    col = jsonb_column(column, owner="jsonb_contains")
    if not isinstance(fragment, Mapping):
        raise JsonbError(
            f"jsonb_contains() takes a dict (a sub-document), got {type(fragment).__name__}."
        )
    return _contains(col, dict(fragment))


def jsonb_path_eq(column: Any, path: PathLike, value: JsonScalar) -> ColumnElement[bool]:
    """jsonpath equality: ``col @@ '$."a"."b" == v'``, also matching inside arrays.

    Examples:
        >>> jsonb_path_eq(Order.doc, "lines.sku", "A-1")  # doctest: +SKIP

    Lax mode: an array met on the way (``{"lines": [{"sku": "A-1"}, ...]}``) or at the end
    (``{"sku": ["A-1", "B-2"]}``) is searched one level deep. Only ``==`` is indexable in
    jsonpath, which is why this is the only jsonpath form offered. The jsonpath text (keys and
    value JSON-quoted) is sent as one parameter.
    """
    col = jsonb_column(column, owner="jsonb_path_eq")
    keys = split_path(path, owner="jsonb_path_eq")
    check_scalar(value, owner="jsonb_path_eq", hint=_CONTAINMENT_HINT)
    query = f"{jsonpath_path(keys)} == {jsonpath_literal(value)}"
    return col.op("@@", return_type=Boolean)(cast(bindparam(None, query, type_=Text), JSONPATH))


def _top_key(key: object, owner: str) -> str:
    if not isinstance(key, str) or not key or "\x00" in key:
        raise JsonbPathError(
            f"{owner}() takes top-level key names (non-empty str without NUL), got {key!r:.80}."
        )
    return key


def _nested_hint(owner: str, keys: Sequence[str]) -> JsonbPathError:
    return JsonbPathError(
        f"{owner}(): {'.'.join(keys)!r} is a nested path; the ?, ?| and ?& operators see only "
        "top-level keys, and existence tests on nested keys (doc->'a' ? 'b', @? '$.a.b') "
        "cannot be served efficiently by a GIN index on the column. Test a value with "
        "jsonb_eq/jsonb_path_eq, or move the key to the top level."
    )


def jsonb_has_key(column: Any, key: str | Sequence[str]) -> ColumnElement[bool]:
    """The document has top-level ``key``: ``col ? 'key'`` (needs a ``jsonb_ops`` GIN index).

    Examples:
        >>> jsonb_has_key(Event.payload, "coupon")  # doctest: +SKIP

    A string is the key name verbatim (a dot is part of the name); a tuple of several keys is
    a nested path, which is refused (see the error) rather than silently scanning.
    """
    col = jsonb_column(column, owner="jsonb_has_key")
    if not isinstance(key, str):
        keys = split_path(key, owner="jsonb_has_key")
        if len(keys) > 1:
            raise _nested_hint("jsonb_has_key", keys)
        key = keys[0]
    return col.op("?", return_type=Boolean)(
        bindparam(None, _top_key(key, "jsonb_has_key"), type_=Text)
    )


def _keys_array(keys: Iterable[str], owner: str) -> ColumnElement[Any]:
    if isinstance(keys, str):
        raise JsonbError(f"{owner}() takes a list of keys, got the string {keys!r:.80}.")
    names = [_top_key(k, owner) for k in check_items(owner, "keys", keys)]
    if not names:
        raise JsonbError(f"{owner}() needs at least one key.")
    return cast(bindparam(None, names, type_=ARRAY(Text)), ARRAY(Text))


def jsonb_has_any_key(column: Any, keys: Iterable[str]) -> ColumnElement[bool]:
    """The document has at least one of the top-level ``keys``: ``col ?| keys``.

    Examples:
        >>> jsonb_has_any_key(Event.payload, ["coupon", "voucher"])  # doctest: +SKIP
    """
    col = jsonb_column(column, owner="jsonb_has_any_key")
    return col.op("?|", return_type=Boolean)(_keys_array(keys, "jsonb_has_any_key"))


def jsonb_has_all_keys(column: Any, keys: Iterable[str]) -> ColumnElement[bool]:
    """The document has every one of the top-level ``keys``: ``col ?& keys``.

    Examples:
        >>> jsonb_has_all_keys(Event.payload, ["user", "amount"])  # doctest: +SKIP
    """
    col = jsonb_column(column, owner="jsonb_has_all_keys")
    return col.op("?&", return_type=Boolean)(_keys_array(keys, "jsonb_has_all_keys"))
