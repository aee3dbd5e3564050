"""The fuzz table: (callable, valid base arguments, arguments to fuzz), one block per family.

Add a family by appending :class:`Case` rows; ``XFAIL`` (at the end) lists the cases that
fail today in modules being fixed elsewhere, with the failing call: remove a line once its
fix lands (the xfail is strict, so a fixed case fails until its line is removed).
"""

from __future__ import annotations

import importlib.util
from typing import Any

from fuzz_harness import Case, Env
from fuzz_world import (
    COUNTER,
    DOC_CATS,
    EVENTS,
    NOW,
    SPEC,
    FzComment,
    FzDoc,
    FzNode,
    FzPost,
    FzTag,
    posts_tags,
)
from sqlalchemy import Column, Integer, MetaData, Table, Text, select
from sqlalchemy.dialects.postgresql import TSTZRANGE

from pgpatterns import (
    arrays,
    associations,
    bulk,
    columns,
    constraints,
    ddl,
    denormalize,
    explain,
    indexes,
    jsonb,
    partitioning,
    polymorphic,
    rls,
    trees,
    vector,
    views,
)

CASES: list[Case] = []


def case(
    func: Any, base: Any, *fuzz: str, name: str | None = None, writes: bool = False,
    aio: bool = False, consume: Any = None,
) -> None:
    """Append a case; ``name`` defaults to ``<module>.<function>``."""
    family = func.__module__.split(".")[1]
    CASES.append(Case(
        name=name or f"{family}.{func.__name__}", func=func, base=base, fuzz=fuzz,
        writes=writes, aio=aio, consume=consume,
    ))


def node(env: Env, key: int) -> FzNode:
    found = env.session.get(FzNode, key)
    assert found is not None
    return found


def post(env: Env, key: int = 1) -> FzPost:
    found = env.session.get(FzPost, key)
    assert found is not None
    return found


def fresh_docs() -> Table:
    """fz_docs in a MetaData of its own: index factories attach what they build to the table,
    and the world's table must stay as declared."""
    return FzDoc.__table__.to_metadata(MetaData())  # type: ignore[attr-defined, no-any-return]


def _with_fresh(build: Any) -> dict[str, Any]:
    return build(fresh_docs())  # type: ignore[no-any-return]


def where_docs(expr: Any, env: Env) -> None:
    """Run a boolean builder's result as a filter on fz_docs."""
    env.conn.execute(select(FzDoc.id).where(expr)).all()


def select_expr(expr: Any, env: Env) -> None:
    env.conn.execute(select(expr).select_from(FzDoc.__table__)).all()


# --- trees ---------------------------------------------------------------------------------

for builder in (trees.ancestors, trees.children, trees.siblings, trees.subtree_size):
    case(builder, lambda env: {"node_or_model": FzNode, "node_id": 4}, "node_id", "scope",
         "node_or_model")
case(trees.descendants, lambda env: {"node_or_model": FzNode, "node_id": 1},
     "node_id", "max_depth", "order", "include_self", "scope")
case(trees.roots, lambda env: {"model": FzNode}, "model", "scope")
case(trees.move, lambda env: {"session": env.session, "node": node(env, 4), "new_parent": 3},
     "new_parent", "node", writes=True)
case(trees.insert_node,
     lambda env: {"session": env.session, "node": FzNode(name="new"), "parent": 2},
     "parent", "node", writes=True)
case(trees.delete_node, lambda env: {"session": env.session, "node": node(env, 4)}, "node",
     writes=True)
case(trees.load_subtree, lambda env: {"session": env.session, "model": FzNode, "root_id": 1},
     "root_id", "max_depth", "scope", writes=True)
case(trees.find_problems, lambda env: {"session": env.session, "model": FzNode}, "model",
     writes=True)
case(trees.bulk_load, lambda env: {"session": env.session, "model": FzNode,
                                   "nested": [{"name": "r", "children": [{"name": "c"}]}]},
     "nested", writes=True)
