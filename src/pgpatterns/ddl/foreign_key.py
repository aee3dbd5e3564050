"""A foreign key added after the tables: ``ALTER TABLE ... ADD CONSTRAINT ... FOREIGN KEY``.

Examples:
    >>> from sqlalchemy import BigInteger, Column, MetaData, Table
    >>> from pgpatterns.ddl import CompositeForeignKey
    >>> m = MetaData()
    >>> folders = Table("folders", m, Column("tenant_id", BigInteger), Column("id", BigInteger))
    >>> docs = Table("docs", m, Column("tenant_id", BigInteger), Column("folder_id", BigInteger))
    >>> fk = CompositeForeignKey("docs_folder_id_tenant_fkey", docs, ["tenant_id", "folder_id"],
    ...                          folders, ["tenant_id", "id"], ondelete="cascade")
    >>> print(fk.sql())  # doctest: +NORMALIZE_WHITESPACE
    ALTER TABLE docs ADD CONSTRAINT docs_folder_id_tenant_fkey FOREIGN KEY (tenant_id, folder_id)
    REFERENCES folders (tenant_id, id) ON DELETE CASCADE

Why not a ``sqlalchemy.ForeignKeyConstraint`` on the Table: the ORM infers a relationship's
join from the table's foreign keys, and a second, composite key to the same table makes
every such relationship ambiguous. Declared here, the database enforces the composite key
while the ORM keeps inferring joins from the plain one-column key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from sqlalchemy import Connection, Table
from sqlalchemy.sql.compiler import DDLCompiler

from pgpatterns.ddl.base import Identity, SchemaObject, check_choice, pg_dialect, regname
from pgpatterns.ddl.rls import check_table
from pgpatterns.errors import DDLOptionError

__all__ = ["CompositeForeignKey"]

_ACTIONS = ("cascade", "restrict", "no action", "set null", "set default")


@dataclass(eq=False)
class CompositeForeignKey(SchemaObject):
    """``FOREIGN KEY (columns) REFERENCES referred (refcolumns)`` on ``table``, by ALTER TABLE.

    Examples:
        >>> from sqlalchemy import Column, Integer, MetaData, Table
        >>> t = Table("t", MetaData(), Column("a", Integer))
        >>> CompositeForeignKey("t_fk", t, ["a", "b"], t, ["a"])
        Traceback (most recent call last):
        ...
        pgpatterns.errors.DDLOptionError: CompositeForeignKey 't_fk': columns ['a', 'b'] ...

    The referred columns need a primary key or unique constraint (for tenant keys,
    ``UNIQUE (tenant_id, id)``, which :class:`pgpatterns.rls.TenantScoped` declares).
    """

    kind: ClassVar[str] = "foreign key"

    table: Table
    columns: Sequence[str]
    referred: Table
    refcolumns: Sequence[str]
    ondelete: str | None = field(default=None, kw_only=True)
    deferrable: bool = field(default=False, kw_only=True)

    def validate(self) -> None:
        owner = f"CompositeForeignKey {self.name!r}"
        check_table(owner, self.table)
        check_table(owner, self.referred)
        self.columns, self.refcolumns = tuple(self.columns), tuple(self.refcolumns)
        if not self.columns or len(self.columns) != len(self.refcolumns):
            raise DDLOptionError(
                f"{owner}: columns {list(self.columns)} and refcolumns "
                f"{list(self.refcolumns)} must be non-empty and of equal length."
            )
        for table, names in ((self.table, self.columns), (self.referred, self.refcolumns)):
            missing = [n for n in names if n not in table.c]
            if missing:
                raise DDLOptionError(f"{owner}: {table.name} has no column(s) {missing}.")
        if self.ondelete is not None:
            self.ondelete = check_choice(owner, "ondelete", self.ondelete, _ACTIONS)
        self.schema = self.table.schema

    @property
    def identity(self) -> Identity:
        return Identity(self.kind, self.schema, self.name, self.table.name)

    def implicit_dependencies(self) -> list[SchemaObject | Table]:
        return [self.table, self.referred]

    def describe(self) -> str:
        return f"foreign key {self.name} on {self.table.fullname}"

    def render_create(self, compiler: DDLCompiler) -> list[str]:
        prep = compiler.preparer
        cols = ", ".join(prep.quote(c) for c in self.columns)
        refs = ", ".join(prep.quote(c) for c in self.refcolumns)
        sql = (
            f"ALTER TABLE {prep.format_table(self.table)} ADD CONSTRAINT {prep.quote(self.name)}"
            f" FOREIGN KEY ({cols}) REFERENCES {prep.format_table(self.referred)} ({refs})"
        )
        if self.ondelete is not None:
            sql += f" ON DELETE {self.ondelete.upper()}"
        if self.deferrable:
            sql += " DEFERRABLE INITIALLY DEFERRED"
        return [sql]

    def render_drop(self, compiler: DDLCompiler) -> list[str]:
        prep = compiler.preparer
        return [
            f"ALTER TABLE {prep.format_table(self.table)} DROP CONSTRAINT IF EXISTS "
            f"{prep.quote(self.name)}"
        ]

    def _catalog(self, conn: Connection) -> dict[str, Any] | None:
        return self._first_row(
            conn,
            "SELECT pg_get_constraintdef(c.oid) AS definition FROM pg_constraint c"
            " WHERE c.conrelid = to_regclass(:t) AND c.conname = :n AND c.contype = 'f'",
            {"t": regname(self.table.name, self.table.schema), "n": self.name},
        )

    def current_sql(self, conn: Connection) -> list[str]:
        """The ``ALTER TABLE ... ADD CONSTRAINT`` of what the database has now."""
        row = self._catalog(conn)
        if row is None:
            return []
        prep = pg_dialect().identifier_preparer
        return [
            f"ALTER TABLE {prep.format_table(self.table)} ADD CONSTRAINT "
            f"{prep.quote(self.name)} {row['definition']}"
        ]

    def reflect_diff(self, conn: Connection) -> list[str]:
        actual = self._catalog(conn)
        if actual is None:
            return self._missing()
        return self._compare(actual, self._expected(conn))
