"""Integrity: the database trigger that forbids cycles, and ``move`` that checks first.

Examples:
    >>> from pgpatterns.ddl import attach
    >>> from pgpatterns.trees import move, tree_guard
    >>> attach(Base.metadata, *tree_guard(Category))  # doctest: +SKIP
    >>> move(session, laptops, new_parent=phones)  # doctest: +SKIP

Warning:
    The trigger serialises re-parenting per tree: an ``UPDATE`` that changes ``parent_id``
    takes ``pg_advisory_xact_lock`` on (table, scope) before it walks the new parent's
    ancestors, and holds it until commit. That is what makes two concurrent moves that
    together would close a cycle safe at READ COMMITTED (the second waits, then sees the
    first); its cost is that concurrent moves in the same tree (the same tenant of a
    scoped tree) wait for each other. Inserts take no lock (nothing can point at a row
    another transaction has not committed). The function names the table unqualified
    unless the table has a schema: keep the table on the search_path of every writer, or
    give it a schema. Needs PostgreSQL 11+ (``hashtextextended``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, String, exists, literal, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from pgpatterns.ddl import Function, Trigger
from pgpatterns.errors import TreeCycleError, TreeNodeNotFoundError, TreeScopeError
from pgpatterns.trees.errors import labels, translate
from pgpatterns.trees.model import Tree, tree_of
from pgpatterns.trees.query import ancestors_cte

__all__ = ["move", "move_async", "tree_guard"]


def _quote_literal(value: str) -> str:
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    compiled = literal(value, String()).compile(
        dialect=dialect, compile_kwargs={"literal_binds": True}
    )
    return str(compiled)


def _guard_body(tree: Tree) -> str:
    prep = postgresql.dialect().identifier_preparer  # type: ignore[no-untyped-call]
    table = prep.format_table(tree.table)
    key, parent = prep.quote(tree.key.name), prep.quote(tree.parent.name)
    cycle, scope_label = (_quote_literal(s) for s in labels(tree))
    scope = prep.quote(tree.scope.name) if tree.scope is not None else None
    unchanged = f"NEW.{parent} IS NOT DISTINCT FROM OLD.{parent}"
    if scope:
        unchanged += f" AND NEW.{scope} IS NOT DISTINCT FROM OLD.{scope}"
    scope_check = lock_scope = ""
    if scope:
        # identifiers quoted by the dialect's preparer, labels as SQL literals; no values
        scope_check = f"""
  IF EXISTS (SELECT FROM {table} p WHERE p.{key} = NEW.{parent}
             AND p.{scope} IS DISTINCT FROM NEW.{scope}) THEN
    RAISE EXCEPTION 'cannot make % the parent of %: it belongs to another scope',
      NEW.{parent}, NEW.{key}
      USING ERRCODE = 'check_violation', CONSTRAINT = {scope_label},
      HINT = 'a parent must have the same scope value as its children';
  END IF;"""  # noqa: S608
        lock_scope = f" || ':' || coalesce(NEW.{scope}::text, '')"
    return f"""
BEGIN
  IF NEW.{parent} IS NULL THEN RETURN NEW; END IF;
  IF TG_OP = 'UPDATE' AND {unchanged} THEN RETURN NEW; END IF;
  IF NEW.{parent} = NEW.{key} THEN
    RAISE EXCEPTION 'cannot make % its own parent', NEW.{key}
      USING ERRCODE = 'check_violation', CONSTRAINT = {cycle};
  END IF;{scope_check}
  IF TG_OP = 'UPDATE' THEN
    -- one re-parenting at a time per tree: the walk below then sees committed moves
    PERFORM pg_advisory_xact_lock(hashtextextended(TG_RELID::text{lock_scope}, 0));
  ELSIF NOT EXISTS (SELECT FROM {table} c WHERE c.{parent} = NEW.{key}) THEN
    RETURN NEW;  -- a new row that nothing points to cannot close a cycle
  END IF;
  IF EXISTS (
    WITH RECURSIVE up(k, p, seen) AS (
      SELECT a.{key}, a.{parent}, ARRAY[a.{key}] FROM {table} a WHERE a.{key} = NEW.{parent}
      UNION ALL
      SELECT a.{key}, a.{parent}, up.seen || a.{key}
      FROM {table} a JOIN up ON a.{key} = up.p WHERE a.{key} <> ALL (up.seen)
    )
    SELECT FROM up WHERE up.k = NEW.{key} OR up.p = NEW.{key}
  ) THEN
    RAISE EXCEPTION 'cannot move % under %: % is a descendant of %',
      NEW.{key}, NEW.{parent}, NEW.{parent}, NEW.{key}
      USING ERRCODE = 'check_violation', CONSTRAINT = {cycle};
  END IF;
  RETURN NEW;
