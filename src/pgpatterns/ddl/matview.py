"""``CREATE MATERIALIZED VIEW`` with its indexes.

Examples:
    >>> from sqlalchemy import column, select, table
    >>> from pgpatterns.ddl import MaterializedView
    >>> mv = MaterializedView("ids", select(table("t", column("id"))))
    >>> mv.sql(drop=True)
    'DROP MATERIALIZED VIEW IF EXISTS ids'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from sqlalchemy import Connection, Index, text
from sqlalchemy.schema import CreateIndex
from sqlalchemy.sql.compiler import DDLCompiler

from pgpatterns.ddl.base import regname
from pgpatterns.ddl.view import ViewBase
from pgpatterns.errors import DDLOptionError

__all__ = ["MaterializedView"]


@dataclass(eq=False)
class MaterializedView(ViewBase):
    """A materialized view, created together with its indexes.

    Examples:
        >>> from sqlalchemy import select, table, column
        >>> t = table("t", column("id"))
        >>> mv = MaterializedView("mv", select(t.c.id), indexes=[("mv_id", ["id"], True)])
        >>> print(mv.sql().splitlines()[-1])
        CREATE UNIQUE INDEX mv_id ON mv (id)

    ``indexes`` are ``Index`` objects over ``mv.table.c`` columns or ``(name, columns,
    unique)`` tuples. ``with_data=False`` creates it empty (``REFRESH`` fills it).
    """

    kind: ClassVar[str] = "materialized view"
    materialized: ClassVar[bool] = True

    with_data: bool = field(default=True, kw_only=True)
    indexes: Sequence[Index | tuple[str, Sequence[str], bool]] = field(default=(), kw_only=True)
    _indexes: list[Index] = field(init=False, repr=False, default_factory=list)

    def validate(self) -> None:
        super().validate()
        self._indexes = []
        for spec in self.indexes:
            if isinstance(spec, Index):
                index = spec
            else:
                name, columns, unique = spec
                missing = [c for c in columns if c not in self.table.c]
                if missing:
                    raise DDLOptionError(
                        f"MaterializedView {self.name!r}: index {name!r} names columns "
                        f"{missing} that the query does not produce; use one of "
                        f"{list(self.table.c.keys())}."
                    )
                index = Index(name, *(self.table.c[c] for c in columns), unique=unique)
            self._indexes.append(index)

    def statement_count(self, action: str) -> int:
        return 1 + len(self._indexes) if action == "create" else 1

    def render_create(self, compiler: DDLCompiler) -> list[str]:
        create = super().render_create(compiler)[0]
        if not self.with_data:
            create += " WITH NO DATA"
        return [create] + [str(compiler.process(CreateIndex(i))) for i in self._indexes]

    def _catalog(self, conn: Connection) -> dict[str, Any] | None:
        row = super()._catalog(conn)
        if row is not None:
            row["indexes"] = set(
                conn.execute(
                    text(
                        "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = "
                        "to_regclass(:n)"
                    ),
                    {"n": regname(self.name, self.schema)},
                ).scalars()
            )
        return row

    def reflect_diff(self, conn: Connection) -> list[str]:
        diffs = super().reflect_diff(conn)
        actual = self._catalog(conn)
        if actual is not None:
            prep = conn.dialect.identifier_preparer
            for index in self._indexes:
                name = str(index.name)
                if not {name, prep.quote(name)} & {i.rsplit(".", 1)[-1] for i in actual["indexes"]}:
                    diffs.append(f"{self.describe()}: index {name} is missing")
        return diffs
