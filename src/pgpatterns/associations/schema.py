"""Link tables with the safe defaults, the relationships on both sides, association objects."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Column, ForeignKey, Index, MetaData, PrimaryKeyConstraint, Table
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Mapper, backref, relationship

from pgpatterns._args import collection
from pgpatterns.associations._link import snake
from pgpatterns.ddl.base import check_name_length, short_name
from pgpatterns.errors import ArgumentError, AssociationError
from pgpatterns.rls.tenant import TenantInfo, secure_table, tenant_column, tenant_of

__all__ = ["association_table", "cascades", "check_free", "many_to_many"]

_ONDELETE = {"CASCADE", "RESTRICT", "NO ACTION"}


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
    key_columns: Iterable[str] = (),
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
        key_columns: Names of extra columns that are part of a link's identity: the primary
            key becomes ``(left, right, *key_columns)`` and a pair may be linked several
            times (a dependency with two version ranges, a role granted for two scopes).
            :func:`link`/:func:`sync` then need their values, :func:`unlink` may filter by
            them. For :func:`association_object` (not :func:`many_to_many`).
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
        ArgumentError: An argument of the wrong type (a name that is not a non-empty str, a
            ``metadata`` that is not a MetaData ...).
        DDLNameLengthError: A given table or column name is over PostgreSQL's 63 bytes
            (generated names are shortened with a hash instead).
    """
    _check_args(name=name, left_column=left_column, right_column=right_column,
                ondelete=ondelete, metadata=metadata, tenant=tenant)
    extra_columns = collection("association_table", "extra_columns", extra_columns)
    key_columns = collection("association_table", "key_columns", key_columns)
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
    for what, given in (("left_column", left_column), ("right_column", right_column),
                        ("name", name)):
        if given is not None:
            check_name_length(f"association_table(): {what}", given)
    name = name or short_name(left_table.name, right_table.name)
    lname, rname = short_name(lname), short_name(rname)
    index_name = short_name(name, rname, lname, suffix="_idx")
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
    keys = list(key_columns)
    unknown = [k for k in keys if not isinstance(k, str) or k not in {c.name for c in extras}]
    if unknown or len(set(keys)) != len(keys):
        raise AssociationError(
            f"key_columns={keys!r} of link table {name!r} must name extra columns, each once "
            f"(extra columns: {', '.join(c.name for c in extras) or 'none'})."
        )
    tenant_cols = [] if scope is None else [
        tenant_column(scope.type_, scope.setting, scope.column.name)]
    table = Table(
        name,
        metadata,
        *tenant_cols,
        Column(lname, left_pk.type, ForeignKey(left_pk, ondelete=rule), nullable=False,
               autoincrement=False),
        Column(rname, right_pk.type, ForeignKey(right_pk, ondelete=rule), nullable=False,
               autoincrement=False),
        *extras,
        PrimaryKeyConstraint(lname, rname, *keys),
        Index(index_name, rname, lname),
        schema=schema,
    )
    if scope is not None:
        secure_table(table, roles=scope.roles, setting=scope.setting, column=scope.column.name)
    return table


def _check_args(**given: Any) -> None:
    """Refuse, before anything else, arguments of the wrong type."""
    for key in ("name", "left_column", "right_column", "ondelete"):
        value = given[key]
        if value is not None and (not isinstance(value, str) or not value or "\x00" in value):
            raise ArgumentError(
                f"association_table(): {key}={value!r} is not accepted: pass a non-empty str "
                "without NUL characters, or None for the default.", argument=key, given=value)
    if given["metadata"] is not None and not isinstance(given["metadata"], MetaData):
        raise ArgumentError(
            f"association_table(): metadata={given['metadata']!r} is not accepted: pass a "
            "sqlalchemy MetaData, or None for the left table's.", argument="metadata",
            given=given["metadata"])
    if given["tenant"] is not None and not isinstance(given["tenant"], bool):
        raise ArgumentError(
            f"association_table(): tenant={given['tenant']!r} is not accepted: pass True, "
            "False or None.", argument="tenant", given=given["tenant"])


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


