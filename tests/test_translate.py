"""One error translator (#20): every SQLSTATE provoked for real, sync, async and engine hook."""

from __future__ import annotations

import asyncio
import pickle
import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Integer,
    MetaData,
    Table,
    Text,
    insert,
    text,
    update,
)
from sqlalchemy.exc import DataError, IntegrityError, ProgrammingError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from pgpatterns.constraints import check, no_overlap
from pgpatterns.errors import (
    ArgumentError,
    CheckViolationError,
    ConcurrentUpdateError,
    ForeignKeyViolationError,
    JsonbSchemaViolationError,
    NotNullViolationError,
    OverlapError,
    PatternError,
    RowSecurityError,
    TreeNodeNotFoundError,
    UniqueViolationError,
    translate,
)
from pgpatterns.jsonb import jsonb_schema_check
from pgpatterns.rls import TenantScoped, tenant_context
from pgpatterns.testing import Database
from pgpatterns.testing.plugin import PgSchema
from pgpatterns.translate import translate_on
from pgpatterns.trees import AdjacencyListMixin

metadata = MetaData()
users = Table(
    "tr_users", metadata,
    Column("id", Integer, primary_key=True),
    Column("email", Text, nullable=False, unique=True),
    Column("qty", Integer, nullable=False, server_default="1"),
)
users.append_constraint(check.positive(users.c.qty))
orders = Table(
    "tr_orders", metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", ForeignKey("tr_users.id"), nullable=False),
)
bookings = Table(
    "tr_bookings", metadata,
    Column("id", Integer, primary_key=True),
    Column("starts_at", DateTime), Column("ends_at", DateTime),
)
no_overlap(bookings, ("starts_at", "ends_at"))


class Base(DeclarativeBase):
    metadata = metadata


class TrNode(AdjacencyListMixin, Base):
    __tablename__ = "tr_nodes"
    id: Mapped[int] = mapped_column(Identity(), primary_key=True)


@pytest.fixture
def db(pg_schema: PgSchema) -> Iterator[PgSchema]:
    from sqlalchemy.dialects.postgresql import JSONB

    docs = Table("tr_docs", MetaData(), Column("id", Integer, primary_key=True),
                 Column("body", JSONB))
    docs.append_constraint(jsonb_schema_check(docs.c.body, {"type": "object"}))
    with pg_schema.engine.begin() as conn:
        metadata.create_all(conn)
        docs.create(conn)
        conn.execute(insert(users), [{"id": 1, "email": "a@x.org"}])
        conn.execute(insert(bookings), [{"id": 1, "starts_at": datetime(2026, 1, 1, 9),
                                         "ends_at": datetime(2026, 1, 1, 11)}])
    yield pg_schema


CASES: list[tuple[Any, type[Exception], dict[str, Any]]] = [
    (insert(users).values(id=2, email="a@x.org"), UniqueViolationError,
     {"constraint": "tr_users_email_key", "table": "tr_users", "columns": ("email",),
      "values": "a@x.org", "sqlstate": "23505"}),
    (insert(orders).values(id=1, user_id=99), ForeignKeyViolationError,
     {"constraint": "tr_orders_user_id_fkey", "columns": ("user_id",), "values": "99",
      "other_table": "tr_users", "still_referenced": False}),
    (insert(users).values(id=3, email="b@x.org", qty=0), CheckViolationError,
     {"constraint": "qty_positive", "rule": "positive", "table": "tr_users"}),
    (insert(users).values(id=3, email=None), NotNullViolationError,
     {"columns": ("email",), "table": "tr_users"}),
    (insert(bookings).values(id=2, starts_at=datetime(2026, 1, 1, 10),
                             ends_at=datetime(2026, 1, 1, 12)), OverlapError,
     {"constraint": "tr_bookings_no_overlap"}),
    (text("INSERT INTO tr_docs VALUES (1, '[1]')"), JsonbSchemaViolationError, {}),
    (text("INSERT INTO tr_nodes (id, parent_id) OVERRIDING SYSTEM VALUE VALUES (5, 404)"),
     TreeNodeNotFoundError, {}),
]


