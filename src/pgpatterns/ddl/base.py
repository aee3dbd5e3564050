"""Shared base of every schema object kind: identity, dependencies, DDL elements, rendering.

Examples:
    >>> from pgpatterns.ddl import Extension
    >>> Extension("pg_trgm").sql()
    'CREATE EXTENSION IF NOT EXISTS pg_trgm'
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import secrets
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

from sqlalchemy import Column, Connection, Index, MetaData, Table, literal, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import DDLCompiler
from sqlalchemy.sql.ddl import CreateIndex, ExecutableDDLElement
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.sql.visitors import replacement_traverse
from sqlalchemy.types import TypeEngine

from pgpatterns.errors import DDLNameLengthError, DDLOptionError

__all__ = [
    "MAX_IDENTIFIER_BYTES",
    "OWNER_KEY",
    "CreateSchemaObject",
    "DropSchemaObject",
    "Identity",
    "SchemaObject",
    "body_ident",
    "body_table",
    "check_name_length",
    "short_name",
]

OWNER_KEY = "pgpatterns.ddl.owner"
"""``Table.info`` key under which a view/partition's table-like points back to its object."""


class Identity(NamedTuple):
    """What makes two declarations the same database object (used for collision checks)."""

    kind: str
    schema: str | None
    name: str
    table: str | None = None


@dataclass(eq=False)
class SchemaObject:
    """A database object that is not a table, declared in Python and rendered as DDL.

    Examples:
        >>> from pgpatterns.ddl import Extension
        >>> Extension("ltree").identity
        Identity(kind='extension', schema=None, name='ltree', table=None)

    Subclasses implement :meth:`render_create` / :meth:`render_drop` (one string per
    statement, identifiers quoted through ``compiler.preparer``) and the catalog reads.
    """

    kind: ClassVar[str] = "object"
    phase: ClassVar[str] = "after"  # "before": created before the tables (extensions)

    name: str
    schema: str | None = field(default=None, kw_only=True)
    depends_on: Sequence[SchemaObject | Table] = field(default=(), kw_only=True)
    keep_on_drop: bool = field(default=False, kw_only=True)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or "\x00" in self.name:
            raise DDLOptionError(
                f"{type(self).__name__} name {self.name!r} is invalid: PostgreSQL needs a "
                "non-empty identifier without NUL characters; pass a plain string name."
            )
        check_name_length(f"{type(self).__name__} name", self.name)
        if self.schema is not None:
            check_name_length(f"{type(self).__name__} schema", self.schema)
        self.depends_on = tuple(self.depends_on)
        self.validate()

    def validate(self) -> None:
        """Check option combinations; raise :class:`DDLOptionError` before any SQL is sent."""

    @property
    def identity(self) -> Identity:
        """``(kind, schema, name, table)``: two attached objects may not share it."""
        return Identity(self.kind, self.schema, self.name)

    def implicit_dependencies(self) -> list[SchemaObject | Table]:
        """Dependencies inferred from the declaration (function of a trigger, ...)."""
        return []

    def dependencies(self) -> list[SchemaObject]:
        """Every schema object this one needs, explicit and inferred (tables excluded)."""
        found: list[SchemaObject] = []
        for dep in (*self.depends_on, *self.implicit_dependencies()):
            obj = dep if isinstance(dep, SchemaObject) else dep.info.get(OWNER_KEY)
            if isinstance(obj, SchemaObject) and obj is not self and obj not in found:
                found.append(obj)
        return found

    def describe(self) -> str:
        """A short human label such as ``view "app"."totals"``."""
        where = f"{self.schema}." if self.schema else ""
        return f"{self.kind} {where}{self.name}"

    # -- rendering -----------------------------------------------------------------------
    def render_create(self, compiler: DDLCompiler) -> list[str]:
        raise NotImplementedError

    def render_drop(self, compiler: DDLCompiler) -> list[str]:
        raise NotImplementedError

    def create_ddl(self) -> list[ExecutableDDLElement]:
        """The statements that create the object, in order (usually one)."""
        return [CreateSchemaObject(self, i) for i in range(self.statement_count("create"))]

    def drop_ddl(self) -> list[ExecutableDDLElement]:
        """The statements that drop the object, in order."""
        return [DropSchemaObject(self, i) for i in range(self.statement_count("drop"))]

    def statement_count(self, action: str) -> int:
        """How many statements :meth:`render_create` (``"create"``) or ``"drop"`` return."""
        return 1

    def sql(self, dialect: Dialect | None = None, *, drop: bool = False) -> str:
        """The CREATE (or DROP) text for a migration, statements separated by ``;\\n``."""
        dialect = dialect or pg_dialect()
        elements = self.drop_ddl() if drop else self.create_ddl()
        return ";\n".join(str(e.compile(dialect=dialect)).strip() for e in elements)

    # -- catalog -------------------------------------------------------------------------
    def _catalog(self, conn: Connection) -> dict[str, Any] | None:
        """The object's catalog row (what :meth:`reflect_diff` compares), None if absent."""
        raise NotImplementedError

    def exists(self, conn: Connection) -> bool:
        return self._catalog(conn) is not None

    def reflect_diff(self, conn: Connection) -> list[str]:
        """Differences between the declaration and the catalog; ``[]`` means in sync."""
        raise NotImplementedError

    def _missing(self) -> list[str]:
        return [f"{self.describe()} does not exist in the database"]

    @staticmethod
    def _first_row(conn: Connection, sql: str, params: dict[str, Any]) -> dict[str, Any] | None:
        row = conn.execute(text(sql), params).mappings().first()
        return None if row is None else dict(row)

    def _expected(self, conn: Connection, statements: int | None = None) -> dict[str, Any]:
        """The catalog row PostgreSQL makes of this declaration: a twin under a throw-away
        name is created in a savepoint, read back, and rolled back, so both sides of the
        comparison are normalised by PostgreSQL itself (see also :func:`prepared_twins`)."""
        prepared = _TWINS.get()
        if prepared is not None and id(self) in prepared:
            found = prepared[id(self)]._catalog(conn)
            assert found is not None
            return found
        with conn.begin_nested() as sp:
            twin = dataclasses.replace(self, name=temp_name(), depends_on=())
            for ddl in twin.create_ddl()[:statements]:
                conn.execute(ddl)
            row = twin._catalog(conn)
            sp.rollback()
        assert row is not None
        return row

    def _compare(self, actual: dict[str, Any], expected: dict[str, Any]) -> list[str]:
        return [
            f"{self.describe()}: {key} is {actual[key]!r} in the database, "
            f"declared {expected[key]!r}"
            for key in expected
            if actual[key] != expected[key]
        ]


