"""pgpatterns.pagination: keyset pages equal OFFSET pages, use the index, refuse bad cursors."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from decimal import Decimal
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql
from sqlalchemy import (
    BigInteger,
    Connection,
    DateTime,
    Engine,
    Integer,
    MetaData,
    Numeric,
    Table,
    Text,
    Uuid,
    event,
    insert,
    select,
    text,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.schema import CreateIndex

from pgpatterns.bulk import copy_rows
from pgpatterns.errors import CursorError, PaginationError, PatternError
from pgpatterns.explain import Plan, explain, uses_index
from pgpatterns.pagination import (
    Page,
    index_for,
    keyset,
    keyset_page,
    keyset_page_async,
    next_cursor,
)
from pgpatterns.rls import TenantScoped, tenant_context
from pgpatterns.testing import Database
from pgpatterns.testing.plugin import PgSchema

KEY = "k" * 32
PG = postgresql.dialect()  # type: ignore[no-untyped-call]
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData()


class Item(Base):
    __tablename__ = "kp_items"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    a: Mapped[int] = mapped_column(Integer)
    b: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    price: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    ref: Mapped[uuid.UUID] = mapped_column(Uuid)
    note: Mapped[str | None] = mapped_column(Text)


items = cast(Table, Item.__table__)
ORDER: list[Any] = [Item.created_at.desc(), Item.id.desc()]
ITEM_INDEX = index_for(ORDER)
INDEX_NAME = str(ITEM_INDEX.name)
MIXED: list[Any] = [Item.a, Item.created_at.desc(), Item.id]
MIXED_INDEX = index_for(MIXED)


def _sql(stmt: Any) -> str:
    compiled = " ".join(str(stmt.compile(dialect=PG)).split())
    return re.sub(r"::(TIMESTAMP WITH TIME ZONE|BIGINT|INTEGER)", "", compiled)  # bind casts


# -- compile-only ---------------------------------------------------------------------------


def test_one_direction_is_a_row_comparison() -> None:
    cursor = _cursor_for(ORDER, [T0, 5])
    after = _sql(keyset(select(Item), order_by=ORDER, after=cursor, secret=KEY))
    assert "(kp_items.created_at, kp_items.id) < (%(param_1)s, %(param_2)s)" in after
    assert after.endswith("ORDER BY kp_items.created_at DESC, kp_items.id DESC")


def test_mixed_directions_expand_with_a_leading_bound() -> None:
    order = [Item.a, Item.created_at.desc(), Item.id]
    stmt = _sql(keyset(select(Item), order_by=order, after=_cursor_for(order, [1, T0, 2]),
                       secret=KEY))
    assert ("WHERE kp_items.a >= %(param_1)s AND (kp_items.a > %(param_1)s"
            " OR kp_items.a = %(param_1)s AND kp_items.created_at < %(param_2)s"
            " OR kp_items.a = %(param_1)s AND kp_items.created_at = %(param_2)s"
            " AND kp_items.id > %(param_3)s) ORDER BY") in stmt


def test_limit_is_rendered_inline_for_the_generic_plan() -> None:
    stmt = keyset(select(Item), order_by=ORDER, limit=7)
    compiled = stmt.compile(dialect=PG,
                            compile_kwargs={"render_postcompile": True})
    assert str(compiled).endswith("LIMIT 7")


@pytest.mark.parametrize(("order", "match"), [
    ([Item.created_at], "not a total order.*e.g. order_by=\\[..., id\\]"),
    ([Item.a, Item.b], "not a total order"),
    ([Item.note, Item.id], "nullable"),
    ([Item.created_at.desc().nulls_last(), Item.id], "NULLS FIRST/LAST"),
    ([Item.id, Item.id], "twice"),
    ([], "non-empty list"),
    ("id", "non-empty list"),
    ([text("id")], "not a table column"),
])
def test_bad_orders_are_refused(order: Any, match: str) -> None:
    with pytest.raises(PaginationError, match=match):
        keyset(select(Item), order_by=order)


def test_statement_with_its_own_order_or_limit_is_refused() -> None:
    for stmt in (select(Item).order_by(Item.id), select(Item).limit(3), select(Item).offset(3)):
        with pytest.raises(PaginationError, match="already has ORDER BY"):
            keyset(stmt, order_by=[Item.id])


def test_weak_secret_and_missing_sort_column_are_refused() -> None:
    with pytest.raises(PaginationError, match="at least 16 bytes"):
        keyset_page(Session(), select(Item), order_by=[Item.id], secret="short")
    with pytest.raises(PaginationError, match="does not return the sort column kp_items\\.a"):
        keyset_page(Session(), select(Item.id), order_by=[Item.a, Item.id], secret=KEY)
    with pytest.raises(PatternError, match="limit"):
        keyset_page(Session(), select(Item), order_by=[Item.id], secret=KEY, limit=0)


def _cursor_for(order: list[Any], values: list[Any], secret: str = KEY) -> str:
    from pgpatterns.pagination import _cursor, _order

    keys = _order.sort_keys("test", order)
    return _cursor.encode_cursor(keys, values, secret.encode())


def _b64(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_tampered_foreign_and_cross_order_cursors_are_refused_before_sql() -> None:
    good = _cursor_for(ORDER, [T0, 5])
    body, sig = good.split(".")
    payload = json.loads(__import__("base64").urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload["k"][1] = ["int", "6"]  # skip ahead: an edited id
    edited = _b64(json.dumps(payload, separators=(",", ":")).encode()) + "." + sig
    bad: dict[str, tuple[Any, Any, str]] = {
        "edited value": (edited, ORDER, "bad signature"),
        "other secret": (_cursor_for(ORDER, [T0, 5], secret="x" * 32), ORDER, "bad signature"),
        "other ordering": (_cursor_for([Item.a, Item.id], [1, 5]), ORDER, "another ordering"),
        "reversed ordering": (good, [Item.created_at, Item.id], "another ordering"),
        "garbage": ("not a cursor", ORDER, "malformed"),
        "bad base64": ("@@@.@@@", ORDER, "malformed"),
        "not a str": (42, ORDER, "is not a cursor"),
    }
    unbound = Session()  # any SQL would raise UnboundExecutionError: the refusal comes first
    for name, (cursor, order, match) in bad.items():
        with pytest.raises(CursorError, match=match):
            keyset_page(unbound, select(Item), order_by=order, secret=KEY, after=cursor)
        with pytest.raises(CursorError, match=match):
            keyset(select(Item), order_by=order, secret=KEY, after=cursor)
        assert name


def test_cursor_round_trips_typed_values() -> None:
    from pgpatterns.pagination import _cursor, _order

    order = [Item.created_at, Item.price, Item.ref, Item.b, Item.id]
    values = [T0, Decimal("1.10"), uuid.uuid4(), "é\"x", 2**62]
    keys = _order.sort_keys("t", order)
    assert _cursor.decode_cursor("t", keys, _cursor_for(order, values), KEY.encode()) == values


def test_index_for_names_the_index() -> None:
    assert ITEM_INDEX.name == "kp_items_created_at_id_keyset_idx"
    assert [c.name for c in ITEM_INDEX.columns] == ["created_at", "id"]
    mixed = index_for([Item.a, Item.created_at.desc(), Item.id], name="kp_items_mixed")
    assert "a, created_at DESC, id" in str(CreateIndex(mixed).compile(dialect=PG))
    items.indexes.discard(mixed)


# -- real PostgreSQL: pages == OFFSET -------------------------------------------------------

KEYS = {"a": Item.a, "b": Item.b, "created_at": Item.created_at, "price": Item.price}


@st.composite
def _orders(draw: Any) -> list[Any]:
    names = draw(st.lists(st.sampled_from(sorted(KEYS)), unique=True, max_size=3))
    cols = [*(KEYS[n] for n in names), Item.id]
    return [c.desc() if draw(st.booleans()) else c for c in cols]


ROWS = st.lists(st.tuples(st.integers(0, 2), st.sampled_from(["x", "y", "Z"]),
                          st.integers(0, 2), st.sampled_from(["0.50", "1.00", "-2.25"])),
                max_size=25)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None,
          max_examples=40)
@given(rows=ROWS, order=_orders(), limit=st.integers(1, 6), core=st.booleans())
def test_pages_concatenate_to_the_offset_listing(
    pg_session: Session, rows: list[Any], order: list[Any], limit: int, core: bool
) -> None:
    conn = pg_session.connection()
    items.create(conn, checkfirst=True)
    with pg_session.begin_nested() as nested:
        if rows:
            pg_session.execute(insert(Item), [
                {"id": i, "a": a, "b": b, "created_at": T0 + dt.timedelta(hours=h),
                 "price": Decimal(p), "ref": uuid.UUID(int=i)}
                for i, (a, b, h, p) in enumerate(rows)])
        base = select(items) if core else select(Item)
        listing = pg_session.execute(base.order_by(*order)).all()
        pages: list[Page[Any]] = []
        after = None
        while True:
            page = keyset_page(pg_session, base, order_by=order, secret=KEY, after=after,
                               limit=limit)
            offset = pg_session.execute(
                base.order_by(*order).limit(limit)
                .offset(len(pages) * limit)).all()
            assert page.rows == offset
            pages.append(page)
            assert page.has_more is (page.next_cursor is not None)
            if not page.has_more:
                break
            after = page.next_cursor
        assert [r for p in pages for r in p.rows] == listing
        assert len(pages) == max(1, -(-len(rows) // limit))
        nested.rollback()


async def test_async_pages_match(pg_async_session: Any) -> None:
    conn = await pg_async_session.connection()
    await conn.run_sync(lambda c: items.create(c, checkfirst=True))
    await pg_async_session.execute(insert(Item), [
        {"id": i, "a": i % 3, "b": "x", "created_at": T0 + dt.timedelta(minutes=i % 4),
         "price": Decimal(1), "ref": uuid.UUID(int=i)} for i in range(11)])
    seen: list[int] = []
    after = None
    while True:
        page: Page[Any] = await keyset_page_async(
            pg_async_session, select(Item), order_by=ORDER, secret=KEY, after=after, limit=4)
        seen += [item.id for item in page.scalars]
        if page.next_cursor is None:
            break
        after = page.next_cursor
    expected = (await pg_async_session.scalars(select(Item.id).order_by(*ORDER))).all()
    assert seen == list(expected) and len(seen) == 11


# -- real PostgreSQL: the plan --------------------------------------------------------------

N = 20_000


def _load(engine: Engine) -> None:
    with engine.begin() as conn:
        Base.metadata.create_all(conn)
        copy_rows(conn, items, (
            (i, i % 7, "b", T0 + dt.timedelta(seconds=i // 3), Decimal(1), uuid.UUID(int=i),
             None) for i in range(N)))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE kp_items"))


def _placeholders(statement: str) -> list[str]:
    return list(dict.fromkeys(re.findall(r"%\((\w+)\)s", statement)))


def _generic_plan_after_12(conn: Connection, stmt: Any) -> tuple[int, Plan | None]:
    """Run ``stmt`` 12 times (psycopg prepares it on the 6th); its generic plan, if chosen."""
    sent: list[tuple[str, Any]] = []

    def remember(c: Any, cursor: Any, statement: str, parameters: Any, *a: Any) -> None:
        sent.append((statement, parameters))

    event.listen(conn, "before_cursor_execute", remember)
    try:
        first = conn.execute(stmt).all()
        for _ in range(11):
            assert conn.execute(stmt).all() == first
    finally:
        event.remove(conn, "before_cursor_execute", remember)
    statement, params = sent[-1]
    row = conn.execute(text(
        "SELECT name, generic_plans, custom_plans FROM pg_prepared_statements"
        " ORDER BY generic_plans + custom_plans DESC LIMIT 1")).one()
    assert row.generic_plans + row.custom_plans >= 6, "psycopg did not prepare the statement"
    conn.execute(text("SELECT set_config('plan_cache_mode', 'force_generic_plan', true)"))
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur:
        args = sql.SQL(", ").join(map(sql.Literal, [params[n] for n in _placeholders(statement)]))
        cur.execute(sql.SQL("EXPLAIN (FORMAT JSON) EXECUTE {}({})").format(
            sql.Identifier(row.name), args), prepare=False)
        found = cur.fetchone()
    assert found is not None
    return row.generic_plans, Plan({"Plan": found[0][0]["Plan"]})


@pytest.mark.parametrize("mixed", [False, True], ids=["one direction", "mixed directions"])
def test_the_index_serves_every_page_and_the_generic_plan(
    pg_schema: PgSchema, mixed: bool
) -> None:
    _load(pg_schema.engine)
    order, name = (MIXED, str(MIXED_INDEX.name)) if mixed else (ORDER, INDEX_NAME)
    values = [3, T0 + dt.timedelta(seconds=N // 6), N // 2] if mixed else [
        T0 + dt.timedelta(seconds=N // 6), N // 2]
    stmt = keyset(select(Item), order_by=order, after=_cursor_for(order, values), secret=KEY,
                  limit=21)
    with Session(pg_schema.engine) as session:
        assert uses_index(explain(session, stmt, analyze=True), name)
        first = explain(session, keyset(select(Item), order_by=order, limit=21), analyze=True)
        assert uses_index(first, name)
    with pg_schema.engine.connect() as conn, conn.begin():
        generic, plan = _generic_plan_after_12(conn, stmt)
        assert plan is not None
        assert uses_index(plan, name), (generic, plan.raw)


# -- real PostgreSQL: a tenant's pages, as the app role -------------------------------------


def test_tenant_pages_stay_in_the_tenant(pg_schema: PgSchema, pg_database: Database) -> None:
    class TBase(DeclarativeBase):
        metadata = MetaData()

    class Note(TenantScoped, TBase):
        __tablename__ = "kp_notes"
        __tenant_roles__ = (pg_database.app_role,)
        id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
        created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))

    order = [Note.created_at.desc(), Note.id.desc()]
    index = index_for(order, leading=[Note.tenant_id])
    assert [c.name for c in index.columns] == ["tenant_id", "created_at", "id"]
    with pg_schema.engine.begin() as conn:
        TBase.metadata.create_all(conn)
        copy_rows(conn, Note, (
            (1 + i % 3, i, T0 + dt.timedelta(minutes=i // 2)) for i in range(3000)),
            columns=["tenant_id", "id", "created_at"])
        conn.execute(text("ANALYZE kp_notes"))
    with Session(pg_schema.app_engine) as session, session.begin():
        tenant_context(session, 2)
        seen, after = [], None
        while True:
            page = keyset_page(session, select(Note), order_by=order, secret=KEY, after=after,
                               limit=97)
            seen += page.scalars
            if not page.has_more:
                break
            after = page.next_cursor
        assert {n.tenant_id for n in seen} == {2}
        assert [n.id for n in seen] == sorted((i for i in range(3000) if i % 3 == 1),
                                              key=lambda i: (i // 2, i), reverse=True)
        plan = explain(session, keyset(select(Note), order_by=order, secret=KEY, after=after,
                                       limit=98))
        assert uses_index(plan, str(index.name))


def test_pages_run_on_a_connection_too(pg_engine: Engine) -> None:
    with pg_engine.connect() as conn, conn.begin():
        items.create(conn)
        conn.execute(insert(items), [
            {"id": i, "a": 0, "b": "b", "created_at": T0, "price": 1, "ref": uuid.UUID(int=i)}
            for i in range(5)])
        page = keyset_page(conn, select(items.c.id, items.c.created_at),
                           order_by=ORDER, secret=KEY, limit=3)
        rest = keyset_page(conn, select(items.c.id, items.c.created_at),
                           order_by=ORDER, secret=KEY, limit=3, after=page.next_cursor)
        assert [r.id for r in page.rows + rest.rows] == [4, 3, 2, 1, 0]
        assert rest.next_cursor is None and not rest.has_more
        conn.rollback()


def test_next_cursor_and_reused_statements_stay_apart(pg_engine: Engine) -> None:
    """One base statement paged by two orderings in turn: each page follows its own order."""
    base = select(items.c.id, items.c.a, items.c.created_at)
    by_a: list[Any] = [items.c.a, items.c.id.desc()]
    newest: list[Any] = [items.c.created_at.desc(), items.c.id]
    with pg_engine.connect() as conn, conn.begin():
        items.create(conn)
        conn.execute(insert(items), [
            {"id": i, "a": i % 2, "b": "b", "created_at": T0 + dt.timedelta(seconds=i // 2),
             "price": 1, "ref": uuid.UUID(int=i)} for i in range(6)])
        pages: dict[str, list[int]] = {"a": [], "new": []}
        after: dict[str, str | None] = {"a": None, "new": None}
        for _ in range(3):
            for name, order in (("a", by_a), ("new", newest)):
                page = keyset_page(conn, base, order_by=order, secret=KEY, limit=2,
                                   after=after[name])
                pages[name] += [r.id for r in page.rows]
                after[name] = page.next_cursor
        assert pages == {"a": [4, 2, 0, 5, 3, 1], "new": [4, 5, 2, 3, 0, 1]}
        last = conn.execute(keyset(base, order_by=by_a, limit=1)).one()
        cursor = next_cursor(last, stmt=base, order_by=by_a, secret=KEY)
        rest = keyset_page(conn, base, order_by=by_a, secret=KEY, after=cursor, limit=9)
        assert [r.id for r in rest.rows] == [2, 0, 5, 3, 1] and not rest.has_more
        conn.rollback()