@pytest.mark.parametrize(("statement", "kind", "fields"), CASES,
                         ids=[c[1].__name__ for c in CASES])
def test_each_refusal_becomes_its_typed_error(
    db: PgSchema, statement: Any, kind: type[Exception], fields: dict[str, Any]
) -> None:
    with db.engine.connect() as conn, conn.begin(), pytest.raises(kind) as err, translate():
        conn.execute(statement)
    assert isinstance(err.value.__cause__, IntegrityError)
    for name, value in fields.items():
        assert getattr(err.value, name) == value, name


def test_a_still_referenced_key_names_the_referencing_table(db: PgSchema) -> None:
    with db.engine.connect() as conn, conn.begin():
        conn.execute(insert(orders).values(id=1, user_id=1))
        with pytest.raises(ForeignKeyViolationError) as err, translate():
            conn.execute(text("DELETE FROM tr_users WHERE id = 1"))
    assert (err.value.still_referenced, err.value.other_table) == (True, "tr_orders")
    assert err.value.values == "1"


def test_other_errors_pass_through_unchanged(db: PgSchema) -> None:
    with db.engine.connect() as conn, conn.begin(), pytest.raises(DataError) as err, translate():
        conn.execute(text("SELECT 1/0"))
    assert not isinstance(err.value, PatternError)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(min_size=1, max_size=12).filter(lambda v: "\x00" not in v))
def test_duplicate_key_values_are_reported_verbatim(db: PgSchema, email: str) -> None:
    with db.engine.connect() as conn, conn.begin():
        conn.execute(insert(users).values(id=10, email=email))
        with pytest.raises(UniqueViolationError) as err, translate():
            conn.execute(insert(users).values(id=11, email=email))
    assert (err.value.columns, err.value.values) == (("email",), email)


def test_serialization_failure_is_retryable(db: PgSchema) -> None:
    with db.engine.connect() as first, db.engine.connect() as second:
        first.execution_options(isolation_level="REPEATABLE READ")
        with first.begin():
            first.execute(text("SELECT qty FROM tr_users WHERE id = 1")).all()
            with second.begin():
                second.execute(update(users).values(qty=5))
            with pytest.raises(ConcurrentUpdateError) as err, translate():
                first.execute(update(users).values(qty=6))
    assert err.value.retryable and err.value.__cause__ is not None


def test_rls_refusal_as_the_app_role(pg_schema: PgSchema, pg_database: Database) -> None:
    class NoteBase(DeclarativeBase):
        metadata = MetaData()

    class Note(TenantScoped, NoteBase):
        __tablename__ = "tr_notes"
        __tenant_roles__ = (pg_database.app_role,)
        id: Mapped[int] = mapped_column(BigInteger, primary_key=True)

    with pg_schema.engine.begin() as conn:
        NoteBase.metadata.create_all(conn)
    with Session(pg_schema.app_engine) as s, s.begin():
        tenant_context(s, 1)
        s.add(Note(id=1, tenant_id=2))
        with pytest.raises(RowSecurityError) as err, translate():
            s.flush()
    assert err.value.table == "tr_notes"
    assert "row-level security" in str(err.value.__cause__)


def test_async_flush_inside_a_plain_with(db: PgSchema, pg_database: Database) -> None:
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    async def run() -> Exception:
        engine = create_async_engine(
            pg_database.url, connect_args=pg_database.search_path_args(db.name))
        try:
            async with AsyncSession(engine) as s, s.begin():
                await s.execute(insert(users).values(id=7, email="c@x.org"))
                with pytest.raises(UniqueViolationError) as err, translate():
                    await s.execute(insert(users).values(id=8, email="c@x.org"))
                return err.value
        finally:
            await engine.dispose()

    error = asyncio.run(run())
    assert isinstance(error, UniqueViolationError) and error.columns == ("email",)


