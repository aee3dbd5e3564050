"""Hostile arguments: a typed error before any SQL, never a raw driver error or a silent no-op."""

from __future__ import annotations

from typing import Any

import pytest
from assoc_models import Base, Post, Statements, Tag, posts_tags
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, MetaData, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from pgpatterns.associations import (
    association_object,
    association_table,
    having_all,
    having_any,
    having_none,
    link,
    link_stmt,
    many_to_many,
    sync,
    sync_async,
    top_related,
    unlink,
)
from pgpatterns.errors import ArgumentError, DDLNameLengthError, PatternError


@pytest.fixture
def session(pg_engine: Engine, pg_session: Session) -> Session:
    Base.metadata.create_all(pg_engine, checkfirst=True)
    pg_session.add_all([Post(id=1), Post(id=2)])
    pg_session.add_all([Tag(id=i, name=f"t{i}") for i in (1, 2, 3)])
    pg_session.flush()
    link(pg_session, 1, [1, 2, 3], via=Post.tags)
    return pg_session


def pairs(session: Session) -> set[tuple[int, int]]:
    return {(p, t) for p, t in session.execute(select(posts_tags.c.post_id,
                                                      posts_tags.c.tag_id))}


@pytest.mark.parametrize("write", [sync, link, unlink])
def test_none_is_refused_not_taken_as_empty(session: Session, write: Any) -> None:
    """Old code: sync(s, 1, None) unlinked every tag; link/unlink with None were no-ops."""
    with Statements(session) as sql, pytest.raises(ArgumentError, match=(
            rf"{write.__name__}\(\): rights=None is not accepted.*use \[\] for none")) as info:
        write(session, 1, None, via=Post.tags)
    assert sql == []
    assert info.value.argument == "rights" and info.value.given is None
    assert pairs(session) == {(1, 1), (1, 2), (1, 3)}


@pytest.mark.parametrize(("call", "match"), [
    (lambda s: link(s, 1, [2**40], via=Post.tags),
     r"link\(\): rights\[0\]=1099511627776 is out of range: pass an int from -2147483648"),
    (lambda s: sync(s, 2**40, [1], via=Post.tags),
     r"sync\(\): left=1099511627776 is out of range"),
    (lambda s: unlink(s, 1, [1, 2**63], via=Post.tags), r"unlink\(\): rights\[1\]="),
    (lambda s: link(s, None, [1], via=Post.tags), r"link\(\): left=None"),
    (lambda s: link(s, 1, [True], via=Post.tags), r"rights\[0\]=True"),
    (lambda s: link(s, "1", [1], via=Post.tags), r"left='1'"),
    (lambda s: link(s, 1, [1.5], via=Post.tags), r"rights\[0\]=1.5"),
    (lambda s: link(s, 1, 7, via=Post.tags), r"rights=7 is not accepted"),
    (lambda s: link(s, 1, {"a": 1}, via=Post.tags), r"rights=\{'a': 1\}"),
    (lambda s: link_stmt(Post.tags, 2**40, [1]), r"link_stmt\(\): left_id="),
    (lambda s: link_stmt(Post.tags, 1, None), r"link_stmt\(\): ids=None"),
])
def test_keys_are_checked_against_the_column_type_before_sql(
        session: Session, call: Any, match: str) -> None:
    with Statements(session) as sql, pytest.raises(ArgumentError, match=match):
        call(session)
    assert sql == []
    assert pairs(session) == {(1, 1), (1, 2), (1, 3)}  # the transaction is still usable


@pytest.mark.parametrize(("call", "match"), [
    (lambda: having_any(Post, Post.tags, None), r"having_any\(\): values=None"),
    (lambda: having_all(Post, Post.tags, [2**40]), r"having_all\(\): values\[0\]="),
    (lambda: having_none(Post, Post.tags, ["x"]), r"having_none\(\): values\[0\]='x'"),
    (lambda: having_all(Post, Post.tags, [1], by=Tag.name), r"values\[0\]=1 .*str"),
    (lambda: having_any(Post, Post.tags, "t1", by=Tag.name), r"values='t1' is a single"),
    (lambda: having_all(Post, Post.tags, [1], method="loop"), r"method='loop'"),
    (lambda: having_all(Post, Post.tags, [], method="loop"), r"method='loop'"),
    (lambda: top_related(Tag, Tag.posts, among=[2**40]), r"top_related\(\): among\[0\]="),
    (lambda: top_related(Tag, Tag.posts, limit=True), r"limit=True"),
    (lambda: top_related(Tag, Tag.posts, limit=2**63), r"limit=9223372036854775808"),
])
def test_query_builder_arguments(call: Any, match: str) -> None:
    with pytest.raises(ArgumentError, match=match):
        call()


