"""denormalize: a trigger-maintained author name vs a join, and what the triggers cost.

Data: U users (default 10**4, quick 10**3) and N posts (default 10**6, quick 10**5) with a
random author, loaded twice: ``bench_dn_posts`` (author_id only: the join form) and
``bench_dn_posts_copy`` (plus ``author_name`` kept by :func:`pgpatterns.denormalize.denormalized`
triggers, created after the load; ``drift()`` is checked to be 0).

Questions:

* ``denormalize:post-list``: the 1000 newest posts with their author's name.
* ``denormalize:insert-posts``: insert 2000 posts (quick 500) in one transaction, with the
  copy trigger, with copy + counter cache, and with no trigger.
* ``denormalize:rename-author``: rename 20 authors (each ~N/U posts), with and without the
  trigger that rewrites their posts.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    delete,
    func,
    insert,
    select,
    text,
    update,
)

from benchmarks.conftest import Scale, record
from pgpatterns.bulk import copy_rows
from pgpatterns.ddl import create_all, drop_all
from pgpatterns.denormalize import counter_cache, denormalized
from pgpatterns.explain import explain, plan_summary

metadata = MetaData()
users = Table(
    "bench_dn_users", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("name", Text, nullable=False),
    Column("post_count", Integer, nullable=False, server_default="0"),
)


def _posts(name: str, *, copy: bool) -> Table:
    cols = [Column("author_name", Text)] if copy else []
    table = Table(
        name, metadata,
        Column("id", BigInteger, primary_key=True, autoincrement=False),
        Column("author_id", ForeignKey("bench_dn_users.id"), nullable=False),
        Column("title", Text, nullable=False),
        *cols,
    )
    Index(f"{name}_author_idx", table.c.author_id)
    return table


posts = _posts("bench_dn_posts", copy=False)
posts_copy = _posts("bench_dn_posts_copy", copy=True)
COPY = denormalized(posts_copy.c.author_name, users.c.name)
COPY_LOCKED = denormalized(posts_copy.c.author_name, users.c.name, lock="update",
                           name="bench_dn_locked")
COUNTER = counter_cache(users.c.post_count, posts_copy)


@pytest.fixture(scope="module")
def _module() -> Iterator[dict[str, Any]]:
    state: dict[str, Any] = {}
    yield state
    if "engine" in state:
        metadata.drop_all(state["engine"])


@pytest.fixture
def data(pg_engine: Engine, scale: Scale, _module: dict[str, Any]) -> dict[str, Any]:
    if "data" not in _module:
        _module["engine"] = pg_engine
        _module["data"] = _load(pg_engine, scale)
    result: dict[str, Any] = _module["data"]
    return result


def _load(engine: Engine, scale: Scale) -> dict[str, Any]:
    n_users = scale.pick(quick=10**3, default=10**4)
    n_posts = scale.pick(quick=10**5, default=10**6)
    rng = random.Random(scale.seed)
    names = [f"user {i} {rng.randrange(10**6)}" for i in range(n_users + 1)]
    authors = [rng.randrange(1, n_users + 1) for _ in range(n_posts)]
    with engine.begin() as conn:
        metadata.create_all(conn)
        copy_rows(conn, users, ((i, names[i]) for i in range(1, n_users + 1)),
                  columns=["id", "name"])
        copy_rows(conn, posts, ((i, a, f"post {i}") for i, a in enumerate(authors)))
        copy_rows(conn, posts_copy,
                  ((i, a, f"post {i}", names[a]) for i, a in enumerate(authors)))
        create_all(conn, *COPY)
        assert conn.execute(COPY.drift()).scalar() == 0
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM (ANALYZE) bench_dn_users, bench_dn_posts, "
                          "bench_dn_posts_copy"))
    return {"users": n_users, "posts": n_posts}


# -- reads ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["denormalized column", "join users"])
def test_post_list_forms(benchmark: Any, pg_engine: Engine, data: dict[str, Any],
                         scale: Scale, case: str) -> None:
    if case == "join users":
        stmt = (select(posts.c.id, posts.c.title, users.c.name)
                .join(users, users.c.id == posts.c.author_id)
                .order_by(posts.c.id.desc()).limit(1000))
        role = "baseline"
    else:
        stmt = (select(posts_copy.c.id, posts_copy.c.title, posts_copy.c.author_name)
                .order_by(posts_copy.c.id.desc()).limit(1000))
        role = "pattern"
    with pg_engine.connect() as conn:
        plan = explain(conn, stmt, analyze=True)
        record(benchmark, question="denormalize:post-list", case=case, role=role,
               rows=data["posts"], scale=scale, plan=plan_summary(plan))
        result = benchmark.pedantic(lambda: conn.execute(stmt).all(), rounds=scale.rounds,
                                    iterations=1, warmup_rounds=1)
    with pg_engine.connect() as conn:  # both forms return the same page
        other = conn.execute(
            select(posts.c.id, posts.c.title, users.c.name)
            .join(users, users.c.id == posts.c.author_id)
            .order_by(posts.c.id.desc()).limit(1000)
        ).all()
    assert [tuple(r) for r in result] == [tuple(r) for r in other]


# -- writes --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("case", "role", "objects"),
    [
        ("copy trigger (FOR SHARE)", "pattern", [COPY]),
        ("copy (lock='update') + counter cache", "alternative", [COPY_LOCKED, COUNTER]),
        ("no trigger", "limit", []),
    ],
)
def test_insert_posts(benchmark: Any, pg_engine: Engine, data: dict[str, Any], scale: Scale,
                      case: str, role: str, objects: list[Any]) -> None:
    n = scale.pick(quick=500, default=2000)
    base = data["posts"] + 10
    rng = random.Random(scale.seed)
    rows = [{"id": base + i, "author_id": rng.randrange(1, data["users"] + 1),
             "title": f"new {i}"} for i in range(n)]
    installed = [o for m in objects for o in m]
    with pg_engine.begin() as conn:
        drop_all(conn, *COPY)
        create_all(conn, *installed)
        if COUNTER in objects:
            conn.execute(COUNTER.backfill())

    def reset() -> None:
        with pg_engine.begin() as conn:
            conn.execute(delete(posts_copy).where(posts_copy.c.id >= base))

    def load() -> None:
        with pg_engine.begin() as conn:
            conn.execute(insert(posts_copy), rows)

    try:
        record(benchmark, question="denormalize:insert-posts", case=case, role=role,
               rows=n, scale=scale, plan="INSERT ... VALUES (executemany)")
        benchmark.pedantic(load, setup=reset, rounds=scale.rounds, iterations=1)
        with pg_engine.connect() as conn:
            if objects:
                assert [conn.execute(m.drift()).scalar() for m in objects] == [0] * len(objects)
            count = conn.execute(select(func.count()).where(posts_copy.c.id >= base)).scalar()
            assert count == n
    finally:
        reset()
        with pg_engine.begin() as conn:
            drop_all(conn, *installed)
            create_all(conn, *COPY)


@pytest.mark.parametrize(
    ("case", "role", "table"),
    [("rename rewrites the copies (trigger)", "pattern", posts_copy),
     ("rename only (join form)", "limit", posts)],
)
def test_rename_author(benchmark: Any, pg_engine: Engine, data: dict[str, Any], scale: Scale,
                       case: str, role: str, table: Table) -> None:
    ids = list(range(1, 21))
    counter = iter(range(10**6))
    with pg_engine.begin() as conn:
        if table is posts:  # the join form has no copy to maintain
            conn.execute(text("ALTER TABLE bench_dn_users DISABLE TRIGGER USER"))
    try:
        record(benchmark, question="denormalize:rename-author", case=case, role=role,
               rows=data["posts"], scale=scale,
               plan=f"UPDATE 20 users (~{data['posts'] // data['users']} posts each)")

        def rename() -> None:
            with pg_engine.begin() as conn:
                conn.execute(update(users).where(users.c.id.in_(ids))
                             .values(name=func.concat("renamed ", next(counter))))

        benchmark.pedantic(rename, rounds=scale.rounds, iterations=1)
    finally:
        with pg_engine.begin() as conn:
            conn.execute(text("ALTER TABLE bench_dn_users ENABLE TRIGGER USER"))
            if table is posts:
                conn.execute(COPY.backfill())
            assert conn.execute(COPY.drift()).scalar() == 0