class _SchemaDDL(ExecutableDDLElement):
    action: ClassVar[str] = "create"

    def __init__(self, obj: SchemaObject, index: int = 0) -> None:
        self.obj = obj
        self.index = index


class CreateSchemaObject(_SchemaDDL):
    """The n-th CREATE statement of a :class:`SchemaObject` (an executable DDL element)."""


class DropSchemaObject(_SchemaDDL):
    """The n-th DROP statement of a :class:`SchemaObject` (an executable DDL element)."""

    action = "drop"


@compiles(CreateSchemaObject, "postgresql")
def _compile_create(element: CreateSchemaObject, compiler: DDLCompiler, **kw: Any) -> str:
    return element.obj.render_create(compiler)[element.index]


@compiles(DropSchemaObject, "postgresql")
def _compile_drop(element: DropSchemaObject, compiler: DDLCompiler, **kw: Any) -> str:
    return element.obj.render_drop(compiler)[element.index]


# -- helpers shared by the kinds ---------------------------------------------------------
def pg_dialect() -> Dialect:
    """A PostgreSQL dialect for rendering DDL text outside a connection.

    ``named`` paramstyle: the text is exactly what PostgreSQL runs (no ``%%`` doubling).
    """
    return postgresql.dialect(paramstyle="named")  # type: ignore[no-untyped-call]


MAX_IDENTIFIER_BYTES = 63
"""PostgreSQL's NAMEDATALEN - 1: longer names are silently truncated by the server."""


