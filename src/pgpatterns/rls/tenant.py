"""``TenantScoped``: a declarative mixin for rows that belong to one tenant.

Examples:
    >>> from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
    >>> from pgpatterns.rls import TenantScoped, tenant_unique
    >>> class Base(DeclarativeBase):
    ...     pass
    >>> class Project(TenantScoped, Base):
    ...     __tablename__ = "projects"
    ...     __tenant_roles__ = ("app_user",)
    ...     __table_args__ = (tenant_unique("slug"),)
    ...     id: Mapped[int] = mapped_column(primary_key=True)
    ...     slug: Mapped[str]
    >>> [c.name for c in Project.__table__.c]
    ['tenant_id', 'id', 'slug']

What a subclass gets: a ``tenant_id`` column (first, NOT NULL, defaulting to the current
tenant setting), an index whose leading column is ``tenant_id``, ``UNIQUE (tenant_id, id)``,
``ENABLE`` + ``FORCE ROW LEVEL SECURITY`` and a ``tenant_isolation`` policy for
``__tenant_roles__`` (``USING`` and ``WITH CHECK``), all attached to the model's MetaData:
``Base.metadata.create_all`` creates them.

**Tenant keys by construction.** Foreign keys are not checked through row-level security:
with a plain ``folder_id REFERENCES folders (id)``, tenant 1 can point a document at tenant
2's folder. Every one-column foreign key from a tenant-scoped table to another tenant-scoped
table therefore also gets a composite key ``(tenant_id, folder_id) -> folders (tenant_id,
id)`` (a :class:`pgpatterns.ddl.CompositeForeignKey`, added by ``ALTER TABLE`` after the
tables), so the database refuses a cross-tenant reference whatever RLS lets a role see. The
plain key stays: the ORM infers relationships from it. Which class is declared first does
not matter. A foreign key to a table that is not tenant-scoped (shared reference data) gets
no composite key.

Scaling out: sharded PostgreSQL (Citus) distributes a table by a column and needs every
primary key, unique constraint and foreign key to include it. Set
``__tenant_primary_key__ = True`` (primary key ``(tenant_id, id)``) and declare uniques with
:func:`tenant_unique` and foreign keys with :func:`tenant_foreign_key`, and the schema is
already distributable by ``tenant_id``.

Warning:
    With the default one-column primary key, a key value is unique across tenants, so an
    ``INSERT`` that names an explicit key (``ON CONFLICT DO NOTHING``, or a duplicate-key
    error) tells the caller whether that key exists in *another* tenant. Let the database
    generate keys (identity or UUID defaults; never accept them from requests), or use
    ``__tenant_primary_key__ = True``, where keys are unique per tenant only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from sqlalchemy import (
    Column,
    ForeignKeyConstraint,
    Index,
    MetaData,
    Table,
    UniqueConstraint,
    cast,
    func,
    true,
)
from sqlalchemy.exc import NoReferencedTableError
from sqlalchemy.orm import Mapped, declared_attr, mapped_column
from sqlalchemy.types import BigInteger, TypeEngine

from pgpatterns.ddl import CompositeForeignKey, SchemaObject, attach
from pgpatterns.ddl.base import check_name_length, short_name
from pgpatterns.errors import RLSPolicyError, TenantIsolationError
from pgpatterns.rls.expressions import (
    TENANT_SETTING,
    check_setting_name,
    current_tenant,
    tenant_isolation,
)
from pgpatterns.rls.policies import enable_rls, policy

__all__ = [
    "TenantInfo",
    "TenantScoped",
    "secure_table",
    "tenant_column",
    "tenant_foreign_key",
    "tenant_of",
    "tenant_unique",
]

TENANT_COLUMN = "tenant_id"
_INFO_KEY = "pgpatterns.rls.tenant"  # Table.info: the table's TenantInfo
_TYPES_KEY = "pgpatterns.rls.tenant_types"  # MetaData.info: setting -> tenant column type
_REGISTERED_TYPES: dict[str, TypeEngine[Any]] = {}  # setting -> type, for tenant_context()


@dataclass(frozen=True, eq=False)
class TenantInfo:
    """What makes a table tenant-scoped: its tenant column, roles and setting.

    Examples:
        >>> tenant_of(Project.__table__).roles  # doctest: +SKIP
        ('app_user',)
    """

    column: Column[Any]
    roles: tuple[str, ...]
    setting: str
    type_: TypeEngine[Any]


def tenant_of(table: object) -> TenantInfo | None:
    """The table's :class:`TenantInfo` if :class:`TenantScoped` or :func:`secure_table` made
    it tenant-scoped, else ``None`` (a shared table).

    Examples:
        >>> from sqlalchemy import MetaData, Table
        >>> tenant_of(Table("shared", MetaData())) is None
        True
    """
    info = table.info.get(_INFO_KEY) if isinstance(table, Table) else None
    return info if isinstance(info, TenantInfo) else None


def registered_tenant_type(setting: str) -> TypeEngine[Any] | None:
    """The tenant column type declared for ``setting`` by a tenant-scoped table, if any."""
    return _REGISTERED_TYPES.get(setting)


def _type_instance(type_: TypeEngine[Any] | type[TypeEngine[Any]]) -> TypeEngine[Any]:
    return type_() if isinstance(type_, type) else type_


def tenant_column(
    type_: TypeEngine[Any] | type[TypeEngine[Any]] = BigInteger,
    setting: str = TENANT_SETTING,
    name: str = TENANT_COLUMN,
    **kw: Any,
) -> Column[Any]:
    """The tenant column: NOT NULL, defaulting to the transaction's tenant setting.

    Examples:
        >>> print(tenant_column().server_default.arg)  # doctest: +SKIP
        CAST(nullif(current_setting(:current_setting_1, true), :nullif_1) AS BIGINT)

    An insert outside :func:`~pgpatterns.rls.tenant_context` fails on NOT NULL instead of
    creating a row no tenant owns. ``kw`` goes to ``Column`` (``primary_key=``, ...).
    """
    type_ = _type_instance(type_)
    setting = check_setting_name(setting)
    default = cast(func.nullif(func.current_setting(setting, true()), ""), type_)
    return Column(name, type_, nullable=False, server_default=default, **kw)


def secure_table(
    table: Table,
    *,
    roles: Sequence[str],
    setting: str = TENANT_SETTING,
    column: str = TENANT_COLUMN,
    index: bool = True,
) -> list[SchemaObject]:
    """Make ``table`` tenant-scoped: forced RLS, the isolation policy, composite tenant keys.

    Examples:
        >>> from sqlalchemy import Column, Integer, MetaData, Table
        >>> links = Table("links", MetaData(), tenant_column(), Column("a", Integer))
        >>> [o.kind for o in secure_table(links, roles=["app_user"])]
        ['row level security', 'policy']

    What :class:`TenantScoped` does for a mapped class, for a plain ``Table`` (link tables,
    partitions): the table must already have its tenant column (:func:`tenant_column`). It
    adds an index leading with the tenant column when none exists (``index=True``),
    composite foreign keys for every one-column foreign key between this table and another
    tenant-scoped table (both directions), and attaches everything to ``table.metadata``.
    Returns the objects attached.

    Raises:
        RLSPolicyError: no roles, or the tenant column is missing or nullable.
        TenantIsolationError: a foreign key to a tenant-scoped table cannot be made
            composite (the referred column is not covered by a tenant unique key).
    """
    where = f"secure_table({getattr(table, 'name', table)!r})"
    if isinstance(roles, str):
        roles = (roles,)
    if not isinstance(roles, (list, tuple)) or not all(isinstance(r, str) and r for r in roles):
        raise RLSPolicyError(
            f"{where}: roles= must name the application role(s), e.g. ['app_user']; got "
            f"{roles!r}."
        )
    roles = tuple(roles)
    if not isinstance(table, Table):
        raise RLSPolicyError(f"{where}: expected a sqlalchemy Table, got {table!r}.")
    if not roles:
        raise RLSPolicyError(f"{where}: roles= must name the application role(s).")
    if not isinstance(column, str) or column not in table.c or table.c[column].nullable:
        raise RLSPolicyError(
            f"{where}: the table needs a NOT NULL {column!r} column; add tenant_column()."
        )
    existing = tenant_of(table)
    if existing is not None:
        return []
    check_name_length(f"{where}: table name", table.name)
    check_name_length(f"{where}: tenant column name", column)
    setting = check_setting_name(setting)
    info = TenantInfo(table.c[column], roles, setting, table.c[column].type)
    _register_type(table.metadata, setting, info.type_, where)
    table.info[_INFO_KEY] = info
    if index and not _has_leading_index(table, column):
        Index(short_name(table.name, column, suffix="_idx"), table.c[column])
    rls = enable_rls(table, force=True)
    isolation = tenant_isolation(
        table.c[column], tenant=current_tenant(info.type_, name=setting)
    )
    made: list[SchemaObject] = [
        rls,
        policy("tenant_isolation", table, to=roles, using=isolation, with_check=isolation),
    ]
    made += _tenant_foreign_keys(table.metadata)
    attach(table.metadata, *made)
    return made


def _register_type(metadata: MetaData, setting: str, type_: TypeEngine[Any], where: str) -> None:
    known = metadata.info.setdefault(_TYPES_KEY, {})
    other = known.get(setting)
    if other is not None and type(other)._type_affinity is not type(type_)._type_affinity:
        raise RLSPolicyError(
            f"{where}: tenant column type {type_} differs from {other}, declared for the same "
            f"setting {setting!r} by another table; tenants need one key type per setting."
        )
    known[setting] = type_
    _REGISTERED_TYPES[setting] = type_


def _has_leading_index(table: Table, column: str) -> bool:
    def leads(cols: Any) -> bool:
        cols = list(cols)
        return bool(cols) and cols[0].name == column

    return (
        any(leads(i.columns) for i in table.indexes)
        or leads(table.primary_key.columns)
        or any(isinstance(c, UniqueConstraint) and leads(c.columns) for c in table.constraints)
        or bool(table.c[column].index)
    )


def _tenant_foreign_keys(metadata: MetaData) -> list[SchemaObject]:
    """Composite keys for every one-column FK between two tenant-scoped tables of
    ``metadata`` that has none yet (whichever of the two was declared last calls this)."""
    made: list[SchemaObject] = []
    done = metadata.info.setdefault("pgpatterns.rls.tenant_fks", set())
    for table in list(metadata.tables.values()):
        child = tenant_of(table)
        if child is None:
            continue
        for fk in table.foreign_keys:
            if fk.constraint is None or len(fk.constraint.columns) != 1:
                continue
            if fk.parent.name == child.column.name:
                continue
            try:
                target = fk.column
            except NoReferencedTableError:
                continue  # the referred table is declared later: its call adds the key
            parent = tenant_of(target.table)
            if parent is None or (table.name, fk.parent.name) in done:
                continue
            if not _tenant_unique(target.table, parent.column.name, target.name):
                raise TenantIsolationError(
                    f"{table.name}.{fk.parent.name} references {target.table.name}."
                    f"{target.name}, which has no unique key on ({parent.column.name}, "
                    f"{target.name}): the composite tenant key needs one. Reference the "
                    "primary key, or add tenant_unique(...) for that column."
                )
            name = short_name(table.name, fk.parent.name, suffix="_tenant_fkey")
            # CASCADE / RESTRICT carry over; SET NULL / SET DEFAULT would also reset
            # tenant_id, so the plain key does that and this one only checks (NO ACTION)
            action = fk.ondelete if (fk.ondelete or "").upper() in ("CASCADE", "RESTRICT") else None
            made.append(CompositeForeignKey(
                name, table, [child.column.name, fk.parent.name], target.table,
                [parent.column.name, target.name], ondelete=action,
            ))
            done.add((table.name, fk.parent.name))
    return made


def _tenant_unique(table: Table, tenant: str, column: str) -> bool:
    wanted = {tenant, column}
    keys = [table.primary_key] + [c for c in table.constraints if isinstance(c, UniqueConstraint)]
    return any({c.name for c in k.columns} == wanted for k in keys) or any(
        i.unique and {c.name for c in i.columns} == wanted for i in table.indexes
    )


class TenantScoped:
    """Mixin: ``tenant_id``, its index, forced RLS and the tenant isolation policy.

    Examples:
        >>> class Note(TenantScoped, Base):  # doctest: +SKIP
        ...     __tablename__ = "notes"
        ...     __tenant_roles__ = ("app_user",)
        ...     id: Mapped[int] = mapped_column(primary_key=True)

    Class attributes (all optional except ``__tenant_roles__``):

    * ``__tenant_roles__``: the role(s) the policy is for (your application's login role).
    * ``__tenant_type__``: the SQLAlchemy type of ``tenant_id`` (default ``BigInteger``).
    * ``__tenant_setting__``: the setting holding the current tenant (``app.tenant_id``).
    * ``__tenant_primary_key__``: make the primary key ``(tenant_id, <your pk>)``.
    * ``__tenant_index__``: ``False`` when you declare your own index leading with
      ``tenant_id`` (e.g. ``Index(..., "tenant_id", "created_at")``).

    Warning:
        The policy does not apply to superusers, roles with ``BYPASSRLS``, or (without
        FORCE) the table owner: connect the application as a plain role, and test as one.
        ``tenant_id`` defaults to the current tenant setting, so an insert outside
        ``tenant_context`` fails on NOT NULL instead of creating an orphan row.
    """

    __tenant_roles__: ClassVar[Sequence[str]] = ()
    __tenant_type__: ClassVar[TypeEngine[Any] | type[TypeEngine[Any]]] = BigInteger
    __tenant_setting__: ClassVar[str] = TENANT_SETTING
    __tenant_primary_key__: ClassVar[bool] = False
    __tenant_index__: ClassVar[bool] = True

    @declared_attr
    def tenant_id(cls) -> Mapped[Any]:
        """The owning tenant; defaults to the transaction's ``app.tenant_id``."""
        type_ = cls.__tenant_type__
        type_ = type_() if isinstance(type_, type) else type_
        setting = check_setting_name(cls.__tenant_setting__)
        in_pk = bool(cls.__tenant_primary_key__)
        return mapped_column(
            TENANT_COLUMN,
            type_,
            nullable=False,
            primary_key=in_pk,
            index=bool(cls.__tenant_index__) and not in_pk,
            server_default=cast(func.nullif(func.current_setting(setting, true()), ""), type_),
            sort_order=-1_000_000,  # first column: leads the primary key and uniques
        )

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)  # maps the class (DeclarativeBase) first
        table = cls.__dict__.get("__table__")
        if not isinstance(table, Table) or tenant_of(table) is not None:
            return  # abstract, single-table inheritance, or already secured
        roles = tuple(cls.__tenant_roles__)
        if not roles:
            raise RLSPolicyError(
                f"{cls.__name__}: TenantScoped needs __tenant_roles__ = ('your_app_role',): "
                "the isolation policy is granted to the roles the application connects as."
            )
        keys = [c for c in table.primary_key.columns if c.name != TENANT_COLUMN]
        if len(keys) == 1 and not cls.__tenant_primary_key__:
            # the target of composite tenant foreign keys: (tenant_id, id); its index leads
            # with tenant_id, so the column's own index would only duplicate it
            table.append_constraint(UniqueConstraint(
                TENANT_COLUMN, keys[0].name,
                name=short_name(table.name, TENANT_COLUMN, keys[0].name, suffix="_key"),
            ))
            for index in list(table.indexes):
                if not index.unique and [c.name for c in index.columns] == [TENANT_COLUMN]:
                    table.indexes.discard(index)
            table.c[TENANT_COLUMN].index = False
        secure_table(table, roles=roles, setting=cls.__tenant_setting__, index=False)


