"""Query helpers, schema factories and plans of pgpatterns.associations on real PostgreSQL."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from assoc_models import Base, Group, Membership, Post, Tag, User, posts_tags
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Column, Engine, Integer, MetaData, Table, Text, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from pgpatterns.associations import (
    association_table,
    count_per,
    having_all,
    having_any,
    having_none,
    link,
    many_to_many,
    top_related,
    with_attrs,
)
from pgpatterns.bulk import copy_rows
from pgpatterns.errors import ArgumentError, AssociationError
from pgpatterns.explain import explain, has_seq_scan, scan_types, uses_index

# post id -> tag ids; tag 6 is unused, post 5 untagged
LINKS = {1: {1, 2, 3}, 2: {1, 2}, 3: {1}, 4: {2, 3, 4}, 5: set()}
NAMES = ["python", "sql", "rust", "go", "c", "zig"]


@pytest.fixture
def session(pg_engine: Engine, pg_session: Session) -> Session:
    Base.metadata.create_all(pg_engine, checkfirst=True)
    pg_session.add_all([Post(id=i) for i in LINKS])
    pg_session.add_all([Tag(id=i, name=n) for i, n in enumerate(NAMES, start=1)])
    pg_session.flush()
    for post, tags in LINKS.items():
        link(pg_session, post, tags, via=Post.tags)
    return pg_session


def ids(session: Session, stmt: object) -> set[int]:
    return {p.id for p in session.scalars(stmt)}  # type: ignore[call-overload]


values = st.lists(st.integers(1, 6), max_size=4)


@given(values)
def test_having_any_all_none_match_python(session: Session, wanted: list[int]) -> None:
    w = set(wanted)
    assert ids(session, having_any(Post, Post.tags, wanted)) == {p for p, t in LINKS.items()
                                                                  if t & w}
    expect_all = {p for p, t in LINKS.items() if w <= t}
    assert ids(session, having_all(Post, Post.tags, wanted)) == expect_all
    assert ids(session, having_all(Post, Post.tags, wanted, method="group")) == expect_all
    names = [NAMES[i - 1] for i in wanted]
    assert ids(session, having_all(Post, "tags", names, by=Tag.name)) == expect_all
    assert ids(session, having_all(Post, Post.tags, names, by=Tag.name,
                                   method="group")) == expect_all
    assert ids(session, having_none(Post, Post.tags, wanted)) == {p for p, t in LINKS.items()
                                                                   if not t & w}


def test_helpers_compose_in_one_statement(session: Session) -> None:
    """Two helpers in one statement keep their own values (no shared bind parameter names)."""
    inner = having_all(Post, Post.tags, [2, 3]).with_only_columns(Post.id)
    both = having_all(Post, Post.tags, [1, 2]).where(Post.id.in_(inner))
    assert ids(session, both) == {1}  # {1, 2} & {1, 4}
    any_of = having_any(Post, Post.tags, [1, 4]).where(
        Post.id.in_(having_any(Post, Post.tags, [3]).with_only_columns(Post.id)))
    assert ids(session, any_of) == {1, 4}
    named = having_all(Post, "tags", ["python"], by=Tag.name).where(Post.id.in_(
        having_all(Post, "tags", ["rust"], by=Tag.name).with_only_columns(Post.id)))
    assert ids(session, named) == {1}
    none = having_none(Post, Post.tags, [3]).where(
        Post.id.in_(having_any(Post, Post.tags, [1, 2]).with_only_columns(Post.id)))
    assert ids(session, none) == {2, 3}


def test_having_with_objects_and_reverse_side(session: Session) -> None:
    python, sql = session.get(Tag, 1), session.get(Tag, 2)
    assert ids(session, having_all(Post, Post.tags, [python, sql])) == {1, 2}
    assert ids(session, having_none(Post, Post.tags)) == {5}
    post4 = session.get(Post, 4)
    tag_ids = {t.id for t in session.scalars(having_any(Tag, Tag.posts, [post4]))}
    assert tag_ids == {2, 3, 4}
    with pytest.raises(AssociationError, match="belongs to Post, not Tag"):
        having_any(Tag, Post.tags, [1])
    with pytest.raises(AssociationError, match=r"by=Tag\.name"):
        having_any(Post, Post.tags, ["x"], by=Post.title)


def test_count_per_and_top_related(session: Session) -> None:
    counts = {t.name: n for t, n in session.execute(count_per(Tag, Tag.posts))}
    assert counts == {"python": 3, "sql": 3, "rust": 2, "go": 1, "c": 0, "zig": 0}
    top = [(t.name, n) for t, n in session.execute(top_related(Tag, Tag.posts, limit=3))]
    assert top == [("python", 3), ("sql", 3), ("rust", 2)]
    with_rust = having_any(Post, Post.tags, [3]).with_only_columns(Post.id)
    related = [(t.id, n) for t, n in session.execute(
        top_related(Tag, Tag.posts, among=with_rust, limit=10))]
    assert related == [(2, 2), (3, 2), (1, 1), (4, 1)]
    assert [n for _, n in session.execute(top_related(Tag, Tag.posts, among=[3, 4]))] == [1] * 4
    with pytest.raises(ArgumentError, match=r"top_related\(\): limit=0 is out of range"):
        top_related(Tag, Tag.posts, limit=0)


def test_proxy_creation_with_attributes(session: Session) -> None:
    group, alice, bob = Group(name="admins"), User(name="alice"), User(name="bob")
    session.add_all([group, alice, bob])
    group.users.append(with_attrs(alice, role="owner"))
    group.users.append(bob)
    alice.groups.append(Group(name="readers"))
    session.flush()
    session.expire_all()
    rows = session.execute(select(User.name, Group.name, Membership.role)
                           .join(Membership.user).join(Membership.group)
                           .order_by(User.name, Group.name)).all()
    assert [tuple(r) for r in rows] == [("alice", "admins", "owner"),
                                        ("alice", "readers", "member"),
                                        ("bob", "admins", "member")]
    assert all(m.joined_at is not None for m in group.memberships)
    group.users.remove(bob)  # delete-orphan: the membership row goes
    session.flush()
    assert [u.name for u in session.scalars(having_any(User, User.groups, [group]))] == ["alice"]
    with pytest.raises(AssociationError, match="no column colour"):
        group.users.append(with_attrs(bob, colour="red"))


def test_query_shapes() -> None:
    def sql(stmt: object) -> str:
        return str(stmt.compile(dialect=postgresql.dialect()))  # type: ignore[attr-defined]

    one = sql(having_any(Post, Post.tags, [1]))
    assert "JOIN assoc_posts_tags AS assoc_posts_tags_0 ON assoc_posts_tags_0.post_id = " in one
    assert "IN (SELECT assoc_posts_tags.post_id" in sql(having_any(Post, Post.tags, [1, 2]))
    three = sql(having_all(Post, Post.tags, [1, 2, 3]))
    assert three.count("JOIN assoc_posts_tags AS") == 3 and "GROUP BY" not in three
    assert "HAVING count(*) = " in sql(having_all(Post, Post.tags, [1, 2], method="group"))
    by_name = sql(having_all(Post, Post.tags, ["a", "b"], by=Tag.name))
    assert "= (SELECT assoc_tags_1.id" in by_name
    assert "NOT (EXISTS" in sql(having_none(Post, Post.tags, [1]))


def test_association_table_shape_and_errors() -> None:
    md = MetaData()
    a = Table("a", md, Column("id", Integer, primary_key=True))
    b = Table("b", md, Column("key", Text, primary_key=True))
    ab = association_table(a, b, extra_columns=[Column("note", Text)])
    assert [c.name for c in ab.primary_key] == ["a_id", "b_key"]
    assert [(i.name, [c.name for c in i.columns]) for i in ab.indexes] == [
        ("a_b_b_key_a_id_idx", ["b_key", "a_id"])]
    assert {fk.ondelete for fk in ab.foreign_keys} == {"CASCADE"}
    with pytest.raises(AssociationError, match="already has a table 'a_b'"):
        association_table(a, b)
    with pytest.raises(AssociationError, match="left_column= and right_column="):
        association_table(a, a)
    follows = association_table(a, a, left_column="follower_id", right_column="followed_id")
    assert follows.name == "a_a"
    with pytest.raises(AssociationError, match="SET NULL"):
        association_table(a, b, name="x", ondelete="SET NULL")
    two = Table("two", md, Column("x", Integer, primary_key=True),
                Column("y", Integer, primary_key=True))
    with pytest.raises(AssociationError, match="2-column primary key"):
        association_table(a, two)
    with pytest.raises(AssociationError, match="mapped class or a Table"):
        association_table(a, "b")
    with pytest.raises(AssociationError, match="non-primary-key"):
        association_table(a, b, name="y", extra_columns=[Column("id", Integer, primary_key=True)])


def test_many_to_many_wires_both_sides() -> None:
    class B2(DeclarativeBase):
        pass

    class Author(B2):
        __tablename__ = "authors"
        id: Mapped[int] = mapped_column(primary_key=True)

    class Book(B2):
        __tablename__ = "books"
        id: Mapped[int] = mapped_column(primary_key=True)

    table = many_to_many(Author, Book, attr="books", back="authors")
    prop = Author.books.property  # type: ignore[attr-defined]
    assert prop.secondary is table and prop.passive_deletes is True
    assert Book.authors.property.back_populates == "books"  # type: ignore[attr-defined]
    with pytest.raises(AssociationError, match="already has an attribute 'books'"):
        many_to_many(Author, Book, attr="books", name="other")


def test_plans_use_the_link_indexes(pg_engine: Engine, pg_session: Session) -> None:
    """60k links (20k posts, Zipf-ish tags) + ANALYZE: the planner has real choices."""
    Base.metadata.create_all(pg_engine, checkfirst=True)
    naive = Table("assoc_naive_links", MetaData(),  # the forgotten reverse index
                  Column("post_id", Integer, primary_key=True),
                  Column("tag_id", Integer, primary_key=True))
    naive.create(pg_session.connection())
    rng = random.Random(5)
    conn = pg_session.connection()
    copy_rows(conn, Post, ((i, "") for i in range(1, 20_001)), columns=["id", "title"])
    copy_rows(conn, Tag, ((i, f"t{i}") for i in range(1, 501)), columns=["id", "name"])
    pairs = {(p, min(int(rng.paretovariate(1.0)), 500)) for p in range(1, 20_001)
             for _ in range(3)}
    copy_rows(conn, posts_tags, sorted(pairs), columns=["post_id", "tag_id"])
    copy_rows(conn, naive, sorted(pairs), columns=["post_id", "tag_id"])
    for name in ("assoc_posts", "assoc_tags", "assoc_posts_tags", "assoc_naive_links"):
        conn.execute(text(f"ANALYZE {name}"))  # constant table names
    uses = Counter(t for _, t in pairs)
    rare = min((n, t) for t, n in uses.items() if t < 500)[1]  # linked to 1 or 2 posts
    plan = explain(pg_session, having_any(Post, Post.tags, [rare]))
    assert uses_index(plan, "assoc_posts_tags_tag_id_post_id_idx"), plan
    assert not has_seq_scan(plan), plan
    naive_plan = explain(pg_session, select(Post).where(
        Post.id.in_(select(naive.c.post_id).where(naive.c.tag_id == rare))))
    assert has_seq_scan(naive_plan, "assoc_naive_links"), naive_plan
    # a page of the newest posts with a tag: the reverse index gives the order (common tag:
    # read backwards, no sort) or the few rows (rare tag: sorted in memory)
    for tag in (1, rare):
        page = having_any(Post, Post.tags, [tag]).order_by(Post.id.desc()).limit(20)
        plan = explain(pg_session, page)
        assert uses_index(plan, "assoc_posts_tags_tag_id_post_id_idx"), plan
        assert not has_seq_scan(plan), plan
        assert tag == rare or "Sort" not in scan_types(plan), plan
    # having_all: the rare tag drives (listed second), the common one is probed per post
    plan = explain(pg_session, having_all(Post, Post.tags, [1, rare]))
    assert not has_seq_scan(plan), plan
    assert "Nested Loop" in str(plan) and plan.root["Plan Rows"] < 10, plan
    # two common tags, newest first: both reverse-index ranges read backwards in key order
    # (merge join, no Sort), so a LIMIT stops after the first matches
    page = having_all(Post, Post.tags, [1, 2]).order_by(Post.id.desc()).limit(20)
    plan = explain(pg_session, page)
    assert uses_index(plan, "assoc_posts_tags_tag_id_post_id_idx"), plan
    assert not has_seq_scan(plan) and "Sort" not in scan_types(plan), plan
    # having_none: an anti-join reading only the rare tag's links through the reverse index
    plan = explain(pg_session, having_none(Post, Post.tags, [rare]).where(Post.id < 50))
    assert uses_index(plan, "assoc_posts_tags_tag_id_post_id_idx"), plan
    assert not has_seq_scan(plan), plan
