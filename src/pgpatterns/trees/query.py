"""Query builders: composable ``Select`` statements over an adjacency-list tree.

Examples:
    >>> from pgpatterns.trees import ancestors, descendants
    >>> stmt = descendants(Category, 1, max_depth=2)  # doctest: +SKIP
    >>> for category, depth, path in session.execute(stmt):  # doctest: +SKIP
    ...     print("  " * depth, category.name, path)

Every builder returns rows of ``(node, depth, path)``: the ORM object, its distance from
the starting node, and the keys from the starting node to it (:func:`ancestors`: from the
ancestor down to the starting node). Filter, join or paginate the result like any
``select()``; the node's columns are ``stmt.selected_columns.<name>``.

Warning:
    The recursion follows ``parent_id`` through its index one level at a time, so its cost
    is proportional to the size of the subtree, not of the table: the starting node
    (and the scope of a scoped tree) is in the anchor of the CTE, never filtered after.
    A filter added to the returned ``select()`` applies to the result rows; it does not
    prune the walk (a filtered-out node's descendants are still returned).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import CTE, ColumnElement, Integer, Select, func, literal_column, select
from sqlalchemy.dialects.postgresql import ARRAY, array
from sqlalchemy.orm import aliased

from pgpatterns._args import key_value
from pgpatterns.errors import TreeOptionError
from pgpatterns.trees.cte import cte_column, with_search
from pgpatterns.trees.model import Tree, tree_of

__all__ = ["ancestors", "children", "descendants", "roots", "siblings", "subtree_size"]

ORDERS = ("depth_first", "breadth_first", None)
_SEARCH_COLUMN = "tree_order"


def _start(node_or_model: Any, node_id: Any, scope: Any, fn: str) -> tuple[Tree, Any, Any]:
    """The tree, the starting key and the scope value of a builder's first arguments."""
    tree = tree_of(node_or_model)
    if isinstance(node_or_model, type):
        if node_id is None:
            raise TreeOptionError(
                f"{fn}({tree.label}) needs a node: pass an instance, or the model and a key "
                f"(`{fn}({tree.label}, 42)`)."
            )
        return tree, key_value(fn, "node_id", node_id, tree.key.type), _scope(tree, scope, fn)
    if node_id is not None:
        raise TreeOptionError(
            f"{fn}() got a {tree.label} instance and a key {node_id!r}: pass one or the other."
        )
    key = tree.key_of(node_or_model)
    if key is None:
        raise TreeOptionError(
            f"{fn}() got a {tree.label} without a key (pending): flush the session first "
            "so the node has its key."
        )
    return tree, key, _scope(tree, scope, fn) if scope is not None else tree.scope_of(
        node_or_model
    )


def _scope(tree: Tree, scope: Any, fn: str) -> Any:
    """A scope value checked against the scope column's type (None: no scope filter)."""
    if scope is None or tree.scope is None:
        return scope
    return key_value(fn, "scope", scope, tree.scope.type)


def _check_depth(max_depth: int | None) -> None:
    if max_depth is not None and (
        not isinstance(max_depth, int) or isinstance(max_depth, bool) or max_depth < 0
    ):
        raise TreeOptionError(
            f"max_depth={max_depth!r} is invalid: it counts levels below the starting node "
            "and must be an int >= 0 (0: the node alone); pass None for the whole subtree."
        )


def _check_names(tree: Tree, *names: str) -> None:
    taken = [n for n in names if n in tree.table.c]
    if taken:
        raise TreeOptionError(
            f"{tree.table.name} has a column named {taken[0]!r}, which the tree queries add "
            "to their results; rename that column (its attribute name may stay)."
        )


def _named(table: Any) -> list[ColumnElement[Any]]:
    """The columns labelled with their own names: SQLAlchemy shortens anonymous labels over
    57 characters, and the recursive CTE's column list would then name another column."""
    return [c.label(c.name) for c in table.c]


def _path_type(tree: Tree) -> ARRAY[Any]:
    return ARRAY(tree.key.type)


