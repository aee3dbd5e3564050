"""pgpatterns.trees against a real PostgreSQL: queries, moves, the trigger, loading, checks."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from _tree_models import Category, Doc, Folder, tree_engine
from sqlalchemy import Engine, event, func, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from pgpatterns.bulk import copy_rows
from pgpatterns.errors import TreeCycleError, TreeNodeNotFoundError, TreeScopeError
from pgpatterns.explain import explain, has_seq_scan, uses_index
from pgpatterns.testing import Database
from pgpatterns.testing.plugin import PgSchema
from pgpatterns.trees import (
    TreeProblem,
    ancestors,
    bulk_load,
    bulk_load_async,
    children,
    descendants,
    find_problems,
    find_problems_async,
    load_subtree,
    load_subtree_async,
    move,
    move_async,
    roots,
    siblings,
    subtree_size,
)

__all__ = ["tree_engine"]  # the fixture, re-exported for pytest


def build(session: Session) -> dict[str, Category]:
    """electronics > (computers > (laptops, desktops), phones); books."""
    n = {name: Category(name=name) for name in
         ("electronics", "computers", "laptops", "desktops", "phones", "books")}
    n["computers"].parent = n["electronics"]
    n["phones"].parent = n["electronics"]
    n["laptops"].parent = n["computers"]
    n["desktops"].parent = n["computers"]
    session.add_all(n.values())
    session.commit()
    return n


def names(session: Session, stmt: Any) -> list[tuple[str, int]]:
    return [(node.name, depth) for node, depth, _ in session.execute(stmt)]


def test_queries(tree_engine: Engine) -> None:
    with Session(tree_engine) as s:
        n = build(s)
        e, c = n["electronics"], n["computers"]
        assert names(s, descendants(e)) == [
            ("computers", 1), ("laptops", 2), ("desktops", 2), ("phones", 1)
        ] or names(s, descendants(e)) == [
            ("computers", 1), ("desktops", 2), ("laptops", 2), ("phones", 1)
        ]
        assert [p for _, _, p in s.execute(descendants(e))][1] == [e.id, c.id, n["laptops"].id]
        assert names(s, descendants(e, max_depth=1, include_self=True)) == [
            ("electronics", 0), ("computers", 1), ("phones", 1)
        ]
        assert [d for _, d, _ in s.execute(descendants(e, order="breadth_first"))] == [1, 1, 2, 2]
        assert names(s, descendants(Category, e.id, max_depth=0)) == []
        crumbs = s.execute(ancestors(n["laptops"], include_self=True)).all()
        assert [(x.name, d) for x, d, _ in crumbs] == [
            ("electronics", 2), ("computers", 1), ("laptops", 0)
        ]
        assert crumbs[0][2] == [e.id, c.id, n["laptops"].id]
        assert [x.name for x in s.scalars(children(c))] == ["laptops", "desktops"]
        assert [x.name for x in s.scalars(siblings(c))] == ["phones"]
        assert [x.name for x in s.scalars(siblings(Category, n["books"].id))] == ["electronics"]
        assert [x.name for x in s.scalars(roots(Category))] == ["electronics", "books"]
        assert s.scalar(subtree_size(e)) == 5 and s.scalar(subtree_size(Category, 999)) == 0
        assert names(s, descendants(Category, 999)) == []


def test_move_and_its_errors(tree_engine: Engine) -> None:
    with Session(tree_engine) as s:
        n = build(s)
        e, c, lap = n["electronics"], n["computers"], n["laptops"]
        with pytest.raises(TreeCycleError, match=rf"cannot move Category {e.id} under {lap.id}: "
                           rf"{lap.id} is a descendant of {e.id}"):
            move(s, e, lap)
        with pytest.raises(TreeCycleError, match="under itself"):
            move(s, c, c)
        with pytest.raises(TreeNodeNotFoundError, match="no Category has key 999"):
            move(s, c, 999)
        assert s.scalar(select(Category.parent_id).where(Category.id == e.id)) is None
        move(s, c, n["books"])
        move(s, n["phones"], None)
        s.commit()
        assert names(s, descendants(n["books"])) == [
            ("computers", 1), ("laptops", 2), ("desktops", 2)
        ]
        assert c.parent is n["books"] and c in n["books"].children
        move(s, lap, n["books"].id)  # by key
        s.commit()
        assert s.scalar(select(Category.parent_id).where(Category.id == lap.id)) == n["books"].id


def test_trigger_refuses_raw_sql_cycles(tree_engine: Engine) -> None:
    with Session(tree_engine) as s:
        n = build(s)
        e, lap, c = n["electronics"].id, n["laptops"].id, n["computers"].id
    with tree_engine.connect() as conn:
        for stmt, params in [
            ("UPDATE tree_categories SET parent_id = :p WHERE id = :n", {"p": lap, "n": e}),
            ("UPDATE tree_categories SET parent_id = id WHERE id = :n", {"n": c, "p": 0}),
            # one statement swapping two nodes: each row alone is fine, together a cycle
            ("UPDATE tree_categories SET parent_id = CASE id WHEN :n THEN :p ELSE :n END "
             "WHERE id IN (:n, :p)", {"n": c, "p": lap}),
            ("INSERT INTO tree_categories (id, name, parent_id) OVERRIDING SYSTEM VALUE "
             "VALUES (100, 'x', 101), (101, 'y', 100)", {}),
        ]:
            with (
                pytest.raises(IntegrityError, match=r"descendant|own parent") as info,
                conn.begin(),
            ):
                conn.execute(text(stmt), params)
            assert info.value.orig.diag.constraint_name == "tree_categories_tree_cycle"
    with Session(tree_engine) as s:
        assert find_problems(s, Category) == []


def test_scopes(tree_engine: Engine) -> None:
    with Session(tree_engine) as s:
        a = Folder(tenant_id=1, name="a", children=[
            Folder(tenant_id=1, name="a2", position=2), Folder(tenant_id=1, name="a1", position=1)
        ])
        b = Folder(tenant_id=2, name="b")
        s.add_all([a, b])
        s.commit()
        assert [f.name for f, _, _ in s.execute(descendants(a))] == ["a1", "a2"]
        assert [f.name for f in s.scalars(roots(Folder, scope=2))] == ["b"]
        assert s.execute(descendants(Folder, a.id, scope=2)).all() == []
        with pytest.raises(TreeScopeError, match="different scopes"):
            move(s, b, a)
        with pytest.raises(TreeScopeError, match="different scopes"):
            move(s, b, a.id)
        with pytest.raises(IntegrityError, match="another scope"):
            s.execute(update(Folder).where(Folder.id == b.id).values(parent_id=a.id))
        s.rollback()
        s.delete(a)  # ON DELETE SET NULL: the children become roots
        s.commit()
        assert sorted(f.name for f in s.scalars(roots(Folder, scope=1))) == ["a1", "a2"]


def test_uuid_keys_and_restrict(tree_engine: Engine) -> None:
    with Session(tree_engine) as s:
        root = Doc(title="root", children=[Doc(title="x", children=[Doc(title="y")])])
        s.add(root)
        s.commit()
        assert [(d.title, depth) for d, depth, _ in s.execute(descendants(root))] == [
            ("x", 1), ("y", 2)
        ]
        y = root.children[0].children[0]
        with pytest.raises(TreeCycleError):
            move(s, root, y)
        s.delete(root)
        with pytest.raises(IntegrityError):
            s.commit()  # ON DELETE RESTRICT: a node with children stays


def test_load_subtree_is_one_statement(tree_engine: Engine) -> None:
    with Session(tree_engine) as s:
        ids = {k: v.id for k, v in build(s).items()}
    statements: list[str] = []
    event.listen(tree_engine, "before_cursor_execute",
                 lambda *a: statements.append(a[2]))
    with Session(tree_engine) as s:
        root = load_subtree(s, Category, ids["electronics"])
        assert len(statements) == 1
        tree = {x.name: [k.name for k in x.children] for x in (root, *root.children)}
        assert tree == {"electronics": ["computers", "phones"],
                        "computers": ["laptops", "desktops"], "phones": []}
        assert root.children[0].children[0].parent is root.children[0]
        assert root.children[0].children[0].children == []
        assert len(statements) == 1  # no lazy load happened
        shallow = load_subtree(s, Category, ids["electronics"], max_depth=1)
        assert [k.name for k in shallow.children] == ["computers", "phones"]
        with pytest.raises(TreeNodeNotFoundError, match="no Category has key 999"):
            load_subtree(s, Category, 999)


def test_bulk_load_and_find_problems(tree_engine: Engine) -> None:
    data = [{"name": "r", "children": [{"name": "a", "children": [{"name": "b"}]},
                                       {"name": "c"}]}, {"name": "s"}]
    with Session(tree_engine) as s:
        assert bulk_load(s, Category, data) == 5
        s.commit()
        r = s.scalars(roots(Category)).first()
        assert r is not None
        assert names(s, descendants(r)) == [("a", 1), ("b", 2), ("c", 1)]
        assert find_problems(s, Category) == []
        assert bulk_load(s, Folder, {"name": "f", "tenant_id": 4,
                                     "children": [{"name": "g", "position": 0}]}) == 2
        s.commit()
        assert s.scalar(select(func.count()).where(Folder.tenant_id == 4)) == 2
        # corrupt the table behind the guard's back, then find it
        a = s.scalar(select(Category.id).where(Category.name == "a"))
        b = s.scalar(select(Category.id).where(Category.name == "b"))
        s.execute(text("ALTER TABLE tree_categories DISABLE TRIGGER ALL"))
        s.execute(text("UPDATE tree_categories SET parent_id = :b WHERE id = :a"), {"a": a, "b": b})
        s.execute(text("UPDATE tree_categories SET parent_id = 12345 WHERE name = 'c'"))
        c = s.scalar(select(Category.id).where(Category.name == "c"))
        assert find_problems(s, Category) == [
            TreeProblem("cycle", a, b), TreeProblem("cycle", b, a), TreeProblem("orphan", c, 12345)
        ]
        # queries still terminate on the corrupted table
        assert len(s.execute(descendants(Category, a)).all()) == 1
        assert len(s.execute(ancestors(Category, a)).all()) == 1
        s.rollback()


async def test_async_twins(
    tree_engine: Engine, pg_database: Database, pg_schema: PgSchema
) -> None:
    with Session(tree_engine) as s:
        ids = {k: v.id for k, v in build(s).items()}
    engine = create_async_engine(
        pg_database.url, poolclass=NullPool,
        connect_args=pg_database.search_path_args(pg_schema.name),
    )
    try:
        async with AsyncSession(engine, expire_on_commit=False) as s:
            root = await load_subtree_async(s, Category, ids["electronics"])
            assert [k.name for k in root.children] == ["computers", "phones"]
            with pytest.raises(TreeCycleError):
                await move_async(s, root, root.children[0])
            await move_async(s, root.children[0], ids["books"])
            await s.commit()
            books = await load_subtree_async(s, Category, ids["books"])
            assert [k.name for k in books.children] == ["computers"]
            assert await bulk_load_async(s, Category, [{"name": "new"}]) == 1
            assert await find_problems_async(s, Category) == []
    finally:
        await engine.dispose()


def test_concurrent_moves_that_form_a_cycle(tree_engine: Engine) -> None:
    """T1 moves a under b; T2 moves b under a: T2 waits for T1's lock, then fails."""
    with Session(tree_engine) as s:
        a, b = Category(name="a"), Category(name="b")
        s.add_all([a, b])
        s.commit()
        ids = a.id, b.id
    errors: list[BaseException] = []
    with tree_engine.connect() as t1:
        t1.execute(text("SET lock_timeout = '5s'"))
        t1.execute(update(Category).where(Category.id == ids[0]).values(parent_id=ids[1]))

        def second() -> None:
            with Session(tree_engine) as s2:
                s2.execute(text("SET lock_timeout = '5s'"))
                try:
                    move(s2, s2.get(Category, ids[1]), ids[0])  # a is not yet under b for T2
                    s2.commit()
                except BaseException as exc:  # reported below
                    errors.append(exc)

        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.5)  # T2 is now blocked in the trigger's advisory lock
        t1.commit()
        thread.join(10)
    assert len(errors) == 1 and isinstance(errors[0], TreeCycleError), errors
    with Session(tree_engine) as s:
        assert find_problems(s, Category) == []


