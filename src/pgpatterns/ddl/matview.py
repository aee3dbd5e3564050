"""``CREATE MATERIALIZED VIEW`` with its indexes.

Examples:
    >>> from sqlalchemy import column, select, table
    >>> from pgpatterns.ddl import MaterializedView
    >>> mv = MaterializedView("ids", select(table("t", column("id"))))
    >>> mv.sql(drop=True)
    'DROP MATERIALIZED VIEW IF EXISTS ids'
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from sqlalchemy import Connection, Index, text
from sqlalchemy.schema import CreateIndex
from sqlalchemy.sql.compiler import DDLCompiler

from pgpatterns.ddl.base import (
    error_line,
    index_definitions,
    rebind_index,
    regname,
    relation_grants,
    temp_name,
)
from pgpatterns.ddl.view import ViewBase
from pgpatterns.errors import DDLOptionError

__all__ = ["MaterializedView", "compare_indexes"]


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
            row["indexes"] = index_definitions(conn, self.name, self.schema)
        return row

    def _expected(self, conn: Connection, statements: int | None = None) -> dict[str, Any]:
        """The twin is created empty (the query is not run) and its indexes get throw-away
        names; ``indexes`` maps the declared names to PostgreSQL's definitions."""
        with conn.begin_nested() as sp:
            twin = dataclasses.replace(
                self, name=temp_name(), depends_on=(), with_data=False, indexes=()
            )
            conn.execute(twin.create_ddl()[0])
            names = {}
            for index in self._indexes:
                tmp = temp_name("pgp_ix")
                conn.execute(CreateIndex(rebind_index(index, twin.table, tmp)))
                names[tmp] = str(index.name)
            row = ViewBase._catalog(twin, conn)
            assert row is not None
            found = index_definitions(conn, twin.name, twin.schema)
            row["indexes"] = {names[k]: v for k, v in found.items()}
            sp.rollback()
        return row

    def current_sql(self, conn: Connection) -> list[str]:
        """The view, its indexes and its grants as the database has them now."""
        create = super().current_sql(conn)
        if not create:
            return []
        definitions = conn.execute(
            text(
                "SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = "
                "to_regclass(:n) ORDER BY indexrelid"
            ),
            {"n": regname(self.name, self.schema)},
        ).scalars()
        return [*create, *definitions, *relation_grants(conn, self.name, self.schema)]

    def reflect_diff(self, conn: Connection) -> list[str]:
        diffs = super().reflect_diff(conn)
        actual = self._catalog(conn)
        if actual is None or any("cannot be created as declared" in d for d in diffs):
            return diffs
        expected = self._expected(conn)
        diffs += compare_indexes(self.describe(), actual["indexes"], expected["indexes"])
        return diffs


def compare_indexes(
    owner: str,
    actual: dict[str, str],
    expected: dict[str, str | Exception],
    *,
    undeclared: bool = False,
) -> list[str]:
    """Lines for missing and changed indexes (by name); undeclared ones too if asked.

    A materialized view's hand-made indexes are kept on purpose (see
    :func:`pgpatterns.views.replace_materialized_view`), so they are not reported.
    """
    diffs = []
    for name, want in expected.items():
        have = actual.get(name)
        if isinstance(want, Exception):
            diffs.append(error_line(f"{owner}: index {name}", want))
        elif have is None:
            diffs.append(f"{owner}: index {name} is missing")
        elif have != want:
            diffs.append(f"{owner}: index {name} is {have!r} in the database, declared {want!r}")
    if undeclared:
        diffs += [
            f"{owner}: index {name} ({have}) is in the database but not declared"
            for name, have in actual.items()
            if name not in expected
        ]
    return diffs
