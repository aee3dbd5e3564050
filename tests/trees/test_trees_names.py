"""Hostile identifiers through a guarded tree (#17): ``%``, quotes, spaces, unicode, 63 bytes.

Table, key and scope column names are drawn by hypothesis (plus the issue's ``cat%s``); for
each, the tables and the guard are created, nodes inserted, moved and loaded, and the guard
refuses a cycle and a cross-scope parent with the typed errors.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import Identity, Integer, MetaData, text, update
from sqlalchemy.orm import DeclarativeBase, Session, mapped_column

from pgpatterns.ddl import attach
from pgpatterns.errors import TreeCycleError, TreeScopeError
from pgpatterns.testing.plugin import PgSchema
from pgpatterns.trees import (
    AdjacencyListMixin,
    TreeOptions,
    bulk_load,
    descendants,
    find_problems,
    insert_node,
    move,
    tree_errors,
    tree_guard,
)

# "." separates table and column in the mixin's ForeignKey("table.key") spec: left out
_CHARS = st.characters(
    blacklist_categories=("Cs", "Cc"), blacklist_characters=".\x00"
) | st.sampled_from('%"\' $')
NAMES = st.text(_CHARS, min_size=1, max_size=63).filter(
    lambda n: len(n.encode()) <= 63 and n.strip() == n and n != "parent_id"
    and not n.startswith("pg_")
)


def _model(table: str, key: str, scope: str) -> type[Any]:
    class Base(DeclarativeBase):
        metadata = MetaData()

    namespace: dict[str, Any] = {
        "__tablename__": table,
        "__tree__": TreeOptions(key=key, scope=scope),
        key: mapped_column(key, Integer, Identity(), primary_key=True),
        scope: mapped_column(scope, Integer, nullable=False),
    }
    model = type("Node", (AdjacencyListMixin, Base), namespace)
    attach(Base.metadata, *tree_guard(model))
    return model


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@example(table="cat%s", key="i%d", scope="t%%")
@example(table='q"t \'x', key="ünï cödé", scope="s" * 63)
@given(table=NAMES, key=NAMES, scope=NAMES)
def test_hostile_names_through_the_guard(
    pg_schema: PgSchema, table: str, key: str, scope: str
) -> None:
    if len({key, scope, "parent_id"}) < 3:
        return  # two columns with one name: not a table
    model = _model(table, key, scope)
    engine = pg_schema.engine
    model.metadata.create_all(engine)
    try:
        with Session(engine) as s:
            root = insert_node(s, model(**{scope: 1}))
            child = insert_node(s, model(), parent=root)  # takes the parent's scope
            other = insert_node(s, model(**{scope: 2}))
            s.commit()
            assert [n for n, _, _ in s.execute(descendants(root))] == [child]
            with pytest.raises(TreeCycleError):
                move(s, root, child)
            move(s, child, None)
            move(s, child, root)
            s.commit()
            root_key, child_key = getattr(root, key), getattr(child, key)
            stmt = update(model.__table__).where(
                model.__table__.c[key] == root_key).values(parent_id=child_key)
            with pytest.raises(TreeCycleError), tree_errors(model), s.begin_nested():
                s.execute(stmt)
            stmt = update(model.__table__).where(
                model.__table__.c[key] == getattr(other, key)).values(parent_id=root_key)
            with pytest.raises(TreeScopeError), tree_errors(model), s.begin_nested():
                s.execute(stmt)
            assert bulk_load(s, model, [{scope: 3, "children": [{}, {"children": [{}]}]}]) == 4
            s.commit()
            assert find_problems(s, model) == []
    finally:
        model.metadata.drop_all(engine)
        with engine.begin() as conn:  # nothing left behind for the next example
            assert conn.execute(text(
                "SELECT count(*) FROM pg_proc WHERE pronamespace = to_regnamespace(:s)"
            ), {"s": pg_schema.name}).scalar() == 0
