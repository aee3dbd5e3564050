"""Migration operations for schema objects: ``op.create_schema_object`` / ``op.drop_schema_object``.

Examples:
    A generated migration reads::

        op.create_schema_object("policy", "policy own on docs", [
            "CREATE POLICY own ON docs AS PERMISSIVE FOR ALL TO public USING (owner = 7)",
        ])

Each operation carries the DDL text (what ``obj.sql()`` renders, or what the catalog
holds for a downgrade), so a migration never imports your models and keeps working after
they change. The kind and label are there for the reader (and for ``alembic check``'s
output); the statements are what runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from alembic.autogenerate import renderers
from alembic.operations import MigrateOperation, Operations
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import DDLCompiler
from sqlalchemy.sql.ddl import ExecutableDDLElement

from pgpatterns.ddl.base import raw_text

__all__ = ["CreateSchemaObjectOp", "DropSchemaObjectOp", "RawDDL", "register"]


class RawDDL(ExecutableDDLElement):
    """One DDL statement, sent as written (no bind parameters; ``%`` escaped once)."""

    def __init__(self, statement: str) -> None:
        self.statement = statement


@compiles(RawDDL)
def _compile_raw(element: RawDDL, compiler: DDLCompiler, **kw: Any) -> str:
    return raw_text(compiler, element.statement)


class SchemaObjectOp(MigrateOperation):
    """Statements for one schema object; ``reverse_sql`` is what the downgrade runs."""

    verb = "create"

    def __init__(
        self, kind: str, label: str, sql: Sequence[str], reverse_sql: Sequence[str] = ()
    ) -> None:
        self.kind = kind
        self.label = label
        self.sql = list(sql)
        self.reverse_sql = list(reverse_sql)

    def to_diff_tuple(self) -> tuple[Any, ...]:
        return (f"{self.verb}_schema_object", self.kind, self.label)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label}>"


class CreateSchemaObjectOp(SchemaObjectOp):
    """Create (or re-create) a schema object."""

    def reverse(self) -> DropSchemaObjectOp:
        return DropSchemaObjectOp(self.kind, self.label, self.reverse_sql, self.sql)

    @classmethod
    def create_schema_object(
        cls, operations: Operations, kind: str, label: str, sql: Sequence[str]
    ) -> None:
        """Run ``sql`` (the statements creating ``label``)."""
        operations.invoke(cls(kind, label, sql))


class DropSchemaObjectOp(SchemaObjectOp):
    """Drop a schema object (or detach it, for a partition)."""

    verb = "drop"

    def reverse(self) -> CreateSchemaObjectOp:
        return CreateSchemaObjectOp(self.kind, self.label, self.reverse_sql, self.sql)

    @classmethod
    def drop_schema_object(
        cls, operations: Operations, kind: str, label: str, sql: Sequence[str]
    ) -> None:
        """Run ``sql`` (the statements dropping ``label``)."""
        operations.invoke(cls(kind, label, sql))


def _run(operations: Operations, operation: SchemaObjectOp) -> None:
    for statement in operation.sql:
        operations.execute(RawDDL(statement))


def _literal(statement: str) -> str:
    """A Python literal for ``statement``: one line, or one literal per line, implicitly
    concatenated (Alembic indents the rendered code, which would change a triple-quoted
    string's content)."""
    lines = statement.splitlines(keepends=True)
    if len(lines) < 2:
        return repr(statement)
    inner = "".join(f"\n            {line!r}" for line in lines)
    return f"({inner}\n        )"


def _render(autogen_context: Any, operation: SchemaObjectOp) -> str:
    statements = "".join(f"\n        {_literal(s)}," for s in operation.sql)
    body = f"[{statements}\n    ]" if statements else "[]"
    return (
        f"op.{operation.verb}_schema_object(\n    {operation.kind!r},\n"
        f"    {operation.label!r},\n    {body},\n)"
    )


_REGISTERED: list[bool] = []


def register() -> None:
    """Register the operations with Alembic (idempotent; :func:`setup` calls it)."""
    if _REGISTERED:
        return
    Operations.register_operation("create_schema_object")(CreateSchemaObjectOp)
    Operations.register_operation("drop_schema_object")(DropSchemaObjectOp)
    for cls in (CreateSchemaObjectOp, DropSchemaObjectOp):
        Operations.implementation_for(cls)(_run)
        renderers.dispatch_for(cls)(_render)
    _REGISTERED.append(True)
