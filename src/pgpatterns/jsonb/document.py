"""One declaration per JSONB column: its GIN operator class and its typed fields.

Examples:
    >>> from sqlalchemy import Column, Integer, MetaData, Table
    >>> from sqlalchemy.dialects.postgresql import JSONB
    >>> products = Table("products", MetaData(), Column("id", Integer),
    ...                  Column("attrs", JSONB))
    >>> attrs = JsonbDocument(products.c.attrs, ops="path",
    ...                       fields={"price": "numeric", "dims.width": "int"})
    >>> [index.name for index in attrs.indexes()]
    ['products_attrs_gin', 'products_attrs_price_idx', 'products_attrs_dims_width_idx']
    >>> from sqlalchemy.dialects import postgresql
    >>> print(attrs["price"].compile(dialect=postgresql.dialect(),
    ...                              compile_kwargs={"literal_binds": True}))
    CAST(products.attrs ->> 'price' AS NUMERIC)

Queries and indexes come from the same object, so they cannot drift: ``attrs["price"]`` is
the expression ``attrs.index("price")`` indexes, and a filter the declared operator class
cannot serve raises instead of scanning.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from sqlalchemy import Index
from sqlalchemy.sql.elements import ColumnElement

from pgpatterns.errors import JsonbError, JsonbOperatorClassError, JsonbPathError
from pgpatterns.jsonb import filters
from pgpatterns.jsonb._common import (
    JsonScalar,
    PathLike,
    describe_path,
    jsonb_column,
    split_path,
)
from pgpatterns.jsonb.indexes import (
    GIN_OPCLASSES,
    FieldType,
    check_type,
    extract,
    jsonb_gin,
    jsonb_path_index,
)

__all__ = ["JsonbDocument"]


class JsonbDocument:
    """A JSONB column with its GIN operator class and typed fields, declared once.

    Examples:
        >>> attrs = JsonbDocument(Product.attrs, fields={"price": "numeric"})  # doctest: +SKIP
        >>> stmt = (select(Product).where(attrs.eq("color", "red"), attrs["price"] < 20)
        ...         .order_by(attrs["price"]).limit(10))  # doctest: +SKIP

    Args:
        column: The JSONB column (a Table column or ORM attribute, after the class exists).
        ops: The GIN operator class: ``"path"`` (``jsonb_path_ops``: ``@>``, ``@@``) or
            ``"default"`` (``jsonb_ops``: also key existence ``?``, ``?|``, ``?&``).
        fields: Typed paths (``"dims.width"`` or ``("dims", "width")``) and their type
            (``"text"``, ``"int"``, ``"numeric"``, ``"timestamptz"``); each gets a btree
            expression index in :meth:`indexes`.

    Raises:
        JsonbError: The column is not JSONB, or a type or ``ops`` is unknown.
        JsonbPathError: A field path is malformed.
    """

    def __init__(
        self,
        column: Any,
        *,
        ops: Literal["path", "default"] = "path",
        fields: Mapping[str | Sequence[str], FieldType] | None = None,
    ) -> None:
        self.column = jsonb_column(column, owner="JsonbDocument")
        if not isinstance(ops, str) or ops not in GIN_OPCLASSES:
            raise JsonbOperatorClassError(
                f"JsonbDocument: unknown ops={ops!r}; use 'path' (jsonb_path_ops) or "
                "'default' (jsonb_ops, which also serves key existence)."
            )
        self.ops = ops
        if fields is not None and not isinstance(fields, Mapping):
            raise JsonbError(
                f"JsonbDocument: fields={fields!r:.80} is not accepted: pass a mapping "
                "{path: field type} such as {'price': 'numeric'}, or None."
            )
        self.fields: dict[tuple[str, ...], FieldType] = {
            split_path(path, owner="JsonbDocument"): check_type(type_, "JsonbDocument")
            for path, type_ in (fields or {}).items()
        }
        self._indexes: dict[tuple[str, ...] | None, Index] = {}

    def __repr__(self) -> str:
        fields = {describe_path(k): v for k, v in self.fields.items()}
        return f"JsonbDocument({self.column}, ops={self.ops!r}, fields={fields!r})"

    # -- typed fields -------------------------------------------------------------------
    def _field(self, path: PathLike) -> tuple[tuple[str, ...], FieldType]:
        keys = split_path(path, owner="JsonbDocument")
        if keys not in self.fields:
            declared = ", ".join(describe_path(k) for k in self.fields) or "none"
            raise JsonbPathError(
                f"{describe_path(keys)!r} is not a typed field of {self.column} (declared: "
                f"{declared}). Ranges and sorting need a declared type so that the query "
                "and its expression index match: add it to fields={...}."
            )
        return keys, self.fields[keys]

    def __getitem__(self, path: PathLike) -> ColumnElement[Any]:
        """The typed expression of a declared field, for ``where``, ``order_by``, ``select``."""
        keys, type_ = self._field(path)
        return extract(self.column, keys, type_)

    def field_type(self, path: PathLike) -> FieldType:
        """The declared type of ``path``."""
        return self._field(path)[1]

    # -- filters ------------------------------------------------------------------------
    def eq(self, path: PathLike, value: JsonScalar) -> ColumnElement[bool]:
        """:func:`~pgpatterns.jsonb.jsonb_eq` on this column."""
        return filters.jsonb_eq(self.column, path, value)

    def in_(self, path: PathLike, values: Iterable[JsonScalar]) -> ColumnElement[bool]:
        """:func:`~pgpatterns.jsonb.jsonb_in` on this column."""
        return filters.jsonb_in(self.column, path, values)

    def array_has(self, path: PathLike, *values: JsonScalar) -> ColumnElement[bool]:
        """:func:`~pgpatterns.jsonb.jsonb_array_has` on this column."""
        return filters.jsonb_array_has(self.column, path, *values)

    def contains(self, fragment: Mapping[str, Any]) -> ColumnElement[bool]:
        """:func:`~pgpatterns.jsonb.jsonb_contains` on this column."""
        return filters.jsonb_contains(self.column, fragment)

    def path_eq(self, path: PathLike, value: JsonScalar) -> ColumnElement[bool]:
        """:func:`~pgpatterns.jsonb.jsonb_path_eq` on this column."""
        return filters.jsonb_path_eq(self.column, path, value)

    def _require(self, operator: str, name: str) -> None:
        if operator not in filters.OPERATORS[self.ops]:
            raise JsonbOperatorClassError(
                f"{name}() uses the {operator} operator, which the {GIN_OPCLASSES[self.ops]} "
                f"GIN index declared for {self.column} cannot serve (every query would scan "
                "the table). Declare ops='default' (jsonb_ops, a larger index serving "
                "@>, ?, ?| and ?&), or test a value with eq()/in_() instead."
            )

    def has_key(self, key: str) -> ColumnElement[bool]:
        """:func:`~pgpatterns.jsonb.jsonb_has_key`; needs ``ops="default"``."""
        self._require("?", "has_key")
        return filters.jsonb_has_key(self.column, key)

    def has_any_key(self, keys: Iterable[str]) -> ColumnElement[bool]:
        """:func:`~pgpatterns.jsonb.jsonb_has_any_key`; needs ``ops="default"``."""
        self._require("?|", "has_any_key")
        return filters.jsonb_has_any_key(self.column, keys)

    def has_all_keys(self, keys: Iterable[str]) -> ColumnElement[bool]:
        """:func:`~pgpatterns.jsonb.jsonb_has_all_keys`; needs ``ops="default"``."""
        self._require("?&", "has_all_keys")
        return filters.jsonb_has_all_keys(self.column, keys)

    # -- indexes ------------------------------------------------------------------------
    def gin_index(self, *, name: str | None = None) -> Index:
        """The GIN index with the declared operator class (created once, then reused)."""
        if None not in self._indexes:
            self._indexes[None] = jsonb_gin(self.column, ops=self.ops, name=name)
        return self._indexes[None]

    def index(self, path: PathLike, *, name: str | None = None) -> Index:
        """The btree expression index serving ``self[path]`` (created once, then reused)."""
        keys, type_ = self._field(path)
        if keys not in self._indexes:
            self._indexes[keys] = jsonb_path_index(self.column, keys, type_, name=name)
        return self._indexes[keys]

    def indexes(self) -> list[Index]:
        """The GIN index and one expression index per typed field (attached to the table)."""
        return [self.gin_index(), *(self.index(keys) for keys in self.fields)]
