"""Row-level security: ``ALTER TABLE ... ENABLE ROW LEVEL SECURITY`` (see also ``Policy``).

Examples:
    >>> from sqlalchemy import Column, Integer, MetaData, Table, func
    >>> from pgpatterns.ddl import RowLevelSecurity
    >>> docs = Table("docs", MetaData(), Column("id", Integer), Column("owner", Integer))
    >>> print(RowLevelSecurity(docs).sql())
    ALTER TABLE docs ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from sqlalchemy import Connection, Table, text
from sqlalchemy.sql.compiler import DDLCompiler

from pgpatterns.ddl.base import (
    SchemaObject,
    pg_dialect,
    regname,
)
from pgpatterns.errors import DDLOptionError

__all__ = ["RowLevelSecurity", "check_table"]


def check_table(owner: str, table: object) -> Table:
    """``table`` if it is a sqlalchemy ``Table``, else :class:`DDLOptionError`."""
    if not isinstance(table, Table):
        raise DDLOptionError(f"{owner}: table must be a sqlalchemy Table, got {table!r}.")
    return table


@dataclass(eq=False, init=False)
class RowLevelSecurity(SchemaObject):
    """Turn row-level security on for ``table``; ``force`` makes it apply to the owner too.

    Examples:
        >>> from sqlalchemy import MetaData, Table
        >>> RowLevelSecurity(Table("docs", MetaData()), force=False).sql(drop=True)
        'ALTER TABLE docs DISABLE ROW LEVEL SECURITY, NO FORCE ROW LEVEL SECURITY'
    """

    kind: ClassVar[str] = "row level security"

    table: Table
    force: bool

    def __init__(
        self,
        table: Table,
        *,
        force: bool = True,
        depends_on: Sequence[SchemaObject | Table] = (),
    ) -> None:
        self.table = check_table("RowLevelSecurity", table)
        self.force = force
        self.schema = table.schema
        self.depends_on = depends_on
        self.keep_on_drop = False
        self.name = table.name
        self.__post_init__()

    def implicit_dependencies(self) -> list[SchemaObject | Table]:
        return [self.table]

    def describe(self) -> str:
        return f"row level security on {self.table.fullname}"

    def _alter(self, compiler: DDLCompiler, on: bool) -> list[str]:
        table = compiler.preparer.format_table(self.table)
        actions = ["ENABLE" if on else "DISABLE"]
        if self.force or not on:
            actions.append("FORCE" if on else "NO FORCE")
        rls = ", ".join(f"{a} ROW LEVEL SECURITY" for a in actions)
        return [f"ALTER TABLE {table} {rls}"]

    def render_create(self, compiler: DDLCompiler) -> list[str]:
        return self._alter(compiler, True)

    def render_drop(self, compiler: DDLCompiler) -> list[str]:
        return self._alter(compiler, False)

    def _catalog(self, conn: Connection) -> Any:
        return conn.execute(
            text(
                "SELECT relrowsecurity, relforcerowsecurity FROM pg_class "
                "WHERE oid = to_regclass(:t)"
            ),
            {"t": regname(self.table.name, self.table.schema)},
        ).first()

    def exists(self, conn: Connection) -> bool:
        row = self._catalog(conn)
        return row is not None and bool(row[0])

    def set_sql(self) -> list[str]:
        """The ``ALTER TABLE`` setting both flags as declared (a migration's upgrade)."""
        table = pg_dialect().identifier_preparer.format_table(self.table)
        force = "FORCE" if self.force else "NO FORCE"
        return [f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY, {force} ROW LEVEL SECURITY"]

    def current_sql(self, conn: Connection) -> list[str]:
        """The ``ALTER TABLE`` that puts back the table's current RLS flags."""
        row = self._catalog(conn)
        if row is None:
            return []
        table = pg_dialect().identifier_preparer.format_table(self.table)
        on = "ENABLE" if row[0] else "DISABLE"
        force = "FORCE" if row[1] else "NO FORCE"
        return [f"ALTER TABLE {table} {on} ROW LEVEL SECURITY, {force} ROW LEVEL SECURITY"]

    def reflect_diff(self, conn: Connection) -> list[str]:
        row = self._catalog(conn)
        if row is None:
            return [f"{self.describe()}: table does not exist"]
        diffs = []
        if not row[0]:
            diffs.append(f"{self.describe()} is disabled")
        if bool(row[1]) != self.force:
            diffs.append(f"{self.describe()}: FORCE is {row[1]}, declared {self.force}")
        return diffs
