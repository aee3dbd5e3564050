"""Tenant keys by construction: composite foreign keys, tenant_context value checks (#16)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import BigInteger, ForeignKey, MetaData, Table, Uuid, func, insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from pgpatterns.ddl import CompositeForeignKey, attached, diff
from pgpatterns.errors import DDLNameLengthError, RLSContextError, RLSPolicyError
from pgpatterns.rls import (
    TenantScoped,
    check_rls,
    enable_rls,
    policy,
    tenant_context,
    tenant_of,
)
from pgpatterns.testing import Database
from pgpatterns.testing.plugin import PgSchema


def _models(role: str, *, doc_first: bool) -> tuple[type[Any], type[Any], MetaData]:
    class Base(DeclarativeBase):
        metadata = MetaData()

    def folder_cls() -> type[Any]:
        class Folder(TenantScoped, Base):
            __tablename__ = "folders"
            __tenant_roles__ = (role,)
            id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
            parent_id: Mapped[int | None] = mapped_column(ForeignKey("folders.id"))

        return Folder

    def doc_cls() -> type[Any]:
        class Doc(TenantScoped, Base):
            __tablename__ = "docs"
            __tenant_roles__ = (role,)
            id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
            folder_id: Mapped[int] = mapped_column(ForeignKey("folders.id", ondelete="CASCADE"))
            folder: Mapped[Any] = relationship("Folder")

        return Doc

    if doc_first:
        doc = doc_cls()
        folder = folder_cls()
    else:
        folder = folder_cls()
        doc = doc_cls()
    return folder, doc, Base.metadata


@pytest.mark.parametrize("doc_first", [False, True])
def test_composite_keys_whatever_the_declaration_order(doc_first: bool) -> None:
    folder, doc, metadata = _models("app", doc_first=doc_first)
    fks = sorted(
        (o.table.name, tuple(o.columns), o.referred.name, tuple(o.refcolumns), o.ondelete)
        for o in attached(metadata)
        if isinstance(o, CompositeForeignKey)
    )
    assert fks == [
        ("docs", ("tenant_id", "folder_id"), "folders", ("tenant_id", "id"), "cascade"),
        ("folders", ("tenant_id", "parent_id"), "folders", ("tenant_id", "id"), None),
    ]
    # the ORM still infers the relationship from the one-column key
    from sqlalchemy.orm import configure_mappers

    configure_mappers()
    assert str(doc.folder.property.primaryjoin) == "folders.id = docs.folder_id"
    assert tenant_of(folder.__table__) is not None


@pytest.fixture
def tenant_db(pg_schema: PgSchema, pg_database: Database) -> tuple[PgSchema, type[Any], type[Any]]:
    folder, doc, metadata = _models(pg_database.app_role, doc_first=False)
    with pg_schema.engine.begin() as conn:
        metadata.create_all(conn)
        conn.execute(insert(folder.__table__), [
            {"tenant_id": 1, "id": 1}, {"tenant_id": 2, "id": 2}])
        conn.execute(insert(doc.__table__), [{"tenant_id": 1, "id": 10, "folder_id": 1}])
        assert diff(conn, metadata) == []
    return pg_schema, folder, doc


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE folders SET parent_id = 2 WHERE id = 1",  # #16.2: a parent in another tenant
        "UPDATE docs SET folder_id = 2 WHERE id = 10",  # a document into tenant 2's folder
        "INSERT INTO docs (id, folder_id) VALUES (11, 2)",
    ],
)
def test_a_row_cannot_reference_another_tenants_row(tenant_db: Any, statement: str) -> None:
    schema, _, _ = tenant_db
    with schema.app_engine.connect() as conn, conn.begin():
        tenant_context(conn, 1)
        with pytest.raises(IntegrityError) as err:
            conn.execute(text(statement))
    assert "tenant_fkey" in str(err.value)


def test_same_tenant_references_and_the_orm_still_work(tenant_db: Any) -> None:
    schema, folder, doc = tenant_db
    with Session(schema.app_engine) as s, s.begin():
        tenant_context(s, 1)
        child = folder(id=3, parent_id=1)
        s.add(child)
        s.flush()
        s.add(doc(id=12, folder=child))
        s.flush()
        assert s.scalar(select(doc.__table__.c.tenant_id).where(doc.folder_id == child.id)) == 1


def test_tenant_context_checks_the_value_against_the_tenant_column(tenant_db: Any) -> None:
    schema, _, _ = tenant_db
    with schema.app_engine.connect() as conn, conn.begin():
        for bad in ("1 OR 1=1", 2**70, uuid.uuid4(), 1.5, True):
            with pytest.raises(RLSContextError):
                tenant_context(conn, bad)
        tenant_context(conn, 2)  # the transaction is still usable
        assert conn.scalar(text("SELECT count(*) FROM folders")) == 1


def test_tenant_context_takes_uuid_tenants_when_declared(pg_database: Database) -> None:
    class Base(DeclarativeBase):
        metadata = MetaData()

    class Org(TenantScoped, Base):
        __tablename__ = "uuid_orgs"
        __tenant_roles__ = (pg_database.app_role,)
        __tenant_type__ = Uuid
        __tenant_setting__ = "appu.org_id"
        id: Mapped[int] = mapped_column(primary_key=True)

    assert tenant_of(Org.__table__) is not None
    from pgpatterns.rls.context import context_statement  # the values are checked here

    with pytest.raises(RLSContextError):
        context_statement({"appu.org_id": 42})
    assert context_statement({"appu.org_id": uuid.uuid4()}) is not None


def test_long_colliding_names_are_refused_before_sql() -> None:
    t = Table("t", MetaData())
    enable_rls(t)
    with pytest.raises(DDLNameLengthError, match="63 bytes"):
        policy("p" * 63 + "_allow", t, to=["app"])


def test_tenant_scoped_needs_roles() -> None:
    class Base(DeclarativeBase):
        metadata = MetaData()

    with pytest.raises(RLSPolicyError):

        class Bad(TenantScoped, Base):
            __tablename__ = "bad"
            id: Mapped[int] = mapped_column(primary_key=True)


_PLANTED = """
CREATE TABLE tenants_a (tenant_id bigint NOT NULL, id bigint PRIMARY KEY,
                        UNIQUE (tenant_id, id));
