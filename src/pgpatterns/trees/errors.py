"""Translate the database's refusals of tree writes (guard trigger, ``parent_id`` FK).

Examples:
    >>> from pgpatterns.trees import tree_errors
    >>> with tree_errors():  # doctest: +SKIP
    ...     session.commit()
    Traceback (most recent call last):
    ...
    pgpatterns.errors.TreeHasChildrenError: cannot delete Doc 7: ...

The database is the last line of defence: plain ORM flushes, raw SQL and bulk statements
are checked by the foreign key of ``parent_id`` and by the trigger of
:func:`~pgpatterns.trees.tree_guard`. :func:`tree_errors` turns those refusals into the
family's typed errors (the original ``IntegrityError`` is ``__cause__``); any other error
passes through unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import ForeignKeyConstraint
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError, IntegrityError, InvalidRequestError

from pgpatterns.errors import (
    TreeConcurrentUpdateError,
    TreeCycleError,
    TreeError,
    TreeHasChildrenError,
    TreeNodeNotFoundError,
    TreeOptionError,
    TreeScopeError,
)
from pgpatterns.trees.model import AdjacencyListMixin, Tree, tree_of

__all__ = ["tree_errors"]

# serialization_failure, deadlock_detected: the transaction lost a race; retry it
RETRYABLE_STATES = ("40001", "40P01")
# foreign_key_violation; restrict_violation (ON DELETE RESTRICT reports this one)
_FOREIGN_KEY_STATES = ("23503", "23001")
_NAMEDATALEN = 64
# "Key (parent_id)=(999) is not present ..." — the "(columns)=(values)" part of the FK
# violation's DETAIL is not translated by lc_messages
_KEY = re.compile(r"\((?P<columns>[^)]*)\)=\((?P<values>.*)\)")


def labels(tree: Tree) -> tuple[str, str]:
    """The CONSTRAINT names the guard trigger reports (cycle, scope)."""
    return f"{tree.table.name}_tree_cycle", f"{tree.table.name}_tree_scope"


def _clip(name: str, size: int) -> str:
    """``name`` cut to at most ``size`` bytes, on a character boundary (pg_mbcliplen)."""
    return name.encode()[:size].decode(errors="ignore")


def _default_fk_name(table: str, column: str) -> str:
    """The name PostgreSQL gives an unnamed foreign key (ChooseConstraintName/makeObjectName)."""
    label = "fkey"
    available = _NAMEDATALEN - 1 - (len(label) + 1) - 1
    size1, size2 = len(table.encode()), len(column.encode())
    while size1 + size2 > available:
        if size1 > size2:
            size1 -= 1
        else:
            size2 -= 1
    return f"{_clip(table, size1)}_{_clip(column, size2)}_{label}"


def _fk_names(tree: Tree) -> set[str]:
    """Names of the ``parent_id`` foreign key: SQLAlchemy's (explicit or by naming
    convention, as rendered) or else PostgreSQL's default."""
    prep = postgresql.dialect().identifier_preparer  # type: ignore[no-untyped-call]
    names = set()
    for fk in tree.parent.foreign_keys:
        constraint = fk.constraint
        if not isinstance(constraint, ForeignKeyConstraint):
            continue
        rendered = prep.format_constraint(constraint) if constraint.name is not None else None
        if rendered is None:
            names.add(_default_fk_name(tree.table.name, tree.parent.name))
        else:
            names.add(prep.unformat_identifiers(rendered)[-1])
    return names


