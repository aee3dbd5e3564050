"""Plans on real PostgreSQL: every helper's query uses its index; the naive form scans.

One table of 30 000 documents (loaded once per module with generate_series, then ANALYZE):
the plans below are the planner's own choice at that size; ``enable_seqscan`` is left on.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Column, Engine, Integer, MetaData, Table, Text, any_, literal, select, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Session

from pgpatterns.arrays import array_gin, array_has, array_has_all, array_has_any
from pgpatterns.errors import IndexUsageError
from pgpatterns.explain import explain, has_seq_scan, uses_index
from pgpatterns.jsonb import (
    JsonbDocument,
    assert_indexable,
    assert_indexable_async,
    index_report,
    jsonb_gin,
    jsonb_timestamptz_function,
)

ROWS = 30_000
metadata = MetaData()
plan_docs = Table(
    "jsonb_plan_docs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("attrs", JSONB, nullable=False),  # jsonb_path_ops
    Column("meta", JSONB, nullable=False),  # jsonb_ops (key existence)
    Column("tags", ARRAY(Text), nullable=False),
)
attrs = JsonbDocument(
    plan_docs.c.attrs,
    fields={"price": "numeric", "dims.width": "int", "brand": "text", "at": "timestamptz"},
)
meta = JsonbDocument(plan_docs.c.meta, ops="default")
INDEXES = [*attrs.indexes(), meta.gin_index(), array_gin(plan_docs.c.tags)]
FILL = text(
    "INSERT INTO jsonb_plan_docs (id, attrs, meta, tags) "
    "SELECT i, d, d, ARRAY['t' || (i % 300), 'w' || (i % 7)] FROM ("
    " SELECT i, jsonb_build_object("
    "  'brand', 'b' || (i % 500), 'price', (i % 10000) / 100.0,"
    "  'dims', jsonb_build_object('width', i % 2000, 'unit', 'cm'),"
    "  'lines', jsonb_build_array(jsonb_build_object('sku', 's' || (i % 3000))),"
    "  'at', to_char((timestamptz '2026-01-01 00:00Z' + i * interval '1 minute')"
    "        AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
    "  'k' || (i % 400), true) AS d"
    " FROM generate_series(1, :rows) AS i) AS s"
)
_created: list[Engine] = []


@pytest.fixture(scope="module", autouse=True)
def _drop_at_end() -> Iterator[None]:
    yield
    for engine in _created:
        with engine.begin() as conn:
            metadata.drop_all(conn)
            conn.execute(text("DROP FUNCTION IF EXISTS pgpatterns_jsonb_timestamptz(text)"))


@pytest.fixture
def session(pg_engine: Engine) -> Iterator[Session]:
    if pg_engine not in _created:
        with pg_engine.begin() as conn:
            for ddl in jsonb_timestamptz_function().create_ddl():
                conn.execute(ddl)
            metadata.create_all(conn)
            conn.execute(FILL, {"rows": ROWS})
            conn.execute(text("ANALYZE jsonb_plan_docs"))
        _created.append(pg_engine)
    with Session(pg_engine) as session:
        yield session
        session.rollback()


def count(session: Session, where: Any) -> int:
    return len(session.execute(select(plan_docs.c.id).where(where)).all())


HELPERS = {
    "eq": (attrs.eq("brand", "b7"), "jsonb_plan_docs_attrs_gin", 60),
    "eq nested": (attrs.eq("dims.width", 17), "jsonb_plan_docs_attrs_gin", 15),
    "in": (attrs.in_("brand", ["b7", "b8"]), "jsonb_plan_docs_attrs_gin", 120),
    "contains": (attrs.contains({"dims": {"width": 3}, "brand": "b3"}),
                 "jsonb_plan_docs_attrs_gin", 15),
    "path eq through array": (attrs.path_eq("lines.sku", "s42"), "jsonb_plan_docs_attrs_gin", 10),
    "has key": (meta.has_key("k9"), "jsonb_plan_docs_meta_gin", 75),
    "has any key": (meta.has_any_key(["k9", "k10"]), "jsonb_plan_docs_meta_gin", 150),
    "has all keys": (meta.has_all_keys(["k9", "brand"]), "jsonb_plan_docs_meta_gin", 75),
    "array_has": (array_has(plan_docs.c.tags, "t5"), "jsonb_plan_docs_tags_gin", 100),
    "array_has_all": (array_has_all(plan_docs.c.tags, ["t5", "t5"]), "jsonb_plan_docs_tags_gin",
                      100),
    "array_has_any": (array_has_any(plan_docs.c.tags, ["t5", "t6"]), "jsonb_plan_docs_tags_gin",
                      200),
    "range": (attrs["price"] < 0.3, "jsonb_plan_docs_attrs_price_idx", 90),  # a float bound

    "text eq": (attrs["brand"] == "b7", "jsonb_plan_docs_attrs_brand_idx", 60),
}


@pytest.mark.parametrize("name", list(HELPERS))
def test_helper_query_uses_its_index(session: Session, name: str) -> None:
    where, index, expected = HELPERS[name]
    plan = explain(session, select(plan_docs.c.id).where(where))
    assert uses_index(plan, index), plan
    assert not has_seq_scan(plan), plan
    assert count(session, where) == expected
    assert index_report(session, select(plan_docs.c.id).where(where)).ok


def test_range_order_limit_and_timestamptz_use_expression_indexes(session: Session) -> None:
    stmt = (select(plan_docs.c.id).where(attrs["dims.width"].between(100, 120))
            .order_by(attrs["dims.width"], plan_docs.c.id).limit(5))
    plan = explain(session, stmt)
    assert uses_index(plan, "jsonb_plan_docs_attrs_dims_width_idx"), plan
    assert session.execute(stmt).scalars().all() == [100, 2100, 4100, 6100, 8100]
    since = select(plan_docs.c.id).where(attrs["at"] >= "2026-01-21T19:57:00+00:00")
    plan = explain(session, since.order_by(attrs["at"]).limit(3))
    assert uses_index(plan, "jsonb_plan_docs_attrs_at_idx"), plan
    assert session.execute(since.order_by(attrs["at"]).limit(3)).scalars().all() == [
        29997, 29998, 29999]


NAIVE = {
    "->> equality": (plan_docs.c.meta["brand"].astext == "b7", 60),
    "nested ->> equality": (plan_docs.c.attrs[("dims", "width")].astext == "17", 15),
    "key existence on jsonb_path_ops": (plan_docs.c.attrs.has_key("k9"), 75),
    "= ANY(tags)": (literal("t5", Text) == any_(plan_docs.c.tags), 100),
}


@pytest.mark.parametrize("name", list(NAIVE))
def test_naive_form_scans_and_the_guard_names_it(session: Session, name: str) -> None:
    where, expected = NAIVE[name]
    plan = explain(session, select(plan_docs.c.id).where(where))
    assert has_seq_scan(plan, "jsonb_plan_docs"), plan
    assert count(session, where) == expected
    match = r"Seq Scan on jsonb_plan_docs: .*(brand|width|k9|t5)"
    with pytest.raises(IndexUsageError, match=match):
        assert_indexable(session, select(plan_docs.c.id).where(where), table="jsonb_plan_docs")


def test_guard_names_only_the_unindexed_predicate(session: Session) -> None:
    stmt = select(plan_docs.c.id).where(
        attrs.eq("brand", "b7"), plan_docs.c.attrs["dims"]["unit"].astext == "cm"
    )
    report = index_report(session, stmt, table="jsonb_plan_docs")
    assert len(report.unindexed) == 1
    assert "unit" in report.unindexed[0] and "@>" not in report.unindexed[0], report


async def test_guard_async(pg_async_session: Any, session: Session) -> None:
    plan = await assert_indexable_async(
        pg_async_session, select(plan_docs.c.id).where(attrs.eq("brand", "b1"))
    )
    assert uses_index(plan, "jsonb_plan_docs_attrs_gin")
    with pytest.raises(IndexUsageError):
        await assert_indexable_async(
            pg_async_session,
            select(plan_docs.c.id).where(plan_docs.c.meta["brand"].astext == "b1"),
        )


def test_varchar_array_column_needs_matching_cast(session: Session) -> None:
    """A text[] parameter against a varchar[] column is an error; array_has casts right."""
    table = Table("jsonb_plan_vtags", MetaData(), Column("id", Integer, primary_key=True),
                  Column("vtags", ARRAY(Text)))  # the model says text[]
    session.execute(text("CREATE TEMP TABLE jsonb_plan_vtags (id int, vtags varchar[])"))
    session.execute(text("INSERT INTO jsonb_plan_vtags VALUES (1, '{a,b}'), (2, '{c}')"))
    from sqlalchemy import String
    from sqlalchemy.exc import ProgrammingError

    with pytest.raises(ProgrammingError, match="operator does not exist"), session.begin_nested():
        session.execute(select(table.c.id).where(array_has(table.c.vtags, "a")))
    ok = array_has(table.c.vtags, "a", array_type=ARRAY(String))
    assert session.execute(select(table.c.id).where(ok)).scalars().all() == [1]


def test_jsonb_gin_index_is_created_by_metadata(pg_schema: Any) -> None:
    meta_ = MetaData()
    table = Table("gin_only", meta_, Column("id", Integer, primary_key=True),
                  Column("doc", JSONB))
    jsonb_gin(table.c.doc, ops="default")
    meta_.create_all(pg_schema.engine)
    with pg_schema.engine.connect() as conn:
        definition = conn.execute(text(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'gin_only_doc_gin'")).scalar()
    assert definition is not None and "USING gin (doc)" in definition
