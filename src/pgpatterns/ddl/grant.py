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

__all__ = ["PRIVILEGES", "DefaultPrivileges", "Grant", "Role"]

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


def _grantee(
    owner: str, privileges: Sequence[str] | str, to: object
) -> tuple[tuple[str, ...], str, tuple[SchemaObject, ...]]:
    """Checked ``(privileges, role name, dependencies)`` of a grant to ``to``."""
    if isinstance(privileges, str):
        privileges = (privileges,)
    checked = tuple(check_choice(owner, "privileges", p, PRIVILEGES) for p in privileges)
    if not checked:
        raise DDLOptionError(f"{owner}: privileges is empty; pass e.g. ['select'].")
    role = to.name if isinstance(to, Role) else to
    if not isinstance(role, str) or not role:
        raise DDLOptionError(f"{owner}: to= must be a role name or a Role, got {to!r}.")
    return checked, role, ((to,) if isinstance(to, Role) else ())


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
        self.privileges, self.role, extra = _grantee(owner, privileges, to)
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


@dataclass(eq=False, init=False)
class DefaultPrivileges(SchemaObject):
    """``ALTER DEFAULT PRIVILEGES IN SCHEMA ... GRANT ... ON TABLES TO role``: tables created
    later in ``schema`` (by ``for_role``, default the migrating user) get these privileges.

    Examples:
        >>> print(DefaultPrivileges("app_data", ["select"], to="app").sql())
        ALTER DEFAULT PRIVILEGES IN SCHEMA app_data GRANT SELECT ON TABLES TO app
    """

    kind: ClassVar[str] = "default privileges"

    privileges: tuple[str, ...]
    role: str
    for_role: str | None

    def __init__(
        self,
        schema: str,
        privileges: Sequence[str],
        *,
        to: str | Role,
        for_role: str | None = None,
        depends_on: Sequence[SchemaObject | Table] = (),
    ) -> None:
        owner = f"DefaultPrivileges in {schema!r}"
        if not isinstance(schema, str) or not schema:
            raise DDLOptionError(f"{owner}: schema must be a schema name (a non-empty str).")
        self.privileges, self.role, extra = _grantee(owner, privileges, to)
        self.for_role = for_role
        self.depends_on = (*depends_on, *extra)
        self.schema = schema
        self.keep_on_drop = False
        self.name = self.role
        self.__post_init__()

    @property
    def identity(self) -> Identity:
        return Identity(self.kind, self.schema, self.role, self.for_role)

    def describe(self) -> str:
        by = f" by {self.for_role}" if self.for_role else ""
        return f"default privileges for {self.role} on tables in {self.schema}{by}"

    def _alter(self, prep: Any, action: str) -> str:
        by = f"FOR ROLE {prep.quote(self.for_role)} " if self.for_role else ""
        return f"ALTER DEFAULT PRIVILEGES {by}IN SCHEMA {prep.quote_schema(self.schema)} {action}"

    def _grant(self, prep: Any, privileges: Sequence[str]) -> str:
        words = ", ".join(p.upper() for p in PRIVILEGES if p in privileges)
        return self._alter(prep, f"GRANT {words} ON TABLES TO {prep.quote(self.role)}")

    def render_create(self, compiler: DDLCompiler) -> list[str]:
        return [self._grant(compiler.preparer, self.privileges)]

    def render_drop(self, compiler: DDLCompiler) -> list[str]:
        prep = compiler.preparer
        return [self._alter(prep, f"REVOKE ALL ON TABLES FROM {prep.quote(self.role)}")]

    def _held(self, conn: Connection) -> list[str]:
        return sorted(
            conn.execute(
                text(
                    "SELECT lower(a.privilege_type) FROM pg_default_acl d,"
                    " aclexplode(d.defaclacl) a WHERE d.defaclobjtype = 'r'"
                    " AND d.defaclnamespace = to_regnamespace(:s)"
                    " AND d.defaclrole = (SELECT oid FROM pg_roles WHERE rolname ="
                    " coalesce(CAST(:o AS text), current_user))"
                    " AND a.grantee = (SELECT oid FROM pg_roles WHERE rolname = :r)"
                ),
                {"s": self.schema, "o": self.for_role, "r": self.role},
            ).scalars()
        )

    def exists(self, conn: Connection) -> bool:
        return bool(self._held(conn))

    def current_sql(self, conn: Connection) -> list[str]:
        held = self._held(conn)
        return [self._grant(pg_dialect().identifier_preparer, held)] if held else []

    def reflect_diff(self, conn: Connection) -> list[str]:
        held, want = self._held(conn), sorted(self.privileges)
        if not held:
            return self._missing()
        if held != want:
            return [f"{self.describe()}: grants {held}, declared {want}"]
        return []
