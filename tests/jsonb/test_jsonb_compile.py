"""pgpatterns.jsonb and pgpatterns.arrays: SQL shapes (compile only) and bad input."""

from __future__ import annotations

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, Text, select, true
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import ARRAY, JSON, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.schema import CreateIndex, CreateTable

from pgpatterns.arrays import (
    append_stmt,
    array_gin,
    array_has,
    array_has_all,
    array_has_any,
    remove_stmt,
)
from pgpatterns.errors import (
    ArrayError,
    JsonbError,
    JsonbOperatorClassError,
    JsonbPathError,
    JsonbSchemaError,
    PatternError,
)
from pgpatterns.jsonb import (
    JsonbDocument,
    as_int,
    as_numeric,
    as_text,
    as_timestamptz,
    jsonb_array_has,
    jsonb_contains,
    jsonb_eq,
    jsonb_generated_column,
    jsonb_gin,
    jsonb_has_all_keys,
    jsonb_has_any_key,
    jsonb_has_key,
    jsonb_in,
    jsonb_path_eq,
    jsonb_path_index,
    jsonb_schema_check,
    jsonb_timestamptz_function,
)

DIALECT = postgresql.dialect()
metadata = MetaData()
docs = Table(
    "docs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("doc", JSONB),
    Column("plain", JSON),
    Column("tags", ARRAY(Text)),
    Column("vtags", ARRAY(String)),
    Column("nums", ARRAY(Integer)),
)


class Base(DeclarativeBase):
    pass


class Product(Base):
    __tablename__ = "compile_products"
    id: Mapped[int] = mapped_column(primary_key=True)
    attrs: Mapped[dict[str, object]] = mapped_column(JSONB)
    tags: Mapped[list[str]] = mapped_column(ARRAY(Text))


def sql(element: object, *, literal: bool = False) -> str:
    kw = {"literal_binds": True} if literal else {"render_postcompile": True}
    return str(element.compile(dialect=DIALECT, compile_kwargs=kw))  # type: ignore[attr-defined]


def params(element: object) -> list[object]:
    return list(element.compile(dialect=DIALECT).params.values())  # type: ignore[attr-defined]


def test_containment_filters_render_at_operators() -> None:
    assert sql(jsonb_eq(docs.c.doc, "dims.unit", "cm")) == "docs.doc @> %(param_1)s::JSONB"
    assert params(jsonb_eq(docs.c.doc, "dims.unit", "cm")) == [{"dims": {"unit": "cm"}}]
    assert params(jsonb_eq(docs.c.doc, ("a.b", "c"), None)) == [{"a.b": {"c": None}}]
    assert sql(jsonb_in(docs.c.doc, "color", ["red", 1])) == (
        "docs.doc @> ANY (%(param_1)s::JSONB[])"
    )
    assert params(jsonb_in(docs.c.doc, "color", ["red", 1])) == [[{"color": "red"}, {"color": 1}]]
    assert params(jsonb_array_has(docs.c.doc, "tags", "a", 2)) == [{"tags": ["a", 2]}]
    assert params(jsonb_contains(docs.c.doc, {"a": [1]})) == [{"a": [1]}]


def test_jsonpath_and_existence_filters() -> None:
    expr = jsonb_path_eq(docs.c.doc, ("lines", 'we"ird'), 'x"y')
    assert sql(expr) == "docs.doc @@ CAST(%(param_1)s::VARCHAR AS JSONPATH)"
    assert params(expr) == ['$."lines"."we\\"ird" == "x\\"y"']
    assert params(jsonb_path_eq(docs.c.doc, "a", True)) == ['$."a" == true']
    assert params(jsonb_path_eq(docs.c.doc, "a", None)) == ['$."a" == null']
    assert sql(jsonb_has_key(docs.c.doc, "k.1")) == "docs.doc ? %(param_1)s::VARCHAR"
    assert sql(jsonb_has_any_key(docs.c.doc, ["a", "b"])) == (
        "docs.doc ?| CAST(%(param_1)s::TEXT[] AS TEXT[])"
    )
    assert " ?& " in sql(jsonb_has_all_keys(docs.c.doc, ["a"]))


