"""Single-table inheritance: generated CHECKs, partial indexes, flush-time validation."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import String, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from pgpatterns.errors import PolymorphicError
from pgpatterns.explain import explain, uses_index
from pgpatterns.polymorphic import single_table_integrity
from pgpatterns.testing.plugin import PgSchema


def _models() -> dict[str, Any]:
    class Base(DeclarativeBase):
        pass

    class Item(Base):
        __tablename__ = "items"
        id: Mapped[int] = mapped_column(primary_key=True)
        type: Mapped[str] = mapped_column(String(20))
        title: Mapped[str]
        __mapper_args__ = {"polymorphic_on": "type", "polymorphic_identity": "item"}

    class Video(Item):
        duration: Mapped[int]
        codec: Mapped[str | None]
        __mapper_args__ = {"polymorphic_identity": "video"}

    class Article(Item):
        body: Mapped[str]
        __mapper_args__ = {"polymorphic_identity": "article"}

    return {"Base": Base, "Item": Item, "Video": Video, "Article": Article}


def test_generated_constraints_render_as_migration_ddl() -> None:
    m = _models()
    integrity = single_table_integrity(m["Item"], partial_indexes={m["Video"]: ["duration"]})
    assert integrity.identities == ("item", "video", "article")
    assert m["Item"].__table__.c.duration.nullable is True
    assert integrity.ddl() == [
        "ALTER TABLE items ADD CONSTRAINT ck_items_type_known "
        "CHECK (type IN ('item', 'video', 'article'))",
        "ALTER TABLE items ADD CONSTRAINT ck_items_video_required "
        "CHECK ((type NOT IN ('video')) OR duration IS NOT NULL)",
        "ALTER TABLE items ADD CONSTRAINT ck_items_video_only "
        "CHECK (type IN ('video') OR duration IS NULL AND codec IS NULL)",
        "ALTER TABLE items ADD CONSTRAINT ck_items_article_required "
        "CHECK ((type NOT IN ('article')) OR body IS NOT NULL)",
        "ALTER TABLE items ADD CONSTRAINT ck_items_article_only "
        "CHECK (type IN ('article') OR body IS NULL)",
        "CREATE INDEX ix_items_video_duration ON items (duration) WHERE type IN ('video')",
    ]
    assert integrity.ddl(m["Article"]) == integrity.ddl()[3:5]


def test_raw_sql_violations_are_rejected(pg_schema: PgSchema) -> None:
    m = _models()
    single_table_integrity(m["Item"])
    m["Base"].metadata.create_all(pg_schema.engine)
    bad = [
        "INSERT INTO items (id, type, title) VALUES (1, 'podcast', 't')",
        "INSERT INTO items (id, type, title) VALUES (2, 'video', 't')",
        "INSERT INTO items (id, type, title, duration, body) VALUES (3, 'video', 't', 5, 'b')",
        "INSERT INTO items (id, type, title, duration) VALUES (4, 'article', 't', 5)",
    ]
    for stmt in bad:
        with pg_schema.engine.connect() as conn, pytest.raises(IntegrityError) as info:
            conn.execute(text(stmt))
        assert info.value.orig is not None
        assert info.value.orig.sqlstate == "23514", stmt  # check_violation
    with pg_schema.engine.begin() as conn:
        good = "INSERT INTO items (id, type, title, duration, body) VALUES "
        conn.execute(text(good + "(5, 'video', 'v', 9, NULL), (6, 'item', 'i', NULL, NULL)"))
        conn.execute(text(good + "(7, 'article', 'a', NULL, '')"))


def test_orm_rows_of_every_subtype_save(pg_schema: PgSchema) -> None:
    m = _models()
    single_table_integrity(m["Item"])
    m["Base"].metadata.create_all(pg_schema.engine)
    with Session(pg_schema.engine) as session:
        session.add_all([
            m["Video"](title="v", duration=60), m["Article"](title="a", body="..."),
            m["Item"](title="plain"),
        ])
        session.commit()
        assert {type(i).__name__ for i in session.scalars(select(m["Item"]))} == {
            "Video", "Article", "Item"
        }


def test_missing_required_value_fails_before_sql(pg_schema: PgSchema) -> None:
    m = _models()
    single_table_integrity(m["Item"])
    m["Base"].metadata.create_all(pg_schema.engine)
    statements: list[str] = []
    with Session(pg_schema.engine) as session:
        from sqlalchemy import event

        event.listen(pg_schema.engine, "before_cursor_execute",
                     lambda *a: statements.append(a[2]))
        session.add(m["Video"](title="no duration"))
        with pytest.raises(PolymorphicError, match=r"Video.duration is required for 'video'"):
            session.flush()
    assert not any(s.startswith("INSERT") for s in statements)


def test_errors_for_bad_hierarchies() -> None:
    class Base(DeclarativeBase):
        pass

    class Thing(Base):
        __tablename__ = "things"
        id: Mapped[int] = mapped_column(primary_key=True)
        kind: Mapped[str]
        __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "thing"}

    with pytest.warns(Warning, match="does not indicate a 'polymorphic_identity'"):

        class Nameless(Thing):
            size: Mapped[int | None]

        from sqlalchemy.orm import configure_mappers

        configure_mappers()

    with pytest.raises(PolymorphicError, match="Nameless has no polymorphic_identity"):
        single_table_integrity(Thing)
    with pytest.raises(PolymorphicError, match="pass the base class"):
        single_table_integrity(Nameless)
    with pytest.raises(PolymorphicError, match="is not a mapped class"):
        single_table_integrity(int)


def test_called_twice_is_an_error() -> None:
    m = _models()
    single_table_integrity(m["Item"])
    with pytest.raises(PolymorphicError, match="call it once"):
        single_table_integrity(m["Item"])


def test_partial_index_serves_the_subtype_query(pg_schema: PgSchema) -> None:
    m = _models()
    single_table_integrity(m["Item"], partial_indexes={m["Video"]: ["duration"]})
    m["Base"].metadata.create_all(pg_schema.engine)
    with pg_schema.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO items (id, type, title, duration, body) SELECT g, "
            "CASE WHEN g % 50 = 0 THEN 'video' ELSE 'article' END, 't', "
            "CASE WHEN g % 50 = 0 THEN g END, CASE WHEN g % 50 = 0 THEN NULL ELSE 'b' END "
            "FROM generate_series(1, 20000) g"
        ))
        conn.execute(text("ANALYZE items"))
    with Session(pg_schema.engine) as session:
        plan = explain(session, select(m["Video"]).where(m["Video"].duration < 100))
        assert uses_index(plan, "ix_items_video_duration"), plan


@settings(max_examples=15)
@given(kinds=st.lists(st.sampled_from(["video", "article", "item"]), min_size=1, max_size=12))
def test_random_mixes_round_trip(pg_schema: PgSchema, kinds: list[str]) -> None:
    m = _models()
    single_table_integrity(m["Item"])
    with pg_schema.engine.begin() as conn:
        m["Base"].metadata.drop_all(conn)
        m["Base"].metadata.create_all(conn)
    made = {
        "video": lambda i: m["Video"](title=f"v{i}", duration=i),
        "article": lambda i: m["Article"](title=f"a{i}", body=str(i)),
        "item": lambda i: m["Item"](title=f"i{i}"),
    }
    with Session(pg_schema.engine) as session:
        session.add_all([made[k](i) for i, k in enumerate(kinds)])
        session.commit()
    with Session(pg_schema.engine) as session:
        rows = session.scalars(select(m["Item"]).order_by(m["Item"].title)).all()
        got = sorted((r.type, r.title, getattr(r, "duration", None), getattr(r, "body", None))
                     for r in rows)
    expected = sorted(
        (k, {"video": "v", "article": "a", "item": "i"}[k] + str(i),
         i if k == "video" else None, str(i) if k == "article" else None)
        for i, k in enumerate(kinds)
    )
    assert got == expected
