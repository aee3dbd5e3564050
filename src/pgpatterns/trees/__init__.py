"""Trees: an adjacency list (``parent_id``) with recursive-CTE queries and a cycle guard.

Examples:
    >>> from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
    >>> from pgpatterns.trees import AdjacencyListMixin, descendants
    >>> class Base(DeclarativeBase): ...
    >>> class Folder(AdjacencyListMixin, Base):
    ...     __tablename__ = "folders"
    ...     id: Mapped[int] = mapped_column(primary_key=True)
    ...     name: Mapped[str]
    >>> stmt = descendants(Folder, 1, max_depth=3)  # rows: (Folder, depth, path)

* Model: :class:`AdjacencyListMixin` configured by :class:`TreeOptions` (on-delete rule,
  scope column for a forest per tenant, sibling order column).
* Queries (composable ``Select``): :func:`descendants`, :func:`ancestors`,
  :func:`children`, :func:`siblings`, :func:`roots`, :func:`subtree_size`.
* Actions: :func:`move`, :func:`insert_node`, :func:`delete_node`, :func:`load_subtree`,
  :func:`bulk_load`, :func:`find_problems` (each with an ``_async`` twin).
* Refusals by the database (trigger, ``parent_id`` foreign key) as typed errors:
  :func:`tree_errors`.
* Integrity in the database: :func:`tree_guard` (a trigger, attached with
  :func:`pgpatterns.ddl.attach`).
* PostgreSQL's ``SEARCH``/``CYCLE`` clauses for any recursive CTE: :func:`with_search`,
  :func:`with_cycle`, :func:`cte_column`.

Warning:
    Needs PostgreSQL 11+ (14+ for ``SEARCH``/``CYCLE``, used by :func:`descendants` only
    for depth-first order with ``TreeOptions.order_by``). See :mod:`pgpatterns.trees.guard`
    for what the trigger locks and why it is ``SECURITY DEFINER``,
    :mod:`pgpatterns.trees.moving` for when to retry
    (:class:`~pgpatterns.errors.TreeConcurrentUpdateError`) and :mod:`pgpatterns.trees.query`
    for planner notes.
"""

from __future__ import annotations

from pgpatterns.trees.cte import CycleClause, SearchClause, cte_column, with_cycle, with_search
from pgpatterns.trees.edit import delete_node, delete_node_async, insert_node, insert_node_async
from pgpatterns.trees.errors import tree_errors
from pgpatterns.trees.guard import tree_guard
from pgpatterns.trees.load import bulk_load, bulk_load_async, load_subtree, load_subtree_async
from pgpatterns.trees.model import AdjacencyListMixin, TreeOptions
from pgpatterns.trees.moving import move, move_async
from pgpatterns.trees.problems import TreeProblem, find_problems, find_problems_async
from pgpatterns.trees.query import (
    ancestors,
    children,
    descendants,
    roots,
    siblings,
    subtree_size,
)

__all__ = [
    "AdjacencyListMixin",
    "CycleClause",
    "SearchClause",
    "TreeOptions",
    "TreeProblem",
    "ancestors",
    "bulk_load",
    "bulk_load_async",
    "children",
    "cte_column",
    "delete_node",
    "delete_node_async",
    "descendants",
    "find_problems",
    "find_problems_async",
    "insert_node",
    "insert_node_async",
    "load_subtree",
    "load_subtree_async",
    "move",
    "move_async",
    "roots",
    "siblings",
    "subtree_size",
    "tree_errors",
    "tree_guard",
    "with_cycle",
    "with_search",
]
