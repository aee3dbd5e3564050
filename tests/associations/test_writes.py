"""link / unlink / sync on real PostgreSQL: results, idempotence, errors, concurrency, async."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from assoc_models import Base, Group, Membership, Post, Statements, Tag, User, posts_tags
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Column, Engine, ForeignKey, Integer, MetaData, Table, func, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, registry, relationship

from pgpatterns.associations import (
    LinkResult,
    link,
    link_async,
    link_stmt,
    sync,
    sync_async,
    unlink,
    unlink_async,
)
from pgpatterns.errors import (
    ArgumentError,
    AssociationError,
    PatternError,
    UnknownLinkTargetError,
)
from pgpatterns.testing.plugin import PgSchema

TAGS = ("python", "sql", "rust", "go", "c", "zig")


@pytest.fixture
def session(pg_engine: Engine, pg_session: Session) -> Session:
    Base.metadata.create_all(pg_engine, checkfirst=True)
    pg_session.add_all([Post(id=i, title=f"post {i}") for i in (1, 2)])
    pg_session.add_all([Tag(id=i, name=name) for i, name in enumerate(TAGS, start=1)])
    pg_session.flush()
    return pg_session


def linked(session: Session, post_id: int = 1) -> set[int]:
    stmt = select(posts_tags.c.tag_id).where(posts_tags.c.post_id == post_id)
    return set(session.scalars(stmt))


def test_link_is_idempotent_and_reports_added(session: Session) -> None:
    post = session.get(Post, 1)
    tags = session.scalars(select(Tag).where(Tag.id.in_([1, 2]))).all()
    assert link(session, post, tags) == LinkResult(added=(1, 2))
    assert link(session, post, tags) == LinkResult()
    assert link(session, post, [2, 3, 3], via=Post.tags).added == (3,)
    assert linked(session) == {1, 2, 3}
    assert post is not None and {t.name for t in post.tags} == {"python", "sql", "rust"}


def test_sync_locks_then_writes_only_the_difference_in_one_statement(session: Session) -> None:
    link(session, 1, [1, 2, 3], via=Post.tags)
    with Statements(session) as sql:
        result = sync(session, 1, [2, 3, 4, 5], via=Post.tags)
    assert len(sql) == 2 and "pg_advisory_xact_lock(" in sql[0]
    assert (sorted(result.added), sorted(result.removed)) == ([4, 5], [1])
    assert linked(session) == {2, 3, 4, 5}
    assert sync(session, 1, [2, 3, 4, 5], via=Post.tags) == LinkResult()
    assert sorted(sync(session, 1, [], via=Post.tags).removed) == [2, 3, 4, 5]
    assert linked(session) == set()


def test_unlink_ignores_absent_pairs(session: Session) -> None:
    link(session, 1, [1, 2], via=Post.tags)
    link(session, 2, [1], via=Post.tags)
    assert unlink(session, 1, [1, 5], via=Post.tags) == LinkResult(removed=(1,))
    assert unlink(session, 1, [1], via=Post.tags) == LinkResult()
    assert (linked(session, 1), linked(session, 2)) == ({2}, {1})


def test_pending_objects_are_flushed_and_loaded_collections_expired(session: Session) -> None:
    post = session.get(Post, 1)
    assert post is not None and post.tags == []
    new = Tag(id=99, name="new")
    session.add(new)
    assert link(session, post, [new]).added == (99,)
    assert [t.name for t in post.tags] == ["new"]  # expired, reloaded
    assert [p.id for p in new.posts] == [1]


ops = st.lists(
    st.tuples(st.sampled_from(["link", "unlink", "sync"]),
              st.lists(st.integers(1, len(TAGS)), max_size=5)),
    min_size=1, max_size=6,
)


@given(ops)
def test_random_sequences_match_a_set_model(session: Session, steps: list[Any]) -> None:
    savepoint = session.begin_nested()
    try:
        model: set[int] = set()
        for op, ids in steps:
            before = set(model)
            result = {"link": link, "unlink": unlink, "sync": sync}[op](
                session, 1, ids, via=Post.tags)
            model = {"link": model | set(ids), "unlink": model - set(ids), "sync": set(ids)}[op]
            assert set(result.added) == model - before
            assert set(result.removed) == before - model
            assert linked(session) == model
    finally:
        savepoint.rollback()


def test_association_object_attributes_upsert(session: Session) -> None:
    group, alice, bob = Group(name="admins"), User(name="alice"), User(name="bob")
    session.add_all([group, alice, bob])
    session.flush()
    assert link(session, group, [alice, bob], via=Group.users).added == (alice.id, bob.id)
    assert link(session, group, [alice], via=Group.users, role="owner").updated == (alice.id,)
    assert link(session, group, [alice], via=Group.users, role="owner") == LinkResult()
    roles = {m.user.name: m.role for m in group.memberships}
    assert roles == {"alice": "owner", "bob": "member"}
    assert sorted(u.name for u in group.users) == ["alice", "bob"]
    result = sync(session, alice, [], via=User.groups)
    assert result.removed == (group.id,)
    assert [u.name for u in group.users] == ["bob"]


def test_unknown_ids_are_named_and_nothing_is_written(session: Session) -> None:
    link(session, 1, [1], via=Post.tags)
    with pytest.raises(UnknownLinkTargetError, match=r"404, 405") as info:
        sync(session, 1, [2, 405, 404], via=Post.tags)
    assert info.value.missing == (404, 405)
    assert linked(session) == {1}  # the transaction is still usable; nothing changed
    with pytest.raises(UnknownLinkTargetError, match="does not exist"):
        link(session, 777, [1], via=Post.tags)


def test_bad_input_raises_before_any_sql(session: Session) -> None:
    post = session.get(Post, 1)
    other = session.get(Post, 2)
    with Statements(session) as sql:
        with pytest.raises(AssociationError, match="links Tag objects, got a Post"):
            link(session, post, [other], via=Post.tags)
        with pytest.raises(AssociationError, match=r"colour is not column.*role, joined_at"):
            link(session, 1, [1], via=Group.users, colour="red")
        with pytest.raises(AssociationError, match="pass via="):
            link(session, 1, [1])
        with pytest.raises(ArgumentError, match=r"link\(\): rights\[0\]='abc'"):
            link(session, 1, ["abc"], via=Post.tags)
        with pytest.raises(AssociationError, match="not a many-to-many"):
            link(session, post, [1], via=Post.title)
        with pytest.raises(PatternError, match="Wrap one in a list"):
            link(session, post, "python", via=Post.tags)
    assert sql == []


def test_link_table_without_primary_key_is_refused() -> None:
    md = MetaData()
    Table("a", md, Column("id", Integer, primary_key=True))
    Table("b", md, Column("id", Integer, primary_key=True))
    loose = Table("a_b", md, Column("a_id", Integer, ForeignKey("a.id")),
                  Column("b_id", Integer, ForeignKey("b.id")))
    reg = registry(metadata=md)

    class A:
        pass

    class B:
        pass

    reg.map_imperatively(B, md.tables["b"])
    reg.map_imperatively(A, md.tables["a"], properties={"bs": relationship(B, secondary=loose)})
    with pytest.raises(AssociationError, match="no primary key or unique constraint"):
        link_stmt(A.bs, 1, [2])  # type: ignore[attr-defined]


def test_statement_shape() -> None:
    sql = str(link_stmt(Post.tags, 1, [2, 3], mode="sync").compile(dialect=postgresql.dialect()))
    assert "ON CONFLICT (post_id, tag_id) DO NOTHING" in sql
    assert "DELETE FROM assoc_posts_tags" in sql and sql.count("INSERT") == 1
    sql = str(link_stmt(Group.users, 1, [2], attrs={"role": "x"}).compile(
        dialect=postgresql.dialect()))
    assert "DO UPDATE SET role = excluded.role WHERE" in sql
    assert "IS DISTINCT FROM excluded.role" in sql


def test_deleting_either_side_does_not_load_links(session: Session) -> None:
    link(session, 1, [1, 2], via=Post.tags)
    link(session, 2, [1], via=Post.tags)
    group, alice = Group(name="g"), User(name="alice")
    session.add_all([group, alice])
    session.flush()
    link(session, group, [alice], via=Group.users)
    session.expire_all()
    post, tag = session.get(Post, 1), session.get(Tag, 1)
    user = session.get(User, alice.id)
    with Statements(session) as sql:
        session.delete(post)
        session.delete(tag)
        session.delete(user)
        session.flush()
    assert len(sql) == 3 and all(s.startswith("DELETE FROM assoc_") for s in sql), sql
    assert not any("posts_tags" in s or "memberships" in s for s in sql)
    assert session.scalar(select(func.count()).select_from(posts_tags)) == 0
    assert session.scalar(select(func.count()).select_from(Membership)) == 0


@pytest.fixture
def committed(pg_schema: PgSchema) -> Iterator[Engine]:
    Base.metadata.create_all(pg_schema.engine, checkfirst=False)  # in the schema, not public
    with Session(pg_schema.engine) as s:
        s.add(Post(id=1))
        s.add(Tag(id=1, name="python"))
        s.commit()
    yield pg_schema.engine


def test_concurrent_links_of_the_same_pair_never_raise(committed: Engine) -> None:
    results: list[Any] = []
    with Session(committed) as first:
        results.append(link(first, 1, [1], via=Post.tags))  # holds the new row's lock

        def second() -> None:
            with Session(committed) as s:
                try:
                    results.append(link(s, 1, [1], via=Post.tags))
                    s.commit()
                except Exception as exc:  # reported below
                    results.append(exc)

        thread = threading.Thread(target=second)
        thread.start()
        thread.join(0.3)
        assert thread.is_alive()  # waiting on the first transaction's uncommitted row
        first.commit()
        thread.join(10)
    assert results == [LinkResult(added=(1,)), LinkResult()]
    with Session(committed) as s:
        assert s.scalar(select(func.count()).select_from(posts_tags)) == 1


async def test_async_twins(pg_engine: Engine, pg_async_session: AsyncSession) -> None:
    Base.metadata.create_all(pg_engine, checkfirst=True)
    session = pg_async_session
    session.add_all([Post(id=1), Tag(id=1, name="python"), Tag(id=2, name="sql")])
    await session.flush()
    post = await session.get(Post, 1)
    assert (await link_async(session, post, [1], via=Post.tags)).added == (1,)
    assert (await sync_async(session, post, [2], via=Post.tags)) == LinkResult((2,), (1,))
    assert (await unlink_async(session, post, [2], via=Post.tags)).removed == (2,)
    with pytest.raises(UnknownLinkTargetError, match="9"):
        await link_async(session, 1, [9], via=Post.tags)
