"""pgpatterns.columns: compile-only checks and real-PostgreSQL behaviour of the mixins."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, Index, MetaData, String, insert, select, text, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.schema import CreateIndex, CreateTable

from pgpatterns.columns import (
    NAMING_CONVENTION,
    IdentityPrimaryKey,
    Money,
    SoftDelete,
    Timestamps,
    UUIDPrimaryKey,
    columns_ddl,
    uuid_v7_function,
)
from pgpatterns.ddl import Function, Trigger, attach
from pgpatterns.errors import ColumnError
from pgpatterns.testing.plugin import PgSchema

DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]


def _models() -> tuple[type[Any], type[Any], type[Any]]:
    class Base(DeclarativeBase):
        metadata = MetaData(naming_convention=NAMING_CONVENTION)

    class Invoice(IdentityPrimaryKey, Timestamps, Base):
        __tablename__ = "invoices"
        amount: Mapped[Decimal] = mapped_column(Money)
        note: Mapped[str | None] = mapped_column(String, nullable=True)

    class Account(UUIDPrimaryKey, SoftDelete, Base):
        __tablename__ = "accounts"
        email: Mapped[str]
        __table_args__ = (SoftDelete.unique_alive("email"), Index(None, "email"))

    return Base, Invoice, Account


# -- compile-only ------------------------------------------------------------------------
def test_ddl_shape() -> None:
    base, invoice, account = _models()
    inv = str(CreateTable(invoice.__table__).compile(dialect=DIALECT))
    assert "id BIGINT GENERATED ALWAYS AS IDENTITY" in inv
    assert "created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL" in inv
    assert "amount NUMERIC(19, 4)" in inv
    assert "CONSTRAINT invoices_pkey PRIMARY KEY (id)" in inv
    acc = str(CreateTable(account.__table__).compile(dialect=DIALECT))
    assert "id UUID DEFAULT pgpatterns_uuid_v7() NOT NULL" in acc
    indexes = {i.name: str(CreateIndex(i).compile(dialect=DIALECT)) for i in
               account.__table__.indexes}
    assert indexes == {
        "accounts_email_alive_key":
            "CREATE UNIQUE INDEX accounts_email_alive_key ON accounts (email) "
            "WHERE deleted_at IS NULL",
        "accounts_email_idx": "CREATE INDEX accounts_email_idx ON accounts (email)",
    }
    objects = columns_ddl(base.metadata)
    assert [type(o).__name__ for o in objects] == ["_UUIDv7Function", "Function", "Trigger"]
    trigger = objects[2]
    assert isinstance(trigger, Trigger)
    assert trigger.sql() == (
        "CREATE TRIGGER invoices_set_updated_at BEFORE UPDATE ON invoices FOR EACH ROW "
        "WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION pgpatterns_set_updated_at()"
    )
    # rendered without a server: the portable body (works on every version)
    assert "gen_random_uuid()" in uuid_v7_function().sql()


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (0.1, "float"),
        (Decimal("1.23456"), "more than 4 decimal places"),
        (Decimal("NaN"), "finite"),
        (Decimal(10) ** 15, r"less than 10\*\*15"),
        ("abc", "not a number"),
        (True, "bool"),
    ],
)
def test_money_refuses_lossy_values(value: object, fragment: str) -> None:
    with pytest.raises(ColumnError, match=fragment):
        Money().process_bind_param(value, DIALECT)


def test_money_accepts_exact_values() -> None:
    money = Money()
    assert money.process_bind_param("12.50", DIALECT) == Decimal("12.50")
    assert money.process_bind_param(7, DIALECT) == Decimal(7)
    assert money.process_bind_param(Decimal("-99999999999999.9999"), DIALECT) == Decimal(
        "-99999999999999.9999"
    )


def test_unique_alive_rejects_bad_columns() -> None:
    with pytest.raises(ColumnError, match="no columns"):
        SoftDelete.unique_alive()
    with pytest.raises(ColumnError, match="deleted_at"):
        SoftDelete.unique_alive("deleted_at")


# -- real PostgreSQL ---------------------------------------------------------------------
def _create(pg_schema: PgSchema) -> tuple[Engine, type[Any], type[Any]]:
    base, invoice, account = _models()
    attach(base.metadata, *columns_ddl(base.metadata))
    engine = pg_schema.engine
    with engine.begin() as conn:
        base.metadata.create_all(conn)
    return engine, invoice, account


def test_identity_and_money_round_trip(pg_schema: PgSchema) -> None:
    engine, invoice, _ = _create(pg_schema)
    with Session(engine) as session:
        row = invoice(amount=Decimal("1234.5678"))
        session.add(row)
        session.commit()
        assert isinstance(row.id, int)
        loaded = session.scalars(select(invoice.amount)).one()
    assert loaded == Decimal("1234.5678") and isinstance(loaded, Decimal)
    with engine.begin() as conn, pytest.raises(DBAPIError, match="GENERATED ALWAYS"):
        conn.execute(insert(invoice.__table__).values(id=99, amount=1))


def test_uuid_v7_default(pg_schema: PgSchema) -> None:
    engine, _, account = _create(pg_schema)
    with engine.begin() as conn:
        ids = conn.execute(
            insert(account.__table__).returning(account.__table__.c.id),
            [{"email": f"u{i}@example.com"} for i in range(20)],
        ).scalars().all()
        version = conn.execute(text("SHOW server_version_num")).scalar()
    now_ms = int(time.time() * 1000)
    for value in ids:
        assert isinstance(value, uuid.UUID)
        assert value.version == 7
        assert value.variant == uuid.RFC_4122
        assert abs((value.int >> 80) - now_ms) < 60_000  # 48-bit millisecond timestamp
    assert len(set(ids)) == 20
    assert int(str(version)) >= 130000


def test_updated_at_set_by_trigger_on_raw_sql(pg_schema: PgSchema) -> None:
    engine, invoice, _ = _create(pg_schema)
    table = invoice.__table__
    with engine.begin() as conn:
        conn.execute(insert(table).values(amount=1))
        conn.execute(text("UPDATE invoices SET created_at = now() - interval '1 day', "
                          "updated_at = now() - interval '1 day'"))
    with engine.begin() as conn:  # the trigger overrides the hand-set value above
        before = conn.execute(select(table.c.created_at, table.c.updated_at)).one()
    assert before.updated_at > before.created_at
    with engine.begin() as conn:
        conn.execute(text("UPDATE invoices SET created_at = created_at"))  # a no-op update
        unchanged = conn.execute(select(table.c.updated_at)).scalar_one()
    assert unchanged == before.updated_at
    with engine.begin() as conn:
        conn.execute(text("UPDATE invoices SET note = 'paid'"))  # raw SQL, not the ORM
        after = conn.execute(select(table.c.updated_at, text("now()"))).one()
    assert after[0] == after[1] and after[0] > before.updated_at
    assert isinstance(after[0], dt.datetime) and after[0].tzinfo is not None


def test_soft_delete_unique_among_live_rows(pg_schema: PgSchema) -> None:
    engine, _, account = _create(pg_schema)
    table = account.__table__
    with engine.begin() as conn:
        conn.execute(insert(table).values(email="a@example.com"))
        conn.execute(update(table).values(deleted_at=text("now()")))
        conn.execute(insert(table).values(email="a@example.com"))  # re-use after delete
        alive = conn.execute(
            select(table.c.email).where(account.alive())
        ).scalars().all()
    assert alive == ["a@example.com"]
    with engine.begin() as conn, pytest.raises(IntegrityError, match="accounts_email_alive_key"):
        conn.execute(insert(table).values(email="a@example.com"))


def test_uuid_function_is_native_on_18(pg_schema: PgSchema) -> None:
    engine, _, _ = _create(pg_schema)
    with engine.connect() as conn:
        body = conn.execute(
            text("SELECT prosrc FROM pg_proc WHERE proname = 'pgpatterns_uuid_v7'")
        ).scalar_one()
        major = conn.dialect.server_version_info[0]  # type: ignore[index]
    assert ("uuidv7()" in body) == (major >= 18)
    assert isinstance(uuid_v7_function(), Function)