case(trees.tree_guard, lambda env: {"model": FzNode}, "model")

# --- associations --------------------------------------------------------------------------

for action in (associations.link, associations.unlink, associations.sync):
    case(action, lambda env: {"session": env.session, "left": post(env), "rights": [2, 3],
                              "via": FzPost.tags}, "rights", "left", "via", writes=True)
case(associations.link_async, lambda env: {"session": env.session, "left": 1, "rights": [2],
                                           "via": FzPost.tags},
     "rights", "left", writes=True, aio=True)
for query in (associations.having_all, associations.having_any, associations.having_none):
    case(query, lambda env: {"model": FzPost, "rel": FzPost.tags, "values": [1, 2]},
         "values", "by", "rel")
case(associations.count_per, lambda env: {"model": FzPost, "rel": FzPost.tags}, "rel", "model")
case(associations.top_related, lambda env: {"model": FzPost, "rel": FzPost.tags},
     "limit", "among")
case(associations.link_stmt, lambda env: {"link": FzPost.tags, "left_id": 1, "ids": [2]},
     "left_id", "ids", "mode", "attrs")

# --- polymorphic (declaration-time API) ----------------------------------------------------

case(polymorphic.polymorphic_select, lambda env: {"base": FzPost}, "base", "loading")
case(polymorphic.single_table_integrity, lambda env: {"base": FzPost}, "base",
     "partial_indexes", "forbid_other_columns")
case(polymorphic.joined_table_integrity, lambda env: {"base": FzPost}, "base", "metadata")

# --- jsonb ---------------------------------------------------------------------------------

body = FzDoc.body
case(jsonb.jsonb_eq, lambda env: {"column": body, "path": "a", "value": 1},
     "path", "value", "column", consume=where_docs)
case(jsonb.jsonb_path_eq, lambda env: {"column": body, "path": "n.k", "value": 2},
     "path", "value", consume=where_docs)
case(jsonb.jsonb_contains, lambda env: {"column": body, "fragment": {"a": 1}},
     "fragment", "column", consume=where_docs)
case(jsonb.jsonb_has_key, lambda env: {"column": body, "key": "a"}, "key", consume=where_docs)
case(jsonb.jsonb_has_all_keys, lambda env: {"column": body, "keys": ["a", "s"]}, "keys",
     consume=where_docs)
case(jsonb.jsonb_has_any_key, lambda env: {"column": body, "keys": ["a"]}, "keys",
     consume=where_docs)
case(jsonb.jsonb_in, lambda env: {"column": body, "path": "s", "values": ["v1", "v2"]},
     "path", "values", consume=where_docs)
case(jsonb.jsonb_array_has, lambda env: {"column": body, "path": "tags", "values": ("x",)},
     "path", "values", consume=where_docs)
for extractor in (jsonb.as_text, jsonb.as_int, jsonb.as_numeric):
    case(extractor, lambda env: {"column": body, "path": "a"}, "path", "column",
         consume=select_expr)
case(jsonb.extract, lambda env: {"column": body, "path": "a", "type_": "int"},
     "path", "type_", consume=select_expr)
case(jsonb.jsonb_gin, lambda env: {"column": fresh_docs().c.body}, "ops", "name", "column")
case(jsonb.jsonb_path_index,
     lambda env: {"column": fresh_docs().c.body, "path": "a", "type_": "int"},
     "path", "type_", "name", "unique")
case(jsonb.jsonb_schema_check,
     lambda env: {"column": fresh_docs().c.body, "schema": {"type": "object"}},
     "schema", "name")
case(jsonb.jsonb_generated_column,
     lambda env: {"column": body, "path": "a", "type_": "int", "name": "a_int"},
     "path", "type_", "name", "index")
case(jsonb.index_report, lambda env: {"conn": env.session, "stmt": select(FzDoc.id)},
     "stmt", "table")

