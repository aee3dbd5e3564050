"""m2m: posts <-> tags as a join table (pgpatterns.associations) vs text[] and JSONB arrays.

Data: N posts (default 10**6, quick 10**4), 10**4 tags (quick 10**3) drawn Zipf (weight 1/rank),
5 distinct tags per post; stored three ways: the link table ``bench_m2m_posts_tags``
(primary key (post_id, tag_id) + reverse index), ``posts.tags text[]`` with a GIN index and
``posts.tags_json jsonb`` (array of names) with a ``jsonb_path_ops`` GIN index.

Questions (each case returns the same rows, checked):

* ``m2m:tag-rare`` / ``m2m:tag-common``: the 20 newest posts with one tag.
* ``m2m:all-tags-rare`` / ``m2m:all-tags-common``: the 20 newest posts with all of 3 tags
  (one rare + two common / three common).
* ``m2m:load-tags``: load 1000 posts and their tags through the ORM.
* ``m2m:sync-20``: replace the tags of 100 posts with a 20-tag list (one call per post).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from sqlalchemy import (
    BigInteger,
    Engine,
    Index,
    Table,
    Text,
    cast,
    delete,
    func,
    insert,
    literal,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, joinedload, mapped_column
from sqlalchemy.orm import selectinload as selectin

from benchmarks.conftest import Scale, record
from pgpatterns.associations import having_all, having_any, many_to_many, sync
from pgpatterns.bulk import copy_rows
from pgpatterns.explain import explain, plan_summary

PER_POST = 5
PAGE = 20


class Base(DeclarativeBase):
    pass


class Post(Base):
    __tablename__ = "bench_m2m_posts"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    title: Mapped[str] = mapped_column(Text)
    tag_names: Mapped[list[str]] = mapped_column("tags", ARRAY(Text))
    tags_json: Mapped[Any] = mapped_column(JSONB)


class Tag(Base):
    __tablename__ = "bench_m2m_tags"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(Text, unique=True)


links: Table = many_to_many(Post, Tag, attr="tags", back="posts", name="bench_m2m_posts_tags")
posts: Table = Post.__table__  # type: ignore[assignment]
SECONDARY = [
    Index("bench_m2m_posts_tags_gin", posts.c.tags, postgresql_using="gin"),
    Index("bench_m2m_posts_json_gin", posts.c.tags_json, postgresql_using="gin",
          postgresql_ops={"tags_json": "jsonb_path_ops"}),
]
ALL = [posts, Tag.__table__, links]


def _tag_ids(scale: Scale, n_posts: int, n_tags: int) -> np.ndarray:
    """(n_posts, 5) distinct Zipf-drawn tag ids per post (id = popularity rank)."""
    rng = np.random.default_rng(scale.seed)
    weights = 1.0 / np.arange(1, n_tags + 1)
    draws = rng.choice(n_tags, size=(n_posts, 12), p=weights / weights.sum()) + 1
    out = np.empty((n_posts, PER_POST), dtype=np.int32)
    for i, row in enumerate(draws.tolist()):
        seen = list(dict.fromkeys(row))[:PER_POST]
        while len(seen) < PER_POST:  # rare: 12 draws with fewer than 5 distinct
            extra = int(rng.integers(1, n_tags + 1))
            if extra not in seen:
                seen.append(extra)
        out[i] = seen
    return out


class Data:
    def __init__(self, scale: Scale) -> None:
        self.n_posts = scale.pick(quick=10**4, default=10**6)
        self.n_tags = scale.pick(quick=10**3, default=10**4)
        self.ids = _tag_ids(scale, self.n_posts, self.n_tags)
        counts = np.bincount(self.ids.ravel(), minlength=self.n_tags + 1)
        used = np.nonzero(counts)[0]
        self.counts = counts
        # the rare tag: the least used tag with at least 3 posts
        self.rare = int(used[np.argmin(np.where(counts[used] >= 3, counts[used], 1 << 30))])
        self.common = [1, 2, 3]

    def load(self, engine: Engine) -> None:
        names = [f"tag{i}" for i in range(self.n_tags + 1)]
        with engine.begin() as conn:
            conn.execute(text("SET LOCAL maintenance_work_mem = '256MB'"))
            Base.metadata.drop_all(conn)
            for table in ALL:  # indexes after the load: faster
                table.create(conn)
            for index in [*SECONDARY, *links.indexes]:
                index.drop(conn)
            copy_rows(conn, Tag, ((i, names[i]) for i in range(1, self.n_tags + 1)),
                      columns=["id", "name"])
            rows = self.ids.tolist()
            copy_rows(conn, posts, (
                (i + 1, f"post {i + 1}", [names[t] for t in r], [names[t] for t in r])
                for i, r in enumerate(rows)), columns=["id", "title", "tags", "tags_json"])
            copy_rows(conn, links, ((i + 1, t) for i, r in enumerate(rows) for t in r),
                      columns=["post_id", "tag_id"])
            for index in [*SECONDARY, *links.indexes]:
                index.create(conn)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE bench_m2m_posts, bench_m2m_tags, "
                              "bench_m2m_posts_tags"))


@pytest.fixture(scope="module")
def _module() -> Iterator[dict[str, Any]]:
    state: dict[str, Any] = {}
    yield state
    if "engine" in state:
        Base.metadata.drop_all(state["engine"])


@pytest.fixture
def data(pg_engine: Engine, scale: Scale, _module: dict[str, Any]) -> Data:
    if "data" not in _module:
        loaded = Data(scale)
        _module["engine"] = pg_engine
        loaded.load(pg_engine)
        _module["data"] = loaded
    result: Data = _module["data"]
    return result


def _name(tag: int) -> str:
    return f"tag{tag}"


def _page(stmt: Any) -> Any:
    return stmt.order_by(Post.id.desc()).limit(PAGE)


def _forms(tags: list[int]) -> dict[str, tuple[str, Any]]:
    """case -> (role, statement returning post ids, 20 newest)."""
    names = [_name(t) for t in tags]
    rel = having_any(Post, Post.tags, tags) if len(tags) == 1 else having_all(
        Post, Post.tags, tags)
    arr = posts.c.tags.contains(cast(literal(names, ARRAY(Text)), ARRAY(Text)))
    jsn = posts.c.tags_json.contains(cast(literal(names, JSONB), JSONB))
    joins = select(Post.id)
    for n, name in enumerate(names):  # what users write: one join pair per tag, by name
        link_n, tag_n = links.alias(f"l{n}"), Tag.__table__.alias(f"t{n}")
        joins = joins.join(link_n, link_n.c.post_id == Post.id).join(
            tag_n, (tag_n.c.id == link_n.c.tag_id) & (tag_n.c.name == name))
    return {
        "join table: pgpatterns having_" + ("any" if len(tags) == 1 else "all"):
            ("pattern", rel.with_only_columns(Post.id)),
        "text[] @> + GIN": ("alternative", select(Post.id).where(arr)),
        "jsonb @> + GIN (jsonb_path_ops)": ("alternative", select(Post.id).where(jsn)),
        "N self-joins by tag name": ("baseline", joins),
    }


def _question(benchmark: Any, engine: Engine, scale: Scale, question: str, case: str,
              role: str, stmt: Any, expected: list[int] | None) -> list[int]:
    stmt = _page(stmt)
    with Session(engine) as session:
        plan = explain(session, stmt, analyze=True)
    # Sub-millisecond queries: 10 calls per round against the noise of a shared machine; the
    # (slow) baseline gets 1 call per round and at most 3 rounds.
    iterations, rounds = (1, min(scale.rounds, 3)) if role == "baseline" else (10, scale.rounds)
    record(benchmark, question=question, case=case, role=role, rows=PAGE, scale=scale,
           plan=plan_summary(plan), iterations=iterations,
           server_ms=plan.execution_time, planning_ms=plan.planning_time)

    def run() -> list[int]:
        with engine.connect() as conn:
            return list(conn.scalars(stmt))

    found: list[int] = benchmark.pedantic(run, rounds=rounds, iterations=iterations,
                                          warmup_rounds=1)
    if expected is not None:
        assert found == expected, f"{case}: {found} != {expected}"
    return found


def _tags_for(data: Data, kind: str) -> list[int]:
    return {
        "tag-rare": [data.rare],
        "tag-common": [data.common[0]],
        "all-tags-rare": [data.common[0], data.common[1], data.rare],
        "all-tags-common": list(data.common),
    }[kind]


def _truth(data: Data, tags: list[int]) -> list[int]:
    mask = np.ones(data.n_posts, dtype=bool)
    for t in tags:
        mask &= (data.ids == t).any(axis=1)
    return [int(i) + 1 for i in np.nonzero(mask)[0][::-1][:PAGE]]


QUERY_CASES = [(q, c) for q in ("tag-rare", "tag-common", "all-tags-rare", "all-tags-common")
               for c in range(4)]


@pytest.mark.parametrize(("kind", "index"), QUERY_CASES)
def test_posts_with_tags(benchmark: Any, pg_engine: Engine, data: Data, scale: Scale,
                         kind: str, index: int) -> None:
    tags = _tags_for(data, kind)
    case, (role, stmt) = list(_forms(tags).items())[index]
    _question(benchmark, pg_engine, scale, f"m2m:{kind}", case, role, stmt, _truth(data, tags))


LOAD = 1000


def _load_check(found: list[Post], data: Data) -> None:
    assert len(found) == LOAD
    assert all(sorted(t.id for t in p.tags) == sorted(data.ids[p.id - 1].tolist())
               for p in found)


@pytest.mark.parametrize(("case", "role"), [
    ("selectinload", "pattern"), ("joinedload", "alternative"), ("lazy N+1", "baseline")])
def test_load_tags(benchmark: Any, pg_engine: Engine, data: Data, scale: Scale, case: str,
                   role: str) -> None:
    start = data.n_posts // 2
    base = select(Post).where(Post.id.between(start, start + LOAD - 1)).order_by(Post.id)
    stmt = base
    option = {"selectinload": selectin(Post.tags), "joinedload": joinedload(Post.tags)}
    if case in option:
        stmt = stmt.options(option[case])
    with Session(pg_engine) as session:
        plan = plan_summary(explain(session, stmt))
    rounds = scale.rounds if case != "lazy N+1" else min(scale.rounds, 3)
    record(benchmark, question="m2m:load-tags", case=case, role=role, rows=LOAD, scale=scale,
           plan=plan, queries={"selectinload": 2, "joinedload": 1}.get(case, LOAD + 1))

    def run() -> list[Post]:
        with Session(pg_engine) as session:
            found = list(session.scalars(stmt).unique())
            for p in found:
                _ = p.tags  # lazy: one query per post
            session.expunge_all()
            return found

    found = benchmark.pedantic(run, rounds=rounds, iterations=1, warmup_rounds=0)
    with Session(pg_engine) as session:
        _load_check(list(session.scalars(base.options(selectin(Post.tags)))), data)
    assert len(found) == LOAD


SYNC_POSTS = 100
SYNC_TAGS = 20


def _reset(engine: Engine, data: Data, post_ids: list[int]) -> None:
    with engine.begin() as conn:
        conn.execute(delete(links).where(links.c.post_id.in_(post_ids)))
        conn.execute(insert(links), [{"post_id": p, "tag_id": int(t)}
                                     for p in post_ids for t in data.ids[p - 1]])


@pytest.mark.parametrize(("case", "role"), [
    ("pgpatterns sync()", "pattern"), ("delete all, insert all", "baseline"),
    ("ORM collection assignment", "alternative")])
def test_sync(benchmark: Any, pg_engine: Engine, data: Data, scale: Scale, case: str,
              role: str) -> None:
    post_ids = list(range(1, SYNC_POSTS + 1))
    # keep 3 of each post's tags, add 17 of the 40 most common tags
    wanted = {p: list(dict.fromkeys([*data.ids[p - 1][:3].tolist(),
                                     *range(4 + p % 20, 4 + p % 20 + 40)]))[:SYNC_TAGS]
              for p in post_ids}
    record(benchmark, question="m2m:sync-20", case=case, role=role, rows=SYNC_POSTS,
           scale=scale, plan={"pgpatterns sync()":
                              "per post: advisory lock, 1 statement (CTE insert+delete)",
                              "delete all, insert all": "2 statements per post",
                              }.get(case, "SELECT collection + tags, then INSERT/DELETE"),
           statements_per_post={"pgpatterns sync()": 2, "delete all, insert all": 2}.get(
               case, "3+"))

    def run() -> None:
        with Session(pg_engine) as session:
            for p, tags in wanted.items():
                if case == "pgpatterns sync()":
                    sync(session, p, tags, via=Post.tags)
                elif case == "delete all, insert all":
                    session.execute(delete(links).where(links.c.post_id == p))
                    session.execute(insert(links), [{"post_id": p, "tag_id": t} for t in tags])
                else:
                    post = session.get(Post, p)
                    assert post is not None
                    post.tags = list(session.scalars(select(Tag).where(Tag.id.in_(tags))))
                    session.flush()
            session.commit()

    benchmark.pedantic(run, setup=lambda: _reset(pg_engine, data, post_ids),
                       rounds=scale.rounds, iterations=1, warmup_rounds=0)
    with pg_engine.connect() as conn:
        rows = conn.execute(select(links.c.post_id, func.array_agg(links.c.tag_id))
                            .where(links.c.post_id.in_(post_ids)).group_by(links.c.post_id))
        assert {p: sorted(t) for p, t in rows} == {p: sorted(t) for p, t in wanted.items()}
    _reset(pg_engine, data, post_ids)
