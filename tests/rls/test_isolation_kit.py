"""The isolation test kit passes a tenant-safe model and catches each safeguard removed (#16)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import BigInteger, Column, ForeignKey, MetaData, Table, Text, insert, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from pgpatterns.ddl import Partition, attach
from pgpatterns.denormalize import denormalized
from pgpatterns.rls import (
    TenantScoped,
    check_rls,
    for_partitions,
    rls_objects,
    rls_view,
    secure_table,
    tenant_column,
)
from pgpatterns.testing import Database, TenantIsolationLeak, assert_tenant_isolation
from pgpatterns.testing.plugin import PgSchema
from pgpatterns.trees import AdjacencyListMixin, TreeOptions, tree_guard


def _build(schema: PgSchema, role: str) -> MetaData:
    class Base(DeclarativeBase):
        metadata = MetaData()

    class Folder(TenantScoped, AdjacencyListMixin, Base):
        __tablename__ = "folders"
        __tenant_roles__ = (role,)
        __tree__ = TreeOptions(scope="tenant_id")
        id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
        name: Mapped[str] = mapped_column(default="f")

    class Doc(TenantScoped, Base):
        __tablename__ = "docs"
        __tenant_roles__ = (role,)
        id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
        folder_id: Mapped[int] = mapped_column(ForeignKey("folders.id", ondelete="CASCADE"))
        folder_name: Mapped[str] = mapped_column(default="")
        body: Mapped[str]

    class Event(TenantScoped, Base):
        __tablename__ = "events"
        __tenant_roles__ = (role,)
        __tenant_primary_key__ = True
        __table_args__ = {"postgresql_partition_by": "HASH (tenant_id)"}
        id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
        kind: Mapped[str]

    tags = Table("doc_tags", Base.metadata, tenant_column(),
                 Column("doc_id", BigInteger, ForeignKey("docs.id", ondelete="CASCADE"),
                        primary_key=True),
                 Column("tag", Text, primary_key=True))
    secure_table(tags, roles=[role])
    parts = [Partition(f"events_p{i}", Event.__table__, hash_=(2, i)) for i in range(2)]
    assert isinstance(Event.__table__, Table)
    secure = rls_view("docs_secure", select(Doc.__table__.c.tenant_id, Doc.__table__.c.id))
    attach(Base.metadata, *parts, *for_partitions(rls_objects(Event.__table__), parts), secure,
           *tree_guard(Folder), *denormalized(Doc.folder_name, Folder.name, name="doc_fname"))
    with schema.engine.begin() as conn:
        Base.metadata.create_all(conn)
        for t in (1, 2):
            conn.execute(insert(Folder.__table__), [
                {"tenant_id": t, "id": 10 * t + i, "parent_id": None} for i in range(3)])
            conn.execute(insert(Doc.__table__), [
                {"tenant_id": t, "id": 100 * t + i, "folder_id": 10 * t, "body": "b"}
                for i in range(3)])
            conn.execute(insert(tags), [
                {"tenant_id": t, "doc_id": 100 * t, "tag": x} for x in ("a", "b")])
            conn.execute(insert(Event.__table__), [
                {"tenant_id": t, "id": i, "kind": "k"} for i in range(3)])
    return Base.metadata


def test_the_kit_passes_a_tenant_safe_model(pg_schema: PgSchema, pg_database: Database) -> None:
    metadata = _build(pg_schema, pg_database.app_role)
    report = assert_tenant_isolation(metadata, pg_schema.app_engine, max_examples=60)
    assert report.statements > 500
    assert set(report.relations) >= {"folders", "docs", "doc_tags", "events", "events_p0",
                                     "docs_secure"}
    with pg_schema.engine.connect() as conn:
        assert check_rls(conn) == []


@pytest.mark.parametrize(
    ("planted", "check_kind"),
    [
        ("ALTER TABLE docs DROP CONSTRAINT docs_folder_id_tenant_fkey", "fk_without_tenant"),
        ("ALTER TABLE doc_tags DISABLE ROW LEVEL SECURITY", "rls_disabled"),
        ("ALTER TABLE events_p0 DISABLE ROW LEVEL SECURITY;"
         " ALTER TABLE events_p1 DISABLE ROW LEVEL SECURITY", "partition_missing_policy"),
        ("DROP POLICY tenant_isolation ON folders;"
         " CREATE POLICY open ON folders TO {app} USING (true)", None),
        ("ALTER VIEW docs_secure SET (security_invoker = false)",
         "view_without_security_invoker"),
        ("ALTER FUNCTION folders_tree_guard() SECURITY INVOKER", "trigger_reads_under_rls"),
        ("ALTER FUNCTION doc_fname_push() SECURITY INVOKER", "trigger_reads_under_rls"),
    ],
)
def test_the_kit_catches_each_safeguard_removed(
    pg_schema: PgSchema, pg_database: Database, planted: str, check_kind: str | None
) -> None:
    metadata = _build(pg_schema, pg_database.app_role)
    with pg_schema.engine.begin() as conn:
        for stmt in planted.format(app=pg_database.app_role).split(";"):
            conn.execute(text(stmt))
    invoker = "SECURITY INVOKER" in planted  # a trigger blind under RLS: check_rls's to find
    if not invoker:
        with pytest.raises(TenantIsolationLeak):
            assert_tenant_isolation(metadata, pg_schema.app_engine, max_examples=60)
    with pg_schema.engine.connect() as conn:  # and check_rls names it (but an open policy)
        kinds = {f.kind for f in check_rls(conn, plans=False)}
    if check_kind is None:
        assert kinds == set()  # an always-true policy is the kit's to find (doctor: #19)
    else:
        assert check_kind in kinds


def test_the_kit_needs_two_tenants(pg_schema: PgSchema, pg_database: Database) -> Any:
    with pytest.raises(ValueError, match="two tenants"):
        assert_tenant_isolation(MetaData(), pg_schema.app_engine, tenants=(1,))
