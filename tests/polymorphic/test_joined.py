"""Class-table inheritance: guard triggers, cascades, bounded polymorphic loading."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import ForeignKey, event, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from pgpatterns.errors import PolymorphicError, PolymorphicIntegrityError
from pgpatterns.polymorphic import (
    joined_table_integrity,
    polymorphic_errors,
    polymorphic_select,
)
from pgpatterns.testing.plugin import PgSchema


def _models() -> dict[str, Any]:
    class Base(DeclarativeBase):
        pass

    class Content(Base):
        __tablename__ = "content"
        id: Mapped[int] = mapped_column(primary_key=True)
        type: Mapped[str]
        title: Mapped[str]
        __mapper_args__ = {"polymorphic_on": "type", "polymorphic_identity": "content"}

    class Video(Content):
        __tablename__ = "videos"
        id: Mapped[int] = mapped_column(ForeignKey("content.id"), primary_key=True)
        duration: Mapped[int]
        __mapper_args__ = {"polymorphic_identity": "video"}

    class Podcast(Content):
        __tablename__ = "podcasts"
        id: Mapped[int] = mapped_column(ForeignKey("content.id"), primary_key=True)
        episodes: Mapped[int]
        __mapper_args__ = {"polymorphic_identity": "podcast"}

    return {"Base": Base, "Content": Content, "Video": Video, "Podcast": Podcast}


@pytest.fixture
def models(pg_schema: PgSchema) -> dict[str, Any]:
    m = _models()
    joined_table_integrity(m["Content"])
    m["Base"].metadata.create_all(pg_schema.engine)
    return m


def _raw_fails(pg_schema: PgSchema, stmt: str, sqlstate: str, constraint: str) -> None:
    with pg_schema.engine.connect() as conn, pytest.raises(IntegrityError) as info:
        conn.execute(text(stmt))
    orig: Any = info.value.orig
    assert orig.sqlstate == sqlstate
    assert orig.diag.constraint_name == constraint


def test_raw_sql_cannot_break_the_hierarchy(pg_schema: PgSchema, models: dict[str, Any]) -> None:
    with pg_schema.engine.begin() as conn:
        conn.execute(text("INSERT INTO content VALUES (1, 'video', 'v'), (2, 'podcast', 'p')"))
        conn.execute(text("INSERT INTO videos VALUES (1, 60)"))
        conn.execute(text("INSERT INTO podcasts VALUES (2, 3)"))
    # a video row for a podcast: wrong discriminator
    _raw_fails(pg_schema, "INSERT INTO videos VALUES (2, 5)", "23514", "videos_pgp_guard")
    # a second subtype row for a video
    _raw_fails(pg_schema, "INSERT INTO podcasts VALUES (1, 5)", "23514", "podcasts_pgp_guard")
    # changing the discriminator
    _raw_fails(pg_schema, "UPDATE content SET type = 'podcast' WHERE id = 1", "23514",
               "content_pgp_fixed_type")
    expected = "constraint videos_pgp_guard"
    with pytest.raises(PolymorphicIntegrityError, match=expected) as info, \
            polymorphic_errors(), pg_schema.engine.begin() as conn:
        conn.execute(text("INSERT INTO videos VALUES (2, 5)"))
    assert isinstance(info.value.__cause__, IntegrityError)
    with pytest.raises(IntegrityError), polymorphic_errors(), pg_schema.engine.begin() as conn:
        conn.execute(text("INSERT INTO videos VALUES (1, 5)"))  # a plain PK violation: untouched
    with pg_schema.engine.begin() as conn:  # deleting the base row cascades
        conn.execute(text("DELETE FROM content WHERE id = 1"))
        assert conn.execute(text("SELECT count(*) FROM videos")).scalar() == 0


def test_orm_round_trip_and_bounded_loading(pg_schema: PgSchema, models: dict[str, Any]) -> None:
    m = models
    with Session(pg_schema.engine) as session:
        for i in range(30):
            session.add(m["Video"](title=f"v{i}", duration=i) if i % 2 else
                        m["Podcast"](title=f"p{i}", episodes=i))
        session.commit()
    for loading, most in (("joined", 1), ("selectin", 3)):
        statements: list[str] = []

        def count(*args: Any, bucket: list[str] = statements) -> None:
            bucket.append(args[2])

        event.listen(pg_schema.engine, "before_cursor_execute", count)
        with Session(pg_schema.engine) as session:
            stmt = polymorphic_select(m["Content"], loading=loading)  # type: ignore[arg-type]
            rows = session.scalars(stmt.order_by(m["Content"].id)).all()
            extras = [getattr(r, "duration", None) or getattr(r, "episodes", None) for r in rows]
        event.remove(pg_schema.engine, "before_cursor_execute", count)
        assert len(rows) == 30 and extras[1] == 1
        assert len(statements) <= most, (loading, statements)


def test_ddl_renders_guards() -> None:
    m = _models()
    integrity = joined_table_integrity(m["Content"])
    rendered = "\n".join(integrity.ddl())
    assert "CREATE FUNCTION videos_pgp_guard() RETURNS trigger" in rendered
    assert "PERFORM 1" in rendered and "FOR KEY SHARE" in rendered
    assert "content.type IN ('video')" in rendered
    assert m["Video"].__table__.c.id.foreign_keys.pop().ondelete == "CASCADE"


def test_single_table_subtype_is_refused() -> None:
    class Base(DeclarativeBase):
        pass

    class Thing(Base):
        __tablename__ = "things"
        id: Mapped[int] = mapped_column(primary_key=True)
        kind: Mapped[str]
        __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "thing"}

    class Small(Thing):
        __mapper_args__ = {"polymorphic_identity": "small"}

    with pytest.raises(PolymorphicError, match="single_table_integrity"):
        joined_table_integrity(Thing)
    with pytest.raises(PolymorphicError, match="loading='eager'"):
        polymorphic_select(Thing, loading="eager")  # type: ignore[arg-type]
    assert Small is not None
