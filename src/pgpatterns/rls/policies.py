"""Enable row-level security and declare policies that always name their roles.

Examples:
    >>> from sqlalchemy import BigInteger, Column, MetaData, Table
    >>> from pgpatterns.rls import enable_rls, policy, tenant_isolation
    >>> docs = Table("docs", MetaData(), Column("tenant_id", BigInteger))
    >>> rls = enable_rls(docs)
    >>> p = policy("tenant", docs, to=["app_user"], using=tenant_isolation(docs.c.tenant_id))
    >>> print(rls.sql())
    ALTER TABLE docs ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY

Both are :mod:`pgpatterns.ddl` objects: ``attach(metadata, rls, p)`` creates them with the
tables (the policy after row-level security), ``obj.sql()`` renders them for a migration.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Column, Connection, MetaData, Table, bindparam, event, text
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import ColumnElement

from pgpatterns.ddl import Partition, Policy, RowLevelSecurity, SchemaObject, attached
from pgpatterns.ddl.base import OWNER_KEY
from pgpatterns.errors import RLSPolicyError

__all__ = [
    "check_roles",
    "enable_rls",
    "for_partitions",
    "policy",
    "rls_objects",
]

_RLS_KEY = "pgpatterns.rls"  # Table.info: the RowLevelSecurity enable_rls() made
_POLICIES_KEY = "pgpatterns.rls.policies"  # Table.info: policies policy() made
_LISTENING = "pgpatterns.rls.role_check"  # MetaData.info: role check registered
# Role specifications that are not role names (CREATE POLICY ... TO CURRENT_USER).
_PSEUDO_ROLES = frozenset({"public", "current_user", "current_role", "session_user"})


def enable_rls(table: Table, *, force: bool = True) -> RowLevelSecurity:
    """``ALTER TABLE ... ENABLE [, FORCE] ROW LEVEL SECURITY`` for ``table``.

    Examples:
        >>> from sqlalchemy import MetaData, Table
        >>> enable_rls(Table("t", MetaData()), force=False).sql()
        'ALTER TABLE t ENABLE ROW LEVEL SECURITY'

    ``force`` (default) applies the policies to the table's owner too; superusers and roles
    with ``BYPASSRLS`` always bypass them. Calling it twice returns the same object. It also
    makes ``metadata.create_all`` check, before creating anything, that every role named by
    a policy attached to the table's MetaData exists.
    """
    if not isinstance(table, Table):
        raise RLSPolicyError(f"enable_rls(): expected a sqlalchemy Table, got {table!r}.")
    existing = table.info.get(_RLS_KEY)
    if isinstance(existing, RowLevelSecurity):
        if existing.force != force:
            raise RLSPolicyError(
                f"enable_rls({table.name}): already enabled with force={existing.force}; "
                "a table has one row-level security setting, pass the same force=."
            )
        return existing
    rls = RowLevelSecurity(table, force=force)
    table.info[_RLS_KEY] = rls
    _listen_role_check(table.metadata)
    return rls


def policy(
    name: str,
    table: Table,
    *,
    to: Sequence[str] | str,
    command: str = "all",
    using: ColumnElement[Any] | None = None,
    with_check: ColumnElement[Any] | None = None,
    permissive: bool = True,
) -> Policy:
    """A :class:`pgpatterns.ddl.Policy` on a table whose RLS :func:`enable_rls` turned on.

    Examples:
        >>> from sqlalchemy import Column, Integer, MetaData, Table
        >>> t = Table("t", MetaData(), Column("owner", Integer))
        >>> policy("own", t, to=["app"], using=t.c.owner == 1)
        Traceback (most recent call last):
        ...
        pgpatterns.errors.RLSPolicyError: policy 'own' on t: row-level security is not ...

    ``to`` is required and may not be ``public``: a policy for every role also applies to
    roles you did not think of (Supabase's ``anon``). For ``command="all"`` and ``"update"``
    without ``with_check``, PostgreSQL checks written rows with ``using``: a row cannot be
    moved to another tenant.

    Raises:
        RLSPolicyError: RLS was not enabled through :func:`enable_rls`, no roles, ``public``.
        DDLOptionError: an invalid command or option combination (from ``ddl.Policy``).
    """
    what = f"policy {name!r} on {getattr(table, 'name', table)}"
    if not isinstance(table, Table):
        raise RLSPolicyError(f"{what}: expected a sqlalchemy Table, got {table!r}.")
    rls = table.info.get(_RLS_KEY)
    if not isinstance(rls, RowLevelSecurity):
        raise RLSPolicyError(
            f"{what}: row-level security is not enabled on the table, so PostgreSQL would "
            "ignore the policy and every role would see every row; call "
            f"enable_rls({table.name}) first and attach both."
        )
    roles = (to,) if isinstance(to, str) else tuple(to)
    if not roles or not all(isinstance(r, str) and r for r in roles):
        raise RLSPolicyError(
            f"{what}: to= must name the roles it applies to (e.g. to=['app_user']); got {to!r}."
        )
    if any(r.lower() == "public" for r in roles):
        raise RLSPolicyError(
            f"{what}: to='public' applies the policy to every role, including ones you did "
            "not plan for; name the application role(s), e.g. to=['app_user']."
        )
    made = Policy(
        name,
        table,
        command=command,
        to=roles,
        using=using,
        with_check=with_check,
        permissive=permissive,
        depends_on=(rls,),
    )
    table.info.setdefault(_POLICIES_KEY, []).append(made)
    return made


def rls_objects(table: Table) -> list[SchemaObject]:
    """The RowLevelSecurity and policies declared for ``table`` through this module.

    Examples:
        >>> from sqlalchemy import MetaData, Table
        >>> t = Table("t", MetaData())
        >>> [o.kind for o in rls_objects(t)]
        []

    Handy in a migration: ``for obj in rls_objects(t): op.execute(obj.sql())``.
    """
    rls = table.info.get(_RLS_KEY)
    return [*([rls] if rls is not None else []), *table.info.get(_POLICIES_KEY, [])]


def for_partitions(
    objects: Iterable[SchemaObject], partitions: Iterable[Partition]
) -> list[SchemaObject]:
    """Copies of the parent's row-level security and policies for each partition.

    Examples:
        >>> from sqlalchemy import Column, Integer, MetaData, Table
        >>> from pgpatterns.ddl import Partition
        >>> ev = Table("ev", MetaData(), Column("tenant_id", Integer),
        ...            postgresql_partition_by="LIST (tenant_id)")
        >>> p1 = Partition("ev_1", ev, list_=[1])
        >>> rls = enable_rls(ev)
        >>> [o.sql() for o in for_partitions([rls], [p1])]
        ['ALTER TABLE ev_1 ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY']

    Policies on a partitioned table protect queries on the parent only: a partition queried
    directly (``SELECT * FROM ev_1``) applies *its own* policies. Attach these copies next to
    the partitions; ``check_rls`` reports partitions that lack them.
    """
    result: list[SchemaObject] = []
    for part in partitions:
        if not isinstance(part, Partition):
            raise RLSPolicyError(f"for_partitions(): expected ddl.Partition, got {part!r}.")
        target = part.table
        rls: RowLevelSecurity | None = None
        for obj in objects:
            if isinstance(obj, RowLevelSecurity) and obj.table is part.parent_table:
                rls = enable_rls(target, force=obj.force)
                result.append(rls)
        for obj in objects:
            if isinstance(obj, Policy) and obj.table is part.parent_table:
                if rls is None:
                    raise RLSPolicyError(
                        f"for_partitions(): pass the parent's RowLevelSecurity with its "
                        f"policies; {part.name} would get policy {obj.name!r} but no RLS."
                    )
                copy = dataclasses.replace(
                    obj,
                    table=target,
                    using=_retarget(obj.using, target),
                    with_check=_retarget(obj.with_check, target),
                    depends_on=(rls,),
                )
                target.info.setdefault(_POLICIES_KEY, []).append(copy)
                result.append(copy)
    return result


def _retarget(expr: ColumnElement[Any] | None, target: Table) -> ColumnElement[Any] | None:
    """``expr`` with the parent's columns replaced by the partition's (same names)."""
    if expr is None:
        return None
    owner = target.info.get(OWNER_KEY)
    parent = owner.parent_table if isinstance(owner, Partition) else None

    def swap(element: Any) -> Any:
        if isinstance(element, Column) and element.table is parent and element.name in target.c:
            return target.c[element.name]
        return None

    result: Any = visitors.replacement_traverse(expr, {}, swap)  # type: ignore[call-overload]
    return result  # type: ignore[no-any-return]


def check_roles(conn: Connection, objects: Iterable[SchemaObject]) -> None:
    """Raise :class:`RLSPolicyError` if a role named by a policy in ``objects`` is missing.

    Examples:
        >>> check_roles(conn, attached(metadata))  # doctest: +SKIP

    Runs automatically before ``metadata.create_all`` once :func:`enable_rls` was called
    for one of its tables; call it yourself before ``ddl.create_all(conn, ...)``.
    """
    roles = sorted(
        {
            role
            for obj in objects
            if isinstance(obj, Policy)
            for role in obj.to
            if role.lower() not in _PSEUDO_ROLES
        }
    )
    if not roles:
        return
    stmt = text(
        "SELECT r FROM unnest(CAST(:roles AS text[])) AS r "
        "WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r)"
    ).bindparams(bindparam("roles", roles))
    missing = list(conn.execute(stmt).scalars())
    if missing:
        raise RLSPolicyError(
            f"role(s) {', '.join(map(repr, missing))} named by a policy do not exist: CREATE "
            "POLICY would fail. Create the role (CREATE ROLE ...) or fix the policy's to=."
        )


def _listen_role_check(metadata: MetaData) -> None:
    if metadata.info.get(_LISTENING):
        return
    event.listen(metadata, "before_create", _before_create)
    metadata.info[_LISTENING] = True


def _before_create(target: MetaData, connection: Connection, **kw: Any) -> None:
    check_roles(connection, attached(target))
