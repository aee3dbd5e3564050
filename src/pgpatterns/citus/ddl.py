"""Citus table distribution as ``pgpatterns.ddl`` kinds: ``create_distributed_table`` and
``create_reference_table``.

Examples:
    >>> from sqlalchemy import BigInteger, Column, MetaData, Table
    >>> from pgpatterns.citus import DistributedTable, ReferenceTable
    >>> m = MetaData()
    >>> docs = Table("docs", m, Column("tenant_id", BigInteger), Column("id", BigInteger))
    >>> notes = Table("notes", m, Column("tenant_id", BigInteger), Column("id", BigInteger))
    >>> print(DistributedTable(docs, "tenant_id").sql())
    SET LOCAL citus.multi_shard_modify_mode TO 'sequential';
    SELECT create_distributed_table('"docs"', 'tenant_id', colocate_with => 'default')
    >>> print(DistributedTable(notes, "tenant_id", colocate_with=docs).sql().split(";\\n")[1])
    SELECT create_distributed_table('"notes"', 'tenant_id', colocate_with => '"docs"')
    >>> print(ReferenceTable(Table("countries", m)).sql().split(";\\n")[1])
    SELECT create_reference_table('"countries"')

Attached to a ``MetaData`` (:func:`pgpatterns.ddl.attach`, or :func:`pgpatterns.citus.distribute`
for a whole tenant schema), ``metadata.create_all`` distributes the tables right after
creating them, before the objects that depend on the distribution (policies, foreign keys
added by ``ALTER TABLE``).

Warning:
    Needs the Citus extension (tested with Citus 13.2 on PostgreSQL 15). Dropping the
    declaration (``metadata.drop_all``) leaves the distribution alone: dropping the table
    drops its shards. ``sql(drop=True)`` renders ``undistribute_table`` for migrations,
    which copies every row back to the coordinator.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from sqlalchemy import Connection, String, Table, literal
from sqlalchemy.sql.compiler import DDLCompiler

from pgpatterns.ddl.base import Identity, SchemaObject, expression_sql, regname
from pgpatterns.ddl.rls import check_table
from pgpatterns.errors import DDLOptionError

__all__ = ["DistributedTable", "ReferenceTable", "table_distribution"]

def _text(compiler: DDLCompiler, value: str) -> str:
    """A text literal rendered by the dialect (DDL takes no bind parameters)."""
    return expression_sql(compiler, literal(value, String()))


# A transaction that creates distributed tables and foreign keys to reference tables must
# use one connection per node, or Citus refuses the ALTER TABLE ("cannot modify table ...
# because there was a parallel operation on a distributed table in the transaction").
_SEQUENTIAL = "SET LOCAL citus.multi_shard_modify_mode TO 'sequential'"

_CATALOG = (
    "SELECT p.partmethod AS method, "
    "CASE WHEN p.partmethod = 'h' THEN column_to_column_name(p.logicalrelid, p.partkey) END "
    "AS column_name, p.colocationid AS colocation FROM pg_dist_partition p "
    "WHERE p.logicalrelid = to_regclass(:t)"
)


def table_distribution(conn: Connection, table: Table) -> dict[str, Any] | None:
    """How Citus holds ``table``: ``{"method", "column_name", "colocation"}`` or ``None``.

    Examples:
        >>> table_distribution(conn, docs)  # doctest: +SKIP
        {'method': 'h', 'column_name': 'tenant_id', 'colocation': 2}

    ``method`` is ``'h'`` (hash-distributed) or ``'n'`` (reference or Citus-local table).
    """
    from sqlalchemy import text

    row = conn.execute(text(_CATALOG), {"t": regname(table.name, table.schema)}).mappings()
    first = row.first()
    return None if first is None else dict(first)


class _TableKind(SchemaObject):
    table: Table

    @property
    def identity(self) -> Identity:
        return Identity("citus table", self.schema, self.name)

    def implicit_dependencies(self) -> list[SchemaObject | Table]:
        return [self.table]

    def _target(self, compiler: DDLCompiler, table: Table | None = None) -> str:
        table = self.table if table is None else table
        return _text(compiler, regname(table.name, table.schema))

    def render_drop(self, compiler: DDLCompiler) -> list[str]:
        return [f"SELECT undistribute_table({self._target(compiler)})"]

    def statement_count(self, action: str) -> int:
        return 2 if action == "create" else 1

    def _catalog(self, conn: Connection) -> dict[str, Any] | None:
        return table_distribution(conn, self.table)


@dataclass(eq=False, init=False)
class DistributedTable(_TableKind):
    """``create_distributed_table(table, column, colocate_with => ...)``.

    Examples:
        >>> from sqlalchemy import Column, Integer, MetaData, Table
        >>> DistributedTable(Table("t", MetaData(), Column("a", Integer)), "tenant_id")
        Traceback (most recent call last):
        ...
        pgpatterns.errors.DDLOptionError: DistributedTable(t): no column 'tenant_id' ...

    ``colocate_with``: a table (whose :class:`DistributedTable` must be attached too: it
    is created first), ``"default"`` (Citus colocates tables of the same column type and
    shard count) or ``"none"``. Colocated tables keep one tenant's rows of every table on
    the same shard group, so joins, foreign keys and triggers between them run on one node.
    """

    kind: ClassVar[str] = "distributed table"

    column: str
    colocate_with: Table | str
    shard_count: int | None

    def __init__(
        self,
        table: Table,
        column: str,
        *,
        colocate_with: Table | str = "default",
        shard_count: int | None = None,
        depends_on: Sequence[SchemaObject | Table] = (),
    ) -> None:
        self.table = check_table("DistributedTable", table)
        self.column, self.colocate_with, self.shard_count = column, colocate_with, shard_count
        self.name, self.schema = table.name, table.schema
        self.depends_on, self.keep_on_drop = depends_on, True
        self.__post_init__()

    def validate(self) -> None:
        owner = f"DistributedTable({self.table.name})"
        if not isinstance(self.column, str) or self.column not in self.table.c:
            raise DDLOptionError(
                f"{owner}: no column {self.column!r} to distribute by; pass the name of a "
                f"column of {self.table.name} (for tenant tables, 'tenant_id')."
            )
        anchor = self.colocate_with
        if isinstance(anchor, str) and anchor not in ("default", "none"):
            raise DDLOptionError(
                f"{owner}: colocate_with={anchor!r} is not supported; pass the Table to "
                "colocate with, 'default' or 'none'."
            )
        if not isinstance(anchor, (str, Table)):
            raise DDLOptionError(f"{owner}: colocate_with must be a Table or str, got {anchor!r}.")
        count = self.shard_count
        if count is not None and (isinstance(count, bool) or not isinstance(count, int)
                                  or not 1 <= count <= 64000):
            raise DDLOptionError(
                f"{owner}: shard_count={count!r}; Citus accepts an int from 1 to 64000 "
                "(leave it None for citus.shard_count, 32 by default)."
            )
        if count is not None and isinstance(anchor, Table):
            raise DDLOptionError(
                f"{owner}: shard_count and colocate_with=<table> exclude each other: a "
                "colocated table has its anchor's shard count."
            )

    def implicit_dependencies(self) -> list[SchemaObject | Table]:
        deps: list[SchemaObject | Table] = [self.table]
        if isinstance(self.colocate_with, Table):
            deps.append(self.colocate_with)
        return deps

    def describe(self) -> str:
        return f"distributed table {self.table.fullname}"

    def render_create(self, compiler: DDLCompiler) -> list[str]:
        anchor = self.colocate_with
        colocate = (
            self._target(compiler, anchor) if isinstance(anchor, Table)
            else _text(compiler, anchor)
        )
        args = [self._target(compiler), _text(compiler, self.column),
                f"colocate_with => {colocate}"]
        if self.shard_count is not None:
            args.append(f"shard_count => {int(self.shard_count)}")
        return [_SEQUENTIAL, f"SELECT create_distributed_table({', '.join(args)})"]

    def reflect_diff(self, conn: Connection) -> list[str]:
        row = self._catalog(conn)
        if row is None:
            return [f"{self.describe()}: the table is not distributed"]
        if row["method"] != "h" or row["column_name"] != self.column:
            return [
                f"{self.describe()}: distributed by {row['column_name']!r} (method "
                f"{row['method']!r}) in the database, declared hash by {self.column!r}"
            ]
        if isinstance(self.colocate_with, Table):
            other = table_distribution(conn, self.colocate_with)
            if other is None or other["colocation"] != row["colocation"]:
                return [
                    f"{self.describe()}: not colocated with {self.colocate_with.fullname}"
                ]
        return []


@dataclass(eq=False, init=False)
class ReferenceTable(_TableKind):
    """``create_reference_table(table)``: a full copy on every node, for shared data.

    Examples:
        >>> from sqlalchemy import MetaData, Table
        >>> ReferenceTable(Table("plans", MetaData())).describe()
        'reference table plans'

    Distributed tables may hold foreign keys to a reference table and join it on any shard;
    a reference table may not reference a distributed one. Every write goes to every node
    (two-phase commit), so keep them small and rarely written.
    """

    kind: ClassVar[str] = "reference table"

    def __init__(
        self, table: Table, *, depends_on: Sequence[SchemaObject | Table] = ()
    ) -> None:
        self.table = check_table("ReferenceTable", table)
        self.name, self.schema = table.name, table.schema
        self.depends_on, self.keep_on_drop = depends_on, True
        self.__post_init__()

    def describe(self) -> str:
        return f"reference table {self.table.fullname}"

    def render_create(self, compiler: DDLCompiler) -> list[str]:
        return [_SEQUENTIAL, f"SELECT create_reference_table({self._target(compiler)})"]

    def reflect_diff(self, conn: Connection) -> list[str]:
        row = self._catalog(conn)
        if row is None or row["method"] != "n":
            return [f"{self.describe()}: the table is not a reference table"]
        return []


