"""``move``: re-parent a node, checked first, with the tree lock taken before writing.

Examples:
    >>> from pgpatterns.trees import move
    >>> move(session, laptops, new_parent=phones)  # doctest: +SKIP

What it locks and what a caller retries:

1. ``pg_advisory_xact_lock`` on (table, scope): the lock the trigger of
   :func:`~pgpatterns.trees.tree_guard` takes for every move, taken here first so that two
   movers never wait for each other's row locks while holding it (held until commit).
2. One query checks that the new parent exists, is in the node's scope and is not in the
   node's subtree (typed errors, nothing written).
3. The ``UPDATE`` is flushed in a SAVEPOINT; the trigger walks the new parent's ancestors
   with each row locked ``FOR SHARE`` and refuses a cycle even when another transaction
   moved a node meanwhile.

At READ COMMITTED a move never fails because of a concurrent move (it waits, then sees it).
At REPEATABLE READ and SERIALIZABLE a move whose snapshot predates another committed move
in the same tree raises :class:`~pgpatterns.errors.TreeConcurrentUpdateError`
(``retryable = True``), as does a deadlock at any level: roll back and run the whole
transaction again.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, exists, literal, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from pgpatterns._args import key_value
from pgpatterns.errors import TreeCycleError, TreeNodeNotFoundError, TreeScopeError
from pgpatterns.trees.errors import translate_any
from pgpatterns.trees.guard import lock_stmt
from pgpatterns.trees.model import Tree, tree_of
from pgpatterns.trees.query import ancestors_cte

__all__ = ["move", "move_async"]


def _parent_row_stmt(tree: Tree, parent_key: Any, node_key: Any) -> Select[Any]:
    """One row: (the parent's scope, whether node_key is the parent or one of its ancestors)."""
    cte = ancestors_cte(tree, parent_key)
    scope = tree.table.c[tree.scope.name] if tree.scope is not None else literal(None)
    is_ancestor = exists().select_from(cte).where(cte.c[tree.key.name] == node_key)
    stmt = select(scope, is_ancestor.label("cycle"))
    return stmt.where(tree.table.c[tree.key.name] == parent_key)


def _check(tree: Tree, node: Any, new_parent: Any, fn: str) -> tuple[Any, Any] | None:
    """Checks needing no SQL; returns (node key, parent key) or None for "make it a root"."""
    if isinstance(node, type) or not isinstance(node, tree.model):
        raise TreeNodeNotFoundError(
            f"{fn}() takes a {tree.label} instance as node, got {node!r}; load the node "
            "first (session.get)."
        )
    key = tree.key_of(node)
    if key is None:
        raise TreeNodeNotFoundError(
            f"cannot move a pending {tree.label}: it has no key yet; flush the session first."
        )
    if new_parent is None:
        return None
    if isinstance(new_parent, tree.model):
        parent_key = tree.key_of(new_parent)
        if tree.scope is not None and tree.scope_of(new_parent) != tree.scope_of(node):
            raise _scope_error(tree, key, parent_key)
        if parent_key is None:
            raise TreeNodeNotFoundError(
                f"cannot move {tree.label} {key} under a pending node: flush the session first."
            )
    else:
        parent_key = key_value(fn, "new_parent", new_parent, tree.key.type)
    if parent_key == key:
        raise TreeCycleError(
            f"cannot move {tree.label} {key} under itself: a node cannot be its own parent; "
            "pass another node, or None to make it a root."
        )
    return key, parent_key


def _scope_error(tree: Tree, key: Any, parent_key: Any) -> TreeScopeError:
    return TreeScopeError(
        f"cannot move {tree.label} {key} under {parent_key}: they belong to different "
        f"scopes ({tree.scope.name if tree.scope is not None else ''}); a parent must be "
        "in its children's scope: move the node within its own tree."
    )


def _verdict(tree: Tree, node: Any, key: Any, parent_key: Any, row: Any) -> None:
    if row is None:
        raise TreeNodeNotFoundError(
            f"cannot move {tree.label} {key} under {parent_key}: no {tree.label} has key "
            f"{parent_key!r}; pass an existing node's key or instance."
        )
    if tree.scope is not None and row[0] != tree.scope_of(node):
        raise _scope_error(tree, key, parent_key)
    if row[1]:
        raise TreeCycleError(
            f"cannot move {tree.label} {key} under {parent_key}: {parent_key} is a "
            f"descendant of {key}, so the move would create a cycle; move {parent_key} "
            f"out of {key}'s subtree first, or choose another parent."
        )


def _raise_translated(exc: DBAPIError, tree: Tree, key: Any) -> None:
    error = translate_any(exc, [tree], f"move of {tree.label} {key}")
    if error is None:
        raise exc
    raise error from exc


def move(session: Session, node: Any, new_parent: Any) -> None:
    """Re-parent ``node`` under ``new_parent`` (an instance, a key, or None for a root).

    Examples:
        >>> move(session, laptops, phones)  # doctest: +SKIP
        Traceback (most recent call last):
        ...
        pgpatterns.errors.TreeCycleError: cannot move Category 2 under 5: 5 is a descendant ...

    Takes the tree's lock, checks with one query that the new parent exists, is in the
    node's scope and is not in the node's subtree; then flushes the change inside a
    SAVEPOINT, so a refusal by the trigger leaves the session usable and nothing written.
    See the module for what is locked and when to retry.

    Raises:
        TreeCycleError: ``new_parent`` is the node or one of its descendants.
        TreeScopeError: ``new_parent`` is in another scope.
        TreeNodeNotFoundError: ``new_parent`` does not exist, or a node is pending.
        TreeConcurrentUpdateError: a concurrent move won (REPEATABLE READ/SERIALIZABLE) or
            a deadlock: roll back and retry the transaction.
        ArgumentError: ``new_parent`` is a key of the wrong type or out of range.
    """
    tree = tree_of(node)
    keys = _check(tree, node, new_parent, "move")
    node_key = tree.key_of(node)
    try:
        if keys is not None:
            session.execute(lock_stmt(tree, tree.scope_of(node)))
            row = session.execute(_parent_row_stmt(tree, keys[1], keys[0])).first()
            _verdict(tree, node, keys[0], keys[1], row)
        with session.begin_nested():
            if new_parent is None or isinstance(new_parent, tree.model):
                node.parent = new_parent
            else:
                node.parent = session.get(tree.model, keys and keys[1])
    except DBAPIError as exc:  # a concurrent move, or the parent deleted meanwhile
        _raise_translated(exc, tree, node_key)


async def move_async(session: AsyncSession, node: Any, new_parent: Any) -> None:
    """The asyncio twin of :func:`move` (same checks, statements and errors).

    Examples:
        >>> await move_async(session, laptops, None)  # doctest: +SKIP
    """
    tree = tree_of(node)
    keys = _check(tree, node, new_parent, "move_async")
    node_key = tree.key_of(node)
    try:
        if keys is not None:
            await session.execute(lock_stmt(tree, tree.scope_of(node)))
            row = (await session.execute(_parent_row_stmt(tree, keys[1], keys[0]))).first()
            _verdict(tree, node, keys[0], keys[1], row)
        async with session.begin_nested():
            if new_parent is None or isinstance(new_parent, tree.model):
                node.parent = new_parent
            else:
                node.parent = await session.get(tree.model, keys and keys[1])
    except DBAPIError as exc:  # a concurrent move, or the parent deleted meanwhile
        _raise_translated(exc, tree, node_key)
