"""Link tables with the safe defaults, the relationships on both sides, association objects."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Column, ForeignKey, Index, MetaData, Table
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.ext.associationproxy import association_proxy
from sqlalchemy.orm import Mapper, relationship

from pgpatterns.associations._link import snake
from pgpatterns.errors import AssociationError
from pgpatterns.rls.tenant import TenantInfo, secure_table, tenant_column, tenant_of

__all__ = ["WithAttrs", "association_object", "association_table", "many_to_many", "with_attrs"]

_ONDELETE = {"CASCADE", "RESTRICT", "NO ACTION"}
_MAX_NAME = 63  # PostgreSQL's NAMEDATALEN - 1


def _table_of(side: object, role: str) -> tuple[Table, Mapper[Any] | None]:
    if isinstance(side, Table):
        return side, None
    mapper = sa_inspect(side, raiseerr=False)
    if isinstance(mapper, Mapper) and isinstance(mapper.local_table, Table):
        return mapper.local_table, mapper
    raise AssociationError(
        f"the {role} side must be a mapped class or a Table, got {side!r}: the link table "
        "needs its primary key to reference. Pass the class (Post) or its __table__."
    )


def _single_key(table: Table) -> Column[Any]:
    keys = list(table.primary_key.columns)
    if len(keys) != 1:
        raise AssociationError(
            f"table {table.name!r} has a {len(keys)}-column primary key: association_table() "
            "links tables with a one-column primary key. Add a surrogate id column, or declare "
            "the link Table by hand (with the pair as its primary key)."
        )
    return keys[0]


def association_table(
    left: Any,
    right: Any,
    *,
    name: str | None = None,
    extra_columns: Iterable[Column[Any]] = (),
    ondelete: str | None = "CASCADE",
    left_column: str | None = None,
    right_column: str | None = None,
    metadata: MetaData | None = None,
    tenant: bool | None = None,
) -> Table:
    """A link table: composite primary key, the reverse index and cascading foreign keys.

    Examples:
        >>> posts_tags = association_table(Post, Tag)  # doctest: +SKIP
        >>> [c.name for c in posts_tags.primary_key], [i.name for i in posts_tags.indexes]
        ... # doctest: +SKIP
        (['post_id', 'tag_id'], ['posts_tags_tag_id_post_id_idx'])

    The primary key ``(left, right)`` makes a pair unique (no duplicate rows, and
    ``ON CONFLICT`` can target it) and serves "tags of a post"; the index ``(right, left)``
    serves "posts of a tag" with index-only scans. The foreign keys say
    ``ON DELETE CASCADE``: deleting a post or a tag removes its links in the database, so
    relationships over the table use ``passive_deletes=True`` and never load links to delete
    them (see :func:`many_to_many`).

    Args:
        left: A mapped class or Table with a one-column primary key.
        right: The other side (may be ``left`` itself, with both column names given).
        name: The table name; default ``<left table>_<right table>`` (``posts_tags``).
        extra_columns: Fresh ``Column`` objects for the link's own data (``role``,
            ``created_at``); they must not be primary keys.
        ondelete: ``"CASCADE"`` (default), ``"RESTRICT"``, ``"NO ACTION"`` or ``None``.
        left_column: Default ``<snake_case class name>_<pk>`` (``post_id``) for a class,
            ``<table>_<pk>`` for a Table.
        right_column: Likewise for ``right``.
        metadata: Default: the left table's.
        tenant: ``None`` (default): tenant-scoped when a side is (see below). ``False``:
            a shared link table on purpose (no tenant column, no RLS), refused when both
            sides are tenant-scoped. ``True``: require a tenant-scoped side.

    **Tenants.** When a side is tenant-scoped (:class:`pgpatterns.rls.TenantScoped` or
    :func:`pgpatterns.rls.secure_table`), so is the link table: a tenant column first (NOT
    NULL, defaulting to the current tenant setting, so inserts need not name it), composite
    foreign keys ``(tenant_id, post_id) -> posts (tenant_id, id)`` to each tenant-scoped side
    (the database refuses a link to another tenant's row whatever RLS shows), row-level
    security enabled and forced with the sides' ``tenant_isolation`` policy, and an index
    leading with the tenant column; all through :func:`pgpatterns.rls.secure_table`. The
    pair stays the primary key (keys are unique across tenants), so :func:`link`,
    :func:`sync` and the query helpers work unchanged, each tenant seeing its own pairs.

    Raises:
        AssociationError: A side has no one-column primary key, the column names collide,
            an extra column is a key or collides, ``ondelete`` is not allowed, the name is
            taken or too long, or the two sides are tenant-scoped differently (another
            tenant column, type or setting).
    """
    left_table, left_mapper = _table_of(left, "left")
    right_table, right_mapper = _table_of(right, "right")
    left_pk, right_pk = _single_key(left_table), _single_key(right_table)

    def column_name(table: Table, mapper: Mapper[Any] | None, pk: Column[Any]) -> str:
        base = snake(mapper.class_.__name__) if mapper is not None else table.name
        return f"{base}_{pk.name}"

    lname = left_column or column_name(left_table, left_mapper, left_pk)
    rname = right_column or column_name(right_table, right_mapper, right_pk)
    if lname == rname:
        raise AssociationError(
            f"both link columns would be named {lname!r} (a table linked to itself?). Pass "
            "left_column= and right_column=, e.g. 'follower_id' and 'followed_id'."
        )
    rule = ondelete.upper() if ondelete is not None else None
    if rule is not None and rule not in _ONDELETE:
        raise AssociationError(
            f"ondelete={ondelete!r} is not allowed for a link table: the link columns are its "
            "primary key, so SET NULL/SET DEFAULT cannot work. Use 'CASCADE' (default), "
            "'RESTRICT', 'NO ACTION' or None."
        )
    name = name or f"{left_table.name}_{right_table.name}"
    index_name = f"{name}_{rname}_{lname}_idx"
    if len(index_name) > _MAX_NAME:
        raise AssociationError(
            f"the reverse index name {index_name!r} is longer than PostgreSQL's 63 "
            "characters. Pass a shorter name= (or shorter column names)."
        )
    metadata = metadata if metadata is not None else left_table.metadata
    schema = left_table.schema
    key = f"{schema}.{name}" if schema else name
    if key in metadata.tables:
        raise AssociationError(
            f"MetaData already has a table {key!r}. Pass name= for this link table, or use "
            "the existing table."
        )
    scope = _tenant_scope(left_table, right_table, tenant, name)
    taken = (lname, rname) if scope is None else (lname, rname, scope.column.name)
    if scope is not None and scope.column.name in (lname, rname):
        raise AssociationError(
            f"link column {scope.column.name!r} of {name!r} would collide with the tenant "
            "column. Pass left_column= and right_column=."
        )
    extras = list(extra_columns)
    for col in extras:
        if not isinstance(col, Column) or col.primary_key or col.name in taken:
            raise AssociationError(
                f"extra column {col!r} cannot be added to link table {name!r}: extra columns "
                "are new, non-primary-key Column objects not named "
                f"{', '.join(map(repr, taken))}."
            )
    tenant_cols = [] if scope is None else [
        tenant_column(scope.type_, scope.setting, scope.column.name)]
    table = Table(
        name,
        metadata,
        *tenant_cols,
        Column(lname, left_pk.type, ForeignKey(left_pk, ondelete=rule), primary_key=True,
               autoincrement=False),
        Column(rname, right_pk.type, ForeignKey(right_pk, ondelete=rule), primary_key=True,
               autoincrement=False),
        *extras,
        Index(index_name, rname, lname),
        schema=schema,
    )
    if scope is not None:
        secure_table(table, roles=scope.roles, setting=scope.setting, column=scope.column.name)
    return table


def _tenant_scope(left: Table, right: Table, wanted: bool | None,
                  name: str) -> TenantInfo | None:
    """The tenant scope of a link between ``left`` and ``right`` (None: shared)."""
    sides = [info for info in (tenant_of(left), tenant_of(right)) if info is not None]
    if wanted is False:
        if len(sides) == 2:
            raise AssociationError(
                f"tenant=False for link table {name!r}, but {left.name!r} and {right.name!r} "
                "are both tenant-scoped: a shared link table would show and let every tenant "
                "change every tenant's pairs. Drop tenant=False."
            )
        return None
    if not sides:
        if wanted:
            raise AssociationError(
                f"tenant=True for link table {name!r}, but neither {left.name!r} nor "
                f"{right.name!r} is tenant-scoped. Make a side TenantScoped, or drop tenant=."
            )
        return None
    first = sides[0]
    for other in sides[1:]:
        same = (other.column.name == first.column.name and other.setting == first.setting
                and other.type_._type_affinity is first.type_._type_affinity)
        if not same:
            raise AssociationError(
                f"link table {name!r}: {left.name!r} and {right.name!r} are tenant-scoped "
                f"differently ({first.column.name} {first.type_} by {first.setting!r} vs "
                f"{other.column.name} {other.type_} by {other.setting!r}); a link row "
                "belongs to one tenant. Scope both sides by the same tenant column."
            )
    roles = tuple(dict.fromkeys(r for info in sides for r in info.roles))
    return TenantInfo(first.column, roles, first.setting, first.type_)


def _cascades(table: Table) -> bool:
    return all(fk.ondelete == "CASCADE" for fk in table.foreign_keys)


def _add(cls: type[Any], key: str, prop: Any) -> None:
    mapper = sa_inspect(cls)
    if hasattr(cls, key):
        raise AssociationError(
            f"{cls.__name__} already has an attribute {key!r}. Choose another name."
        )
    mapper.add_property(key, prop)


def many_to_many(
    left: type[Any],
    right: type[Any],
    *,
    attr: str,
    back: str | None = None,
    table: Table | None = None,
    order_by: Any = False,
    lazy: Any = "select",
    **table_options: Any,
) -> Table:
    """Link two mapped classes: the link table and ``relationship(secondary=...)`` both ways.

    Examples:
        >>> posts_tags = many_to_many(Post, Tag, attr="tags", back="posts")  # doctest: +SKIP
        >>> post.tags.append(tag); tag.posts  # doctest: +SKIP
        [<Post 1>]

    Equivalent to the two lines a typed model writes itself::

        tags: Mapped[list[Tag]] = relationship(
            secondary=lambda: posts_tags, passive_deletes=True, back_populates="posts")
        posts_tags = association_table(Post, Tag)   # after both classes

    ``passive_deletes=True`` (when the table cascades): deleting a post lets the database
    remove its links instead of loading them first.

    Args:
        left: The mapped class that gets ``attr``.
        right: The mapped class that gets ``back``.
        attr: The collection attribute added to ``left`` (``"tags"``).
        back: The reverse collection added to ``right`` (``"posts"``), or None.
        table: An existing link table; default :func:`association_table` with
            ``table_options`` (``name=``, ``extra_columns=`` ...).
        order_by: Passed to both relationships.
        lazy: Passed to both relationships.

    Raises:
        AssociationError: An attribute exists already, or :func:`association_table` refused.
    """
    for cls, key in ((left, attr), (right, back)):
        if key is not None and hasattr(cls, key):
            raise AssociationError(f"{cls.__name__} already has an attribute {key!r}.")
    table = table if table is not None else association_table(left, right, **table_options)
    passive = _cascades(table)
    _add(left, attr, relationship(right, secondary=table, passive_deletes=passive,
                                  back_populates=back, order_by=order_by, lazy=lazy))
    if back is not None:
        _add(right, back, relationship(left, secondary=table, passive_deletes=passive,
                                       back_populates=attr, order_by=order_by, lazy=lazy))
    return table


@dataclass(frozen=True)
class WithAttrs:
    """A target plus the link's attributes, for appending through an association proxy."""

    target: Any
    attrs: dict[str, Any] = field(default_factory=dict)


def with_attrs(target: Any, **attrs: Any) -> WithAttrs:
    """Append through a proxy with the link's attributes set.

    Examples:
        >>> group.users.append(with_attrs(alice, role="admin"))  # doctest: +SKIP
        >>> group.memberships[-1].role  # doctest: +SKIP
        'admin'
    """
    return WithAttrs(target, attrs)


def _creator(link_cls: type[Any], attr: str, columns: set[str]) -> Any:
    def create(value: Any) -> Any:
        if isinstance(value, WithAttrs):
            unknown = sorted(set(value.attrs) - columns)
            if unknown:
                raise AssociationError(
                    f"{link_cls.__name__} has no column {', '.join(unknown)}; its own columns "
                    f"are {', '.join(sorted(columns)) or '(none)'}."
                )
            return link_cls(**{attr: value.target}, **value.attrs)
        return link_cls(**{attr: value})

    return create


def association_object(
    base: type[Any],
    left: type[Any],
    right: type[Any],
    *,
    name: str,
    extra_columns: Iterable[Column[Any]] = (),
    tablename: str | None = None,
    left_attr: str | None = None,
    right_attr: str | None = None,
    links: tuple[str, str] | None = None,
    proxies: tuple[str | None, str | None] = (None, None),
    ondelete: str = "CASCADE",
) -> type[Any]:
    """A mapped link class with its own columns, both relationships and association proxies.

    Examples:
        >>> Membership = association_object(  # doctest: +SKIP
        ...     Base, User, Group, name="Membership",
        ...     extra_columns=[Column("role", Text, nullable=False, server_default="member")],
        ...     proxies=("groups", "users"))
        >>> group.users.append(with_attrs(alice, role="admin"))  # doctest: +SKIP
        >>> [(m.user.name, m.role) for m in group.memberships]  # doctest: +SKIP
        [('alice', 'admin')]

    Creates the class ``name`` on ``base`` mapped to :func:`association_table` (composite
    primary key, reverse index, cascading foreign keys), with many-to-one relationships
    ``left_attr``/``right_attr`` (default: the snake_case class names, ``user``/``group``),
    and on the sides the collections ``links`` (default ``("memberships", "memberships")``,
    from ``name``) with ``cascade="all, delete-orphan"`` and ``passive_deletes=True``, and
    the association proxies ``proxies`` (``user.groups``, ``group.users``). A proxy appends
    a plain object (``group.users.append(bob)``) or :func:`with_attrs` for the columns.

    Warning:
        Appending a pair that exists already through the ORM inserts it again and fails at
        flush with a duplicate key: for idempotent adds use :func:`pgpatterns.associations.link`.

    Raises:
        AssociationError: An attribute name is taken, or :func:`association_table` refused.
    """
    left_attr = left_attr or snake(left.__name__)
    right_attr = right_attr or snake(right.__name__)
    plural = f"{snake(name)}s"
    left_links, right_links = links or (plural, plural)
    for cls, key in ((left, left_links), (right, right_links), (left, proxies[0]),
                     (right, proxies[1])):
        if key is not None and hasattr(cls, key):
            raise AssociationError(f"{cls.__name__} already has an attribute {key!r}.")
    if left_attr == right_attr:
        raise AssociationError(
            f"both sides of {name} would be named {left_attr!r}. Pass left_attr= and right_attr=."
        )
    table = association_table(left, right, name=tablename, extra_columns=extra_columns,
                              ondelete=ondelete, left_column=f"{left_attr}_id" if left is right
                              else None, right_column=f"{right_attr}_id" if left is right
                              else None, metadata=base.metadata)
    lazy: Any = "selectin"  # reading a proxy loads the other side in one query, not one per link
    link_cls = type(name, (base,), {
        "__table__": table,
        "__module__": left.__module__,
        left_attr: relationship(left, back_populates=left_links, lazy=lazy),
        right_attr: relationship(right, back_populates=right_links, lazy=lazy),
    })
    passive = ondelete.upper() == "CASCADE"
    cascade = "all, delete-orphan"
    _add(left, left_links, relationship(link_cls, back_populates=left_attr, cascade=cascade,
                                        passive_deletes=passive))
    _add(right, right_links, relationship(link_cls, back_populates=right_attr, cascade=cascade,
                                          passive_deletes=passive))
    scope = tenant_of(table)
    columns = {c.name for c in table.columns} - {c.name for c in table.primary_key} - (
        set() if scope is None else {scope.column.name})
    if proxies[0] is not None:
        setattr(left, proxies[0], association_proxy(
            left_links, right_attr, creator=_creator(link_cls, right_attr, columns)))
    if proxies[1] is not None:
        setattr(right, proxies[1], association_proxy(
            right_links, left_attr, creator=_creator(link_cls, left_attr, columns)))
    return link_cls
