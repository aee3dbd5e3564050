"""Loading: a whole subtree into ORM objects in one statement; bulk loading nested data.

Examples:
    >>> from pgpatterns.trees import load_subtree
    >>> root = load_subtree(session, Category, 1)  # doctest: +SKIP
    >>> [child.name for child in root.children]  # no further SQL  # doctest: +SKIP
    ['Computers', 'Phones']
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Select, case, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from pgpatterns._args import collection, key_value
from pgpatterns.bulk import copy_rows, copy_rows_async
from pgpatterns.ddl.base import regname
from pgpatterns.errors import TreeNodeNotFoundError, TreeOptionError
from pgpatterns.trees.model import Tree, tree_of
from pgpatterns.trees.query import descendants

__all__ = ["bulk_load", "bulk_load_async", "load_subtree", "load_subtree_async"]


def _subtree_stmt(
    model: type[Any], root_id: Any, max_depth: int | None, scope: Any
) -> tuple[Tree, Select[Any]]:
    tree = tree_of(model)
    if not isinstance(model, type):
        raise TreeOptionError("load_subtree() takes the model class and the root's key.")
    stmt = descendants(
        model, root_id, max_depth=max_depth, include_self=True, order="depth_first",
        scope=scope,
    )
    # refresh objects already in the session: the tree must reflect the database now
    return tree, stmt.execution_options(populate_existing=True)


def _assemble(tree: Tree, rows: Sequence[Any], root_id: Any, max_depth: int | None) -> Any:
    """Wire ``children``/``parent`` of the loaded rows without touching the database."""
    if not rows:
        raise TreeNodeNotFoundError(
            f"load_subtree: no {tree.label} has key {root_id!r} (in this scope); pass an "
            "existing node's key."
        )
    by_key: dict[Any, Any] = {}
    kids: dict[Any, list[Any]] = {}
    for node, depth, _path in rows:  # depth-first: a parent always comes before its children
        key = tree.key_of(node)
        by_key[key] = node
        if max_depth is None or depth < max_depth:
            kids[key] = []
        if depth > 0:
            parent = by_key[node.parent_id]
            kids[tree.key_of(parent)].append(node)
            set_committed_value(node, "parent", parent)
    for key, found in kids.items():
        set_committed_value(by_key[key], "children", found)
    return rows[0][0]


def load_subtree(
    session: Session,
    model: type[Any],
    root_id: Any,
    *,
    max_depth: int | None = None,
    scope: Any = None,
) -> Any:
    """The node ``root_id`` with its subtree, ``children`` populated, in ONE statement.

    Examples:
        >>> root = load_subtree(session, Category, 1, max_depth=2)  # doctest: +SKIP
        >>> def as_json(c): return {"name": c.name, "children": [as_json(k) for k in c.children]}
        >>> as_json(root)  # doctest: +SKIP

    ``children`` of every loaded node is set (sibling order), and ``parent`` of every node
    but the root, so walking the tree afterwards sends no SQL. Nodes at ``max_depth`` keep
    ``children`` unloaded (accessing it loads them, one query per node).

    Raises:
        TreeNodeNotFoundError: no node has key ``root_id`` (in ``scope``).
        TreeOptionError: ``max_depth < 0``, or ``model`` is not a tree model.
    """
    tree, stmt = _subtree_stmt(model, root_id, max_depth, scope)
    rows = session.execute(stmt).all()
    return _assemble(tree, rows, root_id, max_depth)


async def load_subtree_async(
    session: AsyncSession,
    model: type[Any],
    root_id: Any,
    *,
    max_depth: int | None = None,
    scope: Any = None,
) -> Any:
    """The asyncio twin of :func:`load_subtree`: one statement, no lazy loads afterwards.

    Examples:
        >>> root = await load_subtree_async(session, Category, 1)  # doctest: +SKIP
    """
    tree, stmt = _subtree_stmt(model, root_id, max_depth, scope)
    rows = (await session.execute(stmt)).all()
    return _assemble(tree, rows, root_id, max_depth)


# -- bulk_load ----------------------------------------------------------------------------
class _Pending:
    """A key to allocate: placeholder in ``key``/``parent_id`` until keys are known."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index