def test_typed_extraction_renders_literal_keys_shared_with_the_index() -> None:
    query = sql(select(docs.c.id).where(as_numeric(docs.c.doc, "dims.width") > 3))
    assert "CAST((docs.doc -> 'dims') ->> 'width' AS NUMERIC) >" in query
    index = jsonb_path_index(docs.c.doc, "dims.width", "numeric")
    assert str(CreateIndex(index).compile(dialect=DIALECT)) == (
        "CREATE INDEX docs_doc_dims_width_idx ON docs "
        "(CAST((doc -> 'dims') ->> 'width' AS NUMERIC))"
    )
    docs.indexes.discard(index)
    assert sql(as_int(docs.c.doc, "n")) == "CAST(docs.doc ->> 'n' AS BIGINT)"
    assert sql(as_text(docs.c.doc, ("it's",))) == "docs.doc ->> 'it''s'"
    assert sql(as_timestamptz(docs.c.doc, "at")) == (
        "pgpatterns_jsonb_timestamptz(docs.doc ->> 'at')"
    )


def test_gin_index_opclasses_and_orm_attributes() -> None:
    index = jsonb_gin(Product.attrs)
    assert str(CreateIndex(index).compile(dialect=DIALECT)) == (
        "CREATE INDEX compile_products_attrs_gin ON compile_products "
        "USING gin (attrs jsonb_path_ops)"
    )
    other = jsonb_gin(Product.attrs, ops="default", name="p_attrs_ops")
    assert "USING gin (attrs jsonb_ops)" in str(CreateIndex(other).compile(dialect=DIALECT))
    assert str(CreateIndex(array_gin(Product.tags)).compile(dialect=DIALECT)) == (
        "CREATE INDEX compile_products_tags_gin ON compile_products USING gin (tags)"
    )


def test_generated_column_and_timestamptz_function() -> None:
    meta = MetaData()
    attrs = Column("attrs", JSONB)
    table = Table("gen", meta, Column("id", Integer), attrs,
                  jsonb_generated_column(attrs, "sku", "text", name="sku"))
    ddl = str(CreateTable(table).compile(dialect=DIALECT))
    assert "sku TEXT GENERATED ALWAYS AS (attrs ->> 'sku') STORED" in ddl
    fn = jsonb_timestamptz_function()
    assert fn.phase == "before"
    assert fn.sql().startswith("CREATE FUNCTION pgpatterns_jsonb_timestamptz(value text) "
                               "RETURNS timestamptz LANGUAGE sql IMMUTABLE")