def descendants_cte(
    tree: Tree, key: Any, *, scope: Any = None, max_depth: int | None = None, search: bool = False
) -> CTE:
    """The recursive CTE under ``key``: the table's columns, ``depth`` and ``path``.

    The cycle guard is ``key <> ALL(path)`` in the recursive term: a corrupted table with a
    cycle stops where the walk would revisit a node (cheaper than ``CYCLE``, see the recipe).
    """
    _check_names(tree, "depth", "path", _SEARCH_COLUMN)
    t = tree.table
    anchor = select(
        *_named(t),
        literal_column("0", Integer).label("depth"),
        array([t.c[tree.key.name]], type_=tree.key.type).label("path"),
    ).where(t.c[tree.key.name] == key)
    if tree.scope is not None and scope is not None:
        anchor = anchor.where(t.c[tree.scope.name] == scope)
    cte = anchor.cte(recursive=True)
    n = t.alias()
    nkey = n.c[tree.key.name]
    step = select(
        *_named(n),
        (cte.c.depth + 1).label("depth"),
        func.array_append(cte.c.path, nkey, type_=_path_type(tree)).label("path"),
    ).where(n.c[tree.parent.name] == cte.c[tree.key.name], nkey != func.all(cte.c.path))
    if tree.scope is not None:
        step = step.where(n.c[tree.scope.name] == cte.c[tree.scope.name])
    if max_depth is not None:
        step = step.where(cte.c.depth < max_depth)
    cte = cte.union_all(step)
    if search:
        assert tree.order is not None
        cte = with_search(cte, tree.order.name, tree.key.name, set_=_SEARCH_COLUMN)
    return cte


def _rows(tree: Tree, cte: CTE) -> Select[Any]:
    node = aliased(tree.model, cte)
    return select(node, cte.c.depth, cte.c.path)


def descendants(
    node_or_model: Any,
    node_id: Any = None,
    *,
    max_depth: int | None = None,
    include_self: bool = False,
    order: str | None = "depth_first",
    scope: Any = None,
) -> Select[Any]:
    """The nodes below a node: ``(node, depth, path)`` rows, depth 1 = children.

    Examples:
        >>> stmt = descendants(Category, 1, max_depth=2)  # doctest: +SKIP
        >>> [(c.name, depth) for c, depth, path in session.execute(stmt)]  # doctest: +SKIP
        [('Laptops', 1), ('Gaming laptops', 2), ('Phones', 1)]

    Args:
        node_or_model: A node, or the model class (then pass ``node_id``).
        node_id: The starting node's key when ``node_or_model`` is the class.
        max_depth: Levels below the node to return (``0``: none; ``None``: all).
        include_self: Also return the starting node (depth 0).
        order: ``"depth_first"`` (each node followed by its subtree; siblings by
            ``TreeOptions.order_by``, then key), ``"breadth_first"`` (level by level) or
            ``None`` (no ORDER BY: fastest).
        scope: The scope value (``tenant_id``) of a scoped tree, when passing a key; it is
            taken from the node when passing a node.

    Raises:
        TreeOptionError: not a tree model, no node, ``max_depth < 0``, unknown ``order``.
    """
    tree, key, scope = _start(node_or_model, node_id, scope, "descendants")
    _check_depth(max_depth)
    if order not in ORDERS:
        raise TreeOptionError(
            f"order={order!r} is not supported: pass 'depth_first', 'breadth_first' or None."
        )
    search = order == "depth_first" and tree.order is not None
    cte = descendants_cte(tree, key, scope=scope, max_depth=max_depth, search=search)
    stmt = _rows(tree, cte)
    if not include_self:
        stmt = stmt.where(cte.c.depth > 0)
    if search:
        return stmt.order_by(cte_column(cte, _SEARCH_COLUMN))
    if order == "depth_first":
        # An array of keys sorts parent-before-children, siblings by key, without the
        # per-row record arrays of SEARCH (measured several times cheaper).
        return stmt.order_by(cte.c.path)
    if order == "breadth_first":
        sibling = [cte.c[tree.order.name]] if tree.order is not None else []
        return stmt.order_by(cte.c.depth, *sibling, cte.c.path)
    return stmt


def subtree_size(
    node_or_model: Any,
    node_id: Any = None,
    *,
    max_depth: int | None = None,
    scope: Any = None,
) -> Select[Any]:
    """``SELECT count(*)`` of a node's subtree, the node included.

    Examples:
        >>> session.scalar(subtree_size(Category, 1))  # doctest: +SKIP
        4
    """
    tree, key, scope = _start(node_or_model, node_id, scope, "subtree_size")
    _check_depth(max_depth)
    cte = descendants_cte(tree, key, scope=scope, max_depth=max_depth)
    return select(func.count()).select_from(cte)