def _flatten(tree: Tree, nested: Iterable[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """Rows parent-first (``children`` unnested, ``parent_id`` set), and how many keys
    are missing (placeholders). Validates every node before any SQL is sent."""
    key_name, parent_name = tree.key.name, tree.parent.name
    scope_name = tree.scope.name if tree.scope is not None else None
    allowed = set(tree.table.c.keys()) - {parent_name}
    out: list[dict[str, Any]] = []
    pending = 0
    stack: list[tuple[Any, Any, Any]] = [(n, None, None) for n in reversed(list(nested))]
    while stack:
        data, parent_key, parent_scope = stack.pop()
        if not isinstance(data, Mapping):
            raise TreeOptionError(
                f"bulk_load: expected a dict per node, got {type(data).__name__}; pass "
                "dicts of column values with an optional 'children' list."
            )
        unknown = set(data) - allowed - {"children"}
        if unknown:
            raise TreeOptionError(
                f"bulk_load: {sorted(unknown)} are not columns of {tree.table.name} "
                f"(parent_id comes from the nesting); use only {sorted(allowed)}."
            )
        row = {k: v for k, v in data.items() if k != "children"}
        if row.get(key_name) is None:
            row[key_name] = _Pending(pending)
            pending += 1
        else:
            row[key_name] = key_value("bulk_load", key_name, row[key_name], tree.key.type)
        if scope_name is not None and parent_key is not None:
            row.setdefault(scope_name, parent_scope)
            if row[scope_name] != parent_scope:
                raise TreeOptionError(
                    f"bulk_load: a child has {scope_name}={row[scope_name]!r} but its parent "
                    f"has {parent_scope!r}; a subtree lives in one scope: drop the child's "
                    "value or fix it."
                )
        row[parent_name] = parent_key
        out.append(row)
        kids = data.get("children") or ()
        if not isinstance(kids, (list, tuple)):
            raise TreeOptionError("bulk_load: 'children' must be a list of node dicts.")
        scope = row.get(scope_name) if scope_name else None
        stack.extend((child, row[key_name], scope) for child in reversed(kids))
    return out, pending


def _is_uuid(tree: Tree) -> bool:
    try:
        return tree.key.type.python_type is uuid.UUID
    except NotImplementedError:
        return False


def _allocate_stmt(tree: Tree, count: int) -> Select[Any] | None:
    """``nextval`` of the key's identity/serial sequence ``count`` times, in one query."""
    if count == 0 or _is_uuid(tree):
        return None
    seq = func.pg_get_serial_sequence(regname(tree.table.name, tree.table.schema), tree.key.name)
    return select(func.nextval(seq)).select_from(func.generate_series(1, count))


def _advance_stmt(tree: Tree, rows: Sequence[Mapping[str, Any]]) -> Select[Any] | None:
    """Move the key's sequence past the largest explicit key, so that the next generated
    key does not collide with a loaded one (never moves it backwards). Build it before
    :func:`_fill` (which replaces the placeholders) and run it before allocating keys."""
    keys = [row[tree.key.name] for row in rows]
    given = [k for k in keys if isinstance(k, int) and not isinstance(k, (bool, _Pending))]
    if not given or _is_uuid(tree):
        return None
    top = literal(max(given), tree.key.type)
    seq = select(
        func.pg_get_serial_sequence(regname(tree.table.name, tree.table.schema), tree.key.name)
        .label("seq")
    ).subquery()
    return select(case((func.nextval(seq.c.seq) < top, func.setval(seq.c.seq, top)))).select_from(
        seq
    )


def _fill(tree: Tree, rows: list[dict[str, Any]], count: int, allocated: Sequence[Any]) -> None:
    if _is_uuid(tree):
        allocated = [uuid.uuid4() for _ in range(count)]
    if len(allocated) != count or any(k is None for k in allocated):
        raise TreeOptionError(
            f"bulk_load: {tree.table.name}.{tree.key.name} has no identity or serial "
            "sequence to allocate keys from; give every node its key."
        )
    for row in rows:
        for name in (tree.key.name, tree.parent.name):
            if isinstance(row[name], _Pending):
                row[name] = allocated[row[name].index]


def _prepare(
    model: type[Any], nested: Sequence[Mapping[str, Any]] | Mapping[str, Any]
) -> tuple[Tree, list[dict[str, Any]], int]:
    tree = tree_of(model)
    if not isinstance(model, type):
        raise TreeOptionError("bulk_load() takes the model class and a list of node dicts.")
    nodes = [nested] if isinstance(nested, Mapping) else collection("bulk_load", "nested", nested)
    rows, pending = _flatten(tree, nodes)
    return tree, rows, pending


def _columns(tree: Tree, rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Columns given in some dict, or with a Python-side default (filled per row)."""
    names = {k for row in rows for k in row}
    return [c.name for c in tree.table.c if c.name in names or _default(c) is not None]


def _default(column: Any) -> Any:
    default = column.default
    if default is None or not (default.is_scalar or default.is_callable):
        return None
    return default


def _values(tree: Tree, rows: Sequence[Mapping[str, Any]], names: Sequence[str]) -> Any:
    """Tuples in ``names`` order; a missing value takes the column's Python default
    (COPY applies none of SQLAlchemy's), else NULL."""
    defaults = {n: _default(tree.table.c[n]) for n in names}
    for row in rows:
        out = []
        for name in names:
            if name in row:
                out.append(row[name])
            elif defaults[name] is None:
                out.append(None)
            elif defaults[name].is_scalar:
                out.append(defaults[name].arg)
            else:
                out.append(defaults[name].arg(None))
        yield out


def bulk_load(
    session: Session,
    model: type[Any],
    nested: Sequence[Mapping[str, Any]] | Mapping[str, Any],
) -> int:
    """Insert nested dicts (``{"name": ..., "children": [...]}``) with COPY; return the count.

    Examples:
        >>> data = [{"name": "Books", "children": [{"name": "SF"}]}]
        >>> bulk_load(session, Category, data)  # doctest: +SKIP
        2

    Keys missing from the dicts are allocated in one query from the key's identity or
    serial sequence (``uuid4()`` for UUID keys). Rows are streamed parent-first through
    :func:`pgpatterns.bulk.copy_rows`, so the foreign key and the trigger of
    :func:`tree_guard` check them; when one is refused nothing is written. Explicit
    integer keys move the key's identity/serial sequence past the largest one (``setval``;
    the role needs ``UPDATE`` on the sequence), so later generated keys do not collide
    with loaded ones. A column
    missing from a dict takes its Python-side ``default=``, else NULL (COPY applies no
    SQL defaults to the columns it fills).

    Raises:
        TreeOptionError: a dict has an unknown column, a child has another scope than
            its parent, or keys are missing and cannot be allocated (before any write).
        BulkLoadError: PostgreSQL refused the data.
    """
    tree, rows, pending = _prepare(model, nested)
    advance = _advance_stmt(tree, rows)
    if advance is not None:  # first: allocated keys must not collide with explicit ones
        session.execute(advance)
    stmt = _allocate_stmt(tree, pending)
    _fill(tree, rows, pending, list(session.scalars(stmt)) if stmt is not None else [])
    if not rows:
        return 0
    names = _columns(tree, rows)
    return copy_rows(session, tree.table, _values(tree, rows, names), columns=names)


async def bulk_load_async(
    session: AsyncSession,
    model: type[Any],
    nested: Sequence[Mapping[str, Any]] | Mapping[str, Any],
) -> int:
    """The asyncio twin of :func:`bulk_load`.

    Examples:
        >>> await bulk_load_async(session, Category, [{"name": "Books"}])  # doctest: +SKIP
        1
    """
    tree, rows, pending = _prepare(model, nested)
    advance = _advance_stmt(tree, rows)
    if advance is not None:  # first: allocated keys must not collide with explicit ones
        await session.execute(advance)
    stmt = _allocate_stmt(tree, pending)
    _fill(tree, rows, pending, list(await session.scalars(stmt)) if stmt is not None else [])
    if not rows:
        return 0
    names = _columns(tree, rows)
    return await copy_rows_async(session, tree.table, _values(tree, rows, names), columns=names)
