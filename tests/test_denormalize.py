"""pgpatterns.denormalize: trigger-maintained copies and counters on a real PostgreSQL."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    func,
    insert,
    select,
    text,
    update,
)

from pgpatterns.ddl import attach
from pgpatterns.denormalize import Maintained, counter_cache, denormalized
from pgpatterns.errors import DenormalizeError
from pgpatterns.testing.plugin import PgSchema


def _schema() -> tuple[MetaData, Table, Table, Maintained, Maintained]:
    metadata = MetaData()
    users = Table(
        "users", metadata,
        Column("id", Integer, primary_key=True),
        Column("name", Text, nullable=False),
        Column("post_count", Integer, nullable=False, server_default="0"),
    )
    posts = Table(
        "posts", metadata,
        Column("id", Integer, primary_key=True),
        Column("author_id", ForeignKey("users.id", ondelete="SET NULL"), index=True),
        Column("author_name", Text),
        Column("title", Text, nullable=False, server_default="t"),
    )
    copy = denormalized(posts.c.author_name, users.c.name, lock="update")  # + counter cache
    count = counter_cache(users.c.post_count, posts)
    attach(metadata, *copy, *count)
    return metadata, users, posts, copy, count


# -- declaration errors (no SQL) -----------------------------------------------------------
def test_bad_declarations() -> None:
    _, users, posts, _, _ = _schema()
    md = MetaData()
    a = Table("a", md, Column("id", Integer, primary_key=True), Column("name", String(20)),
              Column("n", Integer), Column("total", Integer, nullable=False, server_default="0"))
    b = Table("b", md, Column("id", Integer, primary_key=True), Column("copy", Text),
              Column("a1", ForeignKey("a.id")), Column("a2", ForeignKey("a.id")),
              Column("c", String(20)))
    cases = [
        (lambda: denormalized(posts.c.title, users.c.name, via="author_id"), None),
        (lambda: denormalized(b.c.copy, a.c.name, via="a1"), "is TEXT but a.name is VARCHAR"),
        (lambda: denormalized(b.c.c, a.c.name), "has 2 foreign keys to a"),
        (lambda: denormalized(b.c.c, a.c.name, via="c"), "has no foreign key to a"),
        (lambda: denormalized("x", a.c.name), "is not a column of a table"),
        (lambda: counter_cache(a.c.n, b, via="a1"), "NOT NULL with server_default"),
        (lambda: counter_cache(a.c.name, b, via="a1"), "must be an integer"),
        (lambda: counter_cache(a.c.total, b), "has 2 foreign keys"),
    ]
    for build, fragment in cases:
        if fragment is None:
            assert isinstance(build(), Maintained)
            continue
        with pytest.raises(DenormalizeError, match=fragment):
            build()


def test_rendered_triggers() -> None:
    _, users, posts, copy, count = _schema()
    sqls = [o.sql() for o in copy]
    assert sqls[1] == (
        "CREATE TRIGGER posts_author_name_copy BEFORE INSERT OR UPDATE OF author_id, "
        "author_name ON posts FOR EACH ROW EXECUTE FUNCTION posts_author_name_copy()"
    )
    assert "FOR NO KEY UPDATE" in sqls[0]
    assert "FOR SHARE" in denormalized(posts.c.author_name, users.c.name).objects[0].sql()
    with pytest.raises(DenormalizeError, match="lock='x'"):
        denormalized(posts.c.author_name, users.c.name, lock="x")
    assert sqls[3].startswith("CREATE TRIGGER posts_author_name_push AFTER UPDATE OF name ON")
    assert 'WHEN ("new".name IS DISTINCT FROM "old".name)' in sqls[3]
    assert [o.name for o in count] == [
        "users_post_count_count", "users_post_count_count",
        "users_post_count_reset", "users_post_count_reset",
    ]


# -- real PostgreSQL -------------------------------------------------------------------------
def _create(engine: Engine) -> tuple[Table, Table, Maintained, Maintained]:
    metadata, users, posts, copy, count = _schema()
    with engine.begin() as conn:
        metadata.create_all(conn)
    return users, posts, copy, count


def _drift(conn: Connection, *maintained: Maintained) -> list[int]:
    return [conn.execute(m.drift()).scalar_one() for m in maintained]


def test_copy_and_counter_follow_writes(pg_schema: PgSchema) -> None:
    users, posts, copy, count = _create(pg_schema.engine)
    with pg_schema.engine.begin() as conn:
        conn.execute(insert(users), [{"id": 1, "name": "ada"}, {"id": 2, "name": "bob"}])
        conn.execute(insert(posts), [{"id": i, "author_id": 1 + i % 2} for i in range(10)])
        conn.execute(text("UPDATE users SET name = 'Ada L.' WHERE id = 1"))  # raw SQL
        conn.execute(update(posts).where(posts.c.id == 0).values(author_id=2))
        conn.execute(update(posts).where(posts.c.id == 2).values(author_name="forged"))
        conn.execute(delete(users).where(users.c.id == 2))  # ON DELETE SET NULL
        rows = dict(conn.execute(select(posts.c.id, posts.c.author_name)).all())
        counts = dict(conn.execute(select(users.c.id, users.c.post_count)).all())
        assert _drift(conn, copy, count) == [0, 0]
        conn.execute(text("TRUNCATE posts"))
        assert conn.execute(select(users.c.post_count)).scalar_one() == 0
    assert rows[1] is None and rows[2] == "Ada L." and rows[0] is None
    assert counts == {1: 4}


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("insert"), st.integers(1, 4)),
        st.tuples(st.just("move"), st.integers(0, 30), st.none() | st.integers(1, 4)),
        st.tuples(st.just("delete"), st.integers(0, 30)),
        st.tuples(st.just("rename"), st.integers(1, 4), st.sampled_from(["a", "b", "c"])),
        st.tuples(st.just("drop_user"), st.integers(1, 4)),
        st.tuples(st.just("add_user"), st.integers(1, 4)),
    ),
    max_size=25,
)


def test_random_writes_keep_copies_equal(pg_schema: PgSchema) -> None:
    users, posts, copy, count = _create(pg_schema.engine)

    @given(ops=OPS)
    def run(ops: list[tuple[Any, ...]]) -> None:
        with pg_schema.engine.connect() as conn:
            conn.begin()
            conn.execute(insert(users), [{"id": i, "name": f"u{i}"} for i in range(1, 5)])
            next_id = 0
            for op in ops:
                with conn.begin_nested():
                    if op[0] == "insert" and conn.execute(
                        select(users.c.id).where(users.c.id == op[1])
                    ).first():
                        conn.execute(insert(posts).values(id=next_id, author_id=op[1]))
                        next_id += 1
                    elif op[0] == "move" and (op[2] is None or conn.execute(
                        select(users.c.id).where(users.c.id == op[2])
                    ).first()):
                        conn.execute(update(posts).where(posts.c.id == op[1])
                                     .values(author_id=op[2]))
                    elif op[0] == "delete":
                        conn.execute(delete(posts).where(posts.c.id == op[1]))
                    elif op[0] == "rename":
                        conn.execute(update(users).where(users.c.id == op[1])
                                     .values(name=op[2]))
                    elif op[0] == "drop_user":
                        conn.execute(delete(users).where(users.c.id == op[1]))
                    elif op[0] == "add_user":
                        conn.execute(text("INSERT INTO users (id, name) VALUES (:i, 'new') "
                                          "ON CONFLICT DO NOTHING"), {"i": op[1]})
            assert _drift(conn, copy, count) == [0, 0]
            conn.rollback()

    run()


def _in_thread(target: Any) -> tuple[threading.Thread, dict[str, Any]]:
    result: dict[str, Any] = {}

    def wrapper() -> None:
        try:
            target()
        except BaseException as exc:
            result["error"] = exc

    thread = threading.Thread(target=wrapper)
    thread.start()
    return thread, result


@pytest.mark.parametrize("rename_first", [True, False])
def test_concurrent_rename_and_insert(pg_schema: PgSchema, rename_first: bool) -> None:
    engine = pg_schema.engine
    users, posts, copy, count = _create(engine)
    with engine.begin() as conn:
        conn.execute(insert(users).values(id=1, name="old"))
        conn.execute(insert(posts).values(id=1, author_id=1))

    def rename() -> None:
        with engine.begin() as c:
            c.execute(update(users).values(name="new"))

    def add_post() -> None:
        with engine.begin() as c:
            c.execute(insert(posts).values(id=2, author_id=1))

    second = add_post if rename_first else rename
    with engine.connect() as conn:
        conn.begin()
        if rename_first:
            conn.execute(update(users).values(name="new"))
        else:
            conn.execute(insert(posts).values(id=2, author_id=1))
        thread, result = _in_thread(second)
        time.sleep(0.4)
        assert thread.is_alive(), "the second writer must wait for the first"
        conn.commit()
    thread.join(10)
    assert "error" not in result
    with engine.connect() as conn:
        names = conn.execute(select(posts.c.author_name)).scalars().all()
        assert names == ["new", "new"]
        assert _drift(conn, copy, count) == [0, 0]


def test_counter_under_concurrent_writers(pg_schema: PgSchema) -> None:
    engine = pg_schema.engine
    users, posts, copy, count = _create(engine)
    with engine.begin() as conn:
        conn.execute(insert(users), [{"id": i, "name": f"u{i}"} for i in (1, 2)])

    def writer(offset: int) -> None:
        for i in range(offset, offset + 40):
            with engine.begin() as c:
                c.execute(insert(posts).values(id=i, author_id=1 + i % 2))
                if i % 3 == 0:
                    c.execute(delete(posts).where(posts.c.id == i))

    threads = [_in_thread(lambda o=o: writer(o)) for o in (0, 1000, 2000, 3000)]
    for thread, result in threads:
        thread.join(30)
        assert "error" not in result
    with engine.connect() as conn:
        assert _drift(conn, copy, count) == [0, 0]
        total = conn.execute(select(func.sum(users.c.post_count))).scalar()
        expected = sum(1 for o in (0, 1000, 2000, 3000) for i in range(o, o + 40) if i % 3)
        assert total == conn.execute(select(func.count()).select_from(posts)).scalar() == expected


async def test_drift_and_backfill_async(pg_schema: PgSchema, pg_async_engine: Any) -> None:
    users, posts, copy, count = _create(pg_schema.engine)
    with pg_schema.engine.begin() as conn:
        conn.execute(text("ALTER TABLE posts DISABLE TRIGGER USER"))
        conn.execute(insert(users).values(id=1, name="ada"))
        conn.execute(insert(posts).values(id=1, author_id=1))
        conn.execute(text("ALTER TABLE posts ENABLE TRIGGER USER"))
    async with pg_async_engine.connect() as conn:  # not on the test schema: set the path
        await conn.execute(text("SELECT set_config('search_path', :p, true)"),
                           {"p": f'"{pg_schema.name}", public'})
        assert [(await conn.execute(m.drift())).scalar_one() for m in (copy, count)] == [1, 1]
        await conn.execute(copy.backfill())
        await conn.execute(count.backfill())
        assert [(await conn.execute(m.drift())).scalar_one() for m in (copy, count)] == [0, 0]
        await conn.rollback()
