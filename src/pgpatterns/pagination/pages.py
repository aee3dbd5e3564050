"""Keyset statements and pages (sync and async), and the index that serves an ordering."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Index,
    Integer,
    Select,
    and_,
    bindparam,
    inspect,
    or_,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Session

from pgpatterns._args import integer
from pgpatterns.ddl.base import check_name_length, short_name
from pgpatterns.errors import PaginationError
from pgpatterns.pagination._cursor import check_secret, decode_cursor, encode_cursor
from pgpatterns.pagination._order import Key, sort_keys

__all__ = ["Page", "index_for", "keyset", "keyset_page", "keyset_page_async", "next_cursor"]

_T = TypeVar("_T")
_MAX_LIMIT = 10_000
_BIND = "pgpatterns_after_"


@dataclass(frozen=True)
class Page(Generic[_T]):
    """One page: ``rows`` (at most ``limit``), the ``next_cursor`` and ``has_more``.

    Examples:
        >>> page = Page(rows=[1, 2], next_cursor="opaque", has_more=True)
        >>> page.has_more, len(page.rows)
        (True, 2)

    ``next_cursor`` is ``None`` on the last page. ``rows`` are SQLAlchemy ``Row`` objects;
    :attr:`scalars` gives their first elements (the entities of ``select(Model)``).
    """

    rows: list[_T]
    next_cursor: str | None
    has_more: bool

    @property
    def scalars(self) -> list[Any]:
        """The first element of every row (``select(Model)`` pages: the entities)."""
        return [row[0] for row in self.rows]  # type: ignore[index]


def _after(keys: list[Key], values: list[Any] | None) -> ColumnElement[bool]:
    """The keyset condition; with ``values=None`` its binds are named ``pgpatterns_after_<i>``
    (values passed at execution, so one built statement serves every page)."""
    binds = [bindparam(None, v, type_=k.column.type, unique=True)
             for k, v in zip(keys, values, strict=True)] if values is not None else [
             bindparam(f"{_BIND}{i}", type_=k.column.type) for i, k in enumerate(keys)]
    cols = [k.column for k in keys]
    if len({k.descending for k in keys}) == 1:
        if keys[0].descending:
            return tuple_(*cols) < tuple_(*binds)
        return tuple_(*cols) > tuple_(*binds)
    branches = []
    for i, key in enumerate(keys):
        equal = [cols[j] == binds[j] for j in range(i)]
        past = key.column < binds[i] if key.descending else key.column > binds[i]
        branches.append(and_(*equal, past))
    first = cols[0] <= binds[0] if keys[0].descending else cols[0] >= binds[0]
    return and_(first, or_(*branches))


def _check_stmt(where: str, stmt: object) -> Select[Any]:
    if not isinstance(stmt, Select):
        raise PaginationError(f"{where}(): stmt={stmt!r} is not accepted: pass a select().")
    if stmt._order_by_clauses or stmt._limit_clause is not None or stmt._offset_clause is not None:
        raise PaginationError(
            f"{where}(): stmt already has ORDER BY, LIMIT or OFFSET: pass the unordered "
            f"select() and give the order as order_by= and the page size as limit=.")
    return stmt


def keyset(
    stmt: Select[Any],
    *,
    order_by: Sequence[Any],
    after: str | None = None,
    secret: str | bytes | None = None,
    limit: int | None = None,
) -> Select[Any]:
    """``stmt`` ordered by ``order_by``, continuing after the cursor ``after``.

    Examples:
        >>> stmt = keyset(select(Post), order_by=[Post.id], after=cursor,
        ...               secret=KEY, limit=20)  # doctest: +SKIP

    Adds the keyset condition (when ``after`` is given; ``secret`` is then required), the
    ORDER BY, and ``LIMIT limit`` when given (:func:`keyset_page` asks for ``limit + 1``
    rows to learn whether another page follows). Raises :class:`PaginationError` or
    :class:`CursorError` before any SQL is sent.
    """
    stmt = _check_stmt("keyset", stmt)
    keys = sort_keys("keyset", order_by)
    if after is not None:
        if secret is None:
            raise PaginationError("keyset(): after= needs the secret= the cursor was signed "
                                  "with.")
        stmt = stmt.where(_after(keys, decode_cursor("keyset", keys, after, check_secret("keyset",
                                                                                secret))))
    stmt = stmt.order_by(*[k.column.desc() if k.descending else k.column for k in keys])
    if limit is not None:
        n = integer("keyset", "limit", limit, 1, _MAX_LIMIT + 1)
        stmt = stmt.limit(bindparam(None, n, type_=Integer, literal_execute=True, unique=True))
    return stmt


def _item(i: int) -> Callable[[Any], Any]:
    return lambda row: row[i]


def _attribute(i: int, name: str) -> Callable[[Any], Any]:
    return lambda row: getattr(row[i], name)


def _reader(where: str, stmt: Select[Any], keys: list[Key]) -> Callable[[Any], list[Any]]:
    """How to read the sort-key values from one result row of ``stmt``."""
    getters: list[Callable[[Any], Any]] = []
    descriptions = stmt.column_descriptions
    for key in keys:
        col, found = key.column, None
        for i, desc in enumerate(descriptions):
            expr, entity = desc.get("expr"), desc.get("entity")
            element = expr.__clause_element__() if hasattr(expr, "__clause_element__") else expr
            if isinstance(element, ColumnElement) and col in element.proxy_set:
                found = _item(i)
                break
            if entity is not None and expr is entity:
                mapper = inspect(entity).mapper
                if col in mapper.columns.values() or col.table in mapper.tables:
                    prop = mapper.get_property_by_column(col)
                    found = _attribute(i, prop.key)
                    break
        if found is None:
            missing = f"{col.table.name}.{col.name}"
            raise PaginationError(
                f"{where}(): the statement does not return the sort column {missing}: add it "
                f"to the statement's columns (or query the entity that maps it) so the next "
                f"cursor can be read from the last row.")
        getters.append(found)
    return lambda row: [get(row) for get in getters]


def next_cursor(row: Any, *, stmt: Select[Any], order_by: Sequence[Any],
                secret: str | bytes) -> str:
    """The cursor that continues after ``row`` (a result row of ``stmt``).

    Examples:
        >>> cursor = next_cursor(rows[-1], stmt=stmt, order_by=[Post.id],
        ...                      secret=KEY)  # doctest: +SKIP
    """
    keys = sort_keys("next_cursor", order_by)
    values = _reader("next_cursor", stmt, keys)(row)
    return encode_cursor(keys, values, check_secret("next_cursor", secret))


@dataclass(frozen=True)
class _Plan:
    stmt: Select[Any]
    params: dict[str, Any]
    read: Callable[[Any], list[Any]]
    keys: list[Key]
    secret: bytes
    limit: int


_Built = tuple[Select[Any], tuple[Any, ...], Select[Any], Callable[[Any], list[Any]]]
_BUILT: dict[tuple[int, tuple[int, ...], int, bool], _Built] = {}


def _plan(where: str, stmt: Any, order_by: Any, after: Any, secret: Any, limit: Any) -> _Plan:
    stmt = _check_stmt(where, stmt)
    keys = sort_keys(where, order_by)
    key = check_secret(where, secret)
    n = integer(where, "limit", limit, 1, _MAX_LIMIT)
    values = decode_cursor(where, keys, after, key) if after is not None else None
    params = {} if values is None else {f"{_BIND}{i}": v for i, v in enumerate(values)}
    # The same base statement and ordering objects (module constants, typically) reuse the
    # statement built last time: only the cursor's values change, passed as parameters.
    items = tuple(order_by)
    cache_key = (id(stmt), tuple(map(id, items)), n, values is None)
    hit = _BUILT.get(cache_key)  # the entry holds stmt and items: their ids stay theirs
    if hit is not None and hit[0] is stmt and all(
            a is b for a, b in zip(hit[1], items, strict=True)):
        return _Plan(hit[2], params, hit[3], keys, key, n)
    read = _reader(where, stmt, keys)
    built = stmt if values is None else stmt.where(_after(keys, None))
    built = built.order_by(*[k.column.desc() if k.descending else k.column for k in keys])
    built = built.limit(bindparam(None, n + 1, type_=Integer, literal_execute=True, unique=True))
    if len(_BUILT) >= 256:
        _BUILT.clear()
    _BUILT[cache_key] = (stmt, items, built, read)
    return _Plan(built, params, read, keys, key, n)


def _page(plan: _Plan, rows: list[Any]) -> Page[Any]:
    more = len(rows) > plan.limit
    rows = rows[: plan.limit]
    cursor = encode_cursor(plan.keys, plan.read(rows[-1]), plan.secret) if more else None
    return Page(rows=rows, next_cursor=cursor, has_more=more)


def keyset_page(
    session: Session | Connection, stmt: Select[Any], *, order_by: Sequence[Any],
    secret: str | bytes, after: str | None = None, limit: int = 20,
) -> Page[Any]:
    """Run one page of ``stmt``: at most ``limit`` rows after ``after``, and the next cursor.

    Examples:
        >>> page = keyset_page(session, select(Post), order_by=[Post.id],
        ...                    secret=KEY)  # doctest: +SKIP
        >>> more = keyset_page(session, select(Post), order_by=[Post.id], secret=KEY,
        ...                    after=page.next_cursor)  # doctest: +SKIP

    Fetches ``limit + 1`` rows: the extra row only tells whether another page follows.
    Works with a ``Session`` or a ``Connection`` (rows are ``Row`` objects either way).
    """
    plan = _plan("keyset_page", stmt, order_by, after, secret, limit)
    return _page(plan, list(session.execute(plan.stmt, plan.params).all()))


async def keyset_page_async(
    session: AsyncSession | AsyncConnection, stmt: Select[Any], *,
    order_by: Sequence[Any], secret: str | bytes, after: str | None = None, limit: int = 20,
) -> Page[Any]:
    """The asyncio twin of :func:`keyset_page` (``AsyncSession`` or ``AsyncConnection``).

    Examples:
        >>> page = await keyset_page_async(session, select(Post), order_by=[Post.id],
        ...                                secret=KEY)  # doctest: +SKIP
    """
    plan = _plan("keyset_page_async", stmt, order_by, after, secret, limit)
    return _page(plan, list((await session.execute(plan.stmt, plan.params)).all()))


def index_for(order_by: Sequence[Any], *, leading: Sequence[Any] = (),
              name: str | None = None) -> Index:
    """The B-tree index that serves ``order_by`` (declare it on the table, or in a migration).

    Examples:
        >>> ix = index_for([Post.created_at.desc(), Post.id.desc()],
        ...                leading=[Post.tenant_id])  # doctest: +SKIP

    ``leading`` are columns your query filters by equality first (a tenant's ``tenant_id``
    under row-level security, a ``status``): they go before the sort keys. One-direction
    orders get plain ascending columns (PostgreSQL scans them backwards for DESC); mixed
    orders keep their directions. Like ``Index(...)`` with columns, the index joins its
    table's ``indexes`` (so ``create_all`` and migrations see it): call it once, where the
    table is declared. The default name is ``<table>_<columns>_keyset_idx``
    (shortened past 63 bytes with a hash).
    """
    keys = sort_keys("index_for", order_by)
    lead: list[Column[Any]] = []
    for item in leading:
        element = item.__clause_element__() if hasattr(item, "__clause_element__") else item
        if not isinstance(element, Column) or element.table is not keys[0].column.table:
            raise PaginationError(f"index_for(): leading item {item!r} is not a column of "
                                  f"{keys[0].column.table.name}.")
        lead.append(element)
    mixed = len({k.descending for k in keys}) > 1
    exprs: list[Any] = [*lead, *[k.column.desc() if mixed and k.descending else k.column
                                 for k in keys]]
    table_name = str(keys[0].column.table.name)
    if name is None:
        name = short_name(table_name, *[c.name for c in lead], *[k.column.name for k in keys],
                          suffix="_keyset_idx")
    return Index(check_name_length("index", name), *exprs)