def test_random_concurrent_moves_leave_a_valid_tree(tree_engine: Engine) -> None:
    with Session(tree_engine) as s:
        bulk_load(s, Category, [{"name": f"n{i}"} for i in range(24)])
        s.commit()
        ids = list(s.scalars(select(Category.id)))

    def worker(seed: int) -> None:
        import random

        rng = random.Random(seed)
        with tree_engine.connect() as conn:
            conn.execute(text("SET lock_timeout = '2s'"))
            conn.commit()
            for _ in range(30):
                node, parent = rng.choice(ids), rng.choice([*ids, None])
                try:
                    with conn.begin():
                        conn.execute(update(Category).where(Category.id == node)
                                     .values(parent_id=parent))
                        conn.execute(update(Category).where(Category.id == rng.choice(ids))
                                     .values(name=f"w{seed}"))
                except DBAPIError:
                    pass  # refused (cycle, own parent), or a deadlock victim

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    with Session(tree_engine) as s:
        assert find_problems(s, Category) == []
        parents = dict(s.execute(select(Category.id, Category.parent_id)).all())
    for start in parents:  # pure-Python check: every walk up ends at a root
        seen, node = set(), start
        while node is not None:
            assert node not in seen, f"cycle through {node}"
            seen.add(node)
            node = parents[node]


