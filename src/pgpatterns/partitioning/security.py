"""Every partition gets its parent's row-level security, FORCE and policies, by every path.

Examples:
    >>> from sqlalchemy import BigInteger, Column, MetaData, Table
    >>> from pgpatterns.ddl import Partition
    >>> from pgpatterns.rls import enable_rls, policy
    >>> ev = Table("ev", MetaData(), Column("tenant_id", BigInteger),
    ...            postgresql_partition_by="LIST (tenant_id)")
    >>> rls = enable_rls(ev)
    >>> own = policy("own", ev, to=["app"], using=ev.c.tenant_id == 1)
    >>> [o.sql() for o in parent_rls_for(Partition("ev_1", ev, list_=[1]))]  # doctest: +ELLIPSIS
    ['ALTER TABLE ev_1 ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY', 'CREATE POLICY ...']

PostgreSQL applies a partitioned table's policies to queries on the parent only: a
partition read by name (``SELECT * FROM events_p2026_01``) applies its own, and has none
unless they are created for it. One mechanism, :func:`pgpatterns.rls.for_partitions`, makes
the copies on every path: partitions declared with ``partition_by(..., partitions=...)``
(:func:`attach_parent_rls`, run by ``partition_by`` and again before ``create_all``),
:func:`~pgpatterns.partitioning.ensure_partitions` (each partition it creates), and
pg_partman (:func:`secure_partitions` after ``use_pg_partman`` and each
``run_pg_partman_maintenance``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, MetaData, event, text

from pgpatterns.ddl import Partition, Policy, RowLevelSecurity, SchemaObject, attach, attached
from pgpatterns.ddl.base import regname

__all__ = ["attach_parent_rls", "parent_rls_for", "secure_partitions"]

_LISTENING = "pgpatterns.partitioning.rls_listening"
_POLICIES = text(
    "SELECT c.relrowsecurity AS rls, c.relforcerowsecurity AS force_rls,"
    " coalesce((SELECT array_agg(p.polname::text) FROM pg_catalog.pg_policy p"
    " WHERE p.polrelid = c.oid), ARRAY[]::text[]) AS policies"
    " FROM pg_catalog.pg_class c WHERE c.oid = to_regclass(:n)"
)


def parent_rls_for(part: Partition, *, skip: frozenset[str] = frozenset()) -> list[SchemaObject]:
    """The copies of ``part``'s parent's declared RLS and policies that ``part`` lacks.

    Policies already declared for the partition (by an earlier call, or by the user through
    :func:`pgpatterns.rls.for_partitions`) and names in ``skip`` are left out, so calling it
    again adds only what the parent gained since.
    """
    from pgpatterns.rls import for_partitions, rls_objects

    declared = rls_objects(part.parent_table)
    rls = [o for o in declared if isinstance(o, RowLevelSecurity)]
    if not rls:
        return []
    have = {o.name for o in rls_objects(part.table) if isinstance(o, Policy)} | skip
    wanted = [o for o in declared if isinstance(o, Policy) and o.name not in have]
    return for_partitions([*rls, *wanted], [part])


def attach_parent_rls(metadata: MetaData) -> list[SchemaObject]:
    """Attach, for every ``ddl.Partition`` on ``metadata``, the parent's RLS copies it lacks.

    ``partition_by`` calls it when it attaches the declared partitions, and registers it to
    run again before ``metadata.create_all`` (so RLS or policies declared on the parent after
    ``partition_by`` reach the partitions too). Returns the objects it attached.
    """
    made: list[SchemaObject] = []
    for obj in attached(metadata):
        if isinstance(obj, Partition):
            made += parent_rls_for(obj)
    known = attached(metadata)
    new = [o for o in made if o not in known]
    if new:
        attach(metadata, *new)
    if not metadata.info.get(_LISTENING):
        event.listen(metadata, "before_create", _before_create)
        metadata.info[_LISTENING] = True
    return new


def _before_create(target: MetaData, connection: Connection, **kw: Any) -> None:
    attach_parent_rls(target)


def create_parent_rls(conn: Connection, part: Partition) -> list[str]:
    """Create on an existing partition the parent's declared RLS/policies it lacks in the
    database; return the names of the policies created."""
    row = conn.execute(_POLICIES, {"n": regname(part.name, part.schema)}).mappings().first()
    if row is None:
        return []
    present = frozenset(row["policies"])
    created = []
    for obj in parent_rls_for(part, skip=present):
        if isinstance(obj, RowLevelSecurity):
            if row["rls"] and (row["force_rls"] or not obj.force):
                continue
        elif isinstance(obj, Policy):
            created.append(obj.name)
        for ddl in obj.create_ddl():
            conn.execute(ddl)
    return created


def secure_partitions(conn: Connection, scheme: Any, parent: Any) -> list[str]:
    """Give every existing partition of ``parent`` the parent's RLS, FORCE and policies.

    For partitions made outside pgpatterns (pg_partman's maintenance): each is read from the
    catalog and gets what it lacks. Returns the partitions that were changed.
    """
    from pgpatterns.partitioning.catalog import read_partitions

    changed = []
    for found in read_partitions(conn, scheme, parent):
        # the bound is not rendered here: the object only carries the partition's name
        part = Partition(found.name, scheme.table, schema=found.schema, default=True)
        before = conn.execute(_POLICIES, {"n": regname(found.name, found.schema)}).first()
        create_parent_rls(conn, part)
        after = conn.execute(_POLICIES, {"n": regname(found.name, found.schema)}).first()
        if before != after:
            changed.append(found.name)
    return changed
