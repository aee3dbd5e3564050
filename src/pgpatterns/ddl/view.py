"""``CREATE VIEW`` over a SQLAlchemy selectable.

Examples:
    >>> from sqlalchemy import Column, Integer, MetaData, Table, select
    >>> from pgpatterns.ddl import View
    >>> t = Table("t", MetaData(), Column("id", Integer), Column("n", Integer))
    >>> v = View("big", select(t.c.id).where(t.c.n > 10))
    >>> v.sql().startswith("CREATE VIEW big WITH (security_invoker = true) AS SELECT t.id")
    True
    >>> str(select(v.table.c.id)).split()  # the view is queried like a table
    ['SELECT', 'big.id', 'FROM', 'big']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from sqlalchemy import Connection, Table, text
from sqlalchemy.schema import CreateView
from sqlalchemy.sql.compiler import DDLCompiler
from sqlalchemy.sql.selectable import SelectBase
from sqlalchemy.sql.util import find_tables

from pgpatterns.ddl.base import (
    OWNER_KEY,
    Identity,
    SchemaObject,
    check_choice,
    error_line,
    qualified,
    qualified_text,
    regname,
    twin_or_error,
)
from pgpatterns.errors import DDLOptionError

__all__ = ["View", "ViewBase"]


@dataclass(eq=False)
class ViewBase(SchemaObject):
    """What views and materialized views share: the body, ``table``, the catalog diff."""

    selectable: SelectBase
    _create: CreateView = field(init=False, repr=False)

    materialized: ClassVar[bool] = False

    def validate(self) -> None:
        if not isinstance(self.selectable, SelectBase):
            raise DDLOptionError(
                f"{type(self).__name__} {self.name!r}: selectable must be a select() "
                f"(got {type(self.selectable).__name__}); views are defined by a query."
            )
        self._create = CreateView(
            self.selectable,
            self.name,
            schema=self.schema,
            materialized=self.materialized,
            postgresql_with=self._with_options(),
        )
        self.table.info[OWNER_KEY] = self

    def _with_options(self) -> dict[str, Any]:
        return {}

    @property
    def identity(self) -> Identity:
        return Identity("relation", self.schema, self.name)  # views share pg_class names

    @property
    def table(self) -> Table:
        """A table-like of the view's columns: ``select(view.table)`` queries the view."""
        return self._create.table

    def implicit_dependencies(self) -> list[SchemaObject | Table]:
        found = find_tables(self.selectable, include_joins=True, include_aliases=True)
        return [t for t in found if isinstance(t, Table)]

    def render_create(self, compiler: DDLCompiler) -> list[str]:
        return [str(compiler.process(self._create))]

    def render_drop(self, compiler: DDLCompiler) -> list[str]:
        what = "MATERIALIZED VIEW" if self.materialized else "VIEW"
        return [f"DROP {what} IF EXISTS {qualified(compiler, self.name, self.schema)}"]

    def _catalog(self, conn: Connection) -> dict[str, Any] | None:
        return self._first_row(
            conn,
            "SELECT c.relkind AS kind, coalesce(c.reloptions, '{}') AS options,"
            " pg_get_viewdef(c.oid) AS definition FROM pg_class c"
            " WHERE c.oid = to_regclass(:n)",
            {"n": regname(self.name, self.schema)},
        )

    def catalog_key(self, conn: Connection) -> tuple[str, int] | None:
        """``("pg_class", oid)`` of the relation in the database, None if absent."""
        oid = conn.execute(
            text("SELECT to_regclass(:n)::oid"), {"n": regname(self.name, self.schema)}
        ).scalar()
        return None if oid is None else ("pg_class", int(oid))

    def current_sql(self, conn: Connection) -> list[str]:
        """``CREATE [MATERIALIZED] VIEW`` of what the database has now, with its grants."""
        row = self._catalog(conn)
        if row is None:
            return []
        what = "MATERIALIZED VIEW" if row["kind"] == "m" else "VIEW"
        name = qualified_text(self.name, self.schema)
        options = f" WITH ({', '.join(row['options'])})" if row["options"] else ""
        body = str(row["definition"]).strip().rstrip(";")
        return [f"CREATE {what} {name}{options} AS {body}"]

    def reflect_diff(self, conn: Connection) -> list[str]:
        actual = self._catalog(conn)
        if actual is None:
            return self._missing()
        expected = twin_or_error(lambda: self._expected(conn, 1))
        if isinstance(expected, Exception):
            return [error_line(self.describe(), expected)]
        diffs = []
        if actual["kind"] != expected["kind"]:
            diffs.append(f"{self.describe()} has relkind {actual['kind']!r}")
        if sorted(actual["options"]) != sorted(expected["options"]):
            diffs.append(
                f"{self.describe()}: options are {sorted(actual['options'])} in the database, "
                f"declared {sorted(expected['options'])}"
            )
        if actual["definition"] != expected["definition"]:
            diffs.append(
                f"{self.describe()}: definition differs; database has "
                f"{actual['definition'].strip()!r}, declared {expected['definition'].strip()!r}"
            )
        return diffs


@dataclass(eq=False)
class View(ViewBase):
    """A view; ``view.table`` is selectable and can feed other views.

    Examples:
        >>> from sqlalchemy import select, table, column
        >>> View("v", select(table("t", column("id"))), check_option="sideways")
        Traceback (most recent call last):
        ...
        pgpatterns.errors.DDLOptionError: View 'v': check_option='sideways' is not supported: ...

    Warning:
        ``security_invoker`` (default ``True``: the querying user's row-level security
        and privileges apply) needs PostgreSQL 15+. The body is compiled with literal
        values inlined, since views cannot take parameters.
    """

    kind: ClassVar[str] = "view"

    security_invoker: bool = field(default=True, kw_only=True)
    security_barrier: bool = field(default=False, kw_only=True)
    check_option: str | None = field(default=None, kw_only=True)

    def validate(self) -> None:
        if self.check_option is not None:
            owner = f"View {self.name!r}"
            choices = ("local", "cascaded")
            self.check_option = check_choice(owner, "check_option", self.check_option, choices)
        super().validate()

    def _with_options(self) -> dict[str, Any]:
        opts: dict[str, Any] = {}
        if self.check_option:
            opts["check_option"] = self.check_option
        if self.security_barrier:
            opts["security_barrier"] = True
        if self.security_invoker:
            opts["security_invoker"] = True
        return opts
