"""columns: what the key and timestamp conventions of pgpatterns.columns cost and buy.

* ``columns:insert-keys``: COPY N rows (server-generated keys) into a table already holding
  N rows: ``UUIDPrimaryKey`` (time-ordered v7) vs ``gen_random_uuid()`` (v4, random) vs
  ``IdentityPrimaryKey`` (bigint). The primary-key index size after the load is in
  ``extra``: random keys split pages all over the index, time-ordered ones append.
* ``columns:updated-at``: UPDATE 10^4 rows: the ``Timestamps`` trigger (pattern) vs the
  application setting ``updated_at = now()`` in the statement vs no stamp at all (limit).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import DateTime, Engine, Text, func, select, text, update
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from benchmarks.conftest import Scale, record
from pgpatterns.bulk import copy_rows
from pgpatterns.columns import IdentityPrimaryKey, Timestamps, UUIDPrimaryKey, columns_ddl
from pgpatterns.ddl import attach


class Base(DeclarativeBase):
    pass


class KeysV7(UUIDPrimaryKey, Base):
    __tablename__ = "bench_columns_v7"
    payload: Mapped[str] = mapped_column(Text)


class KeysV4(Base):
    __tablename__ = "bench_columns_v4"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, server_default=func.gen_random_uuid())
    payload: Mapped[str] = mapped_column(Text)


class KeysIdentity(IdentityPrimaryKey, Base):
    __tablename__ = "bench_columns_identity"
    payload: Mapped[str] = mapped_column(Text)


class Stamped(IdentityPrimaryKey, Timestamps, Base):
    __tablename__ = "bench_columns_stamped"
    value: Mapped[int]


class Plain(IdentityPrimaryKey, Base):
    __tablename__ = "bench_columns_plain"
    value: Mapped[int]
    updated_at: Mapped[Any] = mapped_column(DateTime(timezone=True), server_default=func.now())


attach(Base.metadata, *columns_ddl(Base.metadata))
UPDATED = 10_000


@pytest.fixture(scope="module")
def data(pg_module_engine: Engine, scale: Scale) -> Iterator[int]:
    n = scale.pick(quick=10_000, default=100_000)
    Base.metadata.drop_all(pg_module_engine)
    Base.metadata.create_all(pg_module_engine)
    with pg_module_engine.begin() as conn:
        for model in (Stamped, Plain):
            copy_rows(conn, model, ((i,) for i in range(n)), columns=["value"])
    with pg_module_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE bench_columns_stamped, bench_columns_plain"))
    yield n
    Base.metadata.drop_all(pg_module_engine)


def _keys(benchmark: Any, engine: Engine, scale: Scale, n: int, model: Any, case: str,
          role: str) -> None:
    table = model.__table__
    record(benchmark, question="columns:insert-keys", case=case, role=role, rows=n,
           scale=scale, plan=f"COPY {n} rows into a table of {n}; key made by the server")

    def setup() -> None:
        with engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {table.name}"))
            copy_rows(conn, model, ((f"row {i}",) for i in range(n)), columns=["payload"])

    def load() -> None:
        with engine.begin() as conn:
            copy_rows(conn, model, ((f"new {i}",) for i in range(n)), columns=["payload"])

    benchmark.pedantic(load, setup=setup, rounds=scale.rounds, iterations=1)
    with engine.connect() as conn:
        count = conn.scalar(select(func.count()).select_from(table))
        size = conn.scalar(select(func.pg_relation_size(f"{table.name}_pkey")))
    assert count == 2 * n
    benchmark.extra_info["pkey_index_mb"] = round(size / 2**20, 2)


def test_keys_uuid_v7(benchmark: Any, pg_engine: Engine, data: int, scale: Scale) -> None:
    _keys(benchmark, pg_engine, scale, data, KeysV7, "UUIDPrimaryKey (v7, time-ordered)",
          "pattern")


def test_keys_uuid_v4(benchmark: Any, pg_engine: Engine, data: int, scale: Scale) -> None:
    _keys(benchmark, pg_engine, scale, data, KeysV4, "gen_random_uuid() (v4, random)",
          "baseline")


def test_keys_identity(benchmark: Any, pg_engine: Engine, data: int, scale: Scale) -> None:
    _keys(benchmark, pg_engine, scale, data, KeysIdentity, "IdentityPrimaryKey (bigint)",
          "alternative")


def _updates(benchmark: Any, engine: Engine, scale: Scale, stmt: Any, case: str, role: str,
             check: Any) -> None:
    record(benchmark, question="columns:updated-at", case=case, role=role, rows=UPDATED,
           scale=scale, plan=f"UPDATE {UPDATED} rows by primary-key range")

    def run() -> None:
        with engine.begin() as conn:
            conn.execute(stmt)

    benchmark.pedantic(run, rounds=scale.rounds, iterations=1, warmup_rounds=1)
    with engine.connect() as conn:
        assert conn.scalar(check) == UPDATED


def test_updated_at_trigger(benchmark: Any, pg_engine: Engine, data: int, scale: Scale) -> None:
    stmt = update(Stamped).where(Stamped.id <= UPDATED).values(value=Stamped.value + 1)
    stamped = select(func.count()).where(Stamped.updated_at > Stamped.created_at)
    _updates(benchmark, pg_engine, scale, stmt, "Timestamps (trigger stamps updated_at)",
             "pattern", stamped)


def test_updated_at_in_statement(benchmark: Any, pg_engine: Engine, data: int,
                                 scale: Scale) -> None:
    stmt = (update(Plain).where(Plain.id <= UPDATED)
            .values(value=Plain.value + 1, updated_at=func.now()))
    _updates(benchmark, pg_engine, scale, stmt, "application sets updated_at = now()",
             "alternative", select(func.count()).where(Plain.id <= UPDATED))


def test_updated_at_none(benchmark: Any, pg_engine: Engine, data: int, scale: Scale) -> None:
    stmt = update(Plain).where(Plain.id <= UPDATED).values(value=Plain.value + 1)
    _updates(benchmark, pg_engine, scale, stmt, "no stamp", "limit",
             select(func.count()).where(Plain.id <= UPDATED))
