"""A hypothesis state machine: random inserts, moves (legal or not) and deletes on a forest.

Inserts and deletes go through the ORM and through insert_node/delete_node (also under a
deleted parent, and as raw SQL refused by the guard). After every step the database answers
like a pure-Python model of the same forest, and refused writes left nothing behind.
"""

from __future__ import annotations

from typing import Any

from _tree_models import Category, tree_engine
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from pgpatterns.errors import TreeCycleError, TreeNodeNotFoundError
from pgpatterns.trees import (
    ancestors,
    delete_node,
    descendants,
    insert_node,
    load_subtree,
    move,
    subtree_size,
    tree_errors,
)

__all__ = ["tree_engine"]


class Forest(RuleBasedStateMachine):
    nodes = Bundle("nodes")

    def __init__(self, engine: Engine) -> None:
        super().__init__()
        with engine.begin() as conn:
            conn.execute(text("TRUNCATE tree_categories RESTART IDENTITY"))
        self.session = Session(engine)
        self.parent: dict[int, int | None] = {}
        self.deleted: list[int] = []

    # -- the model ---------------------------------------------------------------------
    def kids(self, key: int) -> list[int]:
        return sorted(k for k, p in self.parent.items() if p == key)

    def below(self, key: int, depth: int = 0) -> list[tuple[int, int]]:
        out = [(key, depth)]
        for kid in self.kids(key):
            out += self.below(kid, depth + 1)
        return out

    def chain(self, key: int) -> list[int]:
        out = [key]
        while (up := self.parent[out[-1]]) is not None:
            out.append(up)
        return out

    # -- rules -------------------------------------------------------------------------
    @rule(target=nodes, parent=st.one_of(st.none(), nodes))
    def insert(self, parent: int | None) -> Any:
        if parent is not None and parent not in self.parent:
            return multiple()
        node = Category(name="n", parent_id=parent)
        self.session.add(node)
        self.session.commit()
        self.parent[node.id] = parent
        return node.id

    @rule(target=nodes, parent=st.one_of(st.none(), nodes))
    def insert_checked(self, parent: int | None) -> Any:
        """insert_node, also under a node deleted before (refused before writing)."""
        gone = parent is not None and parent not in self.parent
        try:
            node = insert_node(self.session, Category(name="c"), parent=parent)
        except TreeNodeNotFoundError:
            assert gone
            return multiple()
        assert not gone
        self.session.commit()
        self.parent[node.id] = parent
        return node.id

    @precondition(lambda self: self.deleted)
    @rule(data=st.data())
    def insert_under_deleted(self, data: st.DataObject) -> None:
        """insert_node under a deleted node's key: refused before anything is written."""
        gone = data.draw(st.sampled_from(self.deleted))
        try:
            insert_node(self.session, Category(name="c"), parent=gone)
        except TreeNodeNotFoundError as exc:
            assert f"under {gone}: no Category has that key" in str(exc)
        else:
            raise AssertionError(f"insert_node accepted the deleted parent {gone}")
        self.session.commit()

    @rule(parent=nodes)
    def insert_raw_refused(self, parent: int) -> None:
        """Raw SQL the guard refuses (a node as its own parent), typed by tree_errors."""
        try:
            with tree_errors(Category), self.session.begin_nested():
                self.session.execute(
                    text("INSERT INTO tree_categories (id, name, parent_id) OVERRIDING "
                         "SYSTEM VALUE VALUES (:id, 'x', :id)"),
                    {"id": 100_000 + parent},
                )
        except TreeCycleError:
            pass
        else:
            raise AssertionError("the guard let a node be its own parent")
        self.session.commit()

    @rule(node=consumes(nodes))
    def delete_checked(self, node: int) -> None:
        if node not in self.parent:
            return
        delete_node(self.session, self.session.get(Category, node))
        self.session.commit()
        for key, _ in self.below(node):  # ON DELETE CASCADE
            del self.parent[key]
            self.deleted.append(key)

    @rule(node=nodes, new_parent=st.one_of(st.none(), nodes))
    def move(self, node: int, new_parent: int | None) -> None:
        if node not in self.parent or (new_parent is not None and new_parent not in self.parent):
            return
        obj = self.session.get(Category, node)
        illegal = new_parent is not None and new_parent in dict(self.below(node))
        try:
            move(self.session, obj, new_parent)
        except TreeCycleError:
            assert illegal
        else:
            assert not illegal
            self.session.commit()
            self.parent[node] = new_parent

    @rule(node=consumes(nodes))
    def delete(self, node: int) -> None:
        if node not in self.parent:
            return
        self.session.delete(self.session.get(Category, node))
        self.session.commit()
        for key, _ in self.below(node):  # ON DELETE CASCADE
            del self.parent[key]
            self.deleted.append(key)

    # -- invariants --------------------------------------------------------------------
    @invariant()
    def database_agrees(self) -> None:
        s = self.session
        s.expire_all()
        for key in list(self.parent)[:4]:
            stmt = descendants(Category, key, include_self=True)
            got = [(n.id, d) for n, d, _ in s.execute(stmt)]
            assert got == self.below(key)
            up = [n.id for n, _, _ in s.execute(ancestors(Category, key, include_self=True))]
            assert up == self.chain(key)[::-1]
            assert s.scalar(subtree_size(Category, key)) == len(got)
            root = load_subtree(s, Category, key)

            def shape(n: Category) -> list[Any]:
                return [n.id, [shape(k) for k in n.children]]

            def expected(k: int) -> list[Any]:
                return [k, [expected(c) for c in self.kids(k)]]

            assert shape(root) == expected(key)

    @invariant()
    def nothing_else_written(self) -> None:
        count = self.session.scalar(select(func.count()).select_from(Category))
        assert count == len(self.parent)

    @invariant()
    def no_cycles(self) -> None:
        for key in self.parent:
            assert len(set(self.chain(key))) == len(self.chain(key))

    def teardown(self) -> None:
        self.session.close()


def test_forest_state_machine(tree_engine: Engine) -> None:
    run_state_machine_as_test(
        lambda: Forest(tree_engine),
        settings=settings(settings.default, stateful_step_count=16),
    )
