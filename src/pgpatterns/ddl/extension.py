"""``CREATE EXTENSION IF NOT EXISTS``: an extension the schema needs.

Examples:
    >>> from pgpatterns.ddl import Extension
    >>> Extension("pg_trgm", schema="public").sql()
    'CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from sqlalchemy import Connection, text
from sqlalchemy.sql.compiler import DDLCompiler

from pgpatterns.ddl.base import SchemaObject

__all__ = ["Extension"]


@dataclass(eq=False)
class Extension(SchemaObject):
    """A PostgreSQL extension, created before the tables (their columns may use its types).

    Examples:
        >>> Extension("vector").sql(drop=True)
        'DROP EXTENSION IF EXISTS vector'

    ``schema`` is where the extension's objects go (``WITH SCHEMA``). Extensions are shared
    by the whole database, so ``drop_all`` leaves them in place unless
    ``keep_on_drop=False``.
    """

    kind: ClassVar[str] = "extension"
    phase: ClassVar[str] = "before"

    keep_on_drop: bool = field(default=True, kw_only=True)

    def render_create(self, compiler: DDLCompiler) -> list[str]:
        prep = compiler.preparer
        sql = f"CREATE EXTENSION IF NOT EXISTS {prep.quote(self.name)}"
        if self.schema:
            sql += f" WITH SCHEMA {prep.quote_schema(self.schema)}"
        return [sql]

    def render_drop(self, compiler: DDLCompiler) -> list[str]:
        return [f"DROP EXTENSION IF EXISTS {compiler.preparer.quote(self.name)}"]

    def exists(self, conn: Connection) -> bool:
        query = text("SELECT 1 FROM pg_extension WHERE extname = :n")
        return conn.execute(query, {"n": self.name}).first() is not None

    def reflect_diff(self, conn: Connection) -> list[str]:
        query = text(
            "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
            " WHERE e.extname = :n"
        )
        row = conn.execute(query, {"n": self.name}).first()
        if row is None:
            return [f"{self.describe()} is not installed"]
        if self.schema and row[0] != self.schema:
            return [f"{self.describe()} is installed in schema {row[0]!r}, not {self.schema!r}"]
        return []
