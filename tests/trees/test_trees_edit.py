"""Bad inserts and deletes: typed errors (original as __cause__), nothing written."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from _tree_models import Category, Doc, Folder, tree_engine
from sqlalchemy import Engine, Identity, MetaData, event, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.pool import NullPool

from pgpatterns.errors import (
    TreeCycleError,
    TreeError,
    TreeHasChildrenError,
    TreeNodeNotFoundError,
    TreeOptionError,
    TreeScopeError,
)
from pgpatterns.testing import Database
from pgpatterns.testing.plugin import PgSchema
from pgpatterns.trees import (
    AdjacencyListMixin,
    delete_node,
    delete_node_async,
    insert_node,
    insert_node_async,
    move,
    tree_errors,
)
from pgpatterns.trees.errors import _default_fk_name

__all__ = ["tree_engine"]


def count(engine: Engine, model: Any) -> int:
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(model)) or 0


@pytest.fixture
def writes(tree_engine: Engine) -> Iterator[list[str]]:
    """The INSERT/UPDATE/DELETE statements sent while the test runs."""
    sent: list[str] = []

    def listen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().split()[0].upper() in {"INSERT", "UPDATE", "DELETE"}:
            sent.append(statement)

    event.listen(tree_engine, "before_cursor_execute", listen)
    yield sent
    event.remove(tree_engine, "before_cursor_execute", listen)


def refused(info: pytest.ExceptionInfo[TreeError]) -> IntegrityError:
    cause = info.value.__cause__
    assert isinstance(cause, IntegrityError), cause
    return cause


# -- tree_errors: plain ORM flushes and raw SQL -------------------------------------------
def test_orm_and_raw_sql_refusals_are_typed(tree_engine: Engine) -> None:
    with Session(tree_engine) as s:
        doc = Doc(title="root", children=[Doc(title="kid")])
        a, b = Folder(tenant_id=1, name="a"), Folder(tenant_id=2, name="b")
        cat = Category(name="c")
        s.add_all([doc, a, b, cat])
        s.commit()
        doc_id, a_id, b_id, cat_id = doc.id, a.id, b.id, cat.id
    before = {m: count(tree_engine, m) for m in (Category, Doc, Folder)}

    with Session(tree_engine) as s:  # a parent_id without a row
        s.add(Category(name="x", parent_id=999))
        with (
            pytest.raises(TreeNodeNotFoundError, match="no Category has key 999") as nf,
            tree_errors(),
        ):
            s.commit()
        assert refused(nf).orig.diag.constraint_name == "tree_categories_parent_id_fkey"
    with Session(tree_engine) as s:  # a parent in another tenant
        s.add(Folder(tenant_id=2, name="x", parent_id=a_id))
        with (
            pytest.raises(TreeScopeError, match=rf"Folder: cannot make {a_id} the parent"),
            tree_errors(Folder),
        ):
            s.flush()
    with Session(tree_engine) as s:  # ON DELETE RESTRICT
        s.delete(s.get(Doc, doc_id))
        with (
            pytest.raises(TreeHasChildrenError, match=f"cannot delete Doc {doc_id}") as hc,
            tree_errors(Doc),
        ):
            s.commit()
        assert "on_delete='restrict'" in str(hc.value)
        refused(hc)
    with tree_engine.connect() as conn:  # raw SQL: its own parent, a cycle, a scope
        for stmt, params, error, pattern in [
            ("INSERT INTO tree_categories (id, name, parent_id) OVERRIDING SYSTEM VALUE "
             "VALUES (50, 'x', 50)", {}, TreeCycleError, "Category: cannot make 50 its own"),
            ("UPDATE tree_folders SET parent_id = :a WHERE id = :b", {"a": a_id, "b": b_id},
             TreeScopeError, "another scope"),
            ("UPDATE tree_categories SET parent_id = :p WHERE id = :p", {"p": cat_id},
             TreeCycleError, "its own parent"),
            ("DELETE FROM tree_docs WHERE id = :d", {"d": doc_id},
             TreeHasChildrenError, f"cannot delete Doc {doc_id}"),
        ]:
            with pytest.raises(error, match=pattern) as info, tree_errors(), conn.begin():
                conn.execute(text(stmt), params)
            refused(info)
    assert {m: count(tree_engine, m) for m in (Category, Doc, Folder)} == before


async def test_tree_errors_around_an_async_commit(
    tree_engine: Engine, pg_database: Database, pg_schema: PgSchema
) -> None:
    engine = create_async_engine(
        pg_database.url, poolclass=NullPool,
        connect_args=pg_database.search_path_args(pg_schema.name),
    )
    try:
        async with AsyncSession(engine) as s:
            s.add(Category(name="x", parent_id=12345))
            with pytest.raises(TreeNodeNotFoundError, match="12345") as info, tree_errors(Category):
                await s.commit()
            refused(info)
    finally:
        await engine.dispose()
    assert count(tree_engine, Category) == 0


def test_other_errors_pass_through(tree_engine: Engine) -> None:
    with tree_engine.connect() as conn:
        with pytest.raises(IntegrityError, match="not-null"), tree_errors(), conn.begin():
            conn.execute(text("INSERT INTO tree_categories (name) VALUES (NULL)"))
        # only the models named are recognised
        with pytest.raises(IntegrityError), tree_errors(Folder), conn.begin():
            conn.execute(text("INSERT INTO tree_categories (name, parent_id) VALUES ('x', 9)"))
    with pytest.raises(TreeOptionError, match="not a tree model"), tree_errors(Database):
        pass


class _Base(DeclarativeBase):
    metadata = MetaData(naming_convention={
        "fk": "fk_%(table_name)s_%(column_0_name)s", "ix": "ix_%(column_0_label)s"
    })


class Tag(AdjacencyListMixin, _Base):
    __tablename__ = "tree_tags"
    id: Mapped[int] = mapped_column(Identity(), primary_key=True)


def test_fk_named_by_a_naming_convention(pg_schema: PgSchema) -> None:
    _Base.metadata.create_all(pg_schema.engine)
    with Session(pg_schema.engine) as s:
        s.add(Tag(parent_id=7))
        with pytest.raises(TreeNodeNotFoundError, match="no Tag has key 7") as info, tree_errors():
            s.flush()
    assert refused(info).orig.diag.constraint_name == "fk_tree_tags_parent_id"


def test_postgres_default_fk_names() -> None:
    assert _default_fk_name("tree_categories", "parent_id") == "tree_categories_parent_id_fkey"
    long = _default_fk_name("t" * 70, "parent_id")
    assert len(long) == 63 and long.endswith("_parent_id_fkey")


# -- insert_node / delete_node: checked before writing ------------------------------------
def test_insert_node(tree_engine: Engine, writes: list[str]) -> None:
    with Session(tree_engine) as s:
        a = insert_node(s, Folder(tenant_id=1, name="a"))
        b = insert_node(s, Folder(tenant_id=2, name="b"))
        a1 = insert_node(s, Folder(name="a1"), parent=a.id)  # by key; takes the scope
        a2 = insert_node(s, Folder(name="a2", parent=a1))  # the node's own parent
        s.commit()
        assert (a1.tenant_id, a1.parent is a, a2.parent_id) == (1, True, a1.id)
        writes.clear()
        for node, parent, error, pattern in [
            (Folder(name="x"), 999, TreeNodeNotFoundError, "under 999: no Folder has that key"),
            (Folder(name="x", tenant_id=2), a.id, TreeScopeError, f"tenant_id=2 under {a.id}"),
            (Folder(name="x", tenant_id=2), a, TreeScopeError, "whose tenant_id is 1"),
            (Folder(id=77, name="x", tenant_id=1), 77, TreeCycleError, "77 under itself"),
            (a2, b, TreeOptionError, "already in the database; use move()"),
        ]:
            with pytest.raises(error, match=pattern):
                insert_node(s, node, parent=parent)
        pending = Folder(name="p", tenant_id=1, parent_id=12345)
        s.add(pending)  # already added: the check must not flush it
        with pytest.raises(TreeNodeNotFoundError, match="12345"):
            insert_node(s, pending)
        s.expunge(pending)
        assert writes == []
        added = Folder(name="added", parent=a2)
        s.add(added)
        insert_node(s, added)
        s.commit()
        assert added.tenant_id == 1 and added.parent_id == a2.id
        writes.clear()
        x = Folder(name="x", tenant_id=1)
        y = Folder(name="y", tenant_id=1, parent=x)
        with pytest.raises(TreeCycleError, match="under itself"):
            insert_node(s, x, parent=y)  # new nodes closing a cycle among themselves
        assert writes == []
    assert count(tree_engine, Folder) == 5


def test_insert_refused_by_the_database_leaves_the_session_usable(tree_engine: Engine) -> None:
    with Session(tree_engine) as s:
        gone = insert_node(s, Category(name="gone"))
        s.commit()

        # the check query sees `gone`; another statement deletes it before the flush
        @event.listens_for(s, "before_flush", once=True)
        def drop(session: Session, *args: Any) -> None:
            session.execute(text("DELETE FROM tree_categories WHERE id = :id"), {"id": gone.id})

        with pytest.raises(TreeNodeNotFoundError, match=f"no Category has key {gone.id}") as e:
            insert_node(s, Category(name="x"), parent=gone)
        refused(e)
        ok = insert_node(s, Category(name="ok"))  # the savepoint was rolled back, not all
        s.commit()
        # nothing of the refused flush stayed: no "x" (and the DELETE inside it was undone)
        assert sorted(c.name for c in s.scalars(select(Category))) == ["gone", "ok"] and ok.id


def test_delete_node(tree_engine: Engine, writes: list[str]) -> None:
    with Session(tree_engine) as s:
        root = Doc(title="root", children=[Doc(title=f"k{i}") for i in range(5)])
        cats = Category(name="c", children=[Category(name="c1", children=[Category(name="c2")])])
        s.add_all([root, cats])
        s.commit()
        kids = sorted(k.id for k in root.children)
        writes.clear()
        with pytest.raises(TreeHasChildrenError, match=rf"cannot delete Doc {root.id}: it has "
                           rf"children \({kids[0]}, {kids[1]}, {kids[2]}, \.\.\.\)"):
            delete_node(s, root)
        with pytest.raises(TreeNodeNotFoundError, match="never flushed"):
            delete_node(s, Doc(title="new"))
        with pytest.raises(TreeOptionError, match="instance, not the class"):
            delete_node(s, Doc)
        assert writes == []
        for kid in list(root.children):
            delete_node(s, kid)
        delete_node(s, root)
        delete_node(s, cats)  # cascade: the subtree goes too
        s.commit()
        assert count(tree_engine, Doc) == count(tree_engine, Category) == 0
        stale = _stale(s)
        with pytest.raises(TreeNodeNotFoundError, match=f"Category {stale.id}: no Category"):
            delete_node(s, stale)


def _stale(s: Session) -> Category:
    """A persistent Category whose row another statement deleted."""
    node = insert_node(s, Category(name="stale"))
    s.commit()
    s.execute(text("DELETE FROM tree_categories WHERE id = :id"), {"id": node.id})
    return node


async def test_async_twins(
    tree_engine: Engine, pg_database: Database, pg_schema: PgSchema
) -> None:
    engine = create_async_engine(
        pg_database.url, poolclass=NullPool,
        connect_args=pg_database.search_path_args(pg_schema.name),
    )
    try:
        async with AsyncSession(engine) as s:
            root = await insert_node_async(s, Doc(title="root"))
            await s.commit()  # expires root: the twins must not lazy-load it
            kid = await insert_node_async(s, Doc(title="kid"), parent=root)
            with pytest.raises(TreeNodeNotFoundError, match="no Doc has that key"):
                await insert_node_async(s, Doc(title="x"), parent=uuid.uuid4())
            with pytest.raises(TreeHasChildrenError, match="it has children"):
                await delete_node_async(s, root)
            await delete_node_async(s, kid)
            await delete_node_async(s, root)
            cats = await insert_node_async(s, Category(name="c", children=[Category(name="k")]))
            await s.commit()
            await delete_node_async(s, cats)  # cascade, without loading the children
            await s.commit()
    finally:
        await engine.dispose()
    assert count(tree_engine, Doc) == count(tree_engine, Category) == 0


def test_move_translates_a_parent_deleted_meanwhile(tree_engine: Engine) -> None:
    with Session(tree_engine) as s:
        a, b = insert_node(s, Category(name="a")), insert_node(s, Category(name="b"))
        s.commit()
        # the check query sees b; another statement deletes it before the flush
        @event.listens_for(s, "before_flush", once=True)
        def drop(session: Session, *args: Any) -> None:
            session.execute(text("DELETE FROM tree_categories WHERE id = :id"), {"id": b.id})

        with pytest.raises(TreeNodeNotFoundError, match=f"no Category has key {b.id}") as info:
            move(s, a, b)
        refused(info)
