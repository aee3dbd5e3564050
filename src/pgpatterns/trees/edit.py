"""Insert and delete nodes with the tree's rules checked first and refusals typed.

Examples:
    >>> from pgpatterns.trees import delete_node, insert_node
    >>> laptops = insert_node(session, Category(name="Laptops"), parent=computers)
    ... # doctest: +SKIP
    >>> delete_node(session, computers)  # doctest: +SKIP

Both check with (at most) one query what the database would refuse — an unknown parent, a
parent from another scope, a node as its own parent, deleting a node with children under
``on_delete="restrict"`` — and raise the typed error before anything is written. Then they
flush inside a SAVEPOINT, so when the database still refuses (another transaction changed
the tree meanwhile), the refusal is translated by :func:`~pgpatterns.trees.tree_errors`,
nothing is written and the session stays usable.

Plain ``session.add()``/``session.delete()`` remain fine; wrap their flush or commit in
:func:`~pgpatterns.trees.tree_errors` to get the same typed errors from the database.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, exists, func, inspect, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from pgpatterns._args import key_value
from pgpatterns.errors import (
    TreeCycleError,
    TreeHasChildrenError,
    TreeNodeNotFoundError,
    TreeOptionError,
    TreeScopeError,
)
from pgpatterns.trees.errors import translate_any
from pgpatterns.trees.model import Tree, tree_of

__all__ = ["delete_node", "delete_node_async", "insert_node", "insert_node_async"]

_SHOWN_CHILDREN = 3


def _instance(node: Any, fn: str) -> Tree:
    tree = tree_of(node)
    if isinstance(node, type):
        raise TreeOptionError(
            f"{fn}() takes a {tree.label} instance, not the class: "
            f"`{fn}(session, {tree.label}(...))`."
        )
    return tree


def _key(tree: Tree, obj: Any) -> Any:
    """The node's key, from its identity when it is the primary key (no refresh, no IO)."""
    state = inspect(obj)
    if state.key is not None and tuple(tree.mapper.primary_key) == (tree.key,):
        return state.identity[0] if state.identity else None
    return tree.key_of(obj)


# -- insert --------------------------------------------------------------------------------
def _insert_plan(tree: Tree, node: Any, parent: Any) -> tuple[Any, Any]:
    """Checks needing no SQL. Returns (parent instance to use as is, parent key to fetch)."""
    if inspect(node).key is not None:
        raise TreeOptionError(
            f"insert_node: {tree.label} {_key(tree, node)} is already in the database; "
            "use move() to re-parent it."
        )
    if parent is None:
        parent = node.parent if node.parent is not None else node.parent_id
    if parent is None:
        return None, None
    if not isinstance(parent, tree.model):
        parent = key_value("insert_node", "parent", parent, tree.key.type)
        if parent == tree.key_of(node):
            raise _own_parent(tree, parent)
        return None, parent
    if inspect(parent).key is not None:
        return None, _key(tree, parent)
    up = parent  # a parent inserted in the same flush: walk its (in-memory) ancestors
    while up is not None and inspect(up).key is None:
        if up is node:
            raise _own_parent(tree, tree.key_of(node) or "(new)")
        up = up.parent
    _check_scope(tree, node, parent, tree.key_of(parent) or "(new)")
    return parent, None


def _own_parent(tree: Tree, key: Any) -> TreeCycleError:
    return TreeCycleError(
        f"cannot insert {tree.label} {key} under itself: a node cannot be its own parent or "
        "ancestor; pass another parent, or None for a root."
    )


def _parent_stmt(tree: Tree, key: Any) -> Select[Any]:
    # no autoflush: a node the caller already added must not be written before the checks
    return select(tree.model).where(tree.key == key).execution_options(autoflush=False)


def _found(tree: Tree, node: Any, key: Any, parent: Any) -> Any:
    if parent is None:
        raise TreeNodeNotFoundError(
            f"cannot insert a {tree.label} under {key!r}: no {tree.label} has that key; "
            "pass an existing node's key or instance, or None for a root."
        )
    _check_scope(tree, node, parent, key)
    return parent


def _check_scope(tree: Tree, node: Any, parent: Any, parent_key: Any) -> None:
    """A node without a scope value takes its parent's; a different value is refused."""
    if tree.scope is None:
        return
    attr = tree.mapper.get_property_by_column(tree.scope).key
    mine, theirs = tree.scope_of(node), tree.scope_of(parent)
    if mine is None:
        setattr(node, attr, theirs)
    elif mine != theirs:
        raise TreeScopeError(
            f"cannot insert a {tree.label} with {attr}={mine!r} under {parent_key}, whose "
            f"{attr} is {theirs!r}: a parent must be in its children's scope; leave {attr} "
            "unset to take the parent's, or choose a parent from the same tree."
        )


def _hold(session: Session, node: Any) -> None:
    """Keep ``node`` out of the flush that opens the SAVEPOINT, so that it is written inside.

    A node already added is taken out again; a node whose ``parent`` is set sits in that
    parent's ``children`` (backref) and would make that flush warn: unset until
    :func:`_attach` sets the checked parent again.
    """
    if inspect(node).pending:
        session.expunge(node)
    if node.parent is not None:
        node.parent = None


def _attach(session: Session, node: Any, parent: Any) -> None:
    if parent is not None:
        node.parent = parent
    session.add(node)