def _all_trees() -> list[Tree]:
    """Every mapped AdjacencyListMixin class (abstract or unmapped classes are skipped)."""
    found: list[Tree] = []
    todo: list[type[Any]] = list(AdjacencyListMixin.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        try:
            found.append(tree_of(cls))
        except (TreeOptionError, InvalidRequestError):
            continue
    return found


def _key_in(detail: str | None) -> tuple[str, str] | None:
    match = _KEY.search(detail or "")
    return (match["columns"], match["values"]) if match else None


def _foreign_key_error(tree: Tree, exc: IntegrityError, diag: Any, name: str) -> TreeError:
    detail = getattr(diag, "message_detail", None)
    key = _key_in(detail)
    statement = (exc.statement or "").lstrip().upper()
    if key is not None:
        parent_side = key[0].strip('"') == tree.parent.name
    else:  # no DETAIL (the role may not read the columns): judge by the statement
        parent_side = not statement.startswith("DELETE")
    value = key[1] if key is not None else "?"
    if parent_side:
        return TreeNodeNotFoundError(
            f"no {tree.label} has key {value}, so it cannot be a parent (foreign key {name} "
            f"refused the write); pass an existing node's key or instance, or None for a root."
        )
    rule = tree.options.on_delete
    return TreeHasChildrenError(
        f"cannot delete {tree.label} {value}: other {tree.label} rows have it as their "
        f"parent and the tree is declared on_delete={rule!r} (foreign key {name}); move or "
        "delete its children first, or declare on_delete='cascade' or 'set null'."
    )


def translate(exc: IntegrityError, trees: list[Tree] | None = None) -> TreeError | None:
    """The typed error for a refusal by a tree's guard or ``parent_id`` foreign key, else None.

    Examples:
        >>> translate(integrity_error, [tree_of(Category)])  # doctest: +SKIP
        TreeCycleError('Category: cannot move 5 under 9: 9 is a descendant of 5; ...')
    """
    diag = getattr(exc.orig, "diag", None)
    name = getattr(diag, "constraint_name", None)
    if not name:
        return None
    table = getattr(diag, "table_name", None)
    schema = getattr(diag, "schema_name", None)
    sqlstate = getattr(exc.orig, "sqlstate", None)
    message = getattr(diag, "message_primary", None) or str(exc.orig)
    for tree in _all_trees() if trees is None else trees:
        cycle, scope = labels(tree)
        if name == cycle:
            return TreeCycleError(
                f"{tree.label}: {message}, so the write would create a cycle (refused by "
                "the database). Choose a parent outside the node's subtree; if another "
                "transaction moved a node meanwhile, roll back and retry with fresh data."
            )
        if name == scope:
            column = tree.scope.name if tree.scope is not None else "scope"
            return TreeScopeError(
                f"{tree.label}: {message} (refused by the database). A parent must have "
                f"its children's {column}: choose a parent from the node's own tree."
            )
        if (
            sqlstate in _FOREIGN_KEY_STATES
            and table == tree.table.name
            and (tree.table.schema is None or schema == tree.table.schema)
            and name in _fk_names(tree)
        ):
            return _foreign_key_error(tree, exc, diag, name)
    return None


def concurrent(exc: DBAPIError, what: str = "the tree write") -> TreeConcurrentUpdateError | None:
    """:class:`TreeConcurrentUpdateError` for a serialization failure or deadlock, else None.

    Examples:
        >>> concurrent(operational_error)  # doctest: +SKIP
        TreeConcurrentUpdateError('the tree write lost a race with a concurrent ...')
    """
    state = getattr(exc.orig, "sqlstate", None)
    if state not in RETRYABLE_STATES:
        return None
    why = "a deadlock" if state == "40P01" else "a concurrent change after its snapshot"
    return TreeConcurrentUpdateError(
        f"{what} lost a race with another transaction ({why}, SQLSTATE {state}); roll the "
        "transaction back and retry it from the start (with fresh data)."
    )


def translate_any(exc: DBAPIError, trees: list[Tree] | None, what: str) -> Exception | None:
    """:func:`translate` for integrity errors, :func:`concurrent` for retryable ones.

    Examples:
        >>> translate_any(dbapi_error, [tree_of(Category)], "move of Category 3")
        ... # doctest: +SKIP
        TreeConcurrentUpdateError('move of Category 3 lost a race with another ...')
    """
    if isinstance(exc, IntegrityError):
        return translate(exc, trees)
    return concurrent(exc, what)


@contextmanager
def tree_errors(*models: type[Any]) -> Iterator[None]:
    """Turn refusals by a tree's guard trigger or ``parent_id`` foreign key into typed errors.

    Examples:
        >>> with tree_errors(Category):  # doctest: +SKIP
        ...     session.add(Category(name="x", parent_id=999))
        ...     session.flush()
        Traceback (most recent call last):
        ...
        pgpatterns.errors.TreeNodeNotFoundError: no Category has key 999, ...

    Wrap a ``flush()``/``commit()`` (also ``await session.commit()``) or raw SQL. A node
    as its own parent or under its own descendant raises
    :class:`~pgpatterns.errors.TreeCycleError`, a parent from another scope
    :class:`~pgpatterns.errors.TreeScopeError` (both need :func:`tree_guard`), a
    ``parent_id`` without a row :class:`~pgpatterns.errors.TreeNodeNotFoundError`, and
    deleting a node with children under ``on_delete="restrict"``
    :class:`~pgpatterns.errors.TreeHasChildrenError`. The original ``IntegrityError`` is
    ``__cause__``; the transaction is aborted as before (roll back). A serialization
    failure or deadlock (SQLSTATE 40001/40P01: a concurrent move at REPEATABLE READ or
    SERIALIZABLE) raises :class:`~pgpatterns.errors.TreeConcurrentUpdateError`: roll back
    and retry the transaction. A duplicate key (23505) is not a tree error and passes
    through as ``IntegrityError``. Any other error is re-raised unchanged.

    Args:
        *models: The tree models to recognise; none: every mapped ``AdjacencyListMixin``
            class. The foreign key is recognised by the name SQLAlchemy gives it (explicit
            or by naming convention), else by PostgreSQL's default
            (``<table>_parent_id_fkey``).

    Raises:
        TreeOptionError: a model is not a tree model (before the block runs).
    """
    from pgpatterns.translate import guard

    trees = [tree_of(model) for model in models] or None
    with guard(lambda exc: translate_any(exc, trees, "the tree write")):
        yield
