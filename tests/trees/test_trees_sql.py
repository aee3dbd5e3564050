"""Compile-only tests: statement shapes and errors raised before any SQL is sent."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from _tree_models import Category, Doc, Folder
from sqlalchemy import Integer, column, select, table
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from pgpatterns.errors import TreeOptionError
from pgpatterns.trees import (
    AdjacencyListMixin,
    TreeOptions,
    ancestors,
    children,
    cte_column,
    descendants,
    roots,
    siblings,
    subtree_size,
    tree_guard,
    with_cycle,
    with_search,
)


def sql(stmt: Any) -> str:
    return str(stmt.compile(dialect=postgresql.dialect()))


def test_mixin_columns_index_and_foreign_key() -> None:
    t = Category.__table__
    fk = next(iter(t.c.parent_id.foreign_keys))
    assert fk.column is t.c.id and fk.ondelete == "CASCADE"
    assert isinstance(t.c.parent_id.type, Integer)
    assert [i.name for i in t.indexes] == ["ix_tree_categories_parent_id"]
    assert next(iter(Folder.__table__.c.parent_id.foreign_keys)).ondelete == "SET NULL"
    assert next(iter(Doc.__table__.c.parent_id.foreign_keys)).ondelete == "RESTRICT"
    assert Doc.__table__.c.parent_id.type.python_type is uuid.UUID


def test_scope_is_in_anchor_and_recursive_term() -> None:
    text = sql(descendants(Folder, 5, scope=3))
    anchor, recursive = text.split("UNION ALL")
    assert "tree_folders.tenant_id = %(tenant_id_1)s" in anchor
    assert "tree_folders_1.tenant_id = anon_1.tenant_id" in recursive
    assert "tree_folders_1.id != all(anon_1.path)" in recursive  # cycle guard


def test_orders() -> None:
    assert sql(descendants(Category, 1)).endswith("ORDER BY anon_1.path")
    assert "ORDER BY" not in sql(descendants(Category, 1, order=None))
    assert sql(descendants(Category, 1, order="breadth_first")).endswith(
        "ORDER BY anon_1.depth, anon_1.path"
    )
    # a sibling order column needs SEARCH: records of (position, id) per level
    folder = sql(descendants(Folder, 1))
    assert "SEARCH DEPTH FIRST BY position, id SET tree_order" in folder
    assert folder.endswith("ORDER BY anon_1.tree_order")
    assert sql(ancestors(Category, 1)).endswith("ORDER BY anon_1.depth DESC")


def test_builders_compose() -> None:
    stmt = descendants(Category, 1, max_depth=2)
    stmt = stmt.where(stmt.selected_columns.name.like("a%")).limit(10)
    text = sql(stmt)
    assert "anon_1.name LIKE" in text and "LIMIT" in text
    assert "anon_1.depth < %(depth_2)s" in text.split("UNION ALL")[1]
    assert "count(*)" in sql(subtree_size(Category, 1))
    assert "tree_categories.parent_id IS NULL" in sql(roots(Category))
    assert "ORDER BY tree_folders.position, tree_folders.id" in sql(children(Folder, 1))
    assert "tree_folders.tenant_id = tree_folders_1.tenant_id" in sql(siblings(Folder, 2))


def test_search_and_cycle_clauses() -> None:
    nodes = table("nodes", column("id"), column("parent_id"))
    cte = select(nodes.c.id).where(nodes.c.parent_id.is_(None)).cte("t", recursive=True)
    cte = cte.union_all(select(nodes.c.id).join(cte, nodes.c.parent_id == cte.c.id))
    cte = with_cycle(with_search(cte, "id", set_="Ord", breadth_first=True), "id")
    stmt = select(cte.c.id).order_by(cte_column(cte, "Ord"))
    assert (
        ') SEARCH BREADTH FIRST BY id SET "Ord" CYCLE id SET is_cycle USING cycle_path'
        in sql(stmt)
    )
    assert sql(stmt).endswith('ORDER BY t."Ord"')


def test_guard_renders_quoted_identifiers() -> None:
    function, trigger = tree_guard(Folder)
    assert trigger.sql() == (
        "CREATE TRIGGER tree_folders_tree_guard BEFORE INSERT OR UPDATE OF parent_id, "
        "tenant_id ON tree_folders FOR EACH ROW EXECUTE FUNCTION tree_folders_tree_guard()"
    )
    body = function.sql()
    assert "pg_advisory_xact_lock(hashtextextended(TG_RELID::text || ':' ||" in body
    assert "CONSTRAINT = 'tree_folders_tree_scope'" in body


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: descendants(Category, 1, max_depth=-1), "max_depth=-1 is invalid"),
        (lambda: descendants(Category, 1, order="random"), "order='random'"),
        (lambda: descendants(Category), "needs a node"),
        (lambda: descendants(Category(name="x")), "without a key"),
        (lambda: subtree_size(Category, 1, max_depth=True), "max_depth=True"),
        (lambda: ancestors(object, 1), "object is not a tree model"),
        (lambda: TreeOptions(on_delete="nothing"), "on_delete='nothing'"),
    ],
)
def test_bad_input_raises_before_sql(call: Any, message: str) -> None:
    with pytest.raises(TreeOptionError, match=message):
        call()


def test_option_naming_a_missing_column() -> None:
    class OtherBase(DeclarativeBase):
        pass

    class Bad(AdjacencyListMixin, OtherBase):
        __tablename__ = "tree_bad"
        __tree__ = TreeOptions(scope="tenant")
        id: Mapped[int] = mapped_column(primary_key=True)

    with pytest.raises(TreeOptionError, match="scope='tenant'"):
        descendants(Bad, 1)
    with pytest.raises(TreeOptionError, match="__tree__ is 3"):

        class Worse(AdjacencyListMixin, OtherBase):
            __tablename__ = "tree_worse"
            __tree__ = 3  # type: ignore[assignment]
            id: Mapped[int] = mapped_column(primary_key=True)
