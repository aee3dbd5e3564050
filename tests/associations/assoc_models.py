"""Models shared by the associations tests (table names prefixed: the test database is shared)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Column, DateTime, Text, event, func
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from pgpatterns.associations import association_object, many_to_many


class Base(DeclarativeBase):
    pass


class Post(Base):
    __tablename__ = "assoc_posts"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    title: Mapped[str] = mapped_column(default="")


class Tag(Base):
    __tablename__ = "assoc_tags"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(unique=True)


class User(Base):
    __tablename__ = "assoc_users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]


class Group(Base):
    __tablename__ = "assoc_groups"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]


posts_tags = many_to_many(Post, Tag, attr="tags", back="posts", name="assoc_posts_tags")

Membership = association_object(
    Base, User, Group,
    name="Membership",
    tablename="assoc_memberships",
    extra_columns=[
        Column("role", Text, nullable=False, server_default="member"),
        Column("joined_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    ],
    proxies=("groups", "users"),
)


class Statements:
    """Every SQL statement the session's connection sends while active."""

    def __init__(self, session: Session) -> None:
        self.conn = session.connection()
        self.sql: list[str] = []

    def __enter__(self) -> list[str]:
        event.listen(self.conn, "before_cursor_execute", self._record)
        return self.sql

    def __exit__(self, *exc: object) -> None:
        event.remove(self.conn, "before_cursor_execute", self._record)

    def _record(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.sql.append(statement)


__all__ = ["Base", "Group", "Membership", "Post", "Statements", "Tag", "User", "dt", "posts_tags"]