def test_scoped_cte_uses_parent_index_and_stays_in_scope(tree_engine: Engine) -> None:
    """40k folders in 40 tenants + ANALYZE: the scoped walk reads the parent_id index."""
    rows = []
    for tenant in range(40):
        base = tenant * 1000 + 1
        for i in range(1000):
            parent = None if i == 0 else base + (i - 1) // 4
            rows.append((base + i, tenant, parent, 0, f"f{i}"))
    with tree_engine.begin() as conn:
        copy_rows(conn, Folder.__table__, rows,
                  columns=["id", "tenant_id", "parent_id", "position", "name"])
        conn.execute(text("ANALYZE tree_folders"))
    index = next(i.name for i in Folder.__table__.indexes)
    with Session(tree_engine) as s:
        stmt = descendants(Folder, 3002, scope=3, max_depth=3)
        assert len(s.execute(stmt).all()) == 4 + 16 + 64
        plan = explain(s, stmt, analyze=True)
        assert uses_index(plan, index) and not has_seq_scan(plan, "tree_folders")
        # the naive form: walk every tree from its root, filter the tenant afterwards
        naive = text(
            "WITH RECURSIVE t AS (SELECT id, tenant_id FROM tree_folders WHERE parent_id IS NULL"
            " UNION ALL SELECT f.id, f.tenant_id FROM tree_folders f JOIN t ON f.parent_id = t.id)"
            " SELECT * FROM t WHERE tenant_id = 3"
        )
        assert has_seq_scan(explain(s, naive), "tree_folders")
