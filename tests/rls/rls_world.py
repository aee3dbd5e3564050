"""The shared RLS test schema: TenantScoped docs, hash-partitioned events, two views."""

from __future__ import annotations

import random
from dataclasses import dataclass

from sqlalchemy import BigInteger, Engine, MetaData, Table, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from pgpatterns.bulk import copy_rows
from pgpatterns.ddl import Partition, attach
from pgpatterns.rls import TenantScoped, for_partitions, rls_objects, rls_view
from pgpatterns.testing.plugin import PgSchema

TENANTS = (1, 2, 3, 4)
PARTS = 2  # events is hash-partitioned by tenant_id into this many partitions


@dataclass
class World:
    schema: PgSchema
    app: Engine
    docs: Table
    events: Table
    parts: list[Table]
    secure: Table  # rls_view over docs
    leaky: Table  # definer-rights view over docs (explicitly allowed)
    owner_of: dict[int, int]  # doc id -> tenant
    event_owner: dict[int, int]


def build(schema: PgSchema, app_role: str) -> World:
    class Base(DeclarativeBase):
        metadata = MetaData()

    class Doc(TenantScoped, Base):
        __tablename__ = "docs"
        __tenant_roles__ = (app_role,)
        id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
        body: Mapped[str]

    class Event(TenantScoped, Base):
        __tablename__ = "events"
        __tenant_roles__ = (app_role,)
        __tenant_primary_key__ = True
        __table_args__ = {"postgresql_partition_by": "HASH (tenant_id)"}
        id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
        kind: Mapped[str]

    docs, events = Doc.__table__, Event.__table__
    assert isinstance(docs, Table) and isinstance(events, Table)
    parts = [Partition(f"events_p{i}", events, hash_=(PARTS, i)) for i in range(PARTS)]
    secure = rls_view("docs_secure", select(docs.c.id, docs.c.tenant_id, docs.c.body))
    leaky = rls_view(
        "docs_leaky",
        select(docs.c.id, docs.c.tenant_id, docs.c.body),
        security_invoker=False,
        allow_definer_rights=True,
    )
    attach(Base.metadata, *parts, *for_partitions(rls_objects(events), parts), secure, leaky)
    rng = random.Random(9)
    owner_of = {i: rng.choice(TENANTS) for i in range(1, 41)}
    event_owner = {i: rng.choice(TENANTS) for i in range(1, 41)}
    with schema.engine.begin() as conn:
        Base.metadata.create_all(conn)
        copy_rows(conn, docs, ((t, i, f"doc {i}") for i, t in owner_of.items()),
                  columns=["tenant_id", "id", "body"])
        copy_rows(conn, events, ((t, i, "click") for i, t in event_owner.items()),
                  columns=["tenant_id", "id", "kind"])
    return World(schema, schema.app_engine, docs, events, [p.table for p in parts],
                 secure.table, leaky.table, owner_of, event_owner)