def insert_node(session: Session, node: Any, *, parent: Any = None) -> Any:
    """Add a new ``node`` under ``parent`` (an instance, a key; None: the node's own
    ``parent``/``parent_id``, else a root), check it, flush it, and return it.

    Examples:
        >>> phones = insert_node(session, Category(name="Phones"), parent=electronics.id)
        ... # doctest: +SKIP
        >>> insert_node(session, Category(name="x"), parent=999)  # doctest: +SKIP
        Traceback (most recent call last):
        ...
        pgpatterns.errors.TreeNodeNotFoundError: cannot insert a Category under 999: ...

    A parent given by key (or a persistent instance) is loaded with one query, which checks
    it exists and is in the node's scope; a node without a scope value takes its parent's.
    The INSERT is flushed in a SAVEPOINT: a refusal by the database is raised as the typed
    error (see :func:`~pgpatterns.trees.tree_errors`), with nothing written.

    Raises:
        ArgumentError: ``parent`` is a key of the wrong type or out of range.
        TreeConcurrentUpdateError: a serialization failure or deadlock; retry the
            transaction.
        TreeNodeNotFoundError: no node has the parent's key.
        TreeScopeError: the parent is in another scope than the node.
        TreeCycleError: the node is its own parent (or ancestor, among new nodes).
        TreeOptionError: ``node`` is already in the database (use :func:`move`).
    """
    tree = _instance(node, "insert_node")
    given, key = _insert_plan(tree, node, parent)
    if key is not None:
        given = _found(tree, node, key, session.scalar(_parent_stmt(tree, key)))
    _hold(session, node)
    try:
        with session.begin_nested():
            _attach(session, node, given)
    except DBAPIError as exc:
        error = translate_any(exc, [tree], f"the write of a {tree.label}")
        if error is None:
            raise
        raise error from exc
    return node


async def insert_node_async(session: AsyncSession, node: Any, *, parent: Any = None) -> Any:
    """The asyncio twin of :func:`insert_node` (same checks, statements and errors).

    Examples:
        >>> node = await insert_node_async(session, Category(name="x"), parent=1)
        ... # doctest: +SKIP
    """
    tree = _instance(node, "insert_node_async")
    given, key = _insert_plan(tree, node, parent)
    if key is not None:
        given = _found(tree, node, key, await session.scalar(_parent_stmt(tree, key)))
    _hold(session.sync_session, node)
    try:
        async with session.begin_nested():
            _attach(session.sync_session, node, given)
    except DBAPIError as exc:
        error = translate_any(exc, [tree], f"the write of a {tree.label}")
        if error is None:
            raise
        raise error from exc
    return node


# -- delete --------------------------------------------------------------------------------
def _delete_plan(tree: Tree, node: Any) -> Any:
    key = _key(tree, node) if inspect(node).key is not None else None
    if key is None:
        raise TreeNodeNotFoundError(
            f"delete_node: this {tree.label} was never flushed, so there is nothing to "
            "delete; remove it with session.expunge() instead."
        )
    return key


def _delete_check_stmt(tree: Tree, key: Any) -> Select[Any]:
    """One row: whether the node exists, and up to a few of its children's keys."""
    kids = (
        select(tree.key.label("k"))
        .where(tree.parent == key)
        .order_by(tree.key)
        .limit(_SHOWN_CHILDREN + 1)
        .subquery()
    )
    return select(
        exists().where(tree.key == key).label("found"),
        select(func.array_agg(kids.c.k)).scalar_subquery(),
    )


def _delete_verdict(tree: Tree, key: Any, row: Any) -> None:
    found, kids = row
    if not found:
        raise TreeNodeNotFoundError(
            f"cannot delete {tree.label} {key}: no {tree.label} has that key (deleted "
            "meanwhile?); reload the node."
        )
    if kids and tree.options.on_delete == "restrict":
        shown = ", ".join(map(str, kids[:_SHOWN_CHILDREN]))
        more = ", ..." if len(kids) > _SHOWN_CHILDREN else ""
        raise TreeHasChildrenError(
            f"cannot delete {tree.label} {key}: it has children ({shown}{more}) and "
            f"{tree.label} is declared on_delete='restrict'; move or delete its children "
            "first, or declare on_delete='cascade' or 'set null'."
        )


def delete_node(session: Session, node: Any) -> None:
    """Delete ``node`` (and, under ``on_delete="cascade"``, its subtree), checked first.

    Examples:
        >>> delete_node(session, books)  # doctest: +SKIP
        >>> delete_node(session, electronics)  # on_delete="restrict"  # doctest: +SKIP
        Traceback (most recent call last):
        ...
        pgpatterns.errors.TreeHasChildrenError: cannot delete Category 1: it has children ...

    One query checks the node still exists and, under ``on_delete="restrict"``, that it has
    no children (the error names a few). The DELETE is flushed in a SAVEPOINT; a refusal by
    the database (a child inserted meanwhile) is raised as the typed error, nothing deleted.

    Raises:
        TreeHasChildrenError: the node has children and the tree is ``"restrict"``.
        TreeNodeNotFoundError: the node is not in the database (never flushed, or gone).
    """
    tree = _instance(node, "delete_node")
    key = _delete_plan(tree, node)
    _delete_verdict(tree, key, session.execute(_delete_check_stmt(tree, key)).one())
    try:
        with session.begin_nested():
            session.delete(node)
    except DBAPIError as exc:
        error = translate_any(exc, [tree], f"the write of a {tree.label}")
        if error is None:
            raise
        raise error from exc


async def delete_node_async(session: AsyncSession, node: Any) -> None:
    """The asyncio twin of :func:`delete_node` (same check, statements and errors).

    Examples:
        >>> await delete_node_async(session, books)  # doctest: +SKIP
    """
    tree = _instance(node, "delete_node_async")
    key = _delete_plan(tree, node)
    row = (await session.execute(_delete_check_stmt(tree, key))).one()
    _delete_verdict(tree, key, row)
    try:
        async with session.begin_nested():
            await session.delete(node)
    except DBAPIError as exc:
        error = translate_any(exc, [tree], f"the write of a {tree.label}")
        if error is None:
            raise
        raise error from exc
