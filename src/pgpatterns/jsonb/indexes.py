"""Typed extraction from JSONB and the indexes that serve it, built from one definition.

Examples:
    >>> from sqlalchemy import Column, Integer, MetaData, Table
    >>> from sqlalchemy.dialects.postgresql import JSONB
    >>> from sqlalchemy.schema import CreateIndex
    >>> products = Table("products", MetaData(), Column("id", Integer),
    ...                  Column("attrs", JSONB))
    >>> ddl = str(CreateIndex(jsonb_path_index(products.c.attrs, "dims.width", "numeric")))
    >>> ddl.split(" ON ")[1]
    "products (CAST((attrs -> 'dims') ->> 'width' AS NUMERIC))"

:func:`as_numeric` (``as_int``, ``as_text``, ``as_timestamptz``) and :func:`jsonb_path_index`
call the same builder, so the query's expression is the index's expression, key for key and
cast for cast: the planner matches expression indexes by structure, and any difference
(``->`` chain versus ``#>>``, ``doc['a']`` subscript versus ``doc -> 'a'``, ``::int`` versus
``::bigint``) makes it scan the table instead.

Warning:
    - Keys are rendered as SQL literals, never as ``$1`` parameters: a generic plan (psycopg
      prepares a statement after 5 executions) would not match the index otherwise.
    - An index on ``CAST(doc ->> 'price' AS NUMERIC)`` makes every INSERT/UPDATE whose
      ``price`` is not numeric fail (pair it with :func:`jsonb_schema_check`).
    - ``text::timestamptz`` is not IMMUTABLE (it depends on TimeZone), so it cannot be
      indexed: ``as_timestamptz`` calls ``pgpatterns_jsonb_timestamptz(text)`` from
      :func:`jsonb_timestamptz_function`, which accepts only ISO 8601 timestamps with an
      explicit offset (``2026-01-31T12:00:00Z``) and is therefore immutable. Create it first.
    - Stored generated columns (:func:`jsonb_generated_column`) need PostgreSQL 12+.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeAlias

from sqlalchemy import BigInteger, Column, Computed, DateTime, Index, Numeric, Text, cast, func
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeDecorator, TypeEngine

from pgpatterns.ddl import Function
from pgpatterns.errors import JsonbError, JsonbOperatorClassError
from pgpatterns.jsonb._common import (
    PathLike,
    check_flag,
    check_name,
    jsonb_column,
    key_literal,
    split_path,
)

__all__ = [
    "GIN_OPCLASSES",
    "TIMESTAMPTZ_FUNCTION",
    "FieldType",
    "as_int",
    "as_numeric",
    "as_text",
    "as_timestamptz",
    "extract",
    "jsonb_generated_column",
    "jsonb_gin",
    "jsonb_path_index",
    "jsonb_timestamptz_function",
]

FieldType: TypeAlias = Literal["text", "int", "numeric", "timestamptz"]
"""What a typed path extracts: ``text``, ``int`` (bigint), ``numeric``, ``timestamptz``."""

GIN_OPCLASSES: Mapping[str, str] = {"path": "jsonb_path_ops", "default": "jsonb_ops"}
"""``ops=`` choices of :func:`jsonb_gin` and the PostgreSQL operator class each one means."""

TIMESTAMPTZ_FUNCTION = "pgpatterns_jsonb_timestamptz"
"""Name of the immutable ISO-8601 parser created by :func:`jsonb_timestamptz_function`."""

class _Numeric(TypeDecorator[Any]):
    """NUMERIC whose comparisons bind the other side as NUMERIC too.

    ``CAST(... AS NUMERIC) < 0.3`` would otherwise bind ``0.3`` as ``float8``, and PostgreSQL
    would compare ``CAST(...)::float8``, an expression no index has.
    """

    impl = Numeric
    cache_ok = True

    def coerce_compared_value(self, op: Any, value: Any) -> TypeEngine[Any]:
        return self

    def bind_expression(self, bindvalue: Any) -> Any:
        return cast(bindvalue, Numeric)  # psycopg would send a Python float as float8


class _Timestamptz(TypeDecorator[Any]):
    """timestamptz whose comparisons bind strings and datetimes as timestamptz."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def coerce_compared_value(self, op: Any, value: Any) -> TypeEngine[Any]:
        return self

    def bind_expression(self, bindvalue: Any) -> Any:
        return cast(bindvalue, DateTime(timezone=True))