def check_name_length(what: str, name: str) -> str:
    """``name`` if it fits PostgreSQL's 63 bytes, else :class:`DDLNameLengthError`.

    Examples:
        >>> check_name_length("policy", "p" * 64)
        Traceback (most recent call last):
        ...
        pgpatterns.errors.DDLNameLengthError: policy 'pppp...pppp' is 64 bytes long: ...

    PostgreSQL truncates a longer name without an error, so two long names that share their
    first 63 bytes become one object (and the second CREATE fails or, with ``IF NOT
    EXISTS``, silently does nothing). Pass a shorter name, or build one with
    :func:`short_name`.
    """
    if not isinstance(name, str) or not name or "\x00" in name:
        raise DDLOptionError(
            f"{what} {name!r} is not a valid identifier: pass a non-empty str without NUL."
        )
    size = len(name.encode("utf-8"))
    if size > MAX_IDENTIFIER_BYTES:
        shown = name if len(name) <= 24 else f"{name[:4]}...{name[-4:]}"
        raise DDLNameLengthError(
            f"{what} {shown!r} is {size} bytes long: PostgreSQL truncates names to "
            f"{MAX_IDENTIFIER_BYTES} bytes, so it would become another name (and could collide "
            f"with one); pass a name of at most {MAX_IDENTIFIER_BYTES} bytes. Full name: {name!r}"
        )
    return name


def short_name(*parts: str, suffix: str = "") -> str:
    """``parts`` joined by ``_`` plus ``suffix``, shortened with a hash when over 63 bytes.

    Examples:
        >>> short_name("posts", "tags", suffix="_idx")
        'posts_tags_idx'
        >>> n = short_name("x" * 60, "tags", suffix="_idx"); len(n), n[-4:]
        (63, '_idx')

    Deterministic (the same parts always give the same name), like SQLAlchemy's naming
    conventions: the head is kept, the middle replaced by 8 hex digits of an MD5 of the
    full name, and the suffix kept so the object's kind stays readable.
    """
    full = "_".join(parts) + suffix
    if len(full.encode("utf-8")) <= MAX_IDENTIFIER_BYTES:
        return full
    digest = hashlib.md5(full.encode("utf-8"), usedforsecurity=False).hexdigest()[:8]
    room = MAX_IDENTIFIER_BYTES - len(suffix.encode("utf-8")) - len(digest) - 1
    head = full.encode("utf-8")[:room].decode("utf-8", "ignore")
    return f"{head}_{digest}{suffix}"


def body_ident(name: str) -> str:
    """An identifier quoted for the *inside* of a plpgsql/SQL function body.

    Examples:
        >>> body_ident("na%me"), body_ident('a"b'), body_ident("plain")
        ('"na%me"', '"a""b"', 'plain')

    The one quoting path for text that ends up in a body: quoted by a ``named``-paramstyle
    preparer, so ``%`` is never doubled here; :func:`raw_text` escapes the whole body once
    for the driver when the ``CREATE FUNCTION`` is compiled.
    """
    return str(pg_dialect().identifier_preparer.quote(name))


def body_table(table: Table) -> str:
    """``"schema"."table"`` (or ``"table"``) quoted for a function body, like :func:`body_ident`."""
    prep = pg_dialect().identifier_preparer
    return str(prep.format_table(table))


def qualified(compiler: DDLCompiler, name: str, schema: str | None) -> str:
    """``"schema"."name"`` quoted by the dialect's preparer."""
    prep = compiler.preparer
    return f"{prep.quote_schema(schema)}.{prep.quote(name)}" if schema else prep.quote(name)


def regname(name: str, schema: str | None) -> str:
    """The quoted name as a *value* for ``to_regclass(:name)`` (passed as a bind parameter).

    Always quoted (exact case), never percent-doubled: it is data, not statement text.
    """

    def quote(ident: str) -> str:
        return '"' + ident.replace('"', '""') + '"'

    return f"{quote(schema)}.{quote(name)}" if schema else quote(name)


def raw_text(compiler: DDLCompiler, sql: str) -> str:
    """Verbatim text (a function body) escaped for the driver's paramstyle (``%`` → ``%%``)."""
    post_process: Any = compiler.sql_compiler.post_process_text
    return str(post_process(sql))


def expression_sql(compiler: DDLCompiler, expr: ClauseElement) -> str:
    """A SQL expression compiled with literal values inlined (DDL takes no parameters)."""
    process: Any = compiler.sql_compiler.process
    return str(process(expr, literal_binds=True, include_table=True))


def literal_sql(compiler: DDLCompiler, value: object) -> str:
    """One Python value rendered as a SQL literal through the dialect."""
    return expression_sql(compiler, literal(value))


