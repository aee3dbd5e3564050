"""pgpatterns helpers on Citus: with tenant_filtered each one is a router query (Task Count 1).

Each test reads Citus' EXPLAIN for the helper's statement as the app role, in a tenant
context, and runs it to compare the rows with what the tenant owns.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import BigInteger, Column, ForeignKey, MetaData, Table, literal_column, select, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import NotSupportedError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from pgpatterns.associations import having_all
from pgpatterns.bulk import copy_rows
from pgpatterns.citus import distribute, task_counts, tenant_context, tenant_filtered
from pgpatterns.errors import AssociationError
from pgpatterns.explain import explain
from pgpatterns.jsonb import jsonb_eq
from pgpatterns.rls import TenantScoped, secure_table, tenant_column
from pgpatterns.testing.citus import APP_ROLE, CitusSchema, citus_schema, get_citus
from pgpatterns.trees import AdjacencyListMixin, TreeOptions, descendants
from pgpatterns.vector import VectorSpec, nearest_stmt

pytestmark = pytest.mark.citus

SPEC = VectorSpec(3, metric="l2", index=None)


class Base(DeclarativeBase):
    metadata = MetaData()


class Folder(AdjacencyListMixin, TenantScoped, Base):
    __tablename__ = "h_folders"
    __tenant_roles__ = (APP_ROLE,)
    __tenant_primary_key__ = True
    __tree__ = TreeOptions(scope="tenant_id")
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    name: Mapped[str]


class Item(TenantScoped, Base):
    __tablename__ = "h_items"
    __tenant_roles__ = (APP_ROLE,)
    __tenant_primary_key__ = True
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    embedding = SPEC.mapped_column()
    meta: Mapped[dict[str, str]] = mapped_column(JSONB, default=dict)


class Post(TenantScoped, Base):
    __tablename__ = "h_posts"
    __tenant_roles__ = (APP_ROLE,)
    __tenant_primary_key__ = True
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)


class Tag(TenantScoped, Base):
    __tablename__ = "h_tags"
    __tenant_roles__ = (APP_ROLE,)
    __tenant_primary_key__ = True
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)


post_tags = Table(
    "h_post_tags", Base.metadata, tenant_column(primary_key=True),
    Column("post_id", BigInteger, ForeignKey("h_posts.id"), primary_key=True),
    Column("tag_id", BigInteger, ForeignKey("h_tags.id"), primary_key=True),
)
secure_table(post_tags, roles=[APP_ROLE])
Post.tags = relationship(  # type: ignore[attr-defined]
    Tag, secondary=post_tags, viewonly=True,
    primaryjoin=(Post.tenant_id == post_tags.c.tenant_id) & (Post.id == post_tags.c.post_id),
    secondaryjoin=(Tag.tenant_id == post_tags.c.tenant_id) & (Tag.id == post_tags.c.tag_id),
)
distribute(Base.metadata, shard_count=8)
TENANTS = (1, 2, 3)


@pytest.fixture(scope="module")
def schema() -> Iterator[CitusSchema]:
    """One schema for the module (the tests only read): the citus marker's check runs in
    each test's setup before this fixture, so a missing Citus skips or fails first."""
    with citus_schema(get_citus()) as made:
        _load(made)
        yield made


def _load(pg_citus: CitusSchema) -> None:
    with pg_citus.engine.begin() as conn:
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS vector SCHEMA public"))
        Base.metadata.create_all(conn)
        folders = []
        for t in TENANTS:  # a chain 1 <- 2 <- 3 <- 4 per tenant, and a second root 5
            base = t * 100
            folders += [(t, base + 1, None, "root"), (t, base + 5, None, "other")]
            folders += [(t, base + i, base + i - 1, f"f{i}") for i in (2, 3, 4)]
        copy_rows(conn, Folder.__table__, folders,
                  columns=["tenant_id", "id", "parent_id", "name"])
        items = [(t, t * 100 + i, f"[{i},{t},0]") for t in TENANTS for i in range(10)]
        conn.execute(Item.__table__.insert(), [
            {"tenant_id": t, "id": i, "embedding": [float(i % 100), float(t), 0.0],
             "meta": {"color": "red" if i % 2 else "blue"}}
            for t, i, _ in items
        ])


def _tasks(session: Session, stmt: object) -> list[int]:
    return task_counts(explain(session, stmt))  # type: ignore[arg-type]


def test_trees_descendants_is_a_router_query(schema: CitusSchema) -> None:
    """descendants(scope=...) alone is refused by Citus (the recursive term joins on
    ``n.tenant_id = cte.tenant_id``, not a constant); tenant_filtered puts the constant
    tenant into both terms of the recursive CTE, which makes it a router query."""
    with Session(schema.app_engine) as session, session.begin():
        tenant_context(session, 2)
        plain = descendants(Folder, 201, scope=2)
        with pytest.raises(NotSupportedError, match="recursive CTEs are only supported when"), \
                session.begin_nested():
            session.execute(plain)
        stmt = tenant_filtered(plain, 2)
        assert _tasks(session, stmt) == [1]
        rows = session.execute(stmt).all()
        assert [(f.id, depth) for f, depth, _path in rows] == [(202, 1), (203, 2), (204, 3)]
        assert all(isinstance(f, Folder) and f.tenant_id == 2 for f, _d, _p in rows)


def test_a_recursive_walk_with_the_tenant_in_both_terms_is_a_router_query(
    schema: CitusSchema,
) -> None:
    """The shape trees.descendants should emit on Citus: the constant tenant in both terms."""
    f = Folder.__table__
    anchor = select(f.c.id, literal_column("1").label("depth")).where(
        f.c.tenant_id == 2, f.c.parent_id == 201)
    cte = anchor.cte("walk", recursive=True)
    n = f.alias("n")
    cte = cte.union_all(select(n.c.id, cte.c.depth + 1).where(
        n.c.parent_id == cte.c.id, n.c.tenant_id == 2))
    stmt = select(cte.c.id, cte.c.depth).order_by(cte.c.depth)
    with Session(schema.app_engine) as session, session.begin():
        tenant_context(session, 2)
        assert _tasks(session, stmt) == [1]
        assert session.execute(stmt).all() == [(202, 1), (203, 2), (204, 3)]


def test_vector_nearest_is_a_router_query(schema: CitusSchema) -> None:
    with Session(schema.app_engine) as session, session.begin():
        tenant_context(session, 3)
        stmt = tenant_filtered(nearest_stmt(Item, Item.embedding, [2.0, 3.0, 0.0], 3), 3)
        assert _tasks(session, stmt) == [1]
        rows = session.execute(stmt).all()
        assert rows[0][0].id == 302
        assert len(rows) == 3
        assert all(r[0].tenant_id == 3 for r in rows)


def test_associations_need_one_column_keys(schema: CitusSchema) -> None:
    """Citus needs (tenant_id, id) keys; pgpatterns.associations refuses two-column joins."""
    with pytest.raises(AssociationError, match="one-column key"):
        having_all(Post, Post.tags, [1, 2])  # type: ignore[attr-defined]


def test_jsonb_filters_are_router_queries(schema: CitusSchema) -> None:
    with Session(schema.app_engine) as session, session.begin():
        tenant_context(session, 1)
        stmt = tenant_filtered(select(Item).where(jsonb_eq(Item.meta, "color", "red")), 1)
        assert _tasks(session, stmt) == [1]
        rows = session.scalars(stmt).all()
        assert sorted(r.id for r in rows) == [101, 103, 105, 107, 109]