CREATE INDEX ON tenants_a (tenant_id);
ALTER TABLE tenants_a ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY t ON tenants_a TO {app} USING (tenant_id = (SELECT 1));
CREATE TABLE tenants_b (tenant_id bigint NOT NULL, id bigint PRIMARY KEY,
                        a_id bigint REFERENCES tenants_a (id));
CREATE INDEX ON tenants_b (tenant_id);
ALTER TABLE tenants_b ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY t ON tenants_b TO {app} USING (tenant_id = (SELECT 1));
CREATE TABLE a_links (a_id bigint REFERENCES tenants_a (id), tag text);
CREATE TABLE owned (tenant_id bigint NOT NULL PRIMARY KEY);
ALTER TABLE owned ENABLE ROW LEVEL SECURITY;
CREATE POLICY t ON owned TO {app} USING (tenant_id = (SELECT 1));
ALTER TABLE owned OWNER TO {app};
CREATE FUNCTION all_of_a() RETURNS SETOF bigint SECURITY DEFINER LANGUAGE sql
  AS 'SELECT id FROM tenants_a';
CREATE FUNCTION b_guard() RETURNS trigger LANGUAGE plpgsql AS
  'BEGIN PERFORM 1 FROM tenants_b WHERE id = NEW.id; RETURN NEW; END';