_SQL_TYPES: Mapping[str, TypeEngine[Any]] = {
    "text": Text(),
    "int": BigInteger(),
    "numeric": _Numeric(),
    "timestamptz": _Timestamptz(),
}
_COLUMN_TYPES: Mapping[str, TypeEngine[Any]] = {
    **_SQL_TYPES,
    "numeric": Numeric(),
    "timestamptz": DateTime(timezone=True),
}
_ISO_8601 = r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d{1,6})?)?([Zz]|[+-]\d\d(:?\d\d)?)$"


def check_type(type_: object, owner: str) -> FieldType:
    if not isinstance(type_, str) or type_ not in _SQL_TYPES:
        raise JsonbError(
            f"{owner}(): unknown field type {type_!r}; use one of "
            f"{', '.join(map(repr, _SQL_TYPES))}."
        )
    return type_  # type: ignore[return-value]


def extract(column: Any, path: PathLike, type_: FieldType) -> ColumnElement[Any]:
    """The value at ``path`` as ``type_``: the one builder behind queries and indexes.

    Examples:
        >>> print(extract(products.c.attrs, "dims.width", "int").compile(  # doctest: +SKIP
        ...     dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
        CAST((products.attrs -> 'dims') ->> 'width' AS BIGINT)

    ``->`` down to the last key, ``->>`` for the last one, then the cast (or, for
    ``timestamptz``, the immutable parser). A missing path gives SQL ``NULL``.
    """
    col = jsonb_column(column, owner="extract")
    keys = split_path(path, owner="extract")
    type_ = check_type(type_, "extract")
    expr: ColumnElement[Any] = col
    for key in keys[:-1]:
        expr = expr.op("->", return_type=expr.type)(key_literal(key))
    expr = expr.op("->>", return_type=Text())(key_literal(keys[-1]))
    if type_ == "text":
        return expr
    if type_ == "timestamptz":
        return getattr(func, TIMESTAMPTZ_FUNCTION)(expr, type_=_SQL_TYPES[type_])  # type: ignore[no-any-return]
    return cast(expr, _SQL_TYPES[type_])


def as_text(column: Any, path: PathLike) -> ColumnElement[Any]:
    """``doc -> 'a' ->> 'b'``: the value at ``path`` as text (for equality, sorting, LIKE)."""
    return extract(column, path, "text")


def as_int(column: Any, path: PathLike) -> ColumnElement[Any]:
    """``CAST(doc ->> 'n' AS BIGINT)``: for integer ranges and sorting."""
    return extract(column, path, "int")


def as_numeric(column: Any, path: PathLike) -> ColumnElement[Any]:
    """``CAST(doc ->> 'price' AS NUMERIC)``: for numeric ranges and sorting (exact decimals)."""
    return extract(column, path, "numeric")


def as_timestamptz(column: Any, path: PathLike) -> ColumnElement[Any]:
    """``pgpatterns_jsonb_timestamptz(doc ->> 'at')``: needs :func:`jsonb_timestamptz_function`."""
    return extract(column, path, "timestamptz")


def _short(name: str) -> str:
    """An index name within PostgreSQL's 63 bytes (long ones end in a stable hash)."""
    if len(name.encode()) <= 63:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return name.encode()[:54].decode(errors="ignore") + "_" + digest


def _base_name(col: ColumnElement[Any]) -> str:
    table = getattr(col, "table", None)
    column_name = getattr(col, "name", None) or "doc"
    table_name = getattr(table, "name", None)
    return f"{table_name}_{column_name}" if table_name else str(column_name)


def jsonb_gin(
    column: Any, *, ops: Literal["path", "default"] = "path", name: str | None = None
) -> Index:
    """A GIN index on a JSONB column with the operator class chosen by ``ops``.

    Examples:
        >>> idx = jsonb_gin(Product.attrs)  # doctest: +SKIP
        >>> idx.name, idx.dialect_options["postgresql"]["ops"]  # doctest: +SKIP
        ('products_attrs_gin', {'attrs': 'jsonb_path_ops'})

    ``ops="path"`` (``jsonb_path_ops``, the default) is smaller and faster and serves ``@>``,
    ``@?`` and ``@@``: every filter here except key existence. ``ops="default"``
    (``jsonb_ops``) also serves ``?``, ``?|`` and ``?&``. The index attaches to the column's
    table (``metadata.create_all`` creates it; ``idx.create(conn)`` on an existing table).
    """
    col = jsonb_column(column, owner="jsonb_gin")
    check_name("jsonb_gin", "name", name)
    if not isinstance(ops, str) or ops not in GIN_OPCLASSES:
        raise JsonbOperatorClassError(
            f"jsonb_gin(): unknown ops={ops!r}; use 'path' (jsonb_path_ops: @>, @?, @@) or "
            "'default' (jsonb_ops: also ?, ?|, ?&)."
        )
    column_name = getattr(col, "name", None)
    if column_name is None:
        raise JsonbError("jsonb_gin() indexes a table column, not an expression.")
    return Index(
        name or _short(f"{_base_name(col)}_gin"),
        col,
        postgresql_using="gin",
        postgresql_ops={column_name: GIN_OPCLASSES[ops]},
    )