# --- arrays --------------------------------------------------------------------------------

labels = FzDoc.labels
case(arrays.array_has, lambda env: {"column": labels, "value": "x"}, "value", "column",
     "array_type", consume=where_docs)
case(arrays.array_has_all, lambda env: {"column": labels, "values": ["x", "l1"]}, "values",
     consume=where_docs)
case(arrays.array_has_any, lambda env: {"column": labels, "values": ["x"]}, "values",
     consume=where_docs)
case(arrays.append_to_array, lambda env: {"session": env.session, "column": labels,
                                          "value": "new", "where": FzDoc.id == 1},
     "value", "where", "as_set", "column", writes=True)
case(arrays.remove_from_array, lambda env: {"session": env.session, "column": labels,
                                            "value": "x", "where": FzDoc.id == 1},
     "value", "where", "column", writes=True)
case(arrays.append_stmt, lambda env: {"column": labels, "value": "n", "where": FzDoc.id == 2},
     "value", "where")
case(arrays.array_gin, lambda env: {"column": fresh_docs().c.labels}, "name", "column")

# --- vector --------------------------------------------------------------------------------

Q = [1.0, 0.5, -0.5]


def _nearest_base(env: Env) -> dict[str, Any]:
    return {"session": env.session, "model": FzDoc, "spec_or_column": FzDoc.embedding,
            "query_vector": Q, "k": 3}


case(vector.nearest, _nearest_base, "query_vector", "k", "where", "ef_search", "iterative",
     "max_distance", "exact", "candidates", "exact_below", "probes", "max_scan_tuples",
     writes=True)
case(vector.nearest, _nearest_base, "model", "spec_or_column", "session",
     name="vector.nearest[target]", writes=True)
case(vector.nearest_async, lambda env: {**_nearest_base(env), "where": FzDoc.cat == 1},
     "query_vector", "k", "where", "exact_below", "max_distance", aio=True)
case(vector.nearest_stmt, lambda env: {"model": FzDoc, "spec_or_column": SPEC,
                                       "query_vector": Q, "k": 3},
     "query_vector", "k", "where", "max_distance", "iterative", "exact", "candidates")
case(vector.hybrid_search,
     lambda env: {"session": env.session, "model": FzDoc, "spec_or_column": FzDoc.embedding,
                  "query_vector": Q, "text_query": "alpha", "document": FzDoc.search},
     "text_query", "k", "candidates", "rrf_k", "where", "ef_search", "document", writes=True)
case(vector.search_settings, lambda env: {"spec": SPEC, "k": 10}, "k", "filtered",
     "ef_search", "probes", "iterative", "max_scan_tuples", "exact", "candidates")
case(vector.recall_at_k,
     lambda env: {"session": env.session, "model": FzDoc, "spec_or_column": FzDoc.embedding,
                  "queries": [Q], "k": 3}, "queries", "k", "where", writes=True)
case(vector.VectorSpec, lambda env: {"dim": 3}, "dim", "metric", "storage", "index",
     "quantize", "m", "ef_construction", "lists")
case(vector.check_vector_setup, lambda env: {"session": env.session}, "session", writes=True)

# --- geo (compile-level: PostGIS may be absent; only with geoalchemy2 installed) -------------

if importlib.util.find_spec("geoalchemy2") and importlib.util.find_spec("shapely"):
    from fuzz_geo import geo_cases

    for made in geo_cases():
        CASES.append(made)

# --- rls -----------------------------------------------------------------------------------

case(rls.context_statement, lambda env: {"values": {"app.tenant_id": 1}}, "values")
case(rls.set_context, lambda env: {"target": env.session, "values": {"app.tenant_id": 1}},
     "values", "target", writes=True)
case(rls.tenant_context, lambda env: {"session": env.session, "tenant_id": 7},
     "tenant_id", "user_id", "tenant_setting", "user_setting", writes=True)