def test_document_declaration_checks_paths_and_opclass() -> None:
    meta = MetaData()
    table = Table("declared", meta, Column("id", Integer), Column("attrs", JSONB))
    attrs = JsonbDocument(table.c.attrs, fields={"price": "numeric", ("a.b", "c"): "int"})
    assert [i.name for i in attrs.indexes()] == [
        "declared_attrs_gin", "declared_attrs_price_idx", "declared_attrs_a.b_c_idx"]
    assert attrs.indexes()[0] is attrs.gin_index()  # created once
    assert len(table.indexes) == 3
    assert sql(attrs[("a.b", "c")]) == "CAST((declared.attrs -> 'a.b') ->> 'c' AS BIGINT)"
    with pytest.raises(JsonbPathError, match=r"'weight' is not a typed field .*declared: price"):
        attrs["weight"]
    with pytest.raises(JsonbOperatorClassError, match=r"jsonb_path_ops .*ops='default'"):
        attrs.has_key("price")
    keyed = JsonbDocument(table.c.attrs, ops="default")
    assert " ? " in sql(keyed.has_key("price"))


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: jsonb_eq(docs.c.plain, "a", 1), JsonbError, "is json, which has no"),
        (lambda: jsonb_eq(docs.c.tags, "a", 1), JsonbError, "not JSONB"),
        (lambda: jsonb_eq(docs.c.doc, "a..b", 1), JsonbPathError, "non-empty string"),
        (lambda: jsonb_eq(docs.c.doc, "", 1), JsonbPathError, "non-empty string"),
        (lambda: jsonb_eq(docs.c.doc, 3, 1), JsonbPathError, "a path is a string"),
        (lambda: jsonb_eq(docs.c.doc, "a", {"b": 1}), JsonbError, "jsonb_contains"),
        (lambda: jsonb_eq(docs.c.doc, "a", float("nan")), JsonbError, "NaN"),
        (lambda: jsonb_in(docs.c.doc, "a", "red"), JsonbError, "list of values"),
        (lambda: jsonb_array_has(docs.c.doc, "a"), JsonbError, "at least one"),
        (lambda: jsonb_has_key(docs.c.doc, ("a", "b")), JsonbPathError, "nested path"),
        (lambda: jsonb_has_any_key(docs.c.doc, "ab"), JsonbError, "list of keys"),
        (lambda: jsonb_gin(docs.c.doc, ops="hash"), JsonbOperatorClassError, "unknown ops"),  # type: ignore[arg-type]
        (lambda: jsonb_path_index(docs.c.doc, "a", "float"), JsonbError, "unknown field type"),  # type: ignore[arg-type]
        (lambda: jsonb_eq("doc", "a", 1), JsonbError, "needs a column"),
        (lambda: array_has(docs.c.doc, "x"), ArrayError, "not an array"),
        (lambda: array_has(docs.c.tags, None), ArrayError, "None cannot"),
        (lambda: array_has(docs.c.tags, ["x"]), ArrayError, "array_has_all"),
        (lambda: array_has(docs.c.nums, "3"), ArrayError, "holds INTEGER elements"),
        (lambda: array_has_all(docs.c.tags, "xy"), ArrayError, "list of elements"),
        (lambda: append_stmt(docs.c.tags, "x", where=None), ArrayError, "needs where="),
    ],
)
def test_bad_input_raises_before_sql(call: object, error: type[PatternError], match: str) -> None:
    with pytest.raises(error, match=match):
        call()  # type: ignore[operator]


def test_array_filters_cast_to_the_column_type() -> None:
    assert sql(array_has(docs.c.vtags, "x")) == "docs.vtags @> %(param_1)s::VARCHAR[]"
    assert sql(array_has(docs.c.vtags, "x", array_type=ARRAY(Text))) == (
        "docs.vtags @> %(param_1)s::TEXT[]"
    )
    assert sql(array_has_any(docs.c.nums, [1, 2])) == "docs.nums && %(param_1)s::INTEGER[]"
    assert params(array_has_all(docs.c.tags, ("a", "b"))) == [["a", "b"]]


def test_append_and_remove_are_one_update() -> None:
    stmt = append_stmt(docs.c.tags, "x", where=docs.c.id == 1)
    assert sql(stmt) == (
        "UPDATE docs SET tags=CASE WHEN (docs.tags @> %(param_1)s::TEXT[]) THEN docs.tags "
        "ELSE array_cat(docs.tags, %(param_1)s::TEXT[]) END WHERE docs.id = %(id_1)s::INTEGER"
    )
    plain = append_stmt(Product.tags, "x", where=true(), as_set=False)
    assert "SET tags=array_cat(compile_products.tags" in sql(plain)
    assert "array_remove(docs.tags, %(param_1)s::VARCHAR)" in sql(
        remove_stmt(docs.c.tags, "x", where=docs.c.id == 1))


def test_schema_check_lists_every_unsupported_keyword() -> None:
    schema = {
        "type": "object",
        "patternProperties": {"^x": {}},
        "properties": {"a": {"type": "string", "format": "email"},
                       "b": {"items": {"type": "string", "minLength": 1}}},
        "additionalProperties": {"type": "string"},
    }
    with pytest.raises(JsonbSchemaError) as info:
        jsonb_schema_check(docs.c.doc, schema)
    message = str(info.value)
    assert "schema: unsupported keyword 'patternProperties'" in message
    assert "schema.properties.a: unsupported keyword 'format'" in message
    assert "only 'type' is supported inside items" in message
    assert "additionalProperties: only false is supported" in message
    with pytest.raises(JsonbSchemaError, match="must be one of"):
        jsonb_schema_check(docs.c.doc, {"type": "float"})
    check = jsonb_schema_check(docs.c.doc, {"type": "object", "required": ["a"]})
    assert check.name == "docs_doc_schema"
