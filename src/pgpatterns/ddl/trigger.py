"""``CREATE TRIGGER``: run a trigger :class:`~pgpatterns.ddl.Function` on table events.

Examples:
    >>> from sqlalchemy import Column, DateTime, Integer, MetaData, Table
    >>> from pgpatterns.ddl import Function, Trigger
    >>> items = Table("items", MetaData(), Column("id", Integer), Column("at", DateTime))
    >>> touch = Function("touch", returns="trigger", language="plpgsql",
    ...                  body="BEGIN NEW.at := now(); RETURN NEW; END")
    >>> print(Trigger("items_touch", items, touch, events=["update"]).sql())
    CREATE TRIGGER items_touch BEFORE UPDATE ON items FOR EACH ROW EXECUTE FUNCTION touch()
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from sqlalchemy import Connection, Table, column, table
from sqlalchemy.sql.compiler import DDLCompiler
from sqlalchemy.sql.elements import ColumnClause, ColumnElement

from pgpatterns.ddl.base import (
    Identity,
    SchemaObject,
    check_choice,
    error_line,
    expression_sql,
    qualified,
    regname,
    twin_or_error,
)
from pgpatterns.ddl.function import Function
from pgpatterns.errors import DDLOptionError

__all__ = ["Trigger", "new", "old"]

TIMINGS = ("before", "after", "instead of")
EVENTS = ("insert", "update", "delete", "truncate")


def new(name: str) -> ColumnClause[Any]:
    """``NEW.<name>`` for a trigger's ``when`` condition.

    Examples:
        >>> print(new("price").is_distinct_from(old("price")))
        "new".price IS DISTINCT FROM "old".price
    """
    return table("new", column(name)).c[name]


def old(name: str) -> ColumnClause[Any]:
    """``OLD.<name>`` for a trigger's ``when`` condition."""
    return table("old", column(name)).c[name]