case(rls.setting, lambda env: {"name": "app.tenant_id"}, "name", "type_", consume=select_expr)
case(rls.current_tenant, lambda env: {}, "type_", "name", consume=select_expr)
case(rls.policy, lambda env: {"name": "p", "table": FzPost.__table__, "to": "public"},
     "name", "to", "command", "using", "table")
case(rls.secure_table, lambda env: {"table": FzTag.__table__, "roles": ["public"]},
     "roles", "setting", "column", "table")
case(rls.check_rls, lambda env: {"session": env.session, "tables": [FzPost.__table__],
                                 "plans": False}, "tables", "schemas", "role", writes=True)

# --- views ---------------------------------------------------------------------------------

case(views.refresh, lambda env: {"session": env.session, "mv": DOC_CATS}, "mv", "concurrently",
     writes=True)
case(views.refresh_stmt, lambda env: {"mv": DOC_CATS}, "mv", "concurrently", "with_data")
case(views.materialized_view,
     lambda env: {"name": "fz_mv2", "selectable": select(FzDoc.cat), "metadata": MetaData()},
     "name", "unique_key", "indexes", "schema", "selectable")
case(views.view, lambda env: {"name": "fz_v", "selectable": select(FzDoc.cat),
                              "metadata": MetaData()},
     "name", "key", "check_option", "schema")

# --- partitioning --------------------------------------------------------------------------

case(partitioning.ensure_partitions,
     lambda env: {"session": env.session, "target": EVENTS, "ahead": 3, "now": NOW},
     "ahead", "interval", "now", "target", writes=True)
case(partitioning.retain,
     lambda env: {"session": env.session, "target": EVENTS, "keep": "3 months", "now": NOW},
     "keep", "before", "mode", "now", "concurrently", writes=True)
case(partitioning.existing_partitions, lambda env: {"session": env.session, "target": EVENTS},
     "target", writes=True)
case(partitioning.check_default_partition,
     lambda env: {"session": env.session, "target": EVENTS, "now": NOW}, "ahead", "now",
     "interval", writes=True)
case(partitioning.range_partition, lambda env: {"low": 1, "high": 10}, "low", "high", "name")
case(partitioning.list_partition, lambda env: {"values": ("a", "b")}, "values", "name")
case(partitioning.hash_partitions, lambda env: {"modulus": 4}, "modulus", "prefix")
case(partitioning.partition_by,
     lambda env: {"target": Table("fz_p", MetaData(), Column("id", Integer), Column("k", Text)),
                  "method": "list", "key": "k"},
     "method", "key", "interval", "timezone", "partitions")

# --- columns -------------------------------------------------------------------------------

case(columns.columns_ddl, lambda env: {"metadata": MetaData()}, "metadata", "schema")
case(columns.uuid_v7_function, lambda env: {}, "schema")
case(columns.updated_at_trigger,
     lambda env: {"table": FzPost.__table__, "function": columns.uuid_v7_function()},
     "column_name", "table", "function")

# --- constraints ---------------------------------------------------------------------------

case(constraints.check.one_of, lambda env: {"column": "title", "values": ["a", "b"]},
     "values", "column", "name", name="constraints.check.one_of")
case(constraints.check.between, lambda env: {"column": "n", "low": 1, "high": 5},
     "low", "high", "column", name="constraints.check.between")
case(constraints.check.positive, lambda env: {"column": "n"}, "column", "allow_zero", "name",
     name="constraints.check.positive")


def _ranged() -> Table:
    return Table("fz_booking", MetaData(), Column("room", Integer), Column("during", TSTZRANGE))


case(constraints.no_overlap,
     lambda env: {"table": _ranged(), "range_": "during", "equal_columns": ("room",)},
     "range_", "equal_columns", "name", "where", "bounds", "table")

# --- indexes -------------------------------------------------------------------------------