def tenant_unique(*columns: str, name: str | None = None) -> UniqueConstraint:
    """``UNIQUE (tenant_id, *columns)``: unique per tenant (and distributable by tenant).

    Examples:
        >>> [c for c in tenant_unique("slug")._pending_colargs]
        ['tenant_id', 'slug']
    """
    if not columns or not all(isinstance(c, str) and c for c in columns):
        raise RLSPolicyError("tenant_unique(): pass the column names unique within a tenant.")
    return UniqueConstraint(TENANT_COLUMN, *columns, name=name)


def tenant_foreign_key(
    columns: Sequence[str], referred: str, refcolumns: Sequence[str], **kw: Any
) -> ForeignKeyConstraint:
    """``FOREIGN KEY (tenant_id, *columns) REFERENCES referred (tenant_id, *refcolumns)``.

    Examples:
        >>> fk = tenant_foreign_key(["project_id"], "projects", ["id"])
        >>> fk.column_keys
        ['tenant_id', 'project_id']

    A row can then only point at a row of the same tenant. The referred table needs a
    primary key or unique constraint on ``(tenant_id, *refcolumns)``
    (``__tenant_primary_key__ = True`` or :func:`tenant_unique`). ``kw`` goes to
    ``ForeignKeyConstraint`` (``ondelete=``, ``name=`` ...).
    """
    if (
        not isinstance(columns, (list, tuple)) or not isinstance(refcolumns, (list, tuple))
        or not all(isinstance(c, str) and c for c in (*columns, *refcolumns))
        or not isinstance(referred, str) or not referred
    ):
        raise RLSPolicyError(
            "tenant_foreign_key(): columns and refcolumns are lists of column names and "
            f"referred a table name; got {columns!r}, {referred!r}, {refcolumns!r}."
        )
    if len(columns) != len(refcolumns) or not columns:
        raise RLSPolicyError(
            "tenant_foreign_key(): columns and refcolumns must be non-empty and of equal length."
        )
    return ForeignKeyConstraint(
        [TENANT_COLUMN, *columns],
        [f"{referred}.{TENANT_COLUMN}", *(f"{referred}.{c}" for c in refcolumns)],
        **kw,
    )
