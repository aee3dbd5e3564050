"""pgpatterns.explain: plans of real queries on real PostgreSQL, and the rendered EXPLAIN."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    delete,
    event,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Session
from sqlalchemy.schema import CreateTable

from pgpatterns.errors import ExplainError, PatternError
from pgpatterns.explain import (
    Plan,
    explain,
    explain_async,
    explain_stmt,
    has_seq_scan,
    nodes,
    plan_summary,
    scan_types,
    uses_index,
)
from pgpatterns.testing.plugin import PgSchema

metadata = MetaData()
items = Table(
    "items",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("code", String, nullable=False),
    Column("category", Integer, nullable=False),
    Column("tags", postgresql.ARRAY(Integer), nullable=False),
    Column("note", String, nullable=False, default=""),
    Index("items_code_idx", "code"),
    Index("items_category_idx", "category"),
    Index("items_tags_idx", "tags", postgresql_using="gin"),
)


class Base(DeclarativeBase):
    pass


class Item(Base):
    __table__ = items


ROWS = 20_000
FILL = text(
    "INSERT INTO items (id, code, category, tags, note) "
    "SELECT i, 'c' || i, i % 4, ARRAY[i % 1000, i % 7], md5(i::text) "
    "FROM generate_series(1, :rows) AS i"
)


def fill(conn: Connection) -> None:
    metadata.create_all(conn)
    conn.execute(FILL, {"rows": ROWS})
    conn.execute(
        text("SELECT setval(pg_get_serial_sequence('items', 'id'), :rows)"), {"rows": ROWS}
    )
    conn.execute(text("ANALYZE items"))


@pytest.fixture
def db(pg_schema: PgSchema) -> Iterator[Connection]:
    """A connection to a schema holding ``items`` (20k rows, analyzed, three indexes)."""
    with pg_schema.engine.begin() as conn:
        fill(conn)
    with pg_schema.engine.connect() as conn:
        yield conn


def by_code(code: str) -> Any:
    return select(items).where(items.c.code == code)


# --- compile only ---------------------------------------------------------------------


def test_rendered_explain_keeps_bind_parameters() -> None:
    dialect = postgresql.dialect()
    plain = explain_stmt(by_code("c42").limit(5)).compile(dialect=dialect)
    assert str(plain).startswith("EXPLAIN (FORMAT JSON) SELECT items.id, items.code")
    assert "WHERE items.code = %(code_1)s" in str(plain)
    assert "c42" not in str(plain)
    assert plain.params == {"code_1": "c42", "param_1": 5}

    full = explain_stmt(delete(items).where(items.c.id == 7), analyze=True, buffers=True)
    sql = str(full.compile(dialect=dialect))
    assert sql.startswith("EXPLAIN (FORMAT JSON, ANALYZE, BUFFERS) DELETE FROM items")
    analyzed = str(explain_stmt(text("SELECT 1"), analyze=True, verbose=True).compile())
    assert analyzed == "EXPLAIN (FORMAT JSON, ANALYZE, VERBOSE, BUFFERS OFF) SELECT 1"


def test_cache_key_covers_statement_and_options() -> None:
    def key(stmt: Any) -> Any:
        return stmt._generate_cache_key()

    same_shape = key(explain_stmt(by_code("a"))), key(explain_stmt(by_code("b")))
    assert same_shape[0] is not None
    assert same_shape[0] == same_shape[1]  # values are parameters, not part of the key
    assert key(explain_stmt(by_code("a"))) != key(explain_stmt(by_code("a"), analyze=True))
    assert key(explain_stmt(by_code("a"))) != key(explain_stmt(select(items.c.id)))


# --- plans on PostgreSQL --------------------------------------------------------------


def test_selective_equality_uses_btree_index(db: Connection) -> None:
    plan = explain(db, by_code("c123"))
    assert uses_index(plan, "items_code_idx"), plan
    assert not has_seq_scan(plan)
    assert not uses_index(plan, "items_category_idx")
    assert not plan.analyzed and plan.execution_time is None


def test_unindexed_and_unselective_queries_seq_scan(db: Connection) -> None:
    unindexed = explain(db, select(items).where(items.c.note == "x"))
    assert has_seq_scan(unindexed, "items"), unindexed
    assert not has_seq_scan(unindexed, "orders")
    unselective = explain(db, select(items).where(items.c.category < 3))
    assert has_seq_scan(unselective), unselective
    assert not uses_index(unselective, "items_category_idx")


def test_schema_qualified_names_match_with_verbose(db: Connection, pg_schema: PgSchema) -> None:
    plan = explain(db, select(items).where(items.c.note == "x"), verbose=True)
    assert has_seq_scan(plan, f"{pg_schema.name}.items")
    assert not has_seq_scan(plan, "public.items")
    assert f"Seq Scan on {pg_schema.name}.items" in plan_summary(plan)
    indexed = explain(db, by_code("c1"), verbose=True)
    assert uses_index(indexed, f"{pg_schema.name}.items_code_idx")
    assert not uses_index(indexed, "public.items_code_idx")


def test_settings_flip_the_plan_and_do_not_leak(db: Connection) -> None:
    stmt = select(items).where(items.c.category < 3)
    assert has_seq_scan(explain(db, stmt))
    forced = explain(db, stmt, settings={"enable_seqscan": False, "work_mem": "8MB"})
    assert not has_seq_scan(forced), forced
    assert uses_index(forced, "items_category_idx")
    assert db.execute(text("SELECT current_setting('enable_seqscan')")).scalar() == "on"


def test_analyze_reports_actual_rows_and_time(db: Connection) -> None:
    plan = explain(db, by_code("c77"), analyze=True)
    summary = plan_summary(plan)
    assert summary.startswith("Index Scan using items_code_idx on items; rows=1; time=")
    assert summary.endswith("ms"), summary  # BUFFERS OFF: PostgreSQL 18 would add them
    assert plan.analyzed and plan.execution_time is not None and plan.execution_time > 0
    assert plan.planning_time is not None
    missing = explain(db, by_code("nope"), analyze=True)
    assert "; rows=0;" in plan_summary(missing)  # binds of a cached statement are fresh


def test_buffers_are_reported(db: Connection) -> None:
    plan = explain(db, select(func.count()).select_from(items), analyze=True, buffers=True)
    assert plan.root["Shared Hit Blocks"] + plan.root["Shared Read Blocks"] > 0
    assert "; buffers hit=" in plan_summary(plan)
    planned = explain(db, by_code("c1"), buffers=True)
    assert "buffers" not in plan_summary(planned)  # not executed: no execution buffers


def test_analyze_on_dml_changes_nothing(db: Connection) -> None:
    count = select(func.count()).select_from(items)
    deleted = explain(db, delete(items).where(items.c.category == 1), analyze=True)
    assert plan_summary(deleted).startswith("Delete on items")
    assert sum(node.get("Actual Rows", 0) for node in nodes(deleted)) >= ROWS / 4
    updated = explain(db, update(items).values(note="changed"), analyze=True)
    assert plan_summary(updated).startswith("Update on items > Seq Scan on items")
    # no id: SQLAlchemy adds RETURNING items.id, and prefetches the Python default of note
    new_row = insert(items).values(code="new", category=0, tags=[])
    assert "RETURNING items.id" in str(explain_stmt(new_row).compile(db))
    inserted = explain(db, new_row, analyze=True)
    assert scan_types(inserted)[0] == "ModifyTable" and inserted.root["Actual Rows"] == 1
    assert db.execute(count).scalar() == ROWS
    assert db.execute(select(func.count()).where(items.c.note == "changed")).scalar() == 0
    assert db.execute(select(items.c.id).where(items.c.code == "new")).first() is None


def test_values_are_binds_and_cannot_inject(db: Connection) -> None:
    evil = "c1'; DROP TABLE items; --"
    plan = explain(db, by_code(evil), analyze=True)
    assert uses_index(plan, "items_code_idx")
    assert plan.root["Actual Rows"] == 0
    raw = text("SELECT id FROM items WHERE code = :code").bindparams(code=evil)
    assert uses_index(explain(db, raw, analyze=True), "items_code_idx")
    db.execute(insert(items).values(id=-5, code=evil, category=0, tags=[], note=""))
    found = explain(db, by_code(evil), analyze=True)
    assert found.root["Actual Rows"] == 1
    assert db.execute(select(func.count()).select_from(items)).scalar() == ROWS + 1


def test_gin_query_is_seen_through_bitmap_index_scan(db: Connection) -> None:
    plan = explain(db, select(items.c.id).where(items.c.tags.contains([7, 0])))
    assert uses_index(plan, "items_tags_idx"), plan
    assert "Bitmap Index Scan" in scan_types(plan)
    assert "Bitmap Index Scan on items_tags_idx" in plan_summary(plan)


def test_nodes_include_initplans(db: Connection) -> None:
    top = select(func.max(items.c.id)).scalar_subquery()
    plan = explain(db, select(items.c.code).where(items.c.id == top))
    relations = [node.get("Parent Relationship") for node in nodes(plan)]
    assert "InitPlan" in relations, plan.raw
    assert scan_types(plan)[0] == plan.root["Node Type"]
    assert len(scan_types(plan)) == len(list(nodes(plan))) >= 3


def test_plan_summary_is_one_line(db: Connection) -> None:
    stmt = by_code("c5").order_by(items.c.code).limit(10)
    plan = explain(db, stmt, analyze=True, buffers=True)
    summary = plan_summary(plan)
    assert len(summary.splitlines()) == 1
    assert summary.startswith("Limit > Index Scan using items_code_idx on items; rows=1; ")
    assert str(plan) == summary and repr(plan) == f"Plan({summary!r})"
    joined = explain(db, select(items.c.category, func.count()).group_by(items.c.category))
    assert len(plan_summary(joined).splitlines()) == 1
    assert "Aggregate" in plan_summary(joined)


def test_orm_session(pg_schema: PgSchema) -> None:
    with Session(pg_schema.engine) as session:
        fill(session.connection())
        session.add(Item(id=-3, code="pending", category=9, tags=[], note=""))
        plan = explain(session, select(Item).where(Item.code == "pending"), analyze=True)
        assert plan.root["Actual Rows"] == 1  # autoflushed first, like a query
        assert uses_index(plan, "items_code_idx")
        forced = explain(
            session, select(Item).where(Item.category < 3), settings={"enable_seqscan": "off"}
        )
        assert not has_seq_scan(forced)
        assert session.scalar(select(func.count()).select_from(Item)) == ROWS + 1


async def test_async_session(pg_async_session: AsyncSession) -> None:
    # a schema of its own, inside the rolled-back transaction, as the database is shared
    await pg_async_session.execute(text("CREATE SCHEMA explain_async"))
    await pg_async_session.execute(text("SET LOCAL search_path TO explain_async, public"))
    await pg_async_session.run_sync(lambda s: fill(s.connection()))
    plan = await explain_async(pg_async_session, by_code("c9"), analyze=True)
    assert uses_index(plan, "items_code_idx") and plan.execution_time is not None
    stmt = select(items).where(items.c.category < 3)
    assert has_seq_scan(await explain_async(pg_async_session, stmt))
    forced = await explain_async(pg_async_session, stmt, settings={"enable_seqscan": "off"})
    assert uses_index(forced, "items_category_idx")
    await explain_async(pg_async_session, delete(items), analyze=True)
    count = await pg_async_session.scalar(select(func.count()).select_from(items))
    assert count == ROWS


async def test_async_connection(pg_async_engine: Any) -> None:
    async with pg_async_engine.connect() as conn:
        plan = await explain_async(conn, text("SELECT :x AS x").bindparams(x="a'b"))
        assert scan_types(plan) == ["Result"]
        with pytest.raises(ExplainError, match="explain_async"):
            explain(conn, text("SELECT 1"))  # type: ignore[arg-type]


# --- errors ---------------------------------------------------------------------------


@pytest.fixture
def statements(pg_engine: Engine) -> Iterator[list[str]]:
    sent: list[str] = []

    def record(*args: Any) -> None:
        sent.append(args[2])

    event.listen(pg_engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(pg_engine, "before_cursor_execute", record)


@pytest.mark.parametrize(
    ("stmt", "match"),
    [
        ("SELECT 1", r"sqlalchemy\.text\(\)"),
        (CreateTable(items), "a CreateTable, which PostgreSQL cannot explain"),
        (42, "got a int"),
    ],
)
def test_bad_statement_is_rejected_before_sql(
    pg_engine: Engine, statements: list[str], stmt: Any, match: str
) -> None:
    with pg_engine.connect() as conn, pytest.raises(ExplainError, match=match):
        explain(conn, stmt)
    assert statements == []


def test_legacy_query_points_to_statement(pg_session: Session) -> None:
    with pytest.raises(ExplainError, match=r"query\.statement"):
        explain(pg_session, pg_session.query(Item))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "settings",
    [
        {"enable_seqscan; RESET ALL": "off"},
        {"": "off"},
        {"a.b.c": "1"},
        {"enable_seqscan": None},
        {"enable_seqscan": ["off"]},
    ],
)
def test_bad_settings_are_rejected_before_sql(
    pg_engine: Engine, statements: list[str], settings: Any
) -> None:
    with pg_engine.connect() as conn, pytest.raises(ExplainError, match="planner setting"):
        explain(conn, text("SELECT 1"), settings=settings)
    assert statements == []


def test_unknown_setting_is_translated_and_transaction_survives(pg_session: Session) -> None:
    with pytest.raises(ExplainError, match="enable_seqscam") as info:
        explain(pg_session, text("SELECT 1"), settings={"enable_seqscam": "off"})
    assert isinstance(info.value, PatternError) and info.value.__cause__ is not None
    assert pg_session.execute(text("SELECT 2")).scalar() == 2


async def test_wrong_connection_type(pg_engine: Engine) -> None:
    with pytest.raises(ExplainError, match="needs a Connection or Session, got str"):
        explain("postgresql://", text("SELECT 1"))  # type: ignore[arg-type]
    with pg_engine.connect() as conn, pytest.raises(ExplainError, match="use explain"):
        await explain_async(conn, text("SELECT 1"))  # type: ignore[arg-type]


def test_summary_escapes_newlines() -> None:
    plan = Plan({"Plan": {"Node Type": "Seq Scan", "Relation Name": "a\nb", "Plan Rows": 3}})
    assert plan_summary(plan) == "Seq Scan on a\\nb; est. rows=3"
