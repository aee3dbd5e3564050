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
tenant setting), an index whose leading column is ``tenant_id``, ``ENABLE`` + ``FORCE ROW
LEVEL SECURITY`` and a ``tenant_isolation`` policy for ``__tenant_roles__`` (``USING`` and
``WITH CHECK``), all attached to the model's MetaData: ``Base.metadata.create_all`` creates
them.

Scaling out: sharded PostgreSQL (Citus) distributes a table by a column and needs every
primary key, unique constraint and foreign key to include it. Set
``__tenant_primary_key__ = True`` (primary key ``(tenant_id, id)``) and declare uniques with
:func:`tenant_unique` and foreign keys with :func:`tenant_foreign_key`, and the schema is
already distributable by ``tenant_id``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from sqlalchemy import ForeignKeyConstraint, Table, UniqueConstraint, cast, func, true
from sqlalchemy.orm import Mapped, declared_attr, mapped_column
from sqlalchemy.types import BigInteger, TypeEngine

from pgpatterns.ddl import attach
from pgpatterns.errors import RLSPolicyError
from pgpatterns.rls.expressions import TENANT_SETTING, check_setting_name, tenant_isolation
from pgpatterns.rls.policies import enable_rls, policy

__all__ = ["TenantScoped", "tenant_foreign_key", "tenant_unique"]

TENANT_COLUMN = "tenant_id"


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
        if not isinstance(table, Table) or table.info.get("pgpatterns.rls.tenant"):
            return  # abstract, single-table inheritance, or already secured
        roles = tuple(cls.__tenant_roles__)
        if not roles:
            raise RLSPolicyError(
                f"{cls.__name__}: TenantScoped needs __tenant_roles__ = ('your_app_role',): "
                "the isolation policy is granted to the roles the application connects as."
            )
        rls = enable_rls(table, force=True)
        isolation = tenant_isolation(table.c[TENANT_COLUMN])
        tenant_policy = policy(
            "tenant_isolation", table, to=roles, using=isolation, with_check=isolation
        )
        table.info["pgpatterns.rls.tenant"] = True
        attach(table.metadata, rls, tenant_policy)


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
    if isinstance(columns, str) or isinstance(refcolumns, str):
        raise RLSPolicyError("tenant_foreign_key(): columns and refcolumns are lists of names.")
    if len(columns) != len(refcolumns) or not columns:
        raise RLSPolicyError(
            "tenant_foreign_key(): columns and refcolumns must be non-empty and of equal length."
        )
    return ForeignKeyConstraint(
        [TENANT_COLUMN, *columns],
        [f"{referred}.{TENANT_COLUMN}", *(f"{referred}.{c}" for c in refcolumns)],
        **kw,
    )