def jsonb_path_index(
    column: Any,
    path: PathLike,
    type_: FieldType,
    *,
    name: str | None = None,
    unique: bool = False,
) -> Index:
    """A btree index on :func:`extract` ``(column, path, type_)``: ranges, sorting, equality.

    Examples:
        >>> idx = jsonb_path_index(Product.attrs, "price", "numeric")  # doctest: +SKIP
        >>> stmt = (select(Product).where(as_numeric(Product.attrs, "price") < 20)
        ...         .order_by(as_numeric(Product.attrs, "price")).limit(10))  # doctest: +SKIP
    """
    col = jsonb_column(column, owner="jsonb_path_index")
    check_name("jsonb_path_index", "name", name)
    check_flag("jsonb_path_index", "unique", unique)
    keys = split_path(path, owner="jsonb_path_index")
    expr = extract(col, keys, check_type(type_, "jsonb_path_index"))
    default = _short(f"{_base_name(col)}_{'_'.join(keys)}_idx")
    return Index(name or default, expr, unique=unique)


def jsonb_generated_column(
    column: Any, path: PathLike, type_: FieldType, *, name: str, index: bool = True
) -> Column[Any]:
    """A stored generated column holding :func:`extract` ``(column, path, type_)``.

    Examples:
        >>> attrs = Column("attrs", JSONB)  # doctest: +SKIP
        >>> sku = jsonb_generated_column(attrs, "sku", "text", name="sku")  # doctest: +SKIP
        >>> products = Table("products", metadata, Column("id", Integer, primary_key=True),
        ...                  attrs, sku)  # doctest: +SKIP

    For hot fields: the value is computed once on write, has statistics of its own (better
    row estimates than an expression), and is indexed (``index=True``) like any column. Use
    it as a normal column in queries.
    """
    col = jsonb_column(column, owner="jsonb_generated_column")
    check_name("jsonb_generated_column", "name", name, optional=False)
    check_flag("jsonb_generated_column", "index", index)
    type_ = check_type(type_, "jsonb_generated_column")
    expr = extract(col, path, type_)
    return Column(name, _COLUMN_TYPES[type_], Computed(expr, persisted=True), index=index)


@dataclass(eq=False)
class _BeforeTablesFunction(Function):
    """A Function created before the tables: indexes and generated columns call it."""

    phase: ClassVar[str] = "before"


def jsonb_timestamptz_function(*, schema: str | None = None) -> Function:
    """The IMMUTABLE ``pgpatterns_jsonb_timestamptz(text)`` that :func:`as_timestamptz` calls.

    Examples:
        >>> from pgpatterns.ddl import attach
        >>> attach(metadata, jsonb_timestamptz_function())  # doctest: +SKIP

    Attached to a MetaData it is created before the tables (their indexes use it). It
    accepts ISO 8601 with an explicit offset only (``2026-01-31T12:00:00+01:00``,
    ``...Z``); anything else is an error rather than a TimeZone-dependent guess. Without
    ``schema`` it is created in, and resolved through, the ``search_path``.
    """
    body = (
        "SELECT CASE WHEN value IS NULL THEN NULL"
        f" WHEN value ~ '{_ISO_8601}' THEN value::timestamptz"
        " ELSE CAST('pgpatterns_jsonb_timestamptz: expected an ISO 8601 timestamp with an"
        " explicit offset, got ' || value AS timestamptz) END"
    )
    check_name("jsonb_timestamptz_function", "schema", schema)
    return _BeforeTablesFunction(
        TIMESTAMPTZ_FUNCTION,
        schema=schema,
        args=[("value", "text")],
        returns="timestamptz",
        body=body,
        volatility="immutable",
    )