@dataclass(eq=False)
class Trigger(SchemaObject):
    """A trigger on ``table`` calling ``function`` (a :class:`Function` returning trigger).

    Examples:
        >>> from sqlalchemy import MetaData, Table
        >>> fn = Function("f", returns="trigger", language="plpgsql", body="BEGIN END")
        >>> Trigger("t", Table("x", MetaData()), fn, timing="sometimes")
        Traceback (most recent call last):
        ...
        pgpatterns.errors.DDLOptionError: Trigger 't': timing='sometimes' is not supported: ...

    ``when`` is a SQLAlchemy expression (use :func:`new` / :func:`old`) or ``text()``;
    it needs ``for_each="row"``. ``update_of`` limits an UPDATE trigger to some columns.
    """

    kind: ClassVar[str] = "trigger"

    table: Table
    function: Function
    timing: str = field(default="before", kw_only=True)
    events: Sequence[str] = field(default=("insert", "update"), kw_only=True)
    for_each: str = field(default="row", kw_only=True)
    when: ColumnElement[Any] | None = field(default=None, kw_only=True)
    update_of: Sequence[str] = field(default=(), kw_only=True)

    def validate(self) -> None:
        owner = f"Trigger {self.name!r}"
        if not isinstance(self.table, Table):
            raise DDLOptionError(f"{owner}: table must be a sqlalchemy Table (or view.table).")
        if not isinstance(self.function, Function) or not self.function.is_trigger:
            raise DDLOptionError(
                f"{owner}: function must be a pgpatterns.ddl.Function declared with "
                "returns='trigger'; PostgreSQL only runs trigger functions from triggers."
            )
        self.timing = check_choice(owner, "timing", self.timing, TIMINGS)
        self.for_each = check_choice(owner, "for_each", self.for_each, ("row", "statement"))
        if isinstance(self.events, str):
            self.events = (self.events,)
        self.events = tuple(check_choice(owner, "events", e, EVENTS) for e in self.events)
        if not self.events:
            raise DDLOptionError(f"{owner}: events is empty; pass e.g. ['insert', 'update'].")
        self.update_of = tuple(self.update_of)
        if self.update_of and "update" not in self.events:
            raise DDLOptionError(
                f"{owner}: update_of needs an 'update' event; add 'update' to events."
            )
        if self.when is not None and self.for_each == "statement":
            raise DDLOptionError(
                f"{owner}: a WHEN condition needs for_each='row': statement-level triggers "
                "have no NEW/OLD row to test; drop `when` or use a row trigger."
            )
        self.schema = self.table.schema

    @property
    def identity(self) -> Identity:
        return Identity(self.kind, self.schema, self.name, self.table.name)

    def implicit_dependencies(self) -> list[SchemaObject | Table]:
        return [self.function, self.table]

    def describe(self) -> str:
        return f"trigger {self.name} on {self.table.fullname}"

    def render_create(self, compiler: DDLCompiler) -> list[str]:
        prep = compiler.preparer
        events = []
        for event in self.events:
            words = event.upper()
            if event == "update" and self.update_of:
                words += " OF " + ", ".join(prep.quote(c) for c in self.update_of)
            events.append(words)
        parts = [
            f"CREATE TRIGGER {prep.quote(self.name)} {self.timing.upper()}",
            " OR ".join(events),
            f"ON {prep.format_table(self.table)} FOR EACH {self.for_each.upper()}",
        ]
        if self.when is not None:
            parts.append(f"WHEN ({expression_sql(compiler, self.when)})")
        fn = qualified(compiler, self.function.name, self.function.schema)
        parts.append(f"EXECUTE FUNCTION {fn}()")
        return [" ".join(parts)]

    def render_drop(self, compiler: DDLCompiler) -> list[str]:
        prep = compiler.preparer
        table = prep.format_table(self.table)
        return [f"DROP TRIGGER IF EXISTS {prep.quote(self.name)} ON {table}"]

    def _catalog(self, conn: Connection) -> dict[str, Any] | None:
        return self._first_row(
            conn,
            _TRIGGER_ROW + " WHERE t.tgrelid = to_regclass(:t) AND t.tgname = :n",
            {"t": regname(self.table.name, self.table.schema), "n": self.name},
        )

    def catalog_key(self, conn: Connection) -> tuple[str, int] | None:
        """``("pg_trigger", oid)`` of the trigger in the database, None if absent."""
        row = self._catalog(conn)
        return None if row is None else ("pg_trigger", int(row["oid"]))

    def current_sql(self, conn: Connection) -> list[str]:
        """The ``CREATE TRIGGER`` of what the database has now (for a downgrade)."""
        row = self._catalog(conn)
        return [] if row is None else [str(row["definition"])]

    def reflect_diff(self, conn: Connection) -> list[str]:
        row = self._catalog(conn)
        if row is None:
            return self._missing()
        diffs = []
        if row["enabled"] == "D":
            diffs.append(f"{self.describe()} is disabled")
        expected = twin_or_error(lambda: self._expected(conn))
        if isinstance(expected, Exception):
            return [*diffs, error_line(self.describe(), expected)]
        if row["type"] != expected["type"]:
            diffs.append(
                f"{self.describe()}: fires {tgtype_words(row['type'])} in the database, "
                f"declared {tgtype_words(expected['type'])}"
            )
        for key in ("columns", "function", "action"):
            if row[key] != expected[key]:
                diffs.append(
                    f"{self.describe()}: {key} is {row[key]!r} in the database, "
                    f"declared {expected[key]!r}"
                )
        return diffs


_TRIGGER_ROW = (
    "SELECT t.oid, t.tgenabled AS enabled, t.tgtype::int AS type, t.tgattr::text AS columns,"
    " t.tgfoid::regprocedure::text AS function, pg_get_triggerdef(t.oid) AS definition,"
    " substring(pg_get_triggerdef(t.oid) from ' FOR EACH .*$') AS action FROM pg_trigger t"
)


def tgtype_words(tgtype: int) -> str:
    """``pg_trigger.tgtype`` in words: ``BEFORE INSERT OR UPDATE FOR EACH ROW``.

    Examples:
        >>> tgtype_words(0b10111)
        'BEFORE INSERT OR UPDATE FOR EACH ROW'
    """
    timing = "INSTEAD OF" if tgtype & 64 else "BEFORE" if tgtype & 2 else "AFTER"
    events = [
        w
        for bit, w in ((4, "INSERT"), (16, "UPDATE"), (8, "DELETE"), (32, "TRUNCATE"))
        if tgtype & bit
    ]
    level = "ROW" if tgtype & 1 else "STATEMENT"
    return f"{timing} {' OR '.join(events)} FOR EACH {level}"
