"""The fuzz world: one small model per family, created once per module (tables prefixed fz_).

Seeded rows (committed; every fuzz example runs in a transaction that is rolled back):

* trees: ``fz_nodes`` 1 (root) -> 2, 3; 2 -> 4; 5 (another root)
* associations: posts 1, 2; tags 1..4; post 1 linked to tag 1; comments on post 1 (a
  counter cache keeps ``fz_posts.comment_count``)
* documents (jsonb, arrays, vector, full text): ``fz_docs`` 1..12
* views: ``fz_doc_cats``, a materialized view with a unique key over ``fz_docs``
* partitioning: ``fz_events`` ranged monthly on ``at``, partitions made for NOW
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Computed,
    DateTime,
    Engine,
    ForeignKey,
    Identity,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSVECTOR
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from pgpatterns.associations import many_to_many
from pgpatterns.ddl import attach
from pgpatterns.denormalize import Maintained, counter_cache
from pgpatterns.partitioning import ensure_partitions, partition_by
from pgpatterns.trees import AdjacencyListMixin, tree_guard
from pgpatterns.vector import VectorSpec
from pgpatterns.views import materialized_view

NOW = dt.datetime(2026, 5, 17, 12, tzinfo=dt.timezone.utc)
SPEC = VectorSpec(3, metric="cosine")


class Base(DeclarativeBase):
    pass


class FzNode(AdjacencyListMixin, Base):
    __tablename__ = "fz_nodes"
    id: Mapped[int] = mapped_column(Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(default="n")


class FzPost(Base):
    __tablename__ = "fz_posts"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    title: Mapped[str] = mapped_column(default="")
    comment_count: Mapped[int] = mapped_column(server_default="0")


class FzTag(Base):
    __tablename__ = "fz_tags"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(unique=True)


class FzComment(Base):
    __tablename__ = "fz_comments"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    post_id: Mapped[int] = mapped_column(ForeignKey("fz_posts.id"), index=True)


class FzDoc(Base):
    __tablename__ = "fz_docs"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    cat: Mapped[int] = mapped_column(index=True)
    title: Mapped[str]
    body: Mapped[Any] = mapped_column(JSONB)
    labels: Mapped[list[str]] = mapped_column(ARRAY(Text))
    embedding: Mapped[Any] = SPEC.mapped_column(nullable=False)
    search: Mapped[Any] = mapped_column(
        TSVECTOR, Computed("to_tsvector('simple', title)", persisted=True))


posts_tags = many_to_many(FzPost, FzTag, attr="tags", back="posts", name="fz_posts_tags")
SPEC.index_on(FzDoc.__table__.c.embedding)
COUNTER: Maintained = counter_cache(FzPost.__table__.c.comment_count, FzComment.__table__)
attach(Base.metadata, *tree_guard(FzNode), *COUNTER)
DOC_CATS = materialized_view(
    "fz_doc_cats",
    select(FzDoc.cat, func.count().label("n")).group_by(FzDoc.cat),
    metadata=Base.metadata,
    unique_key=["cat"],
)
EVENTS = Table(
    "fz_events", Base.metadata,
    Column("id", BigInteger, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("kind", Text),
    PrimaryKeyConstraint("id", "at"),
)
partition_by(EVENTS, "range", "at", interval="1 month")


@dataclasses.dataclass
class World:
    """What the cases build their base arguments from."""

    metadata: MetaData
    count_columns: list[Any]


def _count_columns() -> list[Any]:
    tables = [FzNode.__table__, FzPost.__table__, FzTag.__table__, FzComment.__table__,
              FzDoc.__table__, posts_tags, EVENTS]
    counts = [select(func.count()).select_from(t).scalar_subquery() for t in tables]
    # partitions and other relations created (ensure_partitions, tree_guard...) count too
    counts.append(text("(SELECT count(*) FROM pg_class WHERE relname LIKE 'fz%%')"))
    counts.append(select(func.sum(FzPost.comment_count)).scalar_subquery())
    return counts


def create_world(engine: Engine) -> World:
    drop_world(engine)
    with engine.begin() as conn:
        Base.metadata.create_all(conn)
        conn.execute(FzNode.__table__.insert(), [
            {"id": 1, "name": "root", "parent_id": None},
            {"id": 2, "name": "a", "parent_id": 1},
            {"id": 3, "name": "b", "parent_id": 1},
            {"id": 4, "name": "a1", "parent_id": 2},
            {"id": 5, "name": "other", "parent_id": None},
        ])
        conn.execute(text("SELECT setval(pg_get_serial_sequence('fz_nodes', 'id'), 5)"))
        conn.execute(FzPost.__table__.insert(), [{"id": i, "title": f"p{i}"} for i in (1, 2)])
        conn.execute(FzTag.__table__.insert(), [{"id": i, "name": f"t{i}"} for i in range(1, 5)])
        left, right = (c.name for c in posts_tags.primary_key.columns)
        conn.execute(posts_tags.insert(), [{left: 1, right: 1}])
        conn.execute(FzComment.__table__.insert(), [{"id": i, "post_id": 1} for i in (1, 2)])
        conn.execute(FzDoc.__table__.insert(), [
            {"id": i, "cat": i % 3, "title": f"alpha doc{i}",
             "body": {"a": i, "s": f"v{i}", "tags": ["x", f"y{i}"], "n": {"k": i}},
             "labels": ["x", f"l{i}"], "embedding": [1.0 + i, 0.5, -0.25 * i]}
            for i in range(1, 13)
        ])
        conn.execute(text("REFRESH MATERIALIZED VIEW fz_doc_cats"))
        ensure_partitions(conn, EVENTS, ahead=2, now=NOW)
        conn.execute(EVENTS.insert(), [{"id": 1, "at": NOW, "kind": "k"}])
    return World(Base.metadata, _count_columns())


def drop_world(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("DROP MATERIALIZED VIEW IF EXISTS fz_doc_cats"))
        conn.execute(text("DROP TABLE IF EXISTS fz_events CASCADE"))
        Base.metadata.drop_all(conn)


__all__ = [
    "COUNTER", "DOC_CATS", "EVENTS", "NOW", "SPEC", "Base", "FzComment", "FzDoc", "FzNode",
    "FzPost", "FzTag", "World", "create_world", "drop_world", "posts_tags",
]