def ancestors_cte(tree: Tree, key: Any, *, scope: Any = None) -> CTE:
    """The recursive CTE from ``key`` up to its root: columns, ``depth`` (0 = the node)
    and ``path`` (keys from that row down to the node)."""
    _check_names(tree, "depth", "path")
    t = tree.table
    anchor = select(
        *_named(t),
        literal_column("0", Integer).label("depth"),
        array([t.c[tree.key.name]], type_=tree.key.type).label("path"),
    ).where(t.c[tree.key.name] == key)
    if tree.scope is not None and scope is not None:
        anchor = anchor.where(t.c[tree.scope.name] == scope)
    cte = anchor.cte(recursive=True)
    n = t.alias()
    nkey = n.c[tree.key.name]
    step = select(
        *_named(n),
        (cte.c.depth + 1).label("depth"),
        func.array_prepend(nkey, cte.c.path, type_=_path_type(tree)).label("path"),
    ).where(nkey == cte.c[tree.parent.name], nkey != func.all(cte.c.path))
    if tree.scope is not None:
        step = step.where(n.c[tree.scope.name] == cte.c[tree.scope.name])
    return cte.union_all(step)


def ancestors(
    node_or_model: Any,
    node_id: Any = None,
    *,
    include_self: bool = False,
    scope: Any = None,
) -> Select[Any]:
    """The nodes above a node, root first: ``(node, depth, path)``, depth 1 = the parent.

    Examples:
        >>> stmt = ancestors(Category, 7)  # doctest: +SKIP
        >>> " / ".join(c.name for c in session.scalars(stmt))  # doctest: +SKIP
        'Electronics / Computers'

    ``path`` holds the keys from that ancestor down to the starting node, so the root's
    row carries the whole path.
    """
    tree, key, scope = _start(node_or_model, node_id, scope, "ancestors")
    cte = ancestors_cte(tree, key, scope=scope)
    stmt = _rows(tree, cte)
    if not include_self:
        stmt = stmt.where(cte.c.depth > 0)
    return stmt.order_by(cte.c.depth.desc())


def _plain(tree: Tree, depth: int, path: list[ColumnElement[Any]]) -> Select[Any]:
    return select(
        tree.model,
        literal_column(str(depth), Integer).label("depth"),
        array(path, type_=tree.key.type).label("path"),
    )


def _sibling_order(tree: Tree) -> list[ColumnElement[Any]]:
    return [c for c in (tree.order, tree.key) if c is not None]


def children(
    node_or_model: Any, node_id: Any = None, *, scope: Any = None
) -> Select[Any]:
    """The children of a node, in sibling order: ``(node, 1, [parent key, key])`` rows.

    Examples:
        >>> [c.name for c in session.scalars(children(laptops))]  # doctest: +SKIP
        ['Gaming laptops', 'Ultrabooks']
    """
    tree, key, scope = _start(node_or_model, node_id, scope, "children")
    _check_names(tree, "depth", "path")
    stmt = _plain(tree, 1, [tree.parent, tree.key]).where(tree.parent == key)
    if tree.scope is not None and scope is not None:
        stmt = stmt.where(tree.scope == scope)
    return stmt.order_by(*_sibling_order(tree))


def siblings(
    node_or_model: Any,
    node_id: Any = None,
    *,
    include_self: bool = False,
    scope: Any = None,
) -> Select[Any]:
    """The other children of a node's parent (other roots of its scope for a root).

    Examples:
        >>> [c.name for c in session.scalars(siblings(laptops))]  # doctest: +SKIP
        ['Phones']

    Rows are ``(node, 0, [key])``, in sibling order.
    """
    tree, key, scope = _start(node_or_model, node_id, scope, "siblings")
    _check_names(tree, "depth", "path")
    me = tree.table.alias()
    same_parent = (tree.parent == me.c[tree.parent.name]) | (
        tree.parent.is_(None) & me.c[tree.parent.name].is_(None)
    )
    stmt = (
        _plain(tree, 0, [tree.key])
        .join(me, same_parent)
        .where(me.c[tree.key.name] == key)
    )
    if tree.scope is not None:
        stmt = stmt.where(tree.scope == me.c[tree.scope.name])
        if scope is not None:
            stmt = stmt.where(me.c[tree.scope.name] == scope)
    if not include_self:
        stmt = stmt.where(tree.key != key)
    return stmt.order_by(*_sibling_order(tree))


def roots(model: type[Any], *, scope: Any = None) -> Select[Any]:
    """The nodes without a parent (of one scope when ``scope`` is given): ``(node, 0, [key])``.

    Examples:
        >>> [c.name for c in session.scalars(roots(Category))]  # doctest: +SKIP
        ['Electronics', 'Books']
    """
    tree = tree_of(model)
    if not isinstance(model, type):
        raise TreeOptionError("roots() takes the model class, not an instance.")
    _check_names(tree, "depth", "path")
    scope = _scope(tree, scope, "roots")
    stmt = _plain(tree, 0, [tree.key]).where(tree.parent.is_(None))
    if tree.scope is not None and scope is not None:
        stmt = stmt.where(tree.scope == scope)
    return stmt.order_by(*_sibling_order(tree))

