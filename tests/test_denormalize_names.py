"""Hostile identifiers in denormalized copies and counter caches (issue #17): ``%``, quotes,
spaces, unicode and 63-byte names for tables and columns, with and without a schema."""

from __future__ import annotations

from typing import Any

import pytest
from hostile import names
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    Column,
    Connection,
    ForeignKey,
    Integer,
    MetaData,
    Table,
    Text,
    delete,
    insert,
    select,
    update,
)

from pgpatterns.ddl import attach
from pgpatterns.denormalize import counter_cache, denormalized, drift_count
from pgpatterns.errors import DenormalizeError
from pgpatterns.testing.plugin import PgSchema

NAMES = names(7)


def _build(names: list[str], schema: str | None) -> tuple[MetaData, Table, Table, list[object]]:
    p_name, c_name, key, src, cnt, fk, copy = names
    md = MetaData()
    parent = Table(p_name, md, Column(key, Integer, primary_key=True), Column(src, Text),
                   Column(cnt, Integer, nullable=False, server_default="0"), schema=schema)
    child = Table(c_name, md, Column("id", Integer, primary_key=True),
                  Column(fk, ForeignKey(parent.c[key], ondelete="SET NULL")),
                  Column(copy, Text), schema=schema)
    copied = denormalized(child.c[copy], parent.c[src])
    counted = counter_cache(parent.c[cnt], child)
    attach(md, *copied, *counted)
    return md, parent, child, [copied, counted]


def _exercise(conn: Connection, names: list[str], parent: Table, child: Table) -> None:
    _, _, key, src, cnt, fk, copy = names
    conn.execute(insert(parent), [{key: 1, src: "one%s"}, {key: 2, src: 'two"'}])
    conn.execute(insert(child), [{"id": i, fk: 1 + i % 2} for i in range(5)])
    conn.execute(update(parent).where(parent.c[key] == 1).values({src: "ONE"}))
    conn.execute(update(child).where(child.c.id == 0).values({fk: 1}))  # a move
    conn.execute(delete(child).where(child.c.id == 4))
    copies = dict(conn.execute(select(child.c.id, child.c[copy])).all())
    counts = dict(conn.execute(select(parent.c[key], parent.c[cnt])).all())
    assert copies == {0: "ONE", 1: 'two"', 2: "ONE", 3: 'two"'}
    assert counts == {1: 2, 2: 2}


@settings(max_examples=12)
@given(names=NAMES, qualified=st.booleans())
def test_hostile_names_work_end_to_end(pg_schema: PgSchema, names: list[str],
                                       qualified: bool) -> None:
    md, parent, child, maintained = _build(names, pg_schema.name if qualified else None)
    with pg_schema.engine.connect() as conn, conn.begin():
        md.create_all(conn)
        _exercise(conn, names, parent, child)
        assert drift_count(conn, *maintained) == [0, 0]  # type: ignore[arg-type]
        conn.rollback()


def test_the_reported_percent_column(pg_schema: PgSchema) -> None:
    """#17: a copy into a column named "na%me" made every insert fail."""
    names = ["users", "posts", "id", "na%me", "n", "author_id", "na%me"]
    md, parent, child, _ = _build(names, None)
    with pg_schema.engine.connect() as conn, conn.begin():
        md.create_all(conn)
        _exercise(conn, names, parent, child)
        conn.rollback()


def test_bad_arguments_are_denormalize_errors_before_sql() -> None:
    _md, parent, child, _ = _build(["p", "c", "id", "src", "cnt", "fk", "copy"], None)
    other = Table("o", MetaData(), Column("id", Integer, primary_key=True),
                  Column("p", ForeignKey(parent.c.id)), schema="elsewhere")
    nothing: Any = None
    empty: Any = []
    five: Any = 5
    word: Any = "x"
    cases: list[tuple[Any, str]] = [
        (lambda: denormalized(None, parent.c.src), "is not a column of a table"),
        (lambda: denormalized(child.c.copy, 3), "is not a column of a table"),
        (lambda: denormalized(child.c.copy, parent.c.src, lock=empty), "lock=\\[\\] is not"),
        (lambda: denormalized(child.c.copy, parent.c.src, lock=nothing), "lock=None is not"),
        (lambda: denormalized(child.c.copy, parent.c.src, name=""), "name='' must be"),
        (lambda: denormalized(child.c.copy, parent.c.src, name=five), "name=5 must be"),
        (lambda: denormalized(child.c.copy, parent.c.src, via=2**70), "has no column"),
        (lambda: counter_cache(parent.c.cnt, None), "is not a Table"),
        (lambda: counter_cache(parent.c.cnt, "c"), "is not a Table"),
        (lambda: counter_cache(parent.c.cnt, other), "declare every table with a schema"),
        (lambda: drift_count(nothing), "pass what denormalized"),
        (lambda: drift_count(nothing, word), "pass what denormalized"),
    ]
    for build, message in cases:
        with pytest.raises(DenormalizeError, match=message):
            build()
