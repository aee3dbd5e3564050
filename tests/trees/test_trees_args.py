"""Bad arguments fail before any SQL; explicit keys in bulk_load keep the sequence ahead (#17)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from _tree_models import Category, Folder, tree_engine
from sqlalchemy import Engine, event, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pgpatterns.errors import ArgumentError, TreeCycleError
from pgpatterns.trees import (
    ancestors,
    bulk_load,
    children,
    descendants,
    insert_node,
    load_subtree,
    move,
    roots,
    siblings,
    subtree_size,
    tree_errors,
)

__all__ = ["tree_engine"]

BAD: list[tuple[str, Callable[[Session, Any], Any]]] = [
    ("descendants text key", lambda s, n: descendants(Category, "abc")),
    ("ancestors 2**70", lambda s, n: ancestors(Category, 2**70)),
    ("children float", lambda s, n: children(Category, 1.5)),
    ("siblings bool", lambda s, n: siblings(Category, True)),
    ("subtree_size None scope type", lambda s, n: subtree_size(Folder, 1, scope="x")),
    ("roots scope", lambda s, n: roots(Folder, scope=2**64)),
    ("load_subtree text", lambda s, n: load_subtree(s, Category, "1")),
    ("move text", lambda s, n: move(s, n, "abc")),
    ("move 2**70", lambda s, n: move(s, n, 2**70)),
    ("insert_node text parent", lambda s, n: insert_node(s, Category(name="x"), parent="x")),
    ("bulk_load None", lambda s, n: bulk_load(s, Category, None)),  # type: ignore[arg-type]
    ("bulk_load key 2**40", lambda s, n: bulk_load(s, Category, [{"id": 2**40, "name": "x"}])),
]


def test_bad_arguments_fail_before_sql(tree_engine: Engine) -> None:
    with Session(tree_engine) as s:
        node = Category(name="n")
        s.add(node)
        s.commit()
        node_id = node.id
        sent: list[str] = []
        listener = lambda *a: sent.append(a[2])  # noqa: E731
        for label, call in BAD:
            sent.clear()
            event.listen(tree_engine, "before_cursor_execute", listener)
            try:
                with pytest.raises(ArgumentError) as info:
                    result = call(s, node)
                    if result is not None and hasattr(result, "compile"):
                        s.execute(result)  # a builder that accepted it would fail here
            finally:
                event.remove(tree_engine, "before_cursor_execute", listener)
            assert sent == [], (label, sent)
            assert isinstance(info.value, (TypeError, ValueError)), label
        assert s.get(Category, node_id) is not None


def test_bulk_load_with_explicit_keys_advances_the_sequence(tree_engine: Engine) -> None:
    with Session(tree_engine) as s:
        assert bulk_load(s, Category, [{"id": 1, "name": "a", "children": [
            {"id": 5, "name": "b"}, {"name": "generated"}]}]) == 3
        s.commit()
        made = insert_node(s, Category(name="next"), parent=1)  # collided with 1 before
        s.commit()
        assert made.id > 5
        assert {c.name for c in s.get(Category, 1).children} == {"b", "generated", "next"}


def test_a_duplicate_key_is_not_reported_as_a_cycle(tree_engine: Engine) -> None:
    with Session(tree_engine) as s:
        bulk_load(s, Category, [{"id": 1, "name": "a"}])
        s.commit()
        with pytest.raises(IntegrityError) as info, tree_errors(Category):
            s.execute(text("INSERT INTO tree_categories (id, name, parent_id) OVERRIDING "
                           "SYSTEM VALUE VALUES (1, 'dup', 1)"))
        assert not isinstance(info.value, TreeCycleError)
        assert info.value.orig is not None and info.value.orig.sqlstate == "23505"
        s.rollback()
        with pytest.raises(TreeCycleError), tree_errors(Category):  # a new key: a real cycle
            s.execute(text("INSERT INTO tree_categories (id, name, parent_id) OVERRIDING "
                           "SYSTEM VALUE VALUES (99, 'self', 99)"))
        s.rollback()
