"""Citus mode for a tenant schema: every ``TenantScoped`` table distributed by its tenant
column and colocated, every shared table a reference table.

Examples:
    >>> from pgpatterns.citus import distribute
    >>> made = distribute(Base.metadata)  # doctest: +SKIP
    >>> Base.metadata.create_all(engine)  # doctest: +SKIP

What Citus needs and what :func:`distribute` changes in the ``MetaData`` (before any SQL):

* Every primary key and unique constraint of a distributed table includes the distribution
  column: ``__tenant_primary_key__ = True`` and :func:`pgpatterns.rls.tenant_unique`. A
  table without raises :class:`~pgpatterns.errors.CitusDistributionError`.
* Foreign keys between distributed tables include the distribution column on both sides.
  The one-column key ``folder_id -> folders.id`` that ``TenantScoped`` keeps for the ORM
  is not created in the database (the ORM still joins through it); the composite tenant
  key ``(tenant_id, folder_id) -> folders (tenant_id, id)`` it adds is, and enforces the
  same reference within the tenant. Keys from a distributed table to a reference table
  are fine; a reference table may not point at a distributed one.
* Every foreign key is added by ``ALTER TABLE`` after the tables are distributed (Citus
  cannot distribute a table that a plain table references, nor one that references a plain
  table), and row-level security and policies are created after the distribution too.
* Policies cannot contain subqueries on a distributed table (``unexpected non-SELECT
  command in SubLink``): the fast initPlan form ``(SELECT current_setting(...))`` is
  unwrapped to ``nullif(current_setting('app.tenant_id', true), '')::bigint``, which Citus
  accepts and which still matches no row (and raises nothing) when no tenant is set. A
  policy with a correlated subquery raises :class:`CitusDistributionError`.

Warning:
    The settings a policy reads must reach the workers: use
    :func:`pgpatterns.citus.tenant_context` (``SET LOCAL`` with
    ``citus.propagate_set_commands = 'local'``), not ``pgpatterns.rls.tenant_context``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from sqlalchemy import ForeignKeyConstraint, MetaData, Table, UniqueConstraint
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import ScalarSelect

from pgpatterns.citus.ddl import DistributedTable, ReferenceTable
from pgpatterns.ddl import (
    CompositeForeignKey,
    Partition,
    Policy,
    SchemaObject,
    attach,
    attached,
)
from pgpatterns.ddl.base import OWNER_KEY, short_name
from pgpatterns.errors import CitusDistributionError
from pgpatterns.rls import tenant_of

__all__ = ["citus_policy_expression", "distribute", "distribution_of"]

_KEY = "pgpatterns.citus.distribution"  # Table.info: the table's DistributedTable/ReferenceTable


def distribution_of(table: Table) -> DistributedTable | ReferenceTable | None:
    """The distribution :func:`distribute` declared for ``table`` (``None``: a local table).

    Examples:
        >>> from sqlalchemy import MetaData, Table
        >>> distribution_of(Table("t", MetaData())) is None
        True
    """
    found = table.info.get(_KEY)
    return found if isinstance(found, (DistributedTable, ReferenceTable)) else None


def _distribution_for(
    table: Table, dist: dict[Table, DistributedTable | ReferenceTable]
) -> DistributedTable | ReferenceTable | None:
    """The distribution of ``table``, or of the table it is a partition of."""
    seen = 0
    while seen < 16:  # sub-partitions nest a few levels at most
        if table in dist:
            return dist[table]
        owner = table.info.get(OWNER_KEY)
        if not isinstance(owner, Partition):
            return None
        table, seen = owner.parent_table, seen + 1
    return None


def _never(*args: Any, **kw: Any) -> bool:
    return False


def citus_policy_expression(expr: ColumnElement[Any], *, where: str) -> ColumnElement[Any]:
    """``expr`` with every uncorrelated ``(SELECT x)`` replaced by ``x``.

    Examples:
        >>> from sqlalchemy import BigInteger, Column, MetaData, Table
        >>> from pgpatterns.rls import tenant_isolation
        >>> t = Table("t", MetaData(), Column("tenant_id", BigInteger))
        >>> e = citus_policy_expression(tenant_isolation(t.c.tenant_id), where="p")
        >>> print(e.compile(compile_kwargs={"literal_binds": True}))
        t.tenant_id = CAST(nullif(current_setting('app.tenant_id', true), '') AS BIGINT)

    Raises:
        CitusDistributionError: a subquery reads a table (Citus refuses subqueries in
            policies of distributed tables).
    """

    def unwrap(element: Any, **kw: Any) -> Any:
        if isinstance(element, ScalarSelect):
            inner: Any = element.element
            froms = inner.get_final_froms()
            columns = list(inner.selected_columns)
            if froms or len(columns) != 1 or inner._where_criteria:
                raise CitusDistributionError(
                    f"{where}: the policy has a subquery over a table; Citus refuses "
                    "subqueries in policies of distributed tables (unexpected non-SELECT "
                    "command in SubLink). Compare the column with a setting "
                    "(current_tenant()) or a function call instead."
                )
            value = columns[0]
            return getattr(value, "element", value)  # drop the label
        return None

    result: ColumnElement[Any] = visitors.replacement_traverse(cast(Any, expr), {}, unwrap)
    return result


def _check_keys(table: Table, column: str) -> None:
    keys: list[tuple[str, list[str]]] = []
    if table.primary_key.columns:
        keys.append(("primary key", [c.name for c in table.primary_key.columns]))
    for con in table.constraints:
        if isinstance(con, UniqueConstraint):
            label = f"unique constraint {con.name or ''}".strip()
            keys.append((label, [c.name for c in con.columns]))
    for index in table.indexes:
        if index.unique:
            keys.append((f"unique index {index.name}", [c.name for c in index.columns]))
    for what, cols in keys:
        if column not in cols:
            fix = (
                "set __tenant_primary_key__ = True on the model (primary key "
                f"({column}, ...))" if what == "primary key"
                else "declare it with tenant_unique(...)"
            )
            raise CitusDistributionError(
                f"{table.name}: {what} ({', '.join(cols)}) does not include the distribution "
                f"column {column!r}; Citus can only enforce keys that include it (each shard "
                f"checks its own rows). {fix[0].upper()}{fix[1:]}."
            )


def _fk_name(fk: ForeignKeyConstraint) -> str:
    name = fk.name if isinstance(fk.name, str) else None
    cols = [c.name for c in fk.columns]
    return name or short_name(fk.table.name, *cols, suffix="_fkey")


def distribute(
    metadata: MetaData,
    *,
    local: Iterable[Table] = (),
    shard_count: int | None = None,
) -> list[SchemaObject]:
    """Declare the Citus distribution of every table in ``metadata``; return what it attached.

    Examples:
        >>> objs = distribute(Base.metadata)  # doctest: +SKIP
        >>> [o.describe() for o in objs][:2]  # doctest: +SKIP
        ['reference table plans', 'distributed table projects']

    Tenant-scoped tables (:func:`pgpatterns.rls.tenant_of`) become distributed tables by
    their tenant column, all colocated with the first one (in dependency order); every other
    table becomes a reference table, except those in ``local`` (kept on the coordinator: no
    foreign key may link them to distributed or reference tables). ``shard_count`` applies
    to the colocation group (``None``: ``citus.shard_count``, 32 by default). Calling it
    again returns ``[]``.

    Raises:
        CitusDistributionError: a key or policy Citus cannot hold (see the module docs).
    """
    local_tables = set(local)
    tables = list(metadata.sorted_tables)
    if any(distribution_of(t) is not None for t in tables):
        return []
    scope = [t for t in tables if t not in local_tables]
    dist: dict[Table, DistributedTable | ReferenceTable] = {}
    anchor: Table | None = None
    for table in scope:  # reference tables first: distributed tables may point at them
        if tenant_of(table) is None:
            dist[table] = ReferenceTable(table)
    for table in scope:
        info = tenant_of(table)
        if info is None:
            continue
        _check_keys(table, info.column.name)
        if anchor is None:
            dist[table] = DistributedTable(table, info.column.name, shard_count=shard_count)
            anchor = table
        else:
            dist[table] = DistributedTable(table, info.column.name, colocate_with=anchor)
    objects = attached(metadata)
    composites = {
        (o.table.name, tuple(o.columns)): o for o in objects if isinstance(o, CompositeForeignKey)
    }
    new_fks = _foreign_keys(scope, local_tables, dist, composites)
    # everything attached to a distributed/reference table comes after its distribution
    # everything on a distributed/reference table (or on a partition of one) comes after
    # its distribution; partitions themselves come after it too (Citus distributes them)
    for obj in [*objects, *new_fks]:
        tables_of = [getattr(obj, "table", None), getattr(obj, "referred", None)]
        if isinstance(obj, Partition):
            tables_of.append(obj.parent_table)
        found = [_distribution_for(t, dist) for t in tables_of if isinstance(t, Table)]
        deps = [d for d in found if d is not None]
        if isinstance(obj, Policy) and _distribution_for(obj.table, dist) is not None:
            where = f"policy {obj.name} on {obj.table.name}"
            if obj.using is not None:
                obj.using = citus_policy_expression(obj.using, where=where)
            if obj.with_check is not None:
                obj.with_check = citus_policy_expression(obj.with_check, where=where)
        if deps:
            obj.depends_on = (*obj.depends_on, *[d for d in deps if d not in obj.depends_on])
    made: list[SchemaObject] = [*dist.values(), *new_fks]
    for table, obj in dist.items():
        table.info[_KEY] = obj
    attach(metadata, *made)
    return made


def _foreign_keys(
    scope: list[Table],
    local_tables: set[Table],
    dist: dict[Table, DistributedTable | ReferenceTable],
    composites: dict[tuple[str, tuple[str, ...]], CompositeForeignKey],
) -> list[SchemaObject]:
    """Check every foreign key; keep it out of CREATE TABLE and re-add it by ALTER TABLE."""
    made: list[SchemaObject] = []
    for table in [*scope, *local_tables]:
        for fk in list(table.foreign_key_constraints):
            referred = fk.referred_table
            what = f"{table.name} -> {referred.name}"
            if (table in local_tables) != (referred in local_tables):
                raise CitusDistributionError(
                    f"foreign key {what}: a local table and a distributed or reference table "
                    "cannot reference each other in Citus; make both local, or drop the key."
                )
            if table in local_tables:
                continue
            child, parent = tenant_of(table), tenant_of(referred)
            cols = [c.name for c in fk.columns]
            refs = [e.column.name for e in fk.elements]
            if child is None and parent is not None:
                raise CitusDistributionError(
                    f"foreign key {what}: reference table {table.name} cannot point at "
                    f"distributed table {referred.name}; make {table.name} tenant-scoped, or "
                    "drop the key."
                )
            fk.ddl_if(callable_=_never)
            if child is not None and parent is not None:
                pair = (child.column.name, parent.column.name)
                if len(cols) == 1 and (table.name, (pair[0], cols[0])) in composites:
                    continue  # the composite tenant key enforces it within the tenant
                if not any((c, r) == pair for c, r in zip(cols, refs, strict=True)):
                    raise CitusDistributionError(
                        f"foreign key {what} ({', '.join(cols)}) does not pair the tenant "
                        f"columns ({pair[0]} -> {pair[1]}); Citus needs foreign keys between "
                        "distributed tables to include the distribution column. Declare it "
                        "with tenant_foreign_key(...)."
                    )
            made.append(CompositeForeignKey(
                _fk_name(fk), table, cols, referred, refs,
                ondelete=fk.ondelete, depends_on=[dist[table], dist[referred]],
            ))
    return made