docs = FzDoc.__table__  # read-only uses; factories get fresh_docs() (they attach indexes)
case(indexes.brin_index, lambda env: {"table": fresh_docs(), "column": "cat"}, "column",
     "pages_per_range", "ops", "autosummarize", "name", "table")
case(indexes.covering_index,
     lambda env: {"table": fresh_docs(), "columns": ["cat"], "include": ["id"]},
     "columns", "include", "name", "where", "unique")
case(indexes.gin_index, lambda env: {"table": fresh_docs(), "column": "labels"}, "column", "ops",
     "name", "where", "fastupdate")
case(indexes.gist_index, lambda env: {"table": fresh_docs(), "columns": ("embedding",)}, "columns",
     "ops", "name")
case(indexes.partial_index,
     lambda env: _with_fresh(lambda t: {"table": t, "columns": ("cat",), "where": t.c.cat > 0}),
     "columns", "where", "name", "include")
case(indexes.expression_index,
     lambda env: _with_fresh(lambda t: {"table": t, "expression": t.c.title,
                                        "name": "fz_title_idx"}),
     "expression", "name", "ops", "using")
case(indexes.index_report, lambda env: {"session": env.session, "table": docs}, "table",
     writes=True)
case(indexes.brin_correlation,
     lambda env: {"connection": env.conn, "table": docs, "column": "cat"}, "column", "table",
     writes=True)

# --- denormalize ---------------------------------------------------------------------------

case(denormalize.drift_count, lambda env: {"session": env.session, "maintained": (COUNTER,)},
     "maintained", writes=True)
case(denormalize.counter_cache,
     lambda env: {"parent_column": FzPost.__table__.c.comment_count,
                  "child_table": FzComment.__table__},
     "parent_column", "child_table", "via", "name")

# --- bulk ----------------------------------------------------------------------------------

case(bulk.copy_rows,
     lambda env: {"connection": env.conn, "table": FzTag.__table__,
                  "rows": [(10, "ten"), (11, "eleven")], "columns": ["id", "name"]},
     "rows", "columns", "table", writes=True)

# --- explain -------------------------------------------------------------------------------

case(explain.explain, lambda env: {"conn": env.session, "stmt": select(FzDoc.id)},
     "stmt", "analyze", "buffers", "verbose", "settings", writes=True)
case(explain.explain_stmt, lambda env: {"stmt": select(FzDoc.id)}, "stmt", "analyze")


def _plan(env: Env) -> Any:
    return explain.explain(env.session, select(FzDoc.id).where(FzDoc.cat == 1))


case(explain.uses_index, lambda env: {"plan": _plan(env), "name": "ix_fz_docs_cat"},
     "plan", "name")
case(explain.has_seq_scan, lambda env: {"plan": _plan(env)}, "plan", "table")
case(explain.plan_summary, lambda env: {"plan": _plan(env)}, "plan")
case(explain.scan_types, lambda env: {"plan": _plan(env)}, "plan")

# --- ddl -----------------------------------------------------------------------------------

case(ddl.Function, lambda env: {"name": "fz_f", "body": "SELECT 1", "returns": "int"},
     "name", "body", "returns", "language", "volatility", "search_path", "args")
case(ddl.Extension, lambda env: {"name": "pg_trgm"}, "name", "schema")
case(ddl.Partition,
     lambda env: {"name": "fz_events_x", "parent_table": EVENTS,
                  "range_": (NOW, NOW.replace(year=2027))},
     "name", "range_", "list_", "hash_", "default")

# --- more: declarations on fresh classes, remaining builders (fuzz_more.py) ---------------

from fuzz_more import more_cases  # noqa: E402

CASES.extend(more_cases())

# --- the list of cases that fail today in modules fixed by other helpers --------------------

#: case name -> what fails today (found 2026-12-03; the lead removes a line once its owner's
#: fix lands: these xfails are strict, so a fixed case fails until its line is removed).
XFAIL: dict[str, str] = {}

__all__ = ["CASES", "XFAIL", "posts_tags"]