# words allowed after the first in multi-word type names ("double precision", ...)
_TYPE_WORDS = frozenset({"precision", "varying", "with", "without", "time", "zone"})
_TYPE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_ .]*(\(\s*\d+\s*(,\s*\d+\s*)?\))?(\[\])*$")


def type_sql(dialect: Dialect, type_: TypeEngine[Any] | type[TypeEngine[Any]] | str) -> str:
    """A SQLAlchemy type compiled by the dialect, or a validated type name string."""
    if isinstance(type_, str):
        return type_
    return str(dialect.type_compiler_instance.process(_instance(type_)))


def _instance(type_: TypeEngine[Any] | type[TypeEngine[Any]]) -> TypeEngine[Any]:
    return type_() if isinstance(type_, type) else type_


def check_type(owner: str, type_: object) -> None:
    """Reject a type string that is not a plain type name (it would be raw SQL)."""
    if isinstance(type_, TypeEngine) or (isinstance(type_, type) and issubclass(type_, TypeEngine)):
        return
    if isinstance(type_, str) and _TYPE_NAME.match(type_):
        words = type_.split("(")[0].split()
        if words and words[0].lower() == "setof":
            words = words[1:]
        if words and all(w.lower() in _TYPE_WORDS for w in words[1:]):
            return
    raise DDLOptionError(
        f"{owner}: type {type_!r} is not a plain type name; type strings are pasted into "
        "DDL, so only names like 'integer', 'numeric(10, 2)' or 'text[]' are accepted. "
        "Pass a SQLAlchemy type (e.g. sqlalchemy.Integer()) instead."
    )


def check_choice(owner: str, option: str, value: str, choices: Iterable[str]) -> str:
    """Lower-case ``value`` and make sure it is one of ``choices``."""
    allowed = tuple(choices)
    low = value.lower() if isinstance(value, str) else value
    if low not in allowed:
        raise DDLOptionError(
            f"{owner}: {option}={value!r} is not supported: PostgreSQL accepts only "
            f"{', '.join(map(repr, allowed))}; pass one of those."
        )
    return str(low)


def temp_name(prefix: str = "pgp_tmp") -> str:
    """A throw-away identifier for catalog comparisons inside a rolled-back savepoint."""
    return f"{prefix}_{secrets.token_hex(6)}"


# -- comparison helpers (shared by diff() and pgpatterns.alembic) ------------------------
_INDEX_DEFS = (
    "SELECT c.relname AS name, i.indisunique AS uniq, pg_get_indexdef(i.indexrelid) AS def"
    " FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = :oid"
)


def index_definitions(conn: Connection, relation: str, schema: str | None) -> dict[str, str]:
    """``{index name: definition}`` of a relation's indexes, without names.

    The definition is ``[UNIQUE ]USING method (columns opclass) [INCLUDE] [WITH (...)]
    [WHERE ...]`` as PostgreSQL prints it, so uniqueness, columns, method, operator class,
    storage options (HNSW ``m``) and predicate are all part of the comparison.
    """
    oid = conn.execute(
        text("SELECT to_regclass(:n)::oid"), {"n": regname(relation, schema)}
    ).scalar()
    if oid is None:
        return {}
    return {
        str(name): ("UNIQUE " if unique else "") + "USING " + str(sql).split(" USING ", 1)[1]
        for name, unique, sql in conn.execute(text(_INDEX_DEFS), {"oid": oid})
    }


def rebind_index(index: Index, table: Table, name: str) -> Index:
    """A copy of ``index`` named ``name`` over the same-named columns of ``table``."""
    source = index.table

    def swap(element: Any) -> Any:
        if isinstance(element, Column) and element.table is source:
            return table.c[element.key]
        return None

    traverse: Any = replacement_traverse
    exprs = [traverse(e, {}, swap) for e in index.expressions]
    options: dict[str, Any] = {}
    for key, value in index.dialect_kwargs.items():
        if key == "postgresql_concurrently":
            continue
        if isinstance(value, ClauseElement):
            value = traverse(value, {}, swap)
        options[key] = value
    return Index(name, *exprs, unique=bool(index.unique), **options)