def cascades(table: Table) -> bool:
    """Whether every foreign key of ``table`` says ``ON DELETE CASCADE``."""
    return all(fk.ondelete == "CASCADE" for fk in table.foreign_keys)


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
        right: The mapped class that gets ``back``; may be ``left`` itself (followers,
            graph edges): pass ``left_column=``/``right_column=`` (``"follower_id"``,
            ``"followed_id"``), ``attr`` reads left to right, ``back`` right to left.
        attr: The collection attribute added to ``left`` (``"tags"``).
        back: The reverse collection added to ``right`` (``"posts"``), or None.
        table: An existing link table; default :func:`association_table` with
            ``table_options`` (``name=``, ``extra_columns=`` ...).
        order_by: Passed to both relationships.
        lazy: Passed to both relationships.

    Both relationships get an explicit ``primaryjoin``/``secondaryjoin``, so a class linked
    to itself is not ambiguous.

    Raises:
        AssociationError: An attribute exists already (or ``attr == back`` on one class), or
            :func:`association_table` refused; the classes and MetaData are left unchanged.
    """
    check_free([(left, attr), (right, back)])
    if table_options.get("key_columns"):
        raise AssociationError(
            "many_to_many() cannot take key_columns=: a relationship with secondary= inserts "
            "and deletes links by the pair alone. Use association_object(..., key_columns=).")
    left_pk = _single_key(_table_of(left, "left")[0])
    right_pk = _single_key(_table_of(right, "right")[0])
    if table is None:
        table = association_table(left, right, **table_options)
        lcol, rcol = table.primary_key.columns.values()[:2]
    else:
        lcol, rcol = _link_columns(table, left_pk, right_pk, table_options)
    passive = cascades(table)
    # backref= rather than two back_populates: adding one relationship to a configured
    # mapper initializes it at once, and it must not refer to one not added yet
    reverse = None if back is None else backref(
        back, passive_deletes=passive, order_by=order_by, lazy=lazy)
    sa_inspect(left).add_property(attr, relationship(
        right, secondary=table, primaryjoin=left_pk == lcol, secondaryjoin=right_pk == rcol,
        passive_deletes=passive, backref=reverse, order_by=order_by, lazy=lazy))
    return table


def _link_columns(table: Table, left_pk: Column[Any], right_pk: Column[Any],
                  options: dict[str, Any]) -> tuple[Column[Any], Column[Any]]:
    """The columns of a given link ``table`` that reference ``left_pk`` and ``right_pk``."""
    def referencing(pk: Column[Any]) -> list[Column[Any]]:
        return [c for c in table.columns if any(fk.references(pk.table) and
                                                fk.column is pk for fk in c.foreign_keys)]

    lcols, rcols = referencing(left_pk), referencing(right_pk)
    lname, rname = options.get("left_column"), options.get("right_column")
    if isinstance(lname, str) and isinstance(rname, str):
        if lname not in table.c or rname not in table.c:
            raise AssociationError(
                f"link table {table.name!r} has no column {lname!r} or {rname!r}.")
        return table.c[lname], table.c[rname]
    if left_pk is right_pk and len(lcols) == 2:
        return lcols[0], lcols[1]  # a table linked to itself: the first column is the left
    if len(lcols) == 1 and len(rcols) == 1 and lcols[0] is not rcols[0]:
        return lcols[0], rcols[0]
    raise AssociationError(
        f"cannot tell which columns of link table {table.name!r} reference "
        f"{left_pk.table.name!r} and {right_pk.table.name!r}. Pass left_column= and "
        "right_column=."
    )


def check_free(wanted: list[tuple[type[Any], str | None]]) -> None:
    """Refuse, before anything is changed, a name a class has or that is wanted twice."""
    seen: set[tuple[int, str]] = set()
    for cls, key in wanted:
        if not isinstance(cls, type) or not isinstance(sa_inspect(cls, raiseerr=False), Mapper):
            raise ArgumentError(
                f"{cls!r} is not a mapped class: pass the classes to link (Post, Tag).",
                argument="left", given=cls)
        if key is None:
            continue
        if not isinstance(key, str) or not key.isidentifier():
            raise ArgumentError(
                f"attribute name {key!r} for {cls.__name__} is not accepted: pass a Python "
                "identifier (str).", argument="attr", given=key)
        if hasattr(cls, key) or (id(cls), key) in seen:
            raise AssociationError(
                f"{cls.__name__} already has an attribute {key!r}"
                f"{'' if hasattr(cls, key) else ' (asked for twice)'}. Choose another name; "
                "nothing was changed."
            )
        seen.add((id(cls), key))
