"""What PostgreSQL can index with which access method: type families and operator classes.

Examples:
    >>> from sqlalchemy.dialects.postgresql import JSONB
    >>> family(JSONB())
    'jsonb'
    >>> sorted(allowed("gin", "jsonb"))
    ['jsonb_ops', 'jsonb_path_ops']

A static table (built in to PostgreSQL, plus pg_trgm, btree_gist and ltree), so a wrong
operator class fails when the index is declared, not at ``CREATE INDEX`` time (or never, as
with a mistyped ``postgresql_ops`` key that SQLAlchemy ignores).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.types import TypeEngine

from pgpatterns._tables import type_name

__all__ = ["BRIN_TYPES", "DEFAULT", "allowed", "family", "has_default"]

DEFAULT = "<default>"

# short names PostgreSQL uses in operator class names (timestamptz_minmax_ops, ...)
BRIN_TYPES: Mapping[str, str] = {
    "smallint": "int2",
    "integer": "int4",
    "bigint": "int8",
    "numeric": "numeric",
    "real": "float4",
    "double precision": "float8",
    "date": "date",
    "timestamp without time zone": "timestamp",
    "timestamp with time zone": "timestamptz",
    "uuid": "uuid",
    "text": "text",
    "time without time zone": "time",
    "interval": "interval",
}

_RANGES = ("tstzrange", "tsrange", "daterange", "int4range", "int8range", "numrange")
_TEXT = ("text", "varchar", "character varying", "char", "character")
_SCALAR = (*BRIN_TYPES, "boolean")


def family(type_: TypeEngine[Any]) -> str:
    """A coarse type family: jsonb, json, array, tsvector, text, range, ltree, geometry,
    vector, scalar:<name> or other:<name>."""
    name = type_name(type_).lower()
    base = name.split("(")[0].strip()
    if name.endswith("[]"):
        return "array"
    if base in ("jsonb", "json", "tsvector", "ltree"):
        return base
    if base in ("geometry", "geography"):
        return "geometry"
    if base in ("vector", "halfvec", "sparsevec"):
        return "vector"
    if base in _TEXT:
        return "text"
    if base in _RANGES or base.endswith("multirange"):
        return "range"
    if base in _SCALAR:
        return f"scalar:{base}"
    return f"other:{base}"


# (method, family) -> operator classes; DEFAULT in the set = usable without ops
_TABLE: dict[tuple[str, str], frozenset[str]] = {
    ("gin", "jsonb"): frozenset({DEFAULT, "jsonb_ops", "jsonb_path_ops"}),
    ("gin", "array"): frozenset({DEFAULT, "array_ops"}),
    ("gin", "tsvector"): frozenset({DEFAULT, "tsvector_ops"}),
    ("gin", "text"): frozenset({"gin_trgm_ops"}),
    ("gist", "range"): frozenset({DEFAULT, "range_ops", "multirange_ops"}),
    ("gist", "tsvector"): frozenset({DEFAULT, "tsvector_ops"}),
    ("gist", "text"): frozenset({DEFAULT, "gist_trgm_ops", "gist_text_ops"}),
    ("gist", "ltree"): frozenset({DEFAULT, "gist_ltree_ops"}),
    ("gist", "geometry"): frozenset(
        {DEFAULT, "gist_geometry_ops_2d", "gist_geometry_ops_nd", "gist_geography_ops"}
    ),
    ("brin", "range"): frozenset({DEFAULT, "range_inclusion_ops"}),
    ("btree", "text"): frozenset(
        {DEFAULT, "text_pattern_ops", "varchar_pattern_ops", "bpchar_pattern_ops", "text_ops"}
    ),
}


def allowed(method: str, fam: str) -> frozenset[str]:
    """Operator classes ``method`` has for ``fam`` (``DEFAULT`` when none is needed).

    An empty set means the method cannot index the family at all; ``None`` is never returned.
    """
    if (method, fam) in _TABLE:
        return _TABLE[(method, fam)]
    if fam.startswith("scalar:"):
        short = BRIN_TYPES.get(fam.split(":", 1)[1])
        if method == "btree":
            return frozenset({DEFAULT, f"{short}_ops"} if short else {DEFAULT})
        if method == "brin" and short:
            kinds = ("minmax", "minmax_multi", "bloom")
            return frozenset({DEFAULT, *(f"{short}_{k}_ops" for k in kinds)})
        if method == "gist" and short:  # btree_gist
            return frozenset({DEFAULT, f"gist_{short}_ops"})
    if method == "btree" and fam in ("jsonb", "array", "range", "ltree", "tsvector"):
        return frozenset({DEFAULT})
    return frozenset()


def has_default(method: str, fam: str) -> bool:
    return DEFAULT in allowed(method, fam)
