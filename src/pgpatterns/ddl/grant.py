"""Roles and table privileges as declared objects: ``CREATE ROLE`` and ``GRANT ... TO``.

Examples:
    >>> from sqlalchemy import Column, Integer, MetaData, Table
    >>> from pgpatterns.ddl.grant import Grant, Role
    >>> docs = Table("docs", MetaData(), Column("id", Integer))
    >>> app = Role("app")
    >>> print(Grant(docs, ["select", "insert"], to=app).sql())
    GRANT SELECT, INSERT ON docs TO app

Every RLS application needs them: the application connects as a role that does not own
the tables (so row-level security applies to it) and holds exactly the privileges it
needs. Declared, they are created with the MetaData, compared by ``diff`` (a privilege
granted beyond the declaration is reported) and migrated by :mod:`pgpatterns.alembic`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from sqlalchemy import Connection, Table, text
from sqlalchemy.sql.compiler import DDLCompiler

from pgpatterns.ddl.base import Identity, SchemaObject, check_choice, pg_dialect, regname
from pgpatterns.ddl.rls import check_table
from pgpatterns.errors import DDLOptionError

__all__ = ["PRIVILEGES", "Grant", "Role"]

PRIVILEGES = ("select", "insert", "update", "delete", "truncate", "references", "trigger")


@dataclass(eq=False)
class Role(SchemaObject):
    """A role (``NOLOGIN`` unless ``login=True``), created before the tables.

    Examples:
        >>> Role("app", login=True).sql()
        'CREATE ROLE app LOGIN'

    Roles belong to the whole cluster, so ``drop_all`` and downgrades keep them unless
    ``keep_on_drop=False``; a changed ``login`` is an ``ALTER ROLE``, never a drop.
    """

    kind: ClassVar[str] = "role"
    phase: ClassVar[str] = "before"

    login: bool = field(default=False, kw_only=True)
    keep_on_drop: bool = field(default=True, kw_only=True)

    def render_create(self, compiler: DDLCompiler) -> list[str]:
        return [f"CREATE ROLE {compiler.preparer.quote(self.name)} {self._login(self.login)}"]

    def render_drop(self, compiler: DDLCompiler) -> list[str]:
        return [f"DROP ROLE IF EXISTS {compiler.preparer.quote(self.name)}"]

    @staticmethod
    def _login(login: bool) -> str:
        return "LOGIN" if login else "NOLOGIN"

    def _catalog(self, conn: Connection) -> dict[str, Any] | None:
        return self._first_row(
            conn, "SELECT rolcanlogin AS login FROM pg_roles WHERE rolname = :n", {"n": self.name}
        )

    def set_sql(self) -> list[str]:
        """``ALTER ROLE`` to the declared options (an upgrade when the role exists)."""
        name = pg_dialect().identifier_preparer.quote(self.name)
        return [f"ALTER ROLE {name} {self._login(self.login)}"]

    def current_sql(self, conn: Connection) -> list[str]:
        row = self._catalog(conn)
        if row is None:
            return []
        name = pg_dialect().identifier_preparer.quote(self.name)
        return [f"ALTER ROLE {name} {self._login(bool(row['login']))}"]

    def reflect_diff(self, conn: Connection) -> list[str]:
        row = self._catalog(conn)
        if row is None:
            return self._missing()
        if bool(row["login"]) != self.login:
            return [f"{self.describe()}: login is {row['login']}, declared {self.login}"]
        return []


@dataclass(eq=False, init=False)
class Grant(SchemaObject):
    """``GRANT privileges ON table TO role``: exactly these privileges, no more.

    Examples:
        >>> from sqlalchemy import MetaData, Table
        >>> Grant(Table("t", MetaData()), ["select", "drop"], to="app")
        Traceback (most recent call last):
        ...
        pgpatterns.errors.DDLOptionError: Grant on t: privileges='drop' is not supported: ...
    """

    kind: ClassVar[str] = "grant"

    table: Table
    privileges: tuple[str, ...]
    role: str

    def __init__(
        self,
        table: Table,
        privileges: Sequence[str],
        *,
        to: str | Role,
        depends_on: Sequence[SchemaObject | Table] = (),
    ) -> None:
        owner = f"Grant on {getattr(table, 'name', table)}"
        self.table = check_table(owner, table)
        if isinstance(privileges, str):
            privileges = (privileges,)
        self.privileges = tuple(
            check_choice(owner, "privileges", p, PRIVILEGES) for p in privileges
        )
        if not self.privileges:
            raise DDLOptionError(f"{owner}: privileges is empty; pass e.g. ['select'].")
        self.role = to.name if isinstance(to, Role) else to
        if not isinstance(self.role, str) or not self.role:
            raise DDLOptionError(f"{owner}: to= must be a role name or a Role, got {to!r}.")
        extra = (to,) if isinstance(to, Role) else ()
        self.depends_on = (*depends_on, *extra)
        self.schema = table.schema
        self.keep_on_drop = False
        self.name = self.role
        self.__post_init__()

    @property
    def identity(self) -> Identity:
        return Identity(self.kind, self.schema, self.role, self.table.name)

    def implicit_dependencies(self) -> list[SchemaObject | Table]:
        return [self.table]

    def describe(self) -> str:
        return f"grant to {self.role} on {self.table.fullname}"

    def _words(self, privileges: Sequence[str]) -> str:
        return ", ".join(p.upper() for p in PRIVILEGES if p in privileges)

    def _grant(self, prep: Any, privileges: Sequence[str]) -> str:
        return (
            f"GRANT {self._words(privileges)} ON {prep.format_table(self.table)} "
            f"TO {prep.quote(self.role)}"
        )

    def render_create(self, compiler: DDLCompiler) -> list[str]:
        return [self._grant(compiler.preparer, self.privileges)]

    def render_drop(self, compiler: DDLCompiler) -> list[str]:
        prep = compiler.preparer
        return [f"REVOKE ALL ON {prep.format_table(self.table)} FROM {prep.quote(self.role)}"]

    def _held(self, conn: Connection) -> list[str] | None:
        """The privileges the role holds directly on the table (None: no such table)."""
        rows = conn.execute(
            text(
                "SELECT c.oid IS NOT NULL, lower(a.privilege_type) FROM (SELECT"
                " to_regclass(:t) AS oid) r LEFT JOIN pg_class c ON c.oid = r.oid"
                " LEFT JOIN LATERAL aclexplode(c.relacl) a ON a.grantee ="
                " (SELECT oid FROM pg_roles WHERE rolname = :r)"
            ),
            {"t": regname(self.table.name, self.table.schema), "r": self.role},
        ).all()
        if not rows or not rows[0][0]:
            return None
        return sorted(p for _, p in rows if p is not None)

    def exists(self, conn: Connection) -> bool:
        return bool(self._held(conn))

    def current_sql(self, conn: Connection) -> list[str]:
        held = self._held(conn)
        return [self._grant(pg_dialect().identifier_preparer, held)] if held else []

    def reflect_diff(self, conn: Connection) -> list[str]:
        held = self._held(conn)
        if held is None:
            return [f"{self.describe()}: table does not exist"]
        want = sorted(self.privileges)
        if held != want:
            shown = self._words(held) or "nothing"
            return [f"{self.describe()}: holds {shown}, declared {self._words(want)}"]
        return []
