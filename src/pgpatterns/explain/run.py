"""Building and running ``EXPLAIN`` with the statement's bind parameters kept."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeAlias

from sqlalchemy import func, select, true
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Query, Session
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.elements import ClauseElement, TextClause
from sqlalchemy.sql.selectable import SelectBase
from sqlalchemy.sql.visitors import InternalTraversal

from pgpatterns.errors import ExplainError
from pgpatterns.explain.plan import Plan, _parse

__all__ = ["SettingValue", "explain", "explain_async", "explain_stmt"]

SettingValue: TypeAlias = str | int | float | bool
"""A planner setting value: ``"off"``, ``False`` (sent as ``off``), ``40``, ``"4MB"``."""

# A setting name, optionally prefixed by an extension's ("hnsw.ef_search").
_SETTING_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?\Z")


class _Explain(Executable, ClauseElement):
    """``EXPLAIN (FORMAT JSON, ...) <statement>``, the statement compiled by the same compiler."""

    __visit_name__ = "pgpatterns_explain"
    inherit_cache = True
    _traverse_internals = [
        ("statement", InternalTraversal.dp_clauseelement),
        ("analyze", InternalTraversal.dp_boolean),
        ("buffers", InternalTraversal.dp_boolean),
        ("verbose", InternalTraversal.dp_boolean),
        *Executable._executable_traverse_internals,
    ]

    def __init__(self, statement: ClauseElement, analyze: bool, buffers: bool, verbose: bool):
        self.statement = statement
        self.analyze = analyze
        self.buffers = buffers
        self.verbose = verbose


@compiles(_Explain)
def _compile_explain(element: _Explain, compiler: SQLCompiler, **kw: Any) -> str:
    options = ["FORMAT JSON"] + ["ANALYZE"] * element.analyze + ["VERBOSE"] * element.verbose
    if element.buffers:
        options.append("BUFFERS")
    elif element.analyze:
        options.append("BUFFERS OFF")  # PostgreSQL 18 turns BUFFERS on with ANALYZE
    # The inner statement compiles as the top-level one (CTEs, defaults, RETURNING as when
    # executed), but EXPLAIN returns one JSON row whatever it is: its result columns go to a
    # throwaway map (else a cached compile maps, and type-processes, the plan as one of them)
    # and its DML flags are cleared (else an INSERT's result is consumed as inserted keys).
    with compiler._nested_result():
        inner = compiler.process(element.statement, **kw)
    compiler.isinsert = compiler.isupdate = compiler.isdelete = False
    return f"EXPLAIN ({', '.join(options)}) {inner}"


def explain_stmt(
    stmt: Executable, *, analyze: bool = False, buffers: bool = False, verbose: bool = False
) -> Executable:
    """Wrap a statement in ``EXPLAIN (FORMAT JSON, ...)``, keeping its bind parameters.

    Examples:
        >>> from sqlalchemy import column, select, table
        >>> from sqlalchemy.dialects import postgresql
        >>> items = table("items", column("code"))
        >>> stmt = explain_stmt(select(items).where(items.c.code == "c42"), analyze=True)
        >>> compiled = stmt.compile(dialect=postgresql.dialect())
        >>> str(compiled).split(" SELECT")[0], compiled.params
        ('EXPLAIN (FORMAT JSON, ANALYZE, BUFFERS OFF)', {'code_1': 'c42'})

    Executing it returns one row holding the JSON plan. Prefer :func:`explain`, which also
    applies planner settings and keeps ``analyze`` from changing data. Arguments are those of
    :func:`explain`; with ``analyze`` and without ``buffers``, ``BUFFERS OFF`` is rendered so
    that PostgreSQL 18 reports what earlier versions do.

    Raises:
        ExplainError: ``stmt`` is not a statement PostgreSQL can explain.
    """
    return _prepare(stmt, analyze, buffers, verbose, None)[0]


def explain(
    conn: Connection | Session,
    stmt: Executable,
    *,
    analyze: bool = False,
    buffers: bool = False,
    verbose: bool = False,
    settings: Mapping[str, SettingValue] | None = None,
) -> Plan:
    """Explain a statement in the caller's transaction and return its parsed plan.

    Examples:
        >>> plan = explain(  # doctest: +SKIP
        ...     session,
        ...     select(Item).where(Item.category < 3),
        ...     analyze=True,
        ...     settings={"enable_seqscan": "off"},
        ... )
        >>> uses_index(plan, "items_category_idx"), plan.execution_time  # doctest: +SKIP
        (True, 3.12)

    The statement is sent with bind parameters, as executing it would send it. With
    ``analyze`` or ``settings`` the work runs inside a SAVEPOINT that is always rolled back:
    rows that ``EXPLAIN ANALYZE`` inserts, updates or deletes are restored, and the settings,
    applied with ``set_config(name, value, true)``, are undone by that rollback (PostgreSQL
    reverts transaction-local settings made inside a rolled-back savepoint), so they do not
    leak into the rest of the transaction. A Session that autoflushes is flushed first.

    Warning:
        ``analyze`` really executes the statement, and a rollback does not undo what is not
        transactional: sequence values (serial/identity columns, ``nextval``) stay consumed.
        Deferred constraint triggers never fire, so their cost is not in the plan. A
        connection in ``AUTOCOMMIT`` mode cannot hold a SAVEPOINT: use a transaction.

    Args:
        conn: A ``Connection`` or ``Session`` on PostgreSQL (:func:`explain_async` for
            ``AsyncConnection`` and ``AsyncSession``).
        stmt: A ``select()``, ``insert()``, ``update()``, ``delete()`` (Core or ORM) or
            ``sqlalchemy.text()``; wrap raw SQL strings in ``text()``.
        analyze: ``ANALYZE``: run the statement, for actual rows and times.
        buffers: ``BUFFERS``: shared buffer hits and reads (per node after ``analyze``).
        verbose: ``VERBOSE``: output columns, and the ``"Schema"`` of each relation, which
            makes schema-qualified names in :func:`has_seq_scan`/:func:`uses_index` exact.
        settings: Planner settings for this plan only, e.g. ``{"enable_seqscan": "off"}``
            or ``{"hnsw.ef_search": 100}``; ``True``/``False`` are sent as ``on``/``off``.

    Raises:
        ExplainError: ``conn`` or ``stmt`` has the wrong type or a setting name or value is
            invalid (raised before any SQL is sent), or PostgreSQL rejects a setting.
    """
    explain_construct, settings_stmt = _prepare(stmt, analyze, buffers, verbose, settings)
    if isinstance(conn, Session):
        connection = conn.connection(bind_arguments={"clause": stmt})
        _check_dialect(connection.dialect)
        if conn.autoflush:
            conn.flush()
    elif isinstance(conn, Connection):
        connection = conn
        _check_dialect(connection.dialect)
    else:
        raise _wrong_connection("explain", conn, "Connection or Session", "explain_async")
    if not analyze and settings_stmt is None:
        return _parse(connection.execute(explain_construct).scalar_one())
    savepoint = connection.begin_nested()
    try:
        if settings_stmt is not None:
            try:
                connection.execute(settings_stmt)
            except DBAPIError as exc:
                raise _settings_rejected(exc) from exc
        return _parse(connection.execute(explain_construct).scalar_one())
    finally:
        savepoint.rollback()


async def explain_async(
    conn: AsyncConnection | AsyncSession,
    stmt: Executable,
    *,
    analyze: bool = False,
    buffers: bool = False,
    verbose: bool = False,
    settings: Mapping[str, SettingValue] | None = None,
) -> Plan:
    """The asyncio twin of :func:`explain`, for ``AsyncConnection`` and ``AsyncSession``.

    Examples:
        >>> stmt = select(Item).where(Item.code == "c42")  # doctest: +SKIP
        >>> uses_index(await explain_async(session, stmt), "items_code_idx")  # doctest: +SKIP
        True

    Same arguments, SAVEPOINT behaviour and errors as :func:`explain`.
    """
    explain_construct, settings_stmt = _prepare(stmt, analyze, buffers, verbose, settings)
    if isinstance(conn, AsyncSession):
        connection = await conn.connection(bind_arguments={"clause": stmt})
        _check_dialect(connection.dialect)
        if conn.autoflush:
            await conn.flush()
    elif isinstance(conn, AsyncConnection):
        connection = conn
        _check_dialect(connection.dialect)
    else:
        raise _wrong_connection("explain_async", conn, "AsyncConnection or AsyncSession", "explain")
    if not analyze and settings_stmt is None:
        return _parse((await connection.execute(explain_construct)).scalar_one())
    savepoint = await connection.begin_nested()
    try:
        if settings_stmt is not None:
            try:
                await connection.execute(settings_stmt)
            except DBAPIError as exc:
                raise _settings_rejected(exc) from exc
        return _parse((await connection.execute(explain_construct)).scalar_one())
    finally:
        await savepoint.rollback()


def _check_statement(stmt: object) -> ClauseElement:
    if isinstance(stmt, (SelectBase, UpdateBase, TextClause)):
        return stmt
    if isinstance(stmt, str):
        problem = (
            "a SQL string: values must stay bind parameters. Wrap it in sqlalchemy.text() "
            "with :name placeholders: text('SELECT * FROM t WHERE code = :code').bindparams(...)"
        )
    elif isinstance(stmt, Query):
        problem = "a legacy ORM Query, which is not a statement: pass query.statement"
    else:
        problem = (
            f"a {type(stmt).__name__}, which PostgreSQL cannot explain: pass a select(), "
            "insert(), update(), delete() or sqlalchemy.text() statement"
        )
    raise ExplainError(f"explain() got {problem}.")


def _prepare(
    stmt: Executable,
    analyze: bool,
    buffers: bool,
    verbose: bool,
    settings: Mapping[str, SettingValue] | None,
) -> tuple[_Explain, Executable | None]:
    """Check everything and build the statements, before any SQL is sent."""
    for flag, value in (("analyze", analyze), ("buffers", buffers), ("verbose", verbose)):
        if not isinstance(value, bool):
            raise ExplainError(f"explain(): {flag}={value!r:.80} is not accepted: pass True or "
                               "False.")
    if settings is not None and not isinstance(settings, Mapping):
        raise ExplainError(
            f"explain(): settings={settings!r:.80} is not accepted: pass a mapping such as "
            "{'enable_seqscan': False}, or None."
        )
    construct = _Explain(_check_statement(stmt), analyze, buffers, verbose)
    calls = [_set_config(name, value) for name, value in (settings or {}).items()]
    return construct, select(*calls) if calls else None


def _set_config(name: object, value: object) -> Any:
    if not isinstance(name, str) or not _SETTING_NAME.match(name):
        raise ExplainError(
            f"invalid planner setting name {name!r}: a setting name is an identifier, "
            "optionally prefixed by an extension's. Use e.g. 'enable_seqscan', 'hnsw.ef_search'."
        )
    if isinstance(value, bool):
        value = "on" if value else "off"
    elif not isinstance(value, (str, int, float)) or "\x00" in str(value):
        raise ExplainError(
            f"invalid value {value!r} for planner setting {name!r}: set_config() takes text. "
            "Pass a str, int, float or bool, e.g. {'enable_seqscan': 'off'}."
        )
    return func.set_config(name, str(value), true())


def _check_dialect(dialect: Dialect) -> None:
    if dialect.name != "postgresql":
        raise ExplainError(
            f"explain() needs PostgreSQL, got dialect {dialect.name!r}: EXPLAIN (FORMAT JSON) "
            "is PostgreSQL syntax. Connect with a postgresql+psycopg:// URL."
        )


def _wrong_connection(name: str, conn: object, wanted: str, twin: str) -> ExplainError:
    return ExplainError(
        f"{name}() needs a {wanted}, got {type(conn).__name__}: the plan is taken in the "
        f"caller's transaction. Pass a connection or session, or use {twin}() instead."
    )


def _settings_rejected(exc: DBAPIError) -> ExplainError:
    reason = str(exc.orig or exc).strip().splitlines()[0]
    return ExplainError(
        f"PostgreSQL rejected a planner setting: {reason}. Check the name (SHOW ALL lists "
        "them; an extension's need it loaded). The savepoint was rolled back, so the "
        "transaction is still usable."
    )
