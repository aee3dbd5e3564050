"""The adjacency-list model: ``parent_id``, ``parent`` and ``children`` for a declarative class.

Examples:
    >>> from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
    >>> from pgpatterns.trees import AdjacencyListMixin, TreeOptions
    >>> class Base(DeclarativeBase): ...
    >>> class Category(AdjacencyListMixin, Base):
    ...     __tablename__ = "categories"
    ...     __tree__ = TreeOptions(on_delete="restrict")
    ...     id: Mapped[int] = mapped_column(primary_key=True)
    ...     name: Mapped[str]
    >>> sorted(c.name for c in Category.__table__.c)
    ['id', 'name', 'parent_id']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from sqlalchemy import Column, ForeignKey, Table, inspect
from sqlalchemy.exc import NoInspectionAvailable
from sqlalchemy.orm import Mapped, Mapper, declared_attr, mapped_column, relationship

from pgpatterns.errors import TreeOptionError

__all__ = ["AdjacencyListMixin", "TreeOptions"]

ON_DELETE = ("cascade", "restrict", "set null")


@dataclass(frozen=True)
class TreeOptions:
    """How a tree model is declared; set it as ``__tree__`` on the mapped class.

    Examples:
        >>> TreeOptions(scope="tenant_id", order_by="position").on_delete
        'cascade'

    Attributes:
        key: The primary-key attribute ``parent_id`` refers to (integer or UUID).
        on_delete: ``"cascade"`` (delete the subtree), ``"restrict"`` (refuse to delete a
            node that has children) or ``"set null"`` (children become roots).
        scope: A column that splits the table into independent forests (``tenant_id``);
            it is pushed into the anchor and the recursive term of every query.
        order_by: A column that orders siblings (``position``); declare it on the model.
    """

    key: str = "id"
    on_delete: str = "cascade"
    scope: str | None = None
    order_by: str | None = None

    def __post_init__(self) -> None:
        if self.on_delete not in ON_DELETE:
            raise TreeOptionError(
                f"TreeOptions(on_delete={self.on_delete!r}) is not supported: the foreign key "
                f"of parent_id accepts only {', '.join(map(repr, ON_DELETE))}; pass one of them."
            )


def _options(cls: type[Any]) -> TreeOptions:
    options = getattr(cls, "__tree__", None)
    if not isinstance(options, TreeOptions):
        raise TreeOptionError(
            f"{cls.__name__}.__tree__ is {options!r}, not a TreeOptions: the mixin reads its "
            "settings there; write `__tree__ = TreeOptions(...)` in the class body."
        )
    return options


def _fk_target(cls: type[Any], key: str) -> str:
    """``"schema.table.key"``: SQLAlchemy's own reference syntax, parsed by ForeignKey."""
    table_args = getattr(cls, "__table_args__", None)
    if isinstance(table_args, tuple) and table_args and isinstance(table_args[-1], dict):
        table_args = table_args[-1]
    schema = table_args.get("schema") if isinstance(table_args, dict) else None
    tablename = cls.__dict__.get("__tablename__") or getattr(cls, "__tablename__", None)
    if not tablename:
        raise TreeOptionError(
            f"{cls.__name__} has no __tablename__: AdjacencyListMixin makes parent_id refer to "
            "the class's own table; give the class a __tablename__."
        )
    return f"{schema}.{tablename}.{key}" if schema else f"{tablename}.{key}"


