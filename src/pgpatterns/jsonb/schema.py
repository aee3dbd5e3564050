"""A documented subset of JSON Schema compiled into a CHECK constraint (no extension needed).

Examples:
    >>> from sqlalchemy import Column, Integer, MetaData, Table
    >>> from sqlalchemy.dialects.postgresql import JSONB
    >>> events = Table("events", MetaData(), Column("id", Integer), Column("payload", JSONB))
    >>> check = jsonb_schema_check(events.c.payload, {
    ...     "type": "object", "required": ["kind"],
    ...     "properties": {"kind": {"enum": ["signup", "purchase"]}}})
    >>> check.name
    'events_payload_schema'

Supported keywords (anything else raises :class:`~pgpatterns.errors.JsonbSchemaError` listing
the offending keywords and where they are):

``type`` (a name or a list; ``integer`` accepts ``1.0`` as JSON Schema does), ``enum``,
``const``, ``required``, ``properties`` (nested schemas), ``additionalProperties: false``,
``minimum``, ``maximum``, ``exclusiveMinimum``, ``exclusiveMaximum`` (numbers), ``minLength``,
``maxLength`` (strings, in characters), ``items`` whose schema only has ``type``,
``minItems``, ``maxItems``, and the boolean schemas ``true``/``false``. Annotations
(``title``, ``description``, ``$schema``, ``$id``, ``$comment``, ``default``, ``examples``)
are ignored. As in JSON Schema, a keyword only constrains values of its type
(``minimum`` ignores strings); a SQL ``NULL`` column passes (declare it ``nullable=False``).

Warning:
    :mod:`pg_jsonschema` validates the full standard but is missing from most managed
    servers; this CHECK uses only built-in functions (``jsonb_typeof``, ``?``, jsonpath for
    ``items``; PostgreSQL 12+). A CHECK is evaluated on every INSERT and UPDATE of the row:
    keep the schema to what must hold. Use :func:`schema_errors` to turn a violation into
    :class:`~pgpatterns.errors.JsonbSchemaViolationError`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Integer,
    Numeric,
    Text,
    and_,
    case,
    cast,
    false,
    func,
    literal,
    or_,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, JSONPATH
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.sql.elements import ColumnElement

from pgpatterns.errors import JsonbSchemaError, JsonbSchemaViolationError
from pgpatterns.jsonb._common import check_name, jsonb_column, jsonpath_literal

__all__ = ["SUPPORTED_KEYWORDS", "jsonb_schema_check", "schema_errors"]

_ANNOTATIONS = frozenset(
    {"title", "description", "$schema", "$id", "$comment", "default", "examples"}
)
SUPPORTED_KEYWORDS = frozenset(
    {
        "type", "enum", "const", "required", "properties", "additionalProperties",
        "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength",
        "maxLength", "items", "minItems", "maxItems",
    }
) | _ANNOTATIONS
"""Every keyword :func:`jsonb_schema_check` accepts (annotations are accepted and ignored)."""

_TYPES = ("object", "array", "string", "number", "integer", "boolean", "null")
_PATH_TYPES = {"object": "object", "array": "array", "string": "string", "number": "number",
               "boolean": "boolean", "null": "null"}


def _problems(schema: object, where: str, out: list[str]) -> None:
    """Collect every unsupported keyword or malformed value, with where it is."""
    if isinstance(schema, bool):
        return
    if not isinstance(schema, Mapping):
        out.append(f"{where}: a schema must be an object or true/false, got {schema!r}")
        return
    for key, value in schema.items():
        if key not in SUPPORTED_KEYWORDS:
            out.append(f"{where}: unsupported keyword {key!r}")
        elif key == "properties":
            if not isinstance(value, Mapping):
                out.append(f"{where}.properties: must be an object")
                continue
            for name, sub in value.items():
                _problems(sub, f"{where}.properties.{name}", out)
        elif key == "items":
            extra = sorted(set(value) - {"type"} - _ANNOTATIONS) if isinstance(
                value, Mapping) else None
            if extra is None:
                out.append(f"{where}.items: must be a schema object with 'type'")
            elif extra:
                out.append(f"{where}.items: only 'type' is supported inside items, got {extra}")
            else:
                _check_types(value.get("type"), f"{where}.items.type", out)
        elif key == "type":
            _check_types(value, f"{where}.type", out)
        elif key == "additionalProperties" and value is not False:
            out.append(f"{where}.additionalProperties: only false is supported, got {value!r}")
        elif key == "required" and not (
            isinstance(value, Sequence) and not isinstance(value, str)
            and all(isinstance(v, str) for v in value)
        ):
            out.append(f"{where}.required: must be a list of property names")
        elif key == "enum" and (isinstance(value, (str, Mapping)) or not isinstance(
                value, Sequence)):
            out.append(f"{where}.enum: must be a list of values")
        elif key in {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"} and (
            isinstance(value, bool) or not isinstance(value, (int, float))
        ):
            out.append(f"{where}.{key}: must be a number")
        elif key in {"minLength", "maxLength", "minItems", "maxItems"} and (
            isinstance(value, bool) or not isinstance(value, int) or value < 0
        ):
            out.append(f"{where}.{key}: must be a non-negative integer")


def _check_types(value: object, where: str, out: list[str]) -> None:
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names or any(n not in _TYPES for n in names):
        out.append(f"{where}: must be one of {list(_TYPES)} or a list of them, got {value!r}")


def _jsonb(value: Any) -> ColumnElement[Any]:
    # CHECK constraints render their values inline; JSONB has no literal renderer, so the
    # JSON text goes through the String literal quoting and is cast.
    return cast(literal(json.dumps(value), Text), JSONB)


def _typeof(x: ColumnElement[Any]) -> ColumnElement[Any]:
    return func.jsonb_typeof(x)


def _is_type(x: ColumnElement[Any], name: str) -> ColumnElement[bool]:
    if name == "integer":
        whole = cast(x, Numeric) == func.trunc(cast(x, Numeric))
        return case((_typeof(x) == "number", whole), else_=false())
    return _typeof(x) == name


def _when(x: ColumnElement[Any], kind: str, test: ColumnElement[bool]) -> ColumnElement[bool]:
    """``test`` for values of ``kind``; other values pass (CASE keeps the order safe)."""
    return case((_typeof(x) == kind, test), else_=true())


def _compile(schema: Any, x: ColumnElement[Any]) -> ColumnElement[bool]:
    if schema is True:
        return true()
    if schema is False:
        return false()
    parts: list[ColumnElement[bool]] = []
    if "type" in schema:
        names = [schema["type"]] if isinstance(schema["type"], str) else schema["type"]
        parts.append(or_(*(_is_type(x, n) for n in names)))
    if "enum" in schema:
        parts.append(x.in_([_jsonb(v) for v in schema["enum"]]) if schema["enum"] else false())
    if "const" in schema:
        parts.append(x == _jsonb(schema["const"]))
    number = cast(x, Numeric)
    for key, op in (("minimum", "__ge__"), ("maximum", "__le__"),
                    ("exclusiveMinimum", "__gt__"), ("exclusiveMaximum", "__lt__")):
        if key in schema:
            parts.append(_when(x, "number", getattr(number, op)(literal(schema[key], Numeric))))
    text_value = func.length(x.op("#>>", return_type=Text())(
        cast(literal([], ARRAY(Text)), ARRAY(Text))))
    if "minLength" in schema:
        parts.append(_when(x, "string", text_value >= literal(schema["minLength"], Integer)))
    if "maxLength" in schema:
        parts.append(_when(x, "string", text_value <= literal(schema["maxLength"], Integer)))
    length = func.jsonb_array_length(x)
    if "minItems" in schema:
        parts.append(_when(x, "array", length >= literal(schema["minItems"], Integer)))
    if "maxItems" in schema:
        parts.append(_when(x, "array", length <= literal(schema["maxItems"], Integer)))
    if "items" in schema and "type" in schema["items"]:
        parts.append(_when(x, "array", ~_items_have_other_type(x, schema["items"]["type"])))
    for name in schema.get("required", ()):
        parts.append(_when(x, "object", x.op("?", return_type=Boolean)(literal(name, Text))))
    properties: Mapping[str, Any] = schema.get("properties", {})
    for name, sub in properties.items():
        value = x.op("->", return_type=JSONB())(literal(name, Text))
        present = and_(_typeof(x) == "object", x.op("?", return_type=Boolean)(literal(name, Text)))
        parts.append(case((present, _compile(sub, value)), else_=true()))
    if schema.get("additionalProperties") is False:
        known = cast(literal(sorted(properties), ARRAY(Text)), ARRAY(Text))
        parts.append(_when(x, "object", x.op("-", return_type=JSONB())(known) == _jsonb({})))
    return and_(*parts) if parts else true()


def _items_have_other_type(x: ColumnElement[Any], type_: Any) -> ColumnElement[bool]:
    """Whether some element is not of ``type_``: one immutable jsonpath test, no subquery
    (CHECK constraints cannot hold subqueries)."""
    names = [type_] if isinstance(type_, str) else list(type_)
    tests = []
    for name in names:
        if name == "integer":
            tests.append('(@.type() == "number" && @ == @.floor())')
        else:
            tests.append(f"@.type() == {jsonpath_literal(_PATH_TYPES[name])}")
    path = f"strict $[*] ? (!({' || '.join(tests)}))"
    return func.jsonb_path_exists(x, cast(literal(path, Text), JSONPATH), type_=Boolean)


def jsonb_schema_check(
    column: Any, schema: Mapping[str, Any] | bool, *, name: str | None = None
) -> CheckConstraint:
    """A CHECK constraint accepting exactly the documents ``schema`` accepts (see the subset).

    Examples:
        >>> Event.__table__.append_constraint(  # doctest: +SKIP
        ...     jsonb_schema_check(Event.payload, {"type": "object", "required": ["kind"]}))

    Args:
        column: The JSONB column (a Table column or ORM attribute).
        schema: A JSON Schema using only the supported keywords.
        name: The constraint name; default ``<table>_<column>_schema``.

    Raises:
        JsonbSchemaError: The schema uses keywords outside the subset (all are listed) or
            malformed values; nothing is created.
    """
    col = jsonb_column(column, owner="jsonb_schema_check")
    problems: list[str] = []
    _problems(schema, "schema", problems)
    if problems:
        raise JsonbSchemaError(
            "jsonb_schema_check() cannot compile this JSON Schema:\n  - "
            + "\n  - ".join(problems)
            + f"\nSupported keywords: {', '.join(sorted(SUPPORTED_KEYWORDS - _ANNOTATIONS))}. "
            "Drop or rewrite the others (or validate them in the application)."
        )
    check_name("jsonb_schema_check", "name", name)
    table = getattr(getattr(col, "table", None), "name", None)
    default = f"{table}_{getattr(col, 'name', 'doc')}_schema" if table else None
    return CheckConstraint(_compile(schema, col), name=name or default)


@contextmanager
def schema_errors(*checks: CheckConstraint | str) -> Iterator[None]:
    """Turn a violation of these CHECKs into :class:`JsonbSchemaViolationError`.

    Examples:
        >>> with schema_errors(check):  # doctest: +SKIP
        ...     session.flush()  # or: await async_session.flush()

    Other errors pass through unchanged; the original is kept as ``__cause__``. The
    transaction is aborted as after any failed statement: roll back (or use a savepoint).
    """
    from pgpatterns.translate import guard

    names = {c if isinstance(c, str) else c.name for c in checks}

    def rule(exc: DBAPIError) -> JsonbSchemaViolationError | None:
        diag = getattr(exc.orig, "diag", None)
        constraint = getattr(diag, "constraint_name", None)
        if not isinstance(exc, IntegrityError) or constraint is None or constraint not in names:
            return None
        return JsonbSchemaViolationError(
            f"a document was rejected by the JSON-schema CHECK {constraint!r} on "
            f"{getattr(diag, 'table_name', '?')!r}: it does not match the schema. Validate "
            "the document against the schema before writing (the jsonschema package does)."
        )

    with guard(rule):
        yield
