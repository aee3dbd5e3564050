"""Health check of a tree table: cycles, orphans and scope mismatches.

Examples:
    >>> from pgpatterns.trees import find_problems
    >>> find_problems(session, Category)  # doctest: +SKIP
    [TreeProblem(kind='cycle', key=7, parent_key=9)]

A guarded table (:func:`pgpatterns.trees.tree_guard` and the foreign key) has none; they
appear when the trigger or the foreign key was disabled, or rows were written before the
guard existed. The check reads the whole table once (a walk down from every root, then
an anti-join), so its time grows linearly with the table; only nodes no root reaches (on
or below a cycle) are walked up.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import Select, and_, exists, func, literal_column, select, union_all
from sqlalchemy.dialects.postgresql import array
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from pgpatterns.trees.model import Tree, tree_of

__all__ = ["TreeProblem", "find_problems", "find_problems_async"]


class TreeProblem(NamedTuple):
    """One broken node: ``kind`` is ``"cycle"``, ``"orphan"`` or ``"scope_mismatch"``."""

    kind: str
    key: Any
    parent_key: Any


def _orphans(tree: Tree) -> Select[Any]:
    t, p = tree.table, tree.table.alias()
    key, parent = t.c[tree.key.name], t.c[tree.parent.name]
    has_parent = exists().where(p.c[tree.key.name] == parent)
    return select(literal_column("'orphan'"), key, parent).where(
        parent.is_not(None), ~has_parent
    )


def _mismatches(tree: Tree) -> Select[Any] | None:
    if tree.scope is None:
        return None
    t, p = tree.table, tree.table.alias()
    return select(
        literal_column("'scope_mismatch'"), t.c[tree.key.name], t.c[tree.parent.name]
    ).join(
        p,
        and_(
            p.c[tree.key.name] == t.c[tree.parent.name],
            p.c[tree.scope.name].is_distinct_from(t.c[tree.scope.name]),
        ),
    )


def _cycles(tree: Tree) -> Select[Any]:
    """Nodes on a cycle: among the nodes no root reaches, those whose walk up returns.

    Linear: the walk down from the roots (and orphans) needs no visited-set, because it
    can never enter a cycle (a node on a cycle has its parent on the cycle); the nodes it
    does not reach are found by an anti-join (hashed), and only those walk up.
    """
    t = tree.table
    key, parent = t.c[tree.key.name], t.c[tree.parent.name]
    p = t.alias()
    orphans = ~exists().where(p.c[tree.key.name] == parent)  # an anti-join, never NOT IN
    starts = union_all(
        select(key.label("k")).where(parent.is_(None)),
        select(key.label("k")).where(parent.is_not(None), orphans),
    ).subquery()
    reach = select(starts.c.k).cte(recursive=True)
    c = t.alias()
    reach = reach.union_all(
        select(c.c[tree.key.name]).where(c.c[tree.parent.name] == reach.c.k)
    )
    lost = select(key, parent).where(~exists().where(reach.c.k == key)).cte()
    up = select(
        lost.c[tree.key.name].label("start"),
        lost.c[tree.parent.name].label("p"),
        array([lost.c[tree.key.name]]).label("seen"),
    ).cte(recursive=True)
    a = t.alias()
    up = up.union_all(
        select(up.c.start, a.c[tree.parent.name], func.array_append(up.c.seen, a.c[tree.key.name]))
        .where(a.c[tree.key.name] == up.c.p, a.c[tree.key.name] != func.all(up.c.seen))
    )
    on_cycle = exists().where(up.c.start == lost.c[tree.key.name], up.c.p == up.c.start)
    return select(
        literal_column("'cycle'"), lost.c[tree.key.name], lost.c[tree.parent.name]
    ).where(on_cycle)


def _statements(model: type[Any]) -> list[Select[Any]]:
    tree = tree_of(model)
    found = [_cycles(tree), _orphans(tree), _mismatches(tree)]
    return [s for s in found if s is not None]


def find_problems(session: Session, model: type[Any]) -> list[TreeProblem]:
    """Every node on a cycle, whose parent is missing, or whose parent has another scope.

    Examples:
        >>> find_problems(session, Category)  # doctest: +SKIP
        []

    Sorted by kind, then key. Read-only.
    """
    rows = [row for stmt in _statements(model) for row in session.execute(stmt)]
    return sorted((TreeProblem(*r) for r in rows), key=lambda p: (p.kind, p.key))


async def find_problems_async(session: AsyncSession, model: type[Any]) -> list[TreeProblem]:
    """The asyncio twin of :func:`find_problems`.

    Examples:
        >>> await find_problems_async(session, Category)  # doctest: +SKIP
        []
    """
    rows = [row for stmt in _statements(model) for row in await session.execute(stmt)]
    return sorted((TreeProblem(*r) for r in rows), key=lambda p: (p.kind, p.key))
