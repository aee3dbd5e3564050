"""Polymorphic associations: exclusive arc and type/id pair, integrity and batched loading."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from pgpatterns.errors import PolymorphicError
from pgpatterns.polymorphic import exclusive_arc, generic_association
from pgpatterns.testing.plugin import PgSchema


def _models(strategy: str) -> dict[str, Any]:
    class Base(DeclarativeBase):
        pass

    class Post(Base):
        __tablename__ = "posts"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]

    class Photo(Base):
        __tablename__ = "photos"
        id: Mapped[int] = mapped_column(primary_key=True)
        url: Mapped[str]

    class Comment(Base):
        __tablename__ = "comments"
        id: Mapped[int] = mapped_column(primary_key=True)
        body: Mapped[str]

    targets = {"post": Post, "photo": Photo}
    if strategy == "arc":
        assoc: Any = exclusive_arc(Comment, targets, backref="comments")
    else:
        assoc = generic_association(Comment, targets)
    return {"Base": Base, "Post": Post, "Photo": Photo, "Comment": Comment, "assoc": assoc}


@pytest.fixture(params=["arc", "generic"])
def models(request: pytest.FixtureRequest, pg_schema: PgSchema) -> dict[str, Any]:
    m = _models(request.param)
    m["strategy"] = request.param
    m["Base"].metadata.create_all(pg_schema.engine)
    return m


class _Counter:
    def __init__(self) -> None:
        self.statements: list[str] = []

    def __call__(self, *args: Any) -> None:
        self.statements.append(args[2])


@pytest.fixture
def counter(pg_schema: PgSchema) -> Iterator[_Counter]:
    c = _Counter()
    event.listen(pg_schema.engine, "before_cursor_execute", c)
    yield c
    event.remove(pg_schema.engine, "before_cursor_execute", c)


def _seed(session: Session, m: dict[str, Any], n: int = 500) -> list[Any]:
    posts = [m["Post"](title=f"p{i}") for i in range(20)]
    photos = [m["Photo"](url=f"u{i}") for i in range(20)]
    session.add_all(posts + photos)
    session.flush()
    comments = []
    for i in range(n):
        c = m["Comment"](body=f"c{i}")
        c.target = posts[i % 20] if i % 3 else photos[i % 20]
        comments.append(c)
    session.add_all(comments)
    session.commit()
    return comments


def test_target_round_trip(pg_schema: PgSchema, models: dict[str, Any]) -> None:
    m = models
    with Session(pg_schema.engine) as session:
        _seed(session, m, 30)
    with Session(pg_schema.engine) as session:
        photo = session.scalars(select(m["Photo"]).where(m["Photo"].url == "u3")).one()
        comments = session.scalars(select(m["Comment"]).where(m["assoc"].of(photo))).all()
        assert comments and all(c.target is photo for c in comments)
        moved = comments[0]
        post = session.scalars(select(m["Post"]).limit(1)).one()
        moved.target = post
        session.commit()
        assert session.get(m["Comment"], moved.id).target is post


def test_eager_loading_is_bounded(pg_schema: PgSchema, models: dict[str, Any],
                                  counter: _Counter) -> None:
    m = models
    with Session(pg_schema.engine) as session:
        _seed(session, m)
    counter.statements.clear()
    with Session(pg_schema.engine) as session:
        if m["strategy"] == "arc":
            stmt = select(m["Comment"]).options(*m["assoc"].eager())
            comments = session.scalars(stmt).all()
        else:
            comments = session.scalars(select(m["Comment"])).all()
            m["assoc"].load(session, comments)
        kinds = {type(c.target).__name__ for c in comments}
    assert len(comments) == 500 and kinds == {"Post", "Photo"}
    assert len(counter.statements) <= 3, counter.statements  # types + 1


def test_deleting_a_target_cascades_without_loading(pg_schema: PgSchema, models: dict[str, Any],
                                                    counter: _Counter) -> None:
    m = models
    with Session(pg_schema.engine) as session:
        _seed(session, m, 60)
        post = session.scalars(select(m["Post"]).where(m["Post"].title == "p1")).one()
        counter.statements.clear()
        session.delete(post)
        session.commit()
    assert not any("FROM comments" in s for s in counter.statements), counter.statements
    pair = ("c.post_id" if m["strategy"] == "arc" else "c.target_type = 'post' AND c.target_id")
    with pg_schema.engine.connect() as conn:
        orphans = conn.execute(text(
            f"SELECT count(*) FROM comments c WHERE {pair} IS NOT NULL AND NOT EXISTS "
            f"(SELECT 1 FROM posts p WHERE p.id = {pair.split(' AND ')[-1]})"
        )).scalar()
        total = conn.execute(text("SELECT count(*) FROM comments")).scalar()
    assert orphans == 0
    assert total == 60 - 2  # comments 1 and 41 pointed at post p1 (i % 20 == 1, i % 3 != 0)


def test_raw_sql_is_rejected(pg_schema: PgSchema, models: dict[str, Any]) -> None:
    m = models
    with pg_schema.engine.begin() as conn:
        conn.execute(text("INSERT INTO posts VALUES (1, 'p')"))
        conn.execute(text("INSERT INTO photos VALUES (1, 'u')"))
    if m["strategy"] == "arc":
        bad = [("INSERT INTO comments (id, body, post_id, photo_id) VALUES (1, 'b', 1, 1)",
                "23514"),
               ("INSERT INTO comments (id, body) VALUES (2, 'none')", "23514"),
               ("INSERT INTO comments (id, body, post_id) VALUES (3, 'b', 99)", "23503")]
    else:
        bad = [("INSERT INTO comments (id, body, target_type, target_id) "
                "VALUES (1, 'b', 'video', 1)", "23514"),
               ("INSERT INTO comments (id, body, target_type, target_id) "
                "VALUES (3, 'b', 'post', 99)", "23503")]
    for stmt, state in bad:
        with pg_schema.engine.connect() as conn, pytest.raises(IntegrityError) as info:
            conn.execute(text(stmt))
        assert getattr(info.value.orig, "sqlstate", None) == state, stmt


def test_bad_targets_fail_before_sql(pg_schema: PgSchema, models: dict[str, Any]) -> None:
    m = models
    comment = m["Comment"](body="x")
    with pytest.raises(PolymorphicError, match="cannot point at a Comment"):
        comment.target = m["Comment"](body="self")
    if m["strategy"] == "arc":
        comment.post = m["Post"](title="p")
        comment.photo = m["Photo"](url="u")
        with Session(pg_schema.engine) as session:
            session.add(comment)
            with pytest.raises(PolymorphicError, match="post and photo are set"):
                session.flush()
    else:
        with pytest.raises(PolymorphicError, match="flush the session first"):
            comment.target = m["Post"](title="unsaved")


def test_arc_declaration_errors() -> None:
    class Base(DeclarativeBase):
        pass

    class Note(Base):
        __tablename__ = "notes"
        id: Mapped[int] = mapped_column(primary_key=True)
        post_id: Mapped[int | None]

    class Post(Base):
        __tablename__ = "posts"
        id: Mapped[int] = mapped_column(primary_key=True)

    with pytest.raises(PolymorphicError, match="already has 'post_id'"):
        exclusive_arc(Note, {"post": Post})
    with pytest.raises(PolymorphicError, match="at least one target"):
        exclusive_arc(Note, {})
    with pytest.raises(PolymorphicError, match="is not a mapped class"):
        generic_association(Note, {"x": int})