CREATE TRIGGER b_guard BEFORE INSERT ON tenants_b FOR EACH ROW EXECUTE FUNCTION b_guard();
"""


def test_check_rls_finds_the_composition_leaks(pg_schema: PgSchema, pg_database: Database) -> None:
    with pg_schema.engine.begin() as conn:
        for stmt in _PLANTED.format(app=pg_database.app_role).split(";\n"):
            if stmt.strip():
                conn.execute(text(stmt))
    with pg_schema.engine.connect() as conn:
        found = {(f.kind, f.relation.rsplit(".", 1)[-1]) for f in check_rls(conn, plans=False)}
    assert found >= {
        ("fk_without_tenant", "tenants_b"),
        ("unprotected_reference", "a_links"),
        ("rls_not_forced", "owned"),
        ("definer_function_reads_rls", "all_of_a()"),
        ("trigger_reads_under_rls", "tenants_b"),
    }, found
    assert ("fk_without_tenant", "tenants_a") not in found


def test_tenant_scoped_models_have_no_composition_findings(tenant_db: Any) -> None:
    schema, _, _ = tenant_db
    with schema.engine.connect() as conn:
        assert check_rls(conn) == []
    with schema.app_engine.connect() as conn:
        assert check_rls(conn) == []


_HOSTILE = st.text(alphabet="ab%s'\" .;-üé", min_size=1, max_size=20).filter(
    lambda s: s.strip() == s and bool(s)
)


@settings(max_examples=8)
@given(name=_HOSTILE, pad=st.integers(min_value=0, max_value=40))
def test_tenant_keys_with_hostile_names(pg_database: Database, name: str, pad: int) -> None:
    parent = (name + "x" * pad).encode()[:58].decode("utf-8", "ignore")  # child: +2 bytes
    child = f"{parent}_c"
    role = pg_database.app_role

    class Base(DeclarativeBase):
        metadata = MetaData()

    class Parent(TenantScoped, Base):
        __tablename__ = parent
        __tenant_roles__ = (role,)
        id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)

    class Child(TenantScoped, Base):
        __tablename__ = child
        __tenant_roles__ = (role,)
        id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
        parent_id: Mapped[int] = mapped_column(ForeignKey(Parent.id))

    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    schema = pg_database.create_schema()
    options = pg_database.search_path_args(schema)
    owner = create_engine(pg_database.url, poolclass=NullPool, connect_args=options)
    app = create_engine(pg_database.app_url, poolclass=NullPool, connect_args=options)
    try:
        with owner.begin() as conn:
            Base.metadata.create_all(conn)
            conn.execute(insert(Parent.__table__), [{"tenant_id": 1, "id": 1},
                                                    {"tenant_id": 2, "id": 2}])
            assert diff(conn, Base.metadata) == []
        with app.connect() as conn, conn.begin():
            tenant_context(conn, 1)
            conn.execute(insert(Child.__table__).values(id=1, parent_id=1))
            with pytest.raises(IntegrityError), conn.begin_nested():
                conn.execute(insert(Child.__table__).values(id=2, parent_id=2))
            assert conn.scalar(select(func.count()).select_from(Parent.__table__)) == 1
    finally:
        owner.dispose()
        app.dispose()
        pg_database.drop_schema(schema)


def test_table_names_over_63_bytes_are_refused() -> None:
    from pgpatterns.rls import secure_table, tenant_column

    t = Table("t" * 64, MetaData(), tenant_column())
    with pytest.raises(DDLNameLengthError):
        secure_table(t, roles=["app"])


def test_check_rls_accepts_the_per_tenant_matview_and_flags_its_leaks(
    pg_schema: PgSchema, pg_database: Database
) -> None:
    from pgpatterns.views import tenant_materialized_view

    role = pg_database.app_role
    _, doc, metadata = _models(role, doc_first=False)
    table = doc.__table__
    tenant_materialized_view(
        "doc_counts",
        select(table.c.tenant_id, table.c.folder_id, func.count().label("n"))
        .group_by(table.c.tenant_id, table.c.folder_id),
        metadata=metadata, readers=[role], unique_key=["tenant_id", "folder_id"])
    with pg_schema.engine.begin() as conn:
        metadata.create_all(conn)
    with pg_schema.engine.connect() as conn:
        assert check_rls(conn) == []
    with pg_schema.engine.begin() as conn:
        conn.execute(text(f'GRANT SELECT ON doc_counts_mv TO "{role}"'))
    with pg_schema.engine.connect() as conn:
        kinds = {(f.kind, f.relation.rsplit(".", 1)[-1]) for f in check_rls(conn)}
    assert kinds == {("matview_over_rls", "doc_counts_mv")}


def test_set_null_parents_keep_their_tenant(pg_schema: PgSchema, pg_database: Database) -> None:
    from pgpatterns.ddl import attach as attach_
    from pgpatterns.trees import AdjacencyListMixin, TreeOptions, tree_guard

    class Base(DeclarativeBase):
        metadata = MetaData()

    class Dir(TenantScoped, AdjacencyListMixin, Base):
        __tablename__ = "dirs_sn"
        __tenant_roles__ = (pg_database.app_role,)
        __tree__ = TreeOptions(scope="tenant_id", on_delete="set null")
        id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)

    attach_(Base.metadata, *tree_guard(Dir))
    with pg_schema.engine.begin() as conn:
        Base.metadata.create_all(conn)
    with pg_schema.app_engine.connect() as conn, conn.begin():
        tenant_context(conn, 1)
        conn.execute(insert(Dir.__table__), [{"id": 1, "parent_id": None},
                                             {"id": 2, "parent_id": 1}])
        conn.execute(text("DELETE FROM dirs_sn WHERE id = 1"))
        assert conn.execute(text("SELECT tenant_id, parent_id FROM dirs_sn")).all() == [(1, None)]