def test_engine_hook_keeps_sqlalchemy_classes_and_can_be_removed(db: PgSchema) -> None:
    off = translate_on(sessionmaker(db.engine))
    assert translate_on(db.engine) is not None  # twice: still one listener
    try:
        with Session(db.engine) as s, s.begin(), pytest.raises(UniqueViolationError) as err:
            s.execute(insert(users).values(id=2, email="a@x.org"))
        assert isinstance(err.value, IntegrityError) and err.value.orig is not None
        assert err.value.columns == ("email",) and "duplicate key" in str(err.value)
        copy = pickle.loads(pickle.dumps(err.value))
        assert type(copy) is UniqueViolationError and copy.columns == ("email",)
        assert str(copy) == str(err.value)
        # translate() lets an already translated error through as it is
        with Session(db.engine) as s, s.begin(), pytest.raises(IntegrityError) as again, \
                translate():
            s.execute(insert(users).values(id=2, email="a@x.org"))
        assert isinstance(again.value, UniqueViolationError)
    finally:
        off()
    with Session(db.engine) as s, s.begin(), pytest.raises(IntegrityError) as plain:
        s.execute(insert(users).values(id=2, email="a@x.org"))
    assert not isinstance(plain.value, UniqueViolationError)


def test_engine_hook_refuses_an_unbound_target() -> None:
    with pytest.raises(ArgumentError, match="not bound to an engine"):
        translate_on(sessionmaker())


def test_family_translators_under_the_engine_hook(db: PgSchema) -> None:
    from pgpatterns.constraints import translate_errors
    from pgpatterns.trees import tree_errors

    off = translate_on(db.engine)
    try:
        with db.engine.connect() as conn, conn.begin(), \
                pytest.raises(TreeNodeNotFoundError) as err, tree_errors(TrNode):
            conn.execute(CASES[-1][0])
        assert "no TrNode has key 404" in str(err.value)
        with db.engine.connect() as conn, conn.begin(), pytest.raises(OverlapError), \
                translate_errors():
            conn.execute(CASES[4][0])
    finally:
        off()


def test_engine_hook_on_an_async_sessionmaker(db: PgSchema, pg_database: Database) -> None:
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

    async def run() -> Exception | None:
        engine = create_async_engine(
            pg_database.url, connect_args=pg_database.search_path_args(db.name))
        translate_on(async_sessionmaker(engine))
        try:
            async with async_sessionmaker(engine)() as s, s.begin():
                try:
                    await s.execute(insert(orders).values(id=1, user_id=77))
                except ForeignKeyViolationError as error:
                    return error
            return None
        finally:
            await engine.dispose()

    error = asyncio.run(run())
    assert isinstance(error, ForeignKeyViolationError) and isinstance(error, IntegrityError)
    assert error.values == "77" and error.other_table == "tr_users"


def test_deadlock_is_retryable(db: PgSchema) -> None:
    with db.engine.begin() as conn:
        conn.execute(insert(users).values(id=2, email="b@x.org"))
    barrier = threading.Barrier(2)
    outcomes: list[BaseException | None] = [None, None]

    def writer(index: int, first: int, second: int) -> None:
        with db.engine.connect() as conn, conn.begin():
            try:
                with translate():
                    conn.execute(update(users).where(users.c.id == first).values(qty=2))
                    barrier.wait(timeout=10)
                    conn.execute(update(users).where(users.c.id == second).values(qty=3))
            except ConcurrentUpdateError as exc:
                outcomes[index] = exc

    threads = [threading.Thread(target=writer, args=(0, 1, 2)),
               threading.Thread(target=writer, args=(1, 2, 1))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    failed = [o for o in outcomes if o is not None]
    assert len(failed) == 1, outcomes  # PostgreSQL aborts exactly one of the two
    cause = failed[0].__cause__
    assert getattr(getattr(cause, "orig", None), "sqlstate", None) == "40P01"


def test_plain_permission_denied_is_not_a_row_security_error(
    db: PgSchema, pg_database: Database
) -> None:
    role = db.engine.dialect.identifier_preparer.quote(pg_database.app_role)
    with db.engine.begin() as conn:
        conn.execute(text(f"REVOKE ALL ON tr_users FROM PUBLIC, {role}"))
    with db.app_engine.connect() as conn, conn.begin(), \
            pytest.raises(ProgrammingError) as err, translate():
        conn.execute(text("SELECT * FROM tr_users"))
    assert err.value.orig.sqlstate == "42501"  # type: ignore[union-attr]
    assert not isinstance(err.value, PatternError)
