"""Creating and detaching partitions so that concurrent runs agree at every isolation level.

Maintenance of one table is serialized by a transaction advisory lock on the parent's oid.
At READ COMMITTED that is enough: after the lock, the catalog read sees what the previous
holder committed. At REPEATABLE READ and SERIALIZABLE the transaction's snapshot may predate
that commit, so catalog *queries* show the old partitions; name lookups, the relation cache
(``to_regclass``, ``pg_partition_ancestors``, ``pg_get_partition_constraintdef``) and DDL
itself see the latest committed catalog. Each step checks that latest state before acting:
a partition already created with the same name and bounds is taken as done, one already
detached or dropped is skipped, and what cannot be decided becomes a typed, retryable
:class:`~pgpatterns.errors.PartitionConcurrentUpdateError`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Connection, MetaData, Table, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import DropTable

from pgpatterns.ddl import Partition, SchemaObject
from pgpatterns.ddl.base import regname, temp_name
from pgpatterns.ddl.partition import DetachPartition
from pgpatterns.errors import (
    DefaultPartitionConflictError,
    PartitionConcurrentUpdateError,
    PartitionError,
)
from pgpatterns.partitioning.catalog import ExistingPartition, Parent
from pgpatterns.partitioning.declare import PartitionScheme

__all__ = ["autocommit", "create_partition", "detach_partition", "locked"]

_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))")
_LOCK_SESSION = text("SELECT pg_advisory_lock(hashtextextended(:k, 0))")
_UNLOCK_SESSION = text("SELECT pg_advisory_unlock(hashtextextended(:k, 0))")
# Latest committed catalog state of one relation, whatever the transaction's snapshot.
_LATEST = text(
    "SELECT r.oid IS NOT NULL AS found,"
    " coalesce((SELECT bool_or(a.relid::oid = :parent)"
    "   FROM pg_catalog.pg_partition_ancestors(r.oid) AS a WHERE a.relid::oid <> r.oid),"
    "   false) AS attached,"
    " CASE WHEN r.oid IS NOT NULL"
    "   THEN pg_catalog.pg_get_partition_constraintdef(r.oid) END AS constraintdef"
    " FROM (SELECT pg_catalog.to_regclass(:n)::oid AS oid) AS r"
)
_CONSTRAINT = text("SELECT pg_catalog.pg_get_partition_constraintdef(to_regclass(:n))")
# duplicate_table, invalid_object_definition (overlapping partition), undefined_table
_RACE_STATES = frozenset({"42P07", "42P17", "42P01"})


@dataclass(frozen=True)
class _Latest:
    found: bool
    attached: bool
    constraintdef: str | None


def autocommit(conn: Connection) -> bool:
    driver = conn.connection.driver_connection
    return bool(getattr(driver, "autocommit", False))


@contextlib.contextmanager
def locked(conn: Connection, parent: Parent) -> Iterator[None]:
    """Serialize maintenance of one table: concurrent runs wait for each other."""
    key = {"k": f"pgpatterns.partitioning:{parent.oid}"}
    if not autocommit(conn):
        conn.execute(_LOCK, key)  # released at commit/rollback
        yield
        return
    conn.execute(_LOCK_SESSION, key)
    try:
        yield
    finally:
        conn.execute(_UNLOCK_SESSION, key)


def _latest(conn: Connection, name: str, schema: str | None, parent: Parent) -> _Latest:
    row = conn.execute(_LATEST, {"n": regname(name, schema), "parent": parent.oid}).one()
    return _Latest(bool(row.found), bool(row.attached), row.constraintdef)


def _savepoint(conn: Connection) -> contextlib.AbstractContextManager[Any]:
    return contextlib.nullcontext() if autocommit(conn) else conn.begin_nested()


def _expected_constraint(conn: Connection, scheme: PartitionScheme, part: Partition) -> Any:
    """The partition constraint ``part`` would get, from a twin made in a savepoint."""
    twin_parent = Table(
        temp_name(), MetaData(), *(Column(c.name, c.type) for c in scheme.table.columns),
        schema=part.schema,
    )
    # the clause as the connection's dialect quotes it (the same text create_all uses)
    twin_parent.dialect_kwargs["postgresql_partition_by"] = scheme.clause_for(conn.dialect)
    with conn.begin_nested() as savepoint:
        twin_parent.create(conn)
        twin = Partition(temp_name(), twin_parent, schema=part.schema, range_=part.range_,
                         list_=part.list_, hash_=part.hash_, default=part.default)
        for ddl in twin.create_ddl():
            conn.execute(ddl)
        found = conn.execute(_CONSTRAINT, {"n": regname(twin.name, part.schema)}).scalar()
        savepoint.rollback()
    return found


def create_partition(
    conn: Connection, scheme: PartitionScheme, parent: Parent, part: Partition,
    extra: list[SchemaObject],
) -> bool:
    """Create ``part`` (and ``extra``: its RLS copies) unless a concurrent run already did.

    Returns whether it was created here. Raises :class:`PartitionError` when the name is
    taken by another table or by a partition with other bounds, and
    :class:`PartitionConcurrentUpdateError` when PostgreSQL refuses the partition because
    of a change this transaction's snapshot cannot see.
    """
    owner = scheme.table.name
    latest = _latest(conn, part.name, part.schema, parent)
    if latest.found:
        if not latest.attached:
            raise PartitionError(
                f"{owner}: a table named {part.name} exists but is not a partition of "
                f"{owner}; rename or drop it, or attach it, then run again."
            )
        if latest.constraintdef != _expected_constraint(conn, scheme, part):
            raise PartitionError(
                f"{owner}: partition {part.name} exists with other bounds "
                f"({latest.constraintdef}); rename it, or run with the interval it was "
                "made with."
            )
        return False  # a concurrent run committed it after this transaction's snapshot
    try:
        with _savepoint(conn):
            for obj in (part, *extra):
                for ddl in obj.create_ddl():
                    conn.execute(ddl)
    except DBAPIError as exc:
        state = getattr(exc.orig, "sqlstate", None)
        if state == "23514":
            raise DefaultPartitionConflictError(
                f"{owner}: the default partition holds rows for {part.name} (written after "
                "this transaction's snapshot); move them out first (see "
                "check_default_partition). Nothing was created for this partition."
            ) from exc
        if state in _RACE_STATES:
            raise PartitionConcurrentUpdateError(
                f"{owner}: creating {part.name} conflicted with a concurrent change to the "
                f"partitions ({exc.orig}); retry the transaction."
            ) from exc
        raise
    return True


def detach_partition(
    conn: Connection, scheme: PartitionScheme, parent: Parent, part: ExistingPartition, *,
    concurrently: bool, drop: bool,
) -> bool:
    """Detach (and drop) ``part`` unless a concurrent run already did; return whether it
    was removed here."""
    latest = _latest(conn, part.name, part.schema, parent)
    if not latest.found or not latest.attached:
        return False  # detached (or dropped) by a run that committed after our snapshot
    conn.execute(DetachPartition(
        (scheme.table.name, parent.schema), (part.name, part.schema), concurrently=concurrently
    ))
    if drop:
        conn.execute(DropTable(Table(part.name, MetaData(), schema=part.schema)))
    return True
