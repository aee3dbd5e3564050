"""Bulk loading through PostgreSQL's ``COPY ... FROM STDIN`` (psycopg 3), sync and async.

Examples:
    >>> from pgpatterns.bulk import copy_rows
    >>> with engine.begin() as conn:  # doctest: +SKIP
    ...     copy_rows(conn, Item, ({"id": i, "name": f"item {i}"} for i in range(1_000_000)))
    1000000

Rows are streamed: the iterable is consumed one row at a time while psycopg sends the data,
so a generator of millions of rows never sits in memory.

Warning:
    - The COPY runs in the caller's transaction, inside a savepoint, and does not commit (on
      an AUTOCOMMIT connection it is a transaction of its own, without a savepoint). It
      is all-or-nothing: when a row is rejected (by the checks here or by PostgreSQL),
      :class:`BulkLoadError` is raised, nothing of the COPY is written, and the savepoint is
      rolled back: the transaction stays usable and the caller's earlier work in it is kept.
      A ``Session`` is flushed first when it autoflushes.
    - Values are checked before they are sent, every row as it streams: a ``bool`` for a
      number column (``True`` is not written as 1), an ``int`` out of the column's range,
      a ``datetime`` for a ``date`` column (its time would be dropped). Checks by the
      model's declared type run before any SQL (so a bad row 0 sends nothing); checks by
      the database's type run after the catalog read, row 0 before the COPY starts.
      Anything else a later row gets wrong (a type psycopg cannot dump, a constraint)
      stops the COPY mid-stream and rolls the savepoint back. Elements of arrays and
      json documents are not checked here.
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

import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import psycopg
from sqlalchemy import Connection, Table
from sqlalchemy.orm import Session

from pgpatterns.bulk._adapt import (
    _COLUMN_TYPES,
    _db_error,
    _first_row,
    _row_error,
    _setup,
    rows_to_write,
)
from pgpatterns.bulk._rows import _plan
from pgpatterns.errors import BulkLoadError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

__all__ = ["copy_rows", "copy_rows_async"]


@contextlib.asynccontextmanager
async def _no_savepoint() -> AsyncIterator[None]:
    yield  # AUTOCOMMIT: the COPY is a transaction of its own


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
        BulkLoadError: ``rows`` is not an iterable of rows, or a row does not fit the table
            (raised before any SQL is sent for row 0 where the model tells, before the COPY
            starts for row 0 otherwise, mid-stream for later rows), or PostgreSQL rejected
            the data (the original error is the ``__cause__``). Nothing is written and the
            transaction stays usable (the COPY's savepoint is rolled back).
    """
    plan = _plan(table, rows, columns)
    if plan.empty:
        return 0
    began = isinstance(connection, Connection) and not connection.in_transaction()
    conn = _sync_connection(connection)
    catalog = conn.execute(_COLUMN_TYPES, {"name": plan.label}).all()
    raw = cast(psycopg.Connection[Any], conn.connection.driver_connection)
    count = 0
    with raw.cursor() as cursor:
        try:
            setup = _setup(cursor, plan, catalog)
            first = _first_row(cursor, plan, setup)
        except BulkLoadError:
            if began:  # only the catalog was read: leave the connection as it was
                conn.rollback()
            raise
        with conn.begin_nested() if not raw.autocommit else contextlib.nullcontext():
            try:
                with cursor.copy(setup.statement) as copy:
                    copy.set_types(setup.oids)
                    for values in rows_to_write(plan, setup, first):
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
    from sqlalchemy.ext.asyncio import AsyncConnection

    plan = _plan(table, rows, columns)
    if plan.empty:
        return 0
    began = isinstance(connection, AsyncConnection) and not connection.in_transaction()
    conn = await _async_connection(connection)
    catalog = (await conn.execute(_COLUMN_TYPES, {"name": plan.label})).all()
    fairy = await conn.get_raw_connection()
    raw = cast(psycopg.AsyncConnection[Any], fairy.driver_connection)
    count = 0
    async with raw.cursor() as cursor:
        try:
            setup = _setup(cursor, plan, catalog)
            first = _first_row(cursor, plan, setup)
        except BulkLoadError:
            if began:
                await conn.rollback()
            raise
        async with conn.begin_nested() if not raw.autocommit else _no_savepoint():
            try:
                async with cursor.copy(setup.statement) as copy:
                    copy.set_types(setup.oids)
                    for values in rows_to_write(plan, setup, first):
                        try:
                            await copy.write_row(values)
                        except Exception as exc:
                            raise _row_error(cursor, plan, setup, count, values, exc) from exc
                        count += 1
            except psycopg.Error as exc:
                raise _db_error(plan, exc) from exc
    return count