def expected_index_definitions(
    conn: Connection, table: Table, indexes: Iterable[Index]
) -> dict[str, str | Exception]:
    """What PostgreSQL makes of ``indexes`` (declared on ``table``): each is created on an
    empty temporary twin of the table inside a rolled-back savepoint, so no data is read.

    A value is the exception when the declaration cannot be created at all.
    """
    result: dict[str, str | Exception] = {}
    twin = Table(
        temp_name(),
        MetaData(),
        *(Column(c.name, c.type) for c in table.columns),
        schema="pg_temp",
    )
    with conn.begin_nested() as sp:
        twin.create(conn)
        for index in indexes:
            tmp = temp_name("pgp_ix")
            try:
                with conn.begin_nested():
                    conn.execute(CreateIndex(rebind_index(index, twin, tmp)))
            except DBAPIError as exc:
                result[str(index.name)] = exc
                continue
            result[str(index.name)] = index_definitions(conn, twin.name, "pg_temp")[tmp]
        sp.rollback()
    return result


def relation_grants(conn: Connection, relation: str, schema: str | None) -> list[str]:
    """``GRANT`` statements re-creating a relation's privileges (kept across a replace)."""
    rows = conn.execute(
        text(
            "SELECT a.privilege_type, CASE WHEN a.grantee = 0 THEN 'public'"
            " ELSE a.grantee::regrole::text END, a.is_grantable"
            " FROM pg_class c, aclexplode(c.relacl) a"
            " WHERE c.oid = to_regclass(:n) AND a.grantee <> c.relowner ORDER BY 2, 1"
        ),
        {"n": regname(relation, schema)},
    ).all()
    prep = pg_dialect().identifier_preparer
    target = (
        f"{prep.quote_schema(schema)}.{prep.quote(relation)}" if schema else prep.quote(relation)
    )
    return [
        f"GRANT {priv} ON {target} TO {grantee}" + (" WITH GRANT OPTION" if grantable else "")
        for priv, grantee, grantable in rows
    ]


def twin_or_error(make: Callable[[], dict[str, Any]]) -> dict[str, Any] | Exception:
    """``make()`` (a savepoint twin read), or the database error it raised."""
    try:
        return make()
    except DBAPIError as exc:
        return exc


def error_line(what: str, exc: Exception) -> str:
    """One line saying a declaration cannot be created as declared, with the server's reason."""
    reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
    return f"{what} cannot be created as declared: {reason}"


def qualified_text(name: str, schema: str | None) -> str:
    """``"schema"."name"`` quoted for statement text outside a compiler (no ``%`` doubling)."""
    prep = pg_dialect().identifier_preparer
    return f"{prep.quote_schema(schema)}.{prep.quote(name)}" if schema else str(prep.quote(name))


_TWIN_KINDS = frozenset({"function", "trigger", "policy", "view", "foreign key"})
_TWINS: ContextVar[dict[int, SchemaObject] | None] = ContextVar("pgpatterns_twins", default=None)


@contextmanager
def prepared_twins(conn: Connection, objects: Iterable[SchemaObject]) -> Iterator[None]:
    """Create the comparison twins of ``objects`` in one round trip, in one savepoint rolled
    back on exit; ``_expected`` reads them instead of making its own (a diff of 500 objects
    then costs two catalog reads each, not a savepoint each).

    Only kinds that use the shared twin (not materialized views or partitions) are
    prepared; if any twin cannot be created, none is, and each object falls back to its own
    savepoint (which reports the error for that object alone).
    """
    twins: dict[int, SchemaObject] = {}
    statements: list[str] = []
    for obj in objects:
        if obj.kind not in _TWIN_KINDS or type(obj)._expected is not SchemaObject._expected:
            continue
        try:
            twin = dataclasses.replace(obj, name=temp_name(), depends_on=())
        except TypeError:  # a kind whose name is not an init field (RowLevelSecurity)
            continue
        twins[id(obj)] = twin
        statements += twin.sql().split(";\n")
    sp = conn.begin_nested()
    try:
        if statements:
            conn.exec_driver_sql(";\n".join(statements), execution_options={"no_parameters": True})
    except DBAPIError:
        sp.rollback()
        yield
        return
    token = _TWINS.set(twins)
    try:
        yield
    finally:
        _TWINS.reset(token)
        sp.rollback()
