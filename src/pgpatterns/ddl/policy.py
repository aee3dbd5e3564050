"""``CREATE POLICY``: a row-level security policy on a table.

Examples:
    >>> from sqlalchemy import Column, Integer, MetaData, Table
    >>> from pgpatterns.ddl import Policy
    >>> docs = Table("docs", MetaData(), Column("id", Integer), Column("owner", Integer))
    >>> print(Policy("own", docs, using=docs.c.owner == 7).sql())
    CREATE POLICY own ON docs AS PERMISSIVE FOR ALL TO public USING (docs.owner = 7)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from sqlalchemy import Connection, Table, select, text
from sqlalchemy.sql.compiler import DDLCompiler
from sqlalchemy.sql.elements import ClauseElement, ColumnElement

from pgpatterns.ddl.base import (
    Identity,
    SchemaObject,
    check_choice,
    error_line,
    expression_sql,
    pg_dialect,
    regname,
    twin_or_error,
)
from pgpatterns.ddl.rls import check_table
from pgpatterns.errors import DDLOptionError

__all__ = ["Policy", "policy_sql"]

COMMANDS = ("all", "select", "insert", "update", "delete")


@dataclass(eq=False)
class Policy(SchemaObject):
    """A row-level security policy on ``table``.

    Examples:
        >>> from sqlalchemy import Column, Integer, MetaData, Table
        >>> docs = Table("docs", MetaData(), Column("owner", Integer))
        >>> Policy("p", docs, command="select", with_check=docs.c.owner == 1)
        Traceback (most recent call last):
        ...
        pgpatterns.errors.DDLOptionError: Policy 'p': a SELECT policy takes no with_check: ...

    ``using`` filters the rows a command sees; ``with_check`` validates rows written.
    Expressions are compiled with literal values inlined. Depends on the table's
    :class:`RowLevelSecurity` when that is attached to the same MetaData.
    """

    kind: ClassVar[str] = "policy"

    table: Table
    command: str = field(default="all", kw_only=True)
    to: Sequence[str] = field(default=("public",), kw_only=True)
    using: ColumnElement[Any] | None = field(default=None, kw_only=True)
    with_check: ColumnElement[Any] | None = field(default=None, kw_only=True)
    permissive: bool = field(default=True, kw_only=True)

    def validate(self) -> None:
        owner = f"Policy {self.name!r}"
        check_table(owner, self.table)
        self.command = check_choice(owner, "command", self.command, COMMANDS)
        if self.command == "select" and self.with_check is not None:
            raise DDLOptionError(
                f"{owner}: a SELECT policy takes no with_check: it only filters rows that "
                "are read; move the condition to using=."
            )
        if self.command in ("insert",) and self.using is not None:
            raise DDLOptionError(
                f"{owner}: an INSERT policy takes no using: there are no existing rows to "
                "filter; move the condition to with_check=."
            )
        if self.command == "delete" and self.with_check is not None:
            raise DDLOptionError(
                f"{owner}: a DELETE policy takes no with_check: no new row is written; "
                "move the condition to using=."
            )
        for option in ("using", "with_check"):
            value = getattr(self, option)
            if value is not None and not isinstance(value, ClauseElement):
                raise DDLOptionError(
                    f"{owner}: {option}= must be a SQLAlchemy expression (e.g. "
                    f"table.c.owner == current_user_id(), or text() you wrote on purpose), got "
                    f"{type(value).__name__}."
                )
        if isinstance(self.to, str):
            self.to = (self.to,)
        if not isinstance(self.to, (list, tuple)) or not all(
            isinstance(r, str) and r for r in self.to
        ):
            raise DDLOptionError(f"{owner}: to= must be role names, got {self.to!r}.")
        self.to = tuple(self.to)
        if not self.to:
            raise DDLOptionError(f"{owner}: to= is empty; pass role names or ['public'].")
        self.schema = self.table.schema

    @property
    def identity(self) -> Identity:
        return Identity(self.kind, self.schema, self.name, self.table.name)

    def implicit_dependencies(self) -> list[SchemaObject | Table]:
        return [self.table]  # attach() adds the table's RowLevelSecurity when attached

    def describe(self) -> str:
        return f"policy {self.name} on {self.table.fullname}"

    def render_create(self, compiler: DDLCompiler) -> list[str]:
        prep = compiler.preparer
        roles = ", ".join(r if r.lower() == "public" else prep.quote(r) for r in self.to)
        parts = [
            f"CREATE POLICY {prep.quote(self.name)} ON {prep.format_table(self.table)}",
            f"AS {'PERMISSIVE' if self.permissive else 'RESTRICTIVE'}",
            f"FOR {self.command.upper()} TO {roles}",
        ]
        if self.using is not None:
            parts.append(f"USING ({self._expression(compiler, self.using)})")
        if self.with_check is not None:
            parts.append(f"WITH CHECK ({self._expression(compiler, self.with_check)})")
        return [" ".join(parts)]

    def _expression(self, compiler: DDLCompiler, expr: ColumnElement[Any]) -> str:
        """``expr`` compiled as if inside ``SELECT ... FROM table``: a subquery referencing
        the table's columns correlates to the row instead of adding the table to its FROM
        (which would read the table again, and recurse into this very policy)."""
        stack: Any = compiler.sql_compiler.stack
        stack.append(
            {
                "asfrom_froms": {self.table},
                "correlate_froms": {self.table},
                "selectable": select(self.table),
                "compile_state": None,
            }
        )
        try:
            return expression_sql(compiler, expr)
        finally:
            stack.pop()

    def render_drop(self, compiler: DDLCompiler) -> list[str]:
        prep = compiler.preparer
        return [f"DROP POLICY IF EXISTS {prep.quote(self.name)} ON {prep.format_table(self.table)}"]

    def _catalog(self, conn: Connection) -> dict[str, Any] | None:
        return self._first_row(
            conn,
            "SELECT p.polcmd AS command, p.polpermissive AS permissive,"
            " ARRAY(SELECT CASE WHEN r = 0 THEN 'public' ELSE r::regrole::text END"
            "       FROM unnest(p.polroles) r ORDER BY 1) AS roles,"
            " pg_get_expr(p.polqual, p.polrelid) AS using,"
            " pg_get_expr(p.polwithcheck, p.polrelid) AS with_check"
            " FROM pg_policy p WHERE p.polrelid = to_regclass(:t) AND p.polname = :n",
            {"t": regname(self.table.name, self.table.schema), "n": self.name},
        )

    def catalog_key(self, conn: Connection) -> tuple[str, int] | None:
        """``("pg_policy", oid)`` of the policy in the database, None if absent."""
        oid = conn.execute(
            text("SELECT oid FROM pg_policy WHERE polrelid = to_regclass(:t) AND polname = :n"),
            {"t": regname(self.table.name, self.table.schema), "n": self.name},
        ).scalar()
        return None if oid is None else ("pg_policy", int(oid))

    def current_sql(self, conn: Connection) -> list[str]:
        """The ``CREATE POLICY`` of what the database has now (for a downgrade)."""
        row = self._catalog(conn)
        return [] if row is None else [policy_sql(conn, self.name, self.table, row)]

    def reflect_diff(self, conn: Connection) -> list[str]:
        actual = self._catalog(conn)
        if actual is None:
            return self._missing()
        expected = twin_or_error(lambda: self._expected(conn, 1))
        if isinstance(expected, Exception):
            return [error_line(self.describe(), expected)]
        return self._compare(actual, expected)


_COMMANDS = {"*": "ALL", "r": "SELECT", "a": "INSERT", "w": "UPDATE", "d": "DELETE"}


def policy_sql(conn: Connection, name: str, table: Table, row: dict[str, Any]) -> str:
    """``CREATE POLICY`` text from a :meth:`Policy._catalog` row (catalog expressions)."""
    prep = pg_dialect().identifier_preparer
    roles = ", ".join(row["roles"])  # regrole text comes quoted
    sql = (
        f"CREATE POLICY {prep.quote(name)} ON {prep.format_table(table)}"
        f" AS {'PERMISSIVE' if row['permissive'] else 'RESTRICTIVE'}"
        f" FOR {_COMMANDS[row['command']]} TO {roles}"
    )
    if row["using"] is not None:
        sql += f" USING ({row['using']})"
    if row["with_check"] is not None:
        sql += f" WITH CHECK ({row['with_check']})"
    return sql
