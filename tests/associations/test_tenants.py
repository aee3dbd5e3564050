"""Link tables between tenant-scoped models, used as the non-owner app role (issue #16.1).

Old code: the link table had no tenant column and no RLS; tenant 1 unlinked tenant 2's pair
and saw every tenant's pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    MetaData,
    Table,
    Text,
    delete,
    insert,
    select,
    text,
)
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from pgpatterns.associations import (
    LinkResult,
    association_object,
    association_table,
    having_all,
    having_any,
    link,
    many_to_many,
    sync,
    unlink,
)
from pgpatterns.errors import AssociationError, LinkConcurrentUpdateError, UnknownLinkTargetError
from pgpatterns.rls import TenantScoped, tenant_context
from pgpatterns.rls.tenant import tenant_of
from pgpatterns.testing import Database
from pgpatterns.testing.plugin import PgSchema

POSTS = {1: 1, 2: 1, 3: 2, 4: 2}  # post id -> tenant
TAGS = {1: 1, 2: 1, 3: 1, 4: 2, 5: 2, 6: 2}  # tag id -> tenant
START = {(1, 1), (1, 2), (3, 4), (3, 5)}  # (post, tag) pairs, as the owner loads them


@dataclass
class World:
    owner: Engine
    app: Engine
    post: Any
    tag: Any
    user: Any
    group: Any
    membership: Any
    post_tags: Table


def build(schema: PgSchema, role: str) -> World:
    class Base(DeclarativeBase):
        metadata = MetaData()

    class Post(TenantScoped, Base):
        __tablename__ = "t_posts"
        __tenant_roles__ = (role,)
        id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)

    class Tag(TenantScoped, Base):
        __tablename__ = "t_tags"
        __tenant_roles__ = (role,)
        id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
        name: Mapped[str] = mapped_column(Text, default="")

    class User(TenantScoped, Base):
        __tablename__ = "t_users"
        __tenant_roles__ = (role,)
        id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)

    class Group(Base):  # shared between tenants
        __tablename__ = "t_groups"
        id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)

    post_tags = many_to_many(Post, Tag, attr="tags", back="posts", name="t_post_tags")
    membership = association_object(
        Base, User, Group, name="TMembership", tablename="t_memberships",
        extra_columns=[Column("role", Text, nullable=False, server_default="member")],
        proxies=("groups", "users"),
    )
    with schema.engine.begin() as conn:
        Base.metadata.create_all(conn)
        conn.execute(insert(Post.__table__), [{"id": i, "tenant_id": t}
                                              for i, t in POSTS.items()])
        conn.execute(insert(Tag.__table__), [{"id": i, "tenant_id": t}
                                             for i, t in TAGS.items()])
        conn.execute(insert(post_tags), [{"post_id": p, "tag_id": t, "tenant_id": POSTS[p]}
                                         for p, t in START])
        conn.execute(insert(User.__table__), [{"id": 1, "tenant_id": 1},
                                              {"id": 2, "tenant_id": 2}])
        conn.execute(insert(Group.__table__), [{"id": 1}, {"id": 2}])
    return World(schema.engine, schema.app_engine, Post, Tag, User, Group, membership,
                 post_tags)


@pytest.fixture
def world(pg_schema: PgSchema, pg_database: Database) -> World:
    return build(pg_schema, pg_database.app_role)


def all_pairs(w: World) -> set[tuple[int, int]]:
    with w.owner.connect() as conn:
        return {(p, t) for p, t in conn.execute(select(w.post_tags.c.post_id,
                                                      w.post_tags.c.tag_id))}


def test_the_link_table_is_tenant_scoped(world: World) -> None:
    table = world.post_tags
    assert next(c.name for c in table.columns) == "tenant_id"
    scope = tenant_of(table)
    assert scope is not None and scope.setting == "app.tenant_id"
    assert [c.name for c in table.primary_key] == ["post_id", "tag_id"]
    with world.owner.connect() as conn:
        flags = conn.execute(text(
            "SELECT relrowsecurity, relforcerowsecurity FROM pg_class"
            " WHERE oid = CAST(:t AS regclass)"), {"t": table.name}).one()
        policies = conn.execute(text(
            "SELECT polname FROM pg_policy WHERE polrelid = CAST(:t AS regclass)"),
            {"t": table.name}).scalars().all()
        fks = conn.execute(text(
            "SELECT confrelid::regclass::text, array_length(conkey, 1) FROM pg_constraint"
            " WHERE conrelid = CAST(:t AS regclass) AND contype = 'f' ORDER BY 1, 2"
        ), {"t": table.name}).all()
        member_fks = conn.execute(text(
            "SELECT confrelid::regclass::text, array_length(conkey, 1) FROM pg_constraint"
            " WHERE conrelid = 't_memberships'::regclass AND contype = 'f' ORDER BY 1, 2"
        )).all()
        indexed = conn.execute(text(
            "SELECT count(*) FROM pg_index WHERE indrelid = CAST(:t AS regclass)"
            " AND indkey[0] = (SELECT attnum FROM pg_attribute"
            " WHERE attrelid = CAST(:t AS regclass) AND attname = 'tenant_id')"),
            {"t": table.name}).scalar()
    assert tuple(flags) == (True, True)
    assert policies == ["tenant_isolation"]
    assert fks == [("t_posts", 1), ("t_posts", 2), ("t_tags", 1), ("t_tags", 2)]
    # one shared side (groups): the link is tenant-scoped, composite key to users only
    assert member_fks == [("t_groups", 1), ("t_users", 1), ("t_users", 2)]
    assert tenant_of(world.membership.__table__) is not None
    assert indexed == 1


def test_a_tenant_sees_and_writes_only_its_own_pairs(world: World) -> None:
    Post = world.post
    with Session(world.app) as s, s.begin():
        tenant_context(s, 1)
        assert {(p, t) for p, t in s.execute(select(world.post_tags.c.post_id,
                                                    world.post_tags.c.tag_id))} == {(1, 1), (1, 2)}
        assert unlink(s, 3, [4], via=Post.tags) == LinkResult()  # tenant 2's pair: untouched
        with pytest.raises(UnknownLinkTargetError, match="does not exist"):
            sync(s, 3, [], via=Post.tags)
        with pytest.raises(UnknownLinkTargetError) as info:
            link(s, 1, [3, 4], via=Post.tags)  # tag 4 is tenant 2's: as if it did not exist
        assert info.value.missing == (4,)
        assert link(s, 1, [3], via=Post.tags) == LinkResult(added=(3,))
        assert sorted(sync(s, 2, [1, 2], via=Post.tags).added) == [1, 2]
        assert [p.id for p in s.scalars(having_any(Post, Post.tags, [4, 5]))] == []
        assert [p.id for p in s.scalars(having_all(Post, Post.tags, [1, 2]).order_by(
            Post.id))] == [1, 2]
        post = s.get(Post, 1)
        tag = s.get(world.tag, 2)
        assert post is not None and tag is not None
        assert sorted(t.id for t in post.tags) == [1, 2, 3]
        post.tags.remove(tag)  # the ORM path works too
        s.flush()
        row = s.execute(select(world.post_tags.c.tenant_id).where(
            world.post_tags.c.tag_id == 3)).scalar_one()
        assert row == 1  # filled in by the column's default
    assert all_pairs(world) == {(1, 1), (1, 3), (2, 1), (2, 2), (3, 4), (3, 5)}


def test_the_database_refuses_a_cross_tenant_link(world: World) -> None:
    table = world.post_tags
    with world.app.connect() as conn, conn.begin():
        tenant_context(conn, 1)
        with pytest.raises(IntegrityError, match="tenant_fkey"), conn.begin_nested():
            conn.execute(insert(table).values(post_id=1, tag_id=4))  # tenant 2's tag
        with pytest.raises(DBAPIError, match="row-level security"), conn.begin_nested():
            conn.execute(insert(table).values(post_id=3, tag_id=4, tenant_id=2))
        assert conn.execute(delete(table).where(table.c.post_id == 3)).rowcount == 0
    with world.owner.connect() as conn, conn.begin(), pytest.raises(  # not even the owner
            IntegrityError, match="tenant_fkey"):
        conn.execute(insert(table).values(post_id=1, tag_id=4, tenant_id=1))
    assert all_pairs(world) == START


def test_association_object_with_a_shared_side(world: World) -> None:
    User, Group = world.user, world.group
    with Session(world.app) as s, s.begin():
        tenant_context(s, 1)
        assert link(s, 1, [1, 2], via=User.groups, role="admin").added == (1, 2)
        with pytest.raises(UnknownLinkTargetError):
            link(s, 2, [1], via=User.groups)  # tenant 2's user
        with pytest.raises(AssociationError, match="tenant_id is not column"):
            link(s, 1, [1], via=User.groups, tenant_id=2)
        groups = s.scalars(having_any(Group, Group.users, [1]).order_by(Group.id))
        assert [g.id for g in groups] == [1, 2]
        s.commit()
    with Session(world.app) as s, s.begin():
        tenant_context(s, 2)
        assert s.scalars(select(world.membership)).all() == []
        assert [g.id for g in s.scalars(having_any(Group, Group.users, [1]))] == []


def test_shared_on_purpose_and_mismatched_scopes() -> None:
    class Base(DeclarativeBase):
        metadata = MetaData()

    class A(TenantScoped, Base):
        __tablename__ = "a"
        __tenant_roles__ = ("app",)
        id: Mapped[int] = mapped_column(primary_key=True)

    class B(TenantScoped, Base):
        __tablename__ = "b"
        __tenant_roles__ = ("app",)
        __tenant_setting__ = "app.org_id"
        id: Mapped[int] = mapped_column(primary_key=True)

    class C(Base):
        __tablename__ = "c"
        id: Mapped[int] = mapped_column(primary_key=True)

    with pytest.raises(AssociationError, match="tenant-scoped differently"):
        association_table(A, B)
    with pytest.raises(AssociationError, match="both tenant-scoped"):
        association_table(A, A, left_column="x_id", right_column="y_id", tenant=False)
    with pytest.raises(AssociationError, match="neither"):
        association_table(C, C, left_column="x_id", right_column="y_id", tenant=True)
    shared = association_table(A, C, tenant=False)
    assert "tenant_id" not in shared.c and tenant_of(shared) is None
    assert "a_c" in Base.metadata.tables


_op = st.tuples(
    st.sampled_from([1, 2]),  # acting tenant
    st.sampled_from(["link", "unlink", "sync"]),
    st.sampled_from(sorted(POSTS)),
    st.lists(st.sampled_from(sorted(TAGS)), max_size=3),
)


@settings(max_examples=15)
@given(ops=st.lists(_op, min_size=1, max_size=6))
def test_two_tenants_each_see_their_own_model(world: World, ops: list[Any]) -> None:
    with world.owner.begin() as conn:  # reset between examples
        conn.execute(delete(world.post_tags))
    model: dict[int, set[tuple[int, int]]] = {1: set(), 2: set()}
    fns = {"link": link, "unlink": unlink, "sync": sync}
    with world.app.connect() as conn:  # one connection, one transaction per step
        for tenant, op, post, tags in ops:
            mine = POSTS[post] == tenant
            foreign = [t for t in tags if TAGS[t] != tenant]
            with Session(bind=conn) as s, s.begin():
                tenant_context(s, tenant)
                try:
                    fns[op](s, post, tags, via=world.post.tags)
                except UnknownLinkTargetError:
                    assert op != "unlink" and (not mine or foreign)
                    continue
            assert op == "unlink" or (mine and not foreign)
            pairs = {(post, t) for t in tags}
            if mine:
                current = model[tenant]
                if op == "link":
                    current |= pairs
                elif op == "unlink":
                    current -= pairs
                else:
                    current -= {p for p in current if p[0] == post}
                    current |= pairs
            for viewer in (1, 2):
                with conn.begin():
                    tenant_context(conn, viewer)
                    seen = conn.execute(select(world.post_tags.c.post_id,
                                               world.post_tags.c.tag_id))
                    assert {(p, t) for p, t in seen} == model[viewer]


def test_a_lost_race_as_the_app_role(world: World) -> None:
    """The owner-row touch works under RLS for the app role (it needs UPDATE on posts)."""
    Post = world.post
    rr = world.app.execution_options(isolation_level="REPEATABLE READ")
    with Session(rr) as slow:
        slow.begin()
        tenant_context(slow, 1)
        slow.execute(select(world.post_tags.c.tag_id)).all()  # the snapshot starts here
        with Session(world.app) as fast, fast.begin():
            tenant_context(fast, 1)
            assert sync(fast, 1, [3], via=Post.tags).added == (3,)
        with pytest.raises(LinkConcurrentUpdateError):
            sync(slow, 1, [1], via=Post.tags)
        slow.rollback()
    assert all_pairs(world) == {(1, 3), (3, 4), (3, 5)}