END"""  # noqa: S608


def tree_guard(model: type[Any]) -> tuple[Function, Trigger]:
    """The trigger function and trigger that keep a tree model acyclic in the database.

    Examples:
        >>> from pgpatterns.ddl import attach
        >>> function, trigger = tree_guard(Category)  # doctest: +SKIP
        >>> attach(Base.metadata, function, trigger)  # doctest: +SKIP
        >>> print(trigger.sql())  # doctest: +SKIP
        CREATE TRIGGER categories_tree_guard BEFORE INSERT OR UPDATE OF parent_id ON ...

    The trigger runs before each inserted row and each update of ``parent_id`` (and of the
    scope column) and refuses, with a ``check_violation`` that :func:`move` and
    :func:`tree_errors` translate to
    :class:`~pgpatterns.errors.TreeCycleError` / :class:`~pgpatterns.errors.TreeScopeError`:
    a node as its own parent, a parent that is one of the node's descendants (also within
    one multi-row statement), and a parent from another scope. Raw SQL, bulk ``UPDATE`` and
    ``COPY`` go through it too. See the module's warning for the locking it does.
    """
    tree = tree_of(model)
    name = f"{tree.table.name}_tree_guard"
    function = Function(
        name,
        returns="trigger",
        language="plpgsql",
        body=_guard_body(tree),
        schema=tree.table.schema,
    )
    columns = [tree.parent.name] + ([tree.scope.name] if tree.scope is not None else [])
    trigger = Trigger(
        name, tree.table, function, timing="before", events=["insert", "update"],
        update_of=columns,
    )
    return function, trigger


# -- move ----------------------------------------------------------------------------------
def _parent_row_stmt(tree: Tree, parent_key: Any, node_key: Any) -> Select[Any]:
    """One row: (the parent's scope, whether node_key is the parent or one of its ancestors)."""
    cte = ancestors_cte(tree, parent_key)
    scope = tree.table.c[tree.scope.name] if tree.scope is not None else literal(None)
    is_ancestor = exists().select_from(cte).where(cte.c[tree.key.name] == node_key)
    stmt = select(scope, is_ancestor.label("cycle"))
    return stmt.where(tree.table.c[tree.key.name] == parent_key)


def _check(tree: Tree, node: Any, new_parent: Any) -> tuple[Any, Any] | None:
    """Checks needing no SQL; returns (node key, parent key) or None for "make it a root"."""
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
    else:
        parent_key = new_parent
    if parent_key is None:
        raise TreeNodeNotFoundError(
            f"cannot move {tree.label} {key} under a pending node: flush the session first."
        )
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


def _set_parent(session: Session, tree: Tree, node: Any, new_parent: Any, pk: Any) -> None:
    if new_parent is None or isinstance(new_parent, tree.model):
        node.parent = new_parent
    else:
        node.parent = session.get(tree.model, pk)


def move(session: Session, node: Any, new_parent: Any) -> None:
    """Re-parent ``node`` under ``new_parent`` (an instance, a key, or None for a root).

    Examples:
        >>> move(session, laptops, phones)  # doctest: +SKIP
        Traceback (most recent call last):
        ...
        pgpatterns.errors.TreeCycleError: cannot move Category 2 under 5: 5 is a descendant ...

    One query checks the new parent exists, is in the node's scope and is not in the
    node's subtree; then the change is flushed inside a SAVEPOINT, so a refusal by the
    trigger (a concurrent move) leaves the session usable and nothing written.

    Raises:
        TreeCycleError: ``new_parent`` is the node or one of its descendants.
        TreeScopeError: ``new_parent`` is in another scope.
        TreeNodeNotFoundError: ``new_parent`` does not exist, or a node is pending.
    """
    tree = tree_of(node)
    keys = _check(tree, node, new_parent)
    if keys is not None:
        row = session.execute(_parent_row_stmt(tree, keys[1], keys[0])).first()
        _verdict(tree, node, keys[0], keys[1], row)
    try:
        with session.begin_nested():
            _set_parent(session, tree, node, new_parent, keys and keys[1])
    except IntegrityError as exc:  # a concurrent move, or the parent deleted meanwhile
        error = translate(exc, [tree])
        if error is None:
            raise
        raise error from exc


async def move_async(session: AsyncSession, node: Any, new_parent: Any) -> None:
    """The asyncio twin of :func:`move` (same checks, statements and errors).

    Examples:
        >>> await move_async(session, laptops, None)  # doctest: +SKIP
    """
    tree = tree_of(node)
    keys = _check(tree, node, new_parent)
    if keys is not None:
        row = (await session.execute(_parent_row_stmt(tree, keys[1], keys[0]))).first()
        _verdict(tree, node, keys[0], keys[1], row)
    try:
        async with session.begin_nested():
            if new_parent is None or isinstance(new_parent, tree.model):
                node.parent = new_parent
            else:
                node.parent = await session.get(tree.model, keys and keys[1])
    except IntegrityError as exc:  # a concurrent move, or the parent deleted meanwhile
        error = translate(exc, [tree])
        if error is None:
            raise
        raise error from exc
