"""``CREATE TABLE ... PARTITION OF``: partitions of a partitioned table.

Examples:
    >>> from sqlalchemy import Column, Date, MetaData, Table
    >>> from pgpatterns.ddl import Partition
    >>> events = Table("events", MetaData(), Column("day", Date),
    ...                postgresql_partition_by="RANGE (day)")
    >>> print(Partition("events_2026", events, range_=("2026-01-01", "2027-01-01")).sql())
    CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from sqlalchemy import Column, Connection, MetaData, Table, text
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import DDLCompiler
from sqlalchemy.sql.ddl import ExecutableDDLElement

from pgpatterns.ddl.base import (
    OWNER_KEY,
    Identity,
    SchemaObject,
    literal_sql,
    qualified,
    regname,
    temp_name,
)
from pgpatterns.errors import DDLOptionError

__all__ = ["MAXVALUE", "MINVALUE", "DetachPartition", "Partition"]


class _Bound:
    def __init__(self, word: str) -> None:
        self.word = word

    def __repr__(self) -> str:
        return self.word


MINVALUE = _Bound("MINVALUE")
"""Open lower end of a range partition: ``range_=(MINVALUE, "2020-01-01")``."""
MAXVALUE = _Bound("MAXVALUE")
"""Open upper end of a range partition."""


@dataclass(eq=False)
class Partition(SchemaObject):
    """One partition of ``parent_table``; give exactly one of ``range_``, ``list_``,
    ``hash_`` or ``default=True``.

    Examples:
        >>> from sqlalchemy import MetaData, Table
        >>> Partition("p", Table("events", MetaData()), range_=(1, 2), default=True)
        Traceback (most recent call last):
        ...
        pgpatterns.errors.DDLOptionError: Partition 'p': give exactly one of ...

    Values are rendered as SQL literals by the dialect. ``schema`` defaults to the
    parent's. ``partition.table`` is a table-like usable as a parent of sub-partitions.
    """

    kind: ClassVar[str] = "partition"

    parent_table: Table
    range_: tuple[Any, Any] | None = field(default=None, kw_only=True)
    list_: Sequence[Any] | None = field(default=None, kw_only=True)
    hash_: tuple[int, int] | None = field(default=None, kw_only=True)
    default: bool = field(default=False, kw_only=True)
    _table: Table = field(init=False, repr=False)

    def validate(self) -> None:
        owner = f"Partition {self.name!r}"
        if not isinstance(self.parent_table, Table):
            raise DDLOptionError(f"{owner}: parent_table must be a sqlalchemy Table.")
        given = [
            self.range_ is not None,
            self.list_ is not None,
            self.hash_ is not None,
            bool(self.default),
        ]
        if sum(given) != 1:
            raise DDLOptionError(
                f"{owner}: give exactly one of range_=(from, to), list_=[...], "
                "hash_=(modulus, remainder) or default=True; a partition has one bound."
            )
        if self.range_ is not None and len(self.range_) != 2:
            raise DDLOptionError(f"{owner}: range_ must be a (from, to) pair.")
        if self.list_ is not None and not list(self.list_):
            raise DDLOptionError(f"{owner}: list_ is empty; pass the values it holds.")
        if self.hash_ is not None:
            self._check_hash(owner)
        if self.schema is None:
            self.schema = self.parent_table.schema
        self._table = Table(
            self.name,
            MetaData(),
            *(Column(c.name, c.type) for c in self.parent_table.columns),
            schema=self.schema,
        )
        self._table.info[OWNER_KEY] = self

    def _check_hash(self, owner: str) -> None:
        pair = self.hash_
        if (
            not isinstance(pair, (tuple, list))
            or len(pair) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair)
        ):
            raise DDLOptionError(
                f"{owner}: hash_={pair!r} is not accepted: pass (modulus, remainder) as two "
                "ints, e.g. hash_=(4, 0)."
            )
        modulus, remainder = pair
        if not 1 <= modulus <= 2**31 - 1 or not 0 <= remainder < modulus:
            raise DDLOptionError(
                f"{owner}: hash_={tuple(pair)!r} is not accepted: the modulus must be an int "
                "from 1 to 2147483647 and the remainder from 0 to modulus - 1 (PostgreSQL "
                "refuses anything else); e.g. hash_=(4, 0) ... hash_=(4, 3)."
            )

    @property
    def identity(self) -> Identity:
        return Identity("relation", self.schema, self.name)  # shares pg_class with views

    @property
    def table(self) -> Table:
        """A table-like for the partition (query it directly, or sub-partition it)."""
        return self._table

    def implicit_dependencies(self) -> list[SchemaObject | Table]:
        return [self.parent_table]

    def bound_sql(self, compiler: DDLCompiler) -> str:
        """``FOR VALUES ...`` or ``DEFAULT``."""

        def lit(value: Any) -> str:
            return value.word if isinstance(value, _Bound) else literal_sql(compiler, value)

        if self.range_ is not None:
            low, high = self.range_
            return f"FOR VALUES FROM ({lit(low)}) TO ({lit(high)})"
        if self.list_ is not None:
            return f"FOR VALUES IN ({', '.join(lit(v) for v in self.list_)})"
        if self.hash_ is not None:
            modulus, remainder = (int(v) for v in self.hash_)
            return f"FOR VALUES WITH (MODULUS {modulus}, REMAINDER {remainder})"
        return "DEFAULT"

    def render_create(self, compiler: DDLCompiler) -> list[str]:
        return [
            f"CREATE TABLE {qualified(compiler, self.name, self.schema)} PARTITION OF "
            f"{compiler.preparer.format_table(self.parent_table)} {self.bound_sql(compiler)}"
        ]

    def render_drop(self, compiler: DDLCompiler) -> list[str]:
        return [f"DROP TABLE IF EXISTS {qualified(compiler, self.name, self.schema)}"]

    def _catalog(self, conn: Connection) -> dict[str, Any] | None:
        return self._first_row(
            conn,
            "SELECT i.inhparent AS parent, pg_get_expr(c.relpartbound, c.oid) AS bound"
            " FROM pg_class c LEFT JOIN pg_inherits i ON i.inhrelid = c.oid"
            " WHERE c.oid = to_regclass(:n)",
            {"n": regname(self.name, self.schema)},
        )

    def reflect_diff(self, conn: Connection) -> list[str]:
        actual = self._catalog(conn)
        if actual is None:
            return self._missing()
        parent = conn.execute(
            text("SELECT to_regclass(:p)::oid"),
            {"p": regname(self.parent_table.name, self.parent_table.schema)},
        ).scalar()
        if actual["parent"] != parent:
            return [f"{self.describe()} is not attached to {self.parent_table.fullname}"]
        # Let PostgreSQL normalise the declared bound: partition a throw-away copy of the
        # parent inside a savepoint, read the bound back, roll back.
        parent_twin = Table(
            temp_name(),
            MetaData(),
            *(Column(c.name, c.type) for c in self.parent_table.columns),
            schema=self.parent_table.schema,
            **{k: v for k, v in self.parent_table.kwargs.items() if k == "postgresql_partition_by"},
        )
        with conn.begin_nested() as sp:
            parent_twin.create(conn)
            twin = Partition(
                temp_name(),
                parent_twin,
                range_=self.range_,
                list_=self.list_,
                hash_=self.hash_,
                default=self.default,
            )
            conn.execute(twin.create_ddl()[0])
            expected = twin._catalog(conn)
            sp.rollback()
        assert expected is not None
        if actual["bound"] != expected["bound"]:
            return [f"{self.describe()}: bound is {actual['bound']}, declared {expected['bound']}"]
        return []


class DetachPartition(ExecutableDDLElement):
    """``ALTER TABLE parent DETACH PARTITION name [CONCURRENTLY]``, quoted by the dialect.

    Examples:
        >>> from pgpatterns.ddl.base import pg_dialect
        >>> print(DetachPartition(("ev%x", "s"), ("ev%x_p1", "s")).compile(dialect=pg_dialect()))
        ALTER TABLE s."ev%x" DETACH PARTITION s."ev%x_p1"

    ``parent`` and ``partition`` are ``(name, schema)`` pairs (schema may be ``None``).
    """

    def __init__(
        self, parent: tuple[str, str | None], partition: tuple[str, str | None], *,
        concurrently: bool = False,
    ) -> None:
        self.parent = parent
        self.partition = partition
        self.concurrently = concurrently


@compiles(DetachPartition, "postgresql")
def _compile_detach(element: DetachPartition, compiler: DDLCompiler, **kw: Any) -> str:
    how = " CONCURRENTLY" if element.concurrently else ""
    return (
        f"ALTER TABLE {qualified(compiler, *element.parent)} DETACH PARTITION "
        f"{qualified(compiler, *element.partition)}{how}"
    )