class AdjacencyListMixin:
    """Adds ``parent_id`` (self-referencing FK, indexed), ``parent`` and ``children``.

    Examples:
        >>> from pgpatterns.trees import descendants
        >>> stmt = descendants(Category, 1, max_depth=2)  # doctest: +SKIP

    ``parent_id`` takes the type of the key it refers to (no type is declared, so
    SQLAlchemy copies the referenced column's): integer identity and UUID keys both work.
    ``children`` is ordered by ``TreeOptions.order_by`` (then the key). Deleting follows
    ``TreeOptions.on_delete`` in the database (``passive_deletes``): the ORM does not load
    a subtree to delete it.

    The database-side guard (no cycles, no cross-scope parents, even for raw SQL) is a
    separate, explicit step: :func:`pgpatterns.trees.tree_guard`.
    """

    __tree__: ClassVar[TreeOptions] = TreeOptions()

    @declared_attr
    def parent_id(cls: type[Any]) -> Mapped[Any]:
        options = _options(cls)
        return mapped_column(
            ForeignKey(_fk_target(cls, options.key), ondelete=options.on_delete.upper()),
            nullable=True,
            index=True,
        )

    @declared_attr
    def parent(cls: type[Any]) -> Mapped[Any]:
        key = _options(cls).key
        return relationship(
            cls,
            remote_side=lambda: [getattr(cls, key)],
            back_populates="children",
            foreign_keys=lambda: [cls.parent_id],
        )

    @declared_attr
    def children(cls: type[Any]) -> Mapped[list[Any]]:
        options = _options(cls)

        def order() -> list[Any]:
            cols = [getattr(cls, options.key)]
            if options.order_by:
                cols.insert(0, getattr(cls, options.order_by))
            return cols

        cascade = "save-update, merge" + (", delete" if options.on_delete == "cascade" else "")
        return relationship(
            cls,
            back_populates="parent",
            order_by=order,
            cascade=cascade,
            passive_deletes="all" if options.on_delete == "restrict" else True,
            foreign_keys=lambda: [cls.parent_id],
        )


@dataclass(frozen=True)
class Tree:
    """The resolved columns of a tree model (internal; one per mapped class)."""

    model: type[Any]
    mapper: Mapper[Any]
    table: Table
    options: TreeOptions
    key: Column[Any]
    parent: Column[Any]
    scope: Column[Any] | None
    order: Column[Any] | None

    @property
    def label(self) -> str:
        return self.model.__name__

    def key_of(self, obj: Any) -> Any:
        return getattr(obj, self.mapper.get_property_by_column(self.key).key)

    def scope_of(self, obj: Any) -> Any:
        if self.scope is None:
            return None
        return getattr(obj, self.mapper.get_property_by_column(self.scope).key)


_CACHE = "_pgpatterns_tree_"  # the resolved Tree, stored on the class itself


def tree_of(model: object) -> Tree:
    """The :class:`Tree` of a mapped AdjacencyListMixin class (or of an instance of one)."""
    cls = model if isinstance(model, type) else type(model)
    cached = cls.__dict__.get(_CACHE)
    if isinstance(cached, Tree):
        return cached
    if not issubclass(cls, AdjacencyListMixin):
        raise TreeOptionError(
            f"{cls.__name__} is not a tree model: tree queries need a mapped class that "
            "inherits AdjacencyListMixin; add the mixin to the class."
        )
    try:
        mapper: Mapper[Any] = inspect(cls)
    except NoInspectionAvailable as exc:
        raise TreeOptionError(
            f"{cls.__name__} is not mapped: inherit AdjacencyListMixin from a declarative "
            "class (e.g. `class Category(AdjacencyListMixin, Base)`)."
        ) from exc
    options = _options(cls)
    table = mapper.local_table
    if not isinstance(table, Table):
        raise TreeOptionError(f"{cls.__name__} must be mapped to a Table.")

    def column(attr: str | None, what: str) -> Column[Any] | None:
        if attr is None:
            return None
        prop = mapper.attrs.get(attr)
        cols = getattr(prop, "columns", None)
        if not cols or not isinstance(cols[0], Column) or cols[0].table is not table:
            raise TreeOptionError(
                f"{cls.__name__}: TreeOptions({what}={attr!r}) names no column of "
                f"{table.name}; declare `{attr}` as a mapped_column or fix the option."
            )
        return cols[0]

    key = column(options.key, "key")
    parent = table.c.get("parent_id")
    assert key is not None and parent is not None
    tree = Tree(
        model=cls,
        mapper=mapper,
        table=table,
        options=options,
        key=key,
        parent=parent,
        scope=column(options.scope, "scope"),
        order=column(options.order_by, "order_by"),
    )
    setattr(cls, _CACHE, tree)
    return tree
