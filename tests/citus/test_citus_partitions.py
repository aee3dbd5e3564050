"""A TenantScoped table hash-partitioned by the tenant, distributed: partitions and their
policies (rls.for_partitions) follow the distribution, queries route to one shard."""

from __future__ import annotations

import pytest
from sqlalchemy import BigInteger, MetaData, func, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from pgpatterns.bulk import copy_rows
from pgpatterns.citus import (
    distribute,
    table_distribution,
    task_counts,
    tenant_context,
    tenant_filtered,
)
from pgpatterns.ddl import Partition, attach
from pgpatterns.explain import explain
from pgpatterns.rls import TenantScoped, for_partitions, rls_objects
from pgpatterns.testing.citus import APP_ROLE, CitusSchema

pytestmark = pytest.mark.citus


class Base(DeclarativeBase):
    metadata = MetaData()


class Event(TenantScoped, Base):
    __tablename__ = "p_events"
    __tenant_roles__ = (APP_ROLE,)
    __tenant_primary_key__ = True
    __table_args__ = {"postgresql_partition_by": "HASH (tenant_id)"}
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str]


PARTS = [Partition(f"p_events_{i}", Event.__table__, hash_=(2, i)) for i in range(2)]  # type: ignore[arg-type]
attach(Base.metadata, *PARTS, *for_partitions(rls_objects(Event.__table__), PARTS))  # type: ignore[arg-type]
distribute(Base.metadata, shard_count=4)


def test_partitioned_tenant_table_is_distributed_and_routed(pg_citus: CitusSchema) -> None:
    with pg_citus.engine.begin() as conn:
        Base.metadata.create_all(conn)
        copy_rows(conn, Event.__table__, [(t, t * 100 + i, "click")  # type: ignore[arg-type]
                                          for t in (1, 2, 3) for i in range(10)],
                  columns=["tenant_id", "id", "kind"])
        parent = table_distribution(conn, Event.__table__)  # type: ignore[arg-type]
        part = table_distribution(conn, PARTS[0].table)
        policies = conn.execute(text(
            "SELECT count(*) FROM pg_policy WHERE polrelid IN"
            " ('p_events'::regclass, 'p_events_0'::regclass, 'p_events_1'::regclass)"
        )).scalar()
    assert parent is not None and part is not None
    assert parent["colocation"] == part["colocation"]
    assert policies == 3
    with Session(pg_citus.app_engine) as session, session.begin():
        tenant_context(session, 2)
        assert session.scalar(select(func.count()).select_from(Event)) == 10
        stmt = tenant_filtered(select(Event).where(Event.kind == "click"), 2)
        assert task_counts(explain(session, stmt)) == [1]
        # a partition queried directly is protected by its own policy
        assert session.scalar(text("SELECT count(DISTINCT tenant_id) FROM p_events_0")) <= 1