async def test_async_none_is_refused(pg_engine: Engine, pg_async_session: AsyncSession) -> None:
    Base.metadata.create_all(pg_engine, checkfirst=True)
    with pytest.raises(ArgumentError, match=r"sync\(\): rights=None"):
        await sync_async(pg_async_session, 1, None, via=Post.tags)


hostile = st.one_of(
    st.none(), st.booleans(), st.sampled_from([2**31, 2**40, -(2**63), 2**63, 0]),
    st.integers(-(2**70), 2**70), st.floats(allow_nan=True),
    st.text(max_size=5), st.binary(max_size=3), st.just(float("inf")),
)


@given(op=st.sampled_from([link, unlink, sync]), left=hostile,
       rights=st.one_of(hostile, st.lists(hostile, max_size=3),
                        st.lists(st.integers(1, 3), max_size=3)))
def test_any_argument_gives_a_result_or_a_pattern_error(
        session: Session, op: Any, left: Any, rights: Any) -> None:
    before = session.scalar(select(func.count()).select_from(posts_tags))
    savepoint = session.begin_nested()
    try:
        with Statements(session) as sql:
            try:
                op(session, left, rights, via=Post.tags)
            except ArgumentError:
                assert sql == []  # refused before any SQL
            except PatternError:  # e.g. an id that does not exist: nothing was written
                assert session.scalar(select(func.count()).select_from(posts_tags)) == before
    finally:
        savepoint.rollback()


def test_association_table_arguments() -> None:
    class B(DeclarativeBase):
        metadata = MetaData()

    class Left(B):
        __tablename__ = "l" * 40
        id: Mapped[int] = mapped_column(primary_key=True)

    class Right(B):
        __tablename__ = "r" * 40
        id: Mapped[int] = mapped_column(primary_key=True)

    for bad in ({"left_column": -7.2e34}, {"name": ""}, {"ondelete": 1}, {"metadata": "md"},
                {"tenant": "yes"}, {"extra_columns": None}, {"key_columns": "k"}):
        with pytest.raises(ArgumentError, match=rf"association_table\(\): {next(iter(bad))}="):
            association_table(Left, Right, **bad)
    with pytest.raises(DDLNameLengthError):
        association_table(Left, Right, name="x" * 64)
    assert list(B.metadata.tables) == ["l" * 40, "r" * 40]  # nothing was added
    table = association_table(Left, Right)  # generated names are shortened, never truncated
    names = [table.name, *(c.name for c in table.columns), *(i.name for i in table.indexes)]
    assert all(len(str(n).encode()) <= 63 for n in names)


def test_declaration_arguments_leave_the_classes_untouched() -> None:
    class B(DeclarativeBase):
        metadata = MetaData()

    class Left(B):
        __tablename__ = "decl_l"
        id: Mapped[int] = mapped_column(primary_key=True)

    class Right(B):
        __tablename__ = "decl_r"
        id: Mapped[int] = mapped_column(primary_key=True)

    for kw in ({"attr": 5}, {"attr": "x y"}, {"attr": "rs", "back": None, "right": 3}):
        kw = {"right": Right, **kw}
        with pytest.raises(ArgumentError):
            many_to_many(Left, kw.pop("right"), **kw)
    for kw in ({"name": 7}, {"name": "L", "links": "ab"}, {"name": "L", "left_attr": "a b"},
               {"name": "L", "base": object}):
        kw = {"base": B, **kw}
        with pytest.raises(ArgumentError):
            association_object(kw.pop("base"), Left, Right, **kw)
    assert list(B.metadata.tables) == ["decl_l", "decl_r"]
    assert set(Left.__mapper__.attrs.keys()) == {"id"}
