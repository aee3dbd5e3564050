"""Bulk loading through PostgreSQL's ``COPY ... FROM STDIN`` (psycopg 3), sync and async.

Examples:
    >>> from pgpatterns.bulk import copy_rows
    >>> with engine.begin() as conn:  # doctest: +SKIP
    ...     copy_rows(conn, Item, ({"id": i, "name": f"item {i}"} for i in range(1_000_000)))
    1000000

Rows are streamed: the iterable is consumed one row at a time while psycopg sends the data,
so a generator of millions of rows never sits in memory.

Warning:
    - The COPY runs in the caller's transaction and does not commit. It is all-or-nothing:
      when a row is rejected (by the checks here or by PostgreSQL), :class:`BulkLoadError` is
      raised, nothing is written, and the transaction is left *aborted*: roll it (or its
      savepoint) back. A ``Session`` is flushed first when it autoflushes.
    - Column types are read from the database, and the data is sent in BINARY format when
      psycopg can dump every column type that way (built-in types; pgvector's ``vector``,
      ``halfvec`` and ``sparsevec`` when the ``pgvector`` package is installed). Binary COPY
      applies no casts, so values must be of the Python type psycopg dumps for the column:
      ``Decimal`` or ``int`` for numeric (not ``float``), an aware ``datetime`` for
      ``timestamptz`` and a naive one for ``timestamp``, ``uuid.UUID`` for uuid, ``bool`` for
      boolean, a list or numpy array for ``vector`` (pgvector objects for the other two).
      Out-of-range integers and reals are refused, not truncated. A table with a type psycopg
      cannot dump in binary (an enum, ``ltree``, ``citext``, ...) is sent as TEXT instead,
      and values of such columns must be ``str`` in PostgreSQL's input syntax.
    - ``None`` is SQL NULL in every column, including json/jsonb (never JSON ``null``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import psycopg
from sqlalchemy import Connection, Table
from sqlalchemy.orm import Session

from pgpatterns.bulk._adapt import _COLUMN_TYPES, _db_error, _row_error, _setup
from pgpatterns.bulk._rows import _plan

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

__all__ = ["copy_rows", "copy_rows_async"]


def _sync_connection(connection: Connection | Session) -> Connection:
    if isinstance(connection, Session):
        if connection.autoflush:
            connection.flush()
        return connection.connection()
    if not connection.in_transaction():
        connection.begin()  # what autobegin would do: the caller commits or rolls back
    return connection


def copy_rows(
    connection: Connection | Session,
    table: Table | type[Any],
    rows: Iterable[Mapping[str, Any]] | Iterable[Sequence[Any]],
    *,
    columns: Sequence[str] | None = None,
) -> int:
    """Load rows into a table with ``COPY ... FROM STDIN``, streaming them.

    Examples:
        >>> rows = ({"id": i, "embedding": [i, 0.5, 1.0]} for i in range(100_000))
        >>> copy_rows(session, Item, rows)  # doctest: +SKIP
        100000

    Args:
        connection: A SQLAlchemy ``Connection`` or ``Session`` (psycopg 3 driver). The COPY
            runs in its transaction, which is not committed.
        table: A ``Table`` or a class mapped to one.
        rows: Dicts keyed by column name, or tuples in ``columns`` order. Consumed lazily.
        columns: The columns to fill (others get their defaults). Default: the keys of the
            first dict row, or every non-generated column of the table for tuple rows.

    Returns:
        The number of rows written.

    Raises:
        BulkLoadError: A row does not fit the table (raised before any SQL is sent for the
            first row, or mid-stream for later rows), or PostgreSQL rejected the data (the
            original error is the ``__cause__``). Nothing is written; after a mid-stream
            error the transaction is aborted and must be rolled back.
    """
    plan = _plan(table, rows, columns)
    if plan.empty:
        return 0
    conn = _sync_connection(connection)
    catalog = conn.execute(_COLUMN_TYPES, {"name": plan.label}).all()
    raw = cast(psycopg.Connection[Any], conn.connection.driver_connection)
    count = 0
    with raw.cursor() as cursor:
        setup = _setup(cursor, plan, catalog)
        try:
            with cursor.copy(setup.statement) as copy:
                copy.set_types(setup.oids)
                for values in plan.values:
                    try:
                        copy.write_row(values)
                    except Exception as exc:
                        raise _row_error(cursor, plan, setup, count, values, exc) from exc
                    count += 1
        except psycopg.Error as exc:
            raise _db_error(plan, exc) from exc
    return count


async def _async_connection(connection: AsyncConnection | AsyncSession) -> AsyncConnection:
    from sqlalchemy.ext.asyncio import AsyncSession

    if isinstance(connection, AsyncSession):
        if connection.sync_session.autoflush:
            await connection.flush()
        return await connection.connection()
    if not connection.in_transaction():
        await connection.begin()
    return connection


async def copy_rows_async(
    connection: AsyncConnection | AsyncSession,
    table: Table | type[Any],
    rows: Iterable[Mapping[str, Any]] | Iterable[Sequence[Any]],
    *,
    columns: Sequence[str] | None = None,
) -> int:
    """Async twin of :func:`copy_rows`, for an ``AsyncConnection`` or ``AsyncSession``.

    Examples:
        >>> await copy_rows_async(async_session, Item, [(1, "a"), (2, "b")])  # doctest: +SKIP
        2

    ``rows`` is an ordinary (sync) iterable, streamed as in :func:`copy_rows`; arguments,
    return value and errors are the same.
    """
    plan = _plan(table, rows, columns)
    if plan.empty:
        return 0
    conn = await _async_connection(connection)
    catalog = (await conn.execute(_COLUMN_TYPES, {"name": plan.label})).all()
    fairy = await conn.get_raw_connection()
    raw = cast(psycopg.AsyncConnection[Any], fairy.driver_connection)
    count = 0
    async with raw.cursor() as cursor:
        setup = _setup(cursor, plan, catalog)
        try:
            async with cursor.copy(setup.statement) as copy:
                copy.set_types(setup.oids)
                for values in plan.values:
                    try:
                        await copy.write_row(values)
                    except Exception as exc:
                        raise _row_error(cursor, plan, setup, count, values, exc) from exc
                    count += 1
        except psycopg.Error as exc:
            raise _db_error(plan, exc) from exc
    return count
