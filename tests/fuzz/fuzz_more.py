"""More fuzz cases: declarations on fresh classes and the remaining pure builders."""

from __future__ import annotations

from typing import Any

from fuzz_harness import DIALECT, Case, Env
from fuzz_world import DOC_CATS, EVENTS, SPEC, FzComment, FzDoc, FzPost, FzTag
from sqlalchemy import Column, ForeignKey, Index, Integer, MetaData, Table, Text, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from pgpatterns import (
    associations,
    ddl,
    denormalize,
    explain,
    indexes,
    jsonb,
    partitioning,
    polymorphic,
    rls,
    vector,
    views,
)


def _fresh(env: Env) -> dict[str, Any]:
    """An owner and two target classes of their own registry (declarations mutate them)."""

    class B(DeclarativeBase):
        pass

    class Owner(B):
        __tablename__ = "fz_owner"
        id: Mapped[int] = mapped_column(primary_key=True)

    class Photo(B):
        __tablename__ = "fz_photo"
        id: Mapped[int] = mapped_column(primary_key=True)

    class Note(B):
        __tablename__ = "fz_note"
        id: Mapped[int] = mapped_column(primary_key=True)

    return {"owner": Owner, "targets": {"photo": Photo, "note": Note}}


def compile_only(result: Any, env: Env) -> None:
    if hasattr(result, "compile"):
        str(result.compile(dialect=DIALECT))


def _cte(env: Env) -> Any:
    nodes = Table("fz_nodes_c", MetaData(), Column("id", Integer), Column("parent_id", Integer))
    base = select(nodes.c.id, nodes.c.parent_id).cte("walk", recursive=True)
    return base.union_all(select(nodes.c.id, nodes.c.parent_id).where(
        nodes.c.parent_id == base.c.id))


def _fresh_pair(env: Env) -> dict[str, Any]:
    md = MetaData()
    left = Table("fz_l", md, Column("id", Integer, primary_key=True))
    right = Table("fz_r", md, Column("id", Integer, primary_key=True))
    return {"left": left, "right": right, "metadata": md}


def _copy_tables(env: Env) -> dict[str, Any]:
    md = MetaData()
    users = Table("fz_u", md, Column("id", Integer, primary_key=True), Column("name", Text))
    posts = Table("fz_p2", md, Column("id", Integer, primary_key=True),
                  Column("u_id", ForeignKey("fz_u.id")), Column("u_name", Text))
    return {"target_column": posts.c.u_name, "source_column": users.c.name}


Q = [1.0, 0.5, -0.5]
ROWS: list[tuple[Any, Any, tuple[str, ...], dict[str, Any]]] = [
    (polymorphic.exclusive_arc, _fresh, ("targets", "name", "backref", "ondelete", "owner"), {}),
    (polymorphic.generic_association, _fresh,
     ("targets", "name", "type_column", "id_column", "owner"), {}),
    (jsonb.JsonbDocument,
     lambda env: {"column": FzDoc.__table__.to_metadata(MetaData()).c.body,
                  "fields": {"a": "int"}},
     ("ops", "fields", "column"), {}),
    (jsonb.as_timestamptz, lambda env: {"column": FzDoc.body, "path": "at"}, ("path",),
     {"consume": compile_only}),
    (jsonb.jsonb_timestamptz_function, lambda env: {}, ("schema",), {}),
    (vector.hybrid_search_stmt,
     lambda env: {"model": FzDoc, "spec_or_column": SPEC, "query_vector": Q,
                  "text_query": "alpha", "document": FzDoc.search},
     ("k", "candidates", "rrf_k", "language", "where", "query_vector"), {}),
    (vector.tune_ef_search,
     lambda env: {"session": env.session, "model": FzDoc, "spec_or_column": FzDoc.embedding,
                  "queries": [Q], "k": 2, "values": [10, 20]},
     ("queries", "k", "target", "values", "where"), {"writes": True}),
    (vector.nearest, lambda env: {"session": env.session, "model": FzDoc,
                                  "spec_or_column": FzDoc.embedding, "query_vector": Q, "k": 3,
                                  "where": FzDoc.cat == 1},
     ("where", "exact_below", "max_distance", "ef_search"), {"writes": True,
                                                             "name": "vector.nearest[where]"}),
    (indexes.check_index,
     lambda env: {"index": Index("fz_ix", FzDoc.__table__.to_metadata(MetaData()).c.cat)},
     ("index",), {}),
    (indexes.partial_predicate, lambda env: {"index": indexes.partial_index(
        fresh := FzDoc.__table__.to_metadata(MetaData()), "cat", where=fresh.c.cat > 0)},
     ("index",), {}),
    (explain.nodes, lambda env: {"plan": explain.explain(env.session, select(FzDoc.id))},
     ("plan",), {"consume": lambda r, env: list(r)}),
    (explain.explain_async, lambda env: {"conn": env.session, "stmt": select(FzDoc.id)},
     ("stmt", "settings", "analyze"), {"aio": True, "writes": True}),
    # other families
    (rls.tenant_unique, lambda env: {"columns": ("name",)}, ("columns", "name"), {}),
    (rls.tenant_foreign_key,
     lambda env: {"columns": ["post_id"], "referred": "fz_posts", "refcolumns": ["id"]},
     ("columns", "referred", "refcolumns"), {}),
    (rls.owner_only, lambda env: {"column": FzComment.__table__.c.post_id}, ("column", "user"),
     {}),
    (views.view_key, lambda env: {"obj": DOC_CATS}, ("obj",), {}),
    (views.as_view, lambda env: {"target": DOC_CATS}, ("target",), {}),
    (partitioning.default_partition, lambda env: {}, ("name",), {}),
    (partitioning.partition_scheme, lambda env: {"target": EVENTS}, ("target",), {}),
    (associations.with_attrs, lambda env: {"target": 1, "attrs": {}}, ("target", "attrs"), {}),
    (associations.association_table, _fresh_pair,
     ("name", "ondelete", "left_column", "right_column", "extra_columns", "key_columns"), {}),
    (denormalize.denormalized, _copy_tables, ("via", "name", "lock", "source_column"), {}),
    (ddl.Policy, lambda env: {"name": "fz_pol", "table": FzPost.__table__},
     ("name", "command", "to", "using", "permissive"), {}),
    (ddl.View, lambda env: {"name": "fz_view", "selectable": select(FzTag.id)},
     ("name", "selectable", "check_option", "security_barrier"), {}),
]


def more_cases() -> list[Case]:
    cases = []
    for func, base, fuzz, extra in ROWS:
        extra = dict(extra)
        family = func.__module__.split(".")[1]
        name = extra.pop("name", f"{family}.{func.__name__}")
        cases.append(Case(name=name, func=func, base=base, fuzz=fuzz, **extra))
    return cases
