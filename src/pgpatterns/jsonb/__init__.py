"""JSONB queries that a GIN or expression index can serve, with the indexes and schema CHECKs.

Examples:
    >>> from pgpatterns.jsonb import JsonbDocument, jsonb_eq, as_numeric  # doctest: +SKIP
    >>> attrs = JsonbDocument(Product.attrs, fields={"price": "numeric"})  # doctest: +SKIP
    >>> stmt = (select(Product).where(attrs.eq("brand", "acme"), attrs["price"] < 20)
    ...         .order_by(attrs["price"]).limit(20))  # doctest: +SKIP

Which index serves which query shape (and which forms no index serves) is the table at the
end of the recipe ``docs/recipes/jsonb.md`` ("Query shape → index"): the one list, kept next
to the executed examples. In short: filters compile to ``@>``, ``?`` or ``@@`` for a GIN
index (:func:`jsonb_gin`), typed fields to the exact expression of a btree index
(:func:`jsonb_path_index`).

Modules: :mod:`~pgpatterns.jsonb.filters` (the filter vocabulary),
:mod:`~pgpatterns.jsonb.indexes` (typed extraction and index factories),
:mod:`~pgpatterns.jsonb.document` (:class:`JsonbDocument`, one declaration for both),
:mod:`~pgpatterns.jsonb.schema` (:func:`jsonb_schema_check`) and
:mod:`~pgpatterns.jsonb.guard` (:func:`assert_indexable`).

Warning:
    PostgreSQL 12+ (jsonpath, stored generated columns). ``jsonb_path_ops`` cannot serve key
    existence (``?``): :class:`JsonbDocument` refuses such filters instead of scanning.
"""

from __future__ import annotations

from pgpatterns.jsonb.document import JsonbDocument
from pgpatterns.jsonb.filters import (
    OPERATORS,
    jsonb_array_has,
    jsonb_contains,
    jsonb_eq,
    jsonb_has_all_keys,
    jsonb_has_any_key,
    jsonb_has_key,
    jsonb_in,
    jsonb_path_eq,
)
from pgpatterns.jsonb.guard import (
    IndexReport,
    assert_indexable,
    assert_indexable_async,
    index_report,
    index_report_async,
)
from pgpatterns.jsonb.indexes import (
    GIN_OPCLASSES,
    TIMESTAMPTZ_FUNCTION,
    FieldType,
    as_int,
    as_numeric,
    as_text,
    as_timestamptz,
    extract,
    jsonb_generated_column,
    jsonb_gin,
    jsonb_path_index,
    jsonb_timestamptz_function,
)
from pgpatterns.jsonb.schema import SUPPORTED_KEYWORDS, jsonb_schema_check, schema_errors

__all__ = [
    "GIN_OPCLASSES",
    "OPERATORS",
    "SUPPORTED_KEYWORDS",
    "TIMESTAMPTZ_FUNCTION",
    "FieldType",
    "IndexReport",
    "JsonbDocument",
    "as_int",
    "as_numeric",
    "as_text",
    "as_timestamptz",
    "assert_indexable",
    "assert_indexable_async",
    "extract",
    "index_report",
    "index_report_async",
    "jsonb_array_has",
    "jsonb_contains",
    "jsonb_eq",
    "jsonb_generated_column",
    "jsonb_gin",
    "jsonb_has_all_keys",
    "jsonb_has_any_key",
    "jsonb_has_key",
    "jsonb_in",
    "jsonb_path_eq",
    "jsonb_path_index",
    "jsonb_schema_check",
    "jsonb_timestamptz_function",
    "schema_errors",
]
