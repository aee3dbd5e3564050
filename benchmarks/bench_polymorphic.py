"""polymorphic: STI vs CTI for mixed lists and one subtype; association target loading.

Data (seeded): N content rows over three subtypes (article 50%, video 30%, podcast 20%),
stored twice: single-table (``bench_poly_sti``, with the generated CHECKs and a partial
index on videos' duration) and class-table (``bench_poly_cti`` + one table per subtype,
with the guard triggers). 10^6 at default scale, 10^4 at quick. Plus 10^4 posts, 10^4
photos and 20·10^3 comments on them, once as an exclusive arc and once as a type/id pair.

* ``polymorphic:newest-50``: the 50 newest items of mixed types with their subtype columns.
* ``polymorphic:one-subtype``: videos shorter than 2 minutes, newest 50.
* ``polymorphic:targets-1000``: the targets of 1000 comments.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import BigInteger, Engine, ForeignKey, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from benchmarks.conftest import Scale, record
from pgpatterns.bulk import copy_rows
from pgpatterns.explain import explain, plan_summary
from pgpatterns.polymorphic import (
    exclusive_arc,
    generic_association,
    joined_table_integrity,
    polymorphic_select,
    single_table_integrity,
)


class Base(DeclarativeBase):
    pass


class Sti(Base):
    __tablename__ = "bench_poly_sti"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    type: Mapped[str]
    title: Mapped[str]
    __mapper_args__ = {"polymorphic_on": "type", "polymorphic_identity": "content"}


class StiArticle(Sti):
    body: Mapped[str]
    __mapper_args__ = {"polymorphic_identity": "article"}


class StiVideo(Sti):
    duration: Mapped[int]
    __mapper_args__ = {"polymorphic_identity": "video"}


class StiPodcast(Sti):
    episodes: Mapped[int]
    __mapper_args__ = {"polymorphic_identity": "podcast"}


class Cti(Base):
    __tablename__ = "bench_poly_cti"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    type: Mapped[str]
    title: Mapped[str]
    __mapper_args__ = {"polymorphic_on": "type", "polymorphic_identity": "content"}


class CtiArticle(Cti):
    __tablename__ = "bench_poly_cti_article"
    id: Mapped[int] = mapped_column(ForeignKey("bench_poly_cti.id"), primary_key=True)
    body: Mapped[str]
    __mapper_args__ = {"polymorphic_identity": "article"}


class CtiVideo(Cti):
    __tablename__ = "bench_poly_cti_video"
    id: Mapped[int] = mapped_column(ForeignKey("bench_poly_cti.id"), primary_key=True)
    duration: Mapped[int] = mapped_column(index=True)
    __mapper_args__ = {"polymorphic_identity": "video"}


class CtiPodcast(Cti):
    __tablename__ = "bench_poly_cti_podcast"
    id: Mapped[int] = mapped_column(ForeignKey("bench_poly_cti.id"), primary_key=True)
    episodes: Mapped[int]
    __mapper_args__ = {"polymorphic_identity": "podcast"}


class Post(Base):
    __tablename__ = "bench_poly_posts"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    title: Mapped[str]


class Photo(Base):
    __tablename__ = "bench_poly_photos"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    url: Mapped[str]


class ArcComment(Base):
    __tablename__ = "bench_poly_arc_comments"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    body: Mapped[str]


class PairComment(Base):
    __tablename__ = "bench_poly_pair_comments"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    body: Mapped[str]


STI = single_table_integrity(Sti, partial_indexes={StiVideo: ["duration"]})
joined_table_integrity(Cti)
ARC = exclusive_arc(ArcComment, {"post": Post, "photo": Photo})
PAIR = generic_association(PairComment, {"post": Post, "photo": Photo})
KINDS = ("article",) * 5 + ("video",) * 3 + ("podcast",) * 2
TARGETS = 10_000


def _content(scale: Scale) -> list[tuple[int, str, int]]:
    rng = random.Random(scale.seed)
    n = scale.pick(quick=10_000, default=1_000_000)
    return [(i, rng.choice(KINDS), rng.randrange(10, 3600)) for i in range(1, n + 1)]


def _load(engine: Engine, scale: Scale) -> None:
    rows = _content(scale)
    rng = random.Random(scale.seed + 1)
    with engine.begin() as conn:
        copy_rows(conn, Sti, (
            (i, k, f"t{i}", f"b{i}" if k == "article" else None,
             d if k == "video" else None, d % 40 if k == "podcast" else None)
            for i, k, d in rows
        ), columns=("id", "type", "title", "body", "duration", "episodes"))
        copy_rows(conn, Cti, ((i, k, f"t{i}") for i, k, _ in rows),
                  columns=("id", "type", "title"))
        copy_rows(conn, CtiArticle, ((i, f"b{i}") for i, k, _ in rows if k == "article"),
                  columns=("id", "body"))
        copy_rows(conn, CtiVideo, ((i, d) for i, k, d in rows if k == "video"),
                  columns=("id", "duration"))
        copy_rows(conn, CtiPodcast, ((i, d % 40) for i, k, d in rows if k == "podcast"),
                  columns=("id", "episodes"))
        copy_rows(conn, Post, ((i, f"p{i}") for i in range(1, TARGETS + 1)),
                  columns=("id", "title"))
        copy_rows(conn, Photo, ((i, f"u{i}") for i in range(1, TARGETS + 1)), columns=("id", "url"))
        picks = [(rng.random() < 0.5, rng.randrange(1, TARGETS + 1)) for _ in range(2 * TARGETS)]
        copy_rows(conn, ArcComment, (
            (n, f"c{n}", t if post else None, None if post else t)
            for n, (post, t) in enumerate(picks, 1)
        ), columns=("id", "body", "post_id", "photo_id"))
        copy_rows(conn, PairComment, (
            (n, f"c{n}", "post" if post else "photo", t) for n, (post, t) in enumerate(picks, 1)
        ), columns=("id", "body", "target_type", "target_id"))
        for table in Base.metadata.sorted_tables:
            conn.execute(text("ANALYZE " + conn.dialect.identifier_preparer.format_table(table)))


@pytest.fixture(scope="module")
def data(pg_module_engine: Engine, scale: Scale) -> Iterator[None]:
    Base.metadata.drop_all(pg_module_engine)
    Base.metadata.create_all(pg_module_engine)
    _load(pg_module_engine, scale)
    yield
    Base.metadata.drop_all(pg_module_engine)


def _plan(engine: Engine, stmt: Any) -> str:
    with Session(engine) as session:
        return plan_summary(explain(session, stmt))


def _run(benchmark: Any, fn: Any, rounds: int, expected: Any) -> None:
    result = benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=1)
    assert result == expected, (result, expected)


def _extras(rows: list[Any]) -> list[Any]:
    return [(r.id, r.type, getattr(r, "body", None), getattr(r, "duration", None),
             getattr(r, "episodes", None)) for r in rows]


def _newest(engine: Engine, stmt: Any) -> list[Any]:
    with Session(engine) as session:
        return _extras(session.scalars(stmt).all())


NEWEST_STI = polymorphic_select(Sti).order_by(Sti.id.desc()).limit(50)
NEWEST_CTI = polymorphic_select(Cti).order_by(Cti.id.desc()).limit(50)


def _expected_newest(scale: Scale) -> list[Any]:
    rows = _content(scale)[-50:][::-1]
    return [(i, k, f"b{i}" if k == "article" else None, d if k == "video" else None,
             d % 40 if k == "podcast" else None) for i, k, d in rows]


def test_newest_sti(benchmark: Any, pg_engine: Engine, data: None, scale: Scale) -> None:
    record(benchmark, question="polymorphic:newest-50", case="STI polymorphic_select",
           role="pattern", rows=50, scale=scale, plan=_plan(pg_engine, NEWEST_STI))
    _run(benchmark, lambda: _newest(pg_engine, NEWEST_STI), scale.rounds * 4,
         _expected_newest(scale))


def test_newest_cti_joined(benchmark: Any, pg_engine: Engine, data: None, scale: Scale) -> None:
    record(benchmark, question="polymorphic:newest-50", case="CTI polymorphic_select (joined)",
           role="alternative", rows=50, scale=scale, plan=_plan(pg_engine, NEWEST_CTI))
    _run(benchmark, lambda: _newest(pg_engine, NEWEST_CTI), scale.rounds * 4,
         _expected_newest(scale))


def test_newest_sti_plain(benchmark: Any, pg_engine: Engine, data: None, scale: Scale) -> None:
    stmt = select(Sti).order_by(Sti.id.desc()).limit(50)
    record(benchmark, question="polymorphic:newest-50", case="STI select(Base): lazy columns",
           role="baseline", rows=50, scale=scale, plan="1 + one SELECT per row's subtype columns")
    _run(benchmark, lambda: _newest(pg_engine, stmt), scale.rounds * 4, _expected_newest(scale))


def test_newest_cti_lazy(benchmark: Any, pg_engine: Engine, data: None, scale: Scale) -> None:
    stmt = select(Cti).order_by(Cti.id.desc()).limit(50)
    record(benchmark, question="polymorphic:newest-50", case="CTI lazy subtype loads",
           role="baseline", rows=50, scale=scale, plan="1 + one SELECT per row's subtype")
    _run(benchmark, lambda: _newest(pg_engine, stmt), scale.rounds * 4, _expected_newest(scale))


SHORT_STI = (select(StiVideo.id).where(StiVideo.duration < 120)
             .order_by(StiVideo.id.desc()).limit(50))
SHORT_CTI = (select(CtiVideo.id).where(CtiVideo.duration < 120)
             .order_by(CtiVideo.id.desc()).limit(50))


def _ids(engine: Engine, stmt: Any) -> list[int]:
    with engine.connect() as conn:
        return list(conn.scalars(stmt))


def test_one_subtype_sti(benchmark: Any, pg_engine: Engine, data: None, scale: Scale) -> None:
    record(benchmark, question="polymorphic:one-subtype", case="STI + partial index",
           role="pattern", rows=50, scale=scale, plan=_plan(pg_engine, SHORT_STI))
    expected = _ids(pg_engine, SHORT_CTI)
    _run(benchmark, lambda: _ids(pg_engine, SHORT_STI), scale.rounds * 4, expected)


def test_one_subtype_cti(benchmark: Any, pg_engine: Engine, data: None, scale: Scale) -> None:
    record(benchmark, question="polymorphic:one-subtype", case="CTI join", role="alternative",
           rows=50, scale=scale, plan=_plan(pg_engine, SHORT_CTI))
    expected = _ids(pg_engine, SHORT_STI)
    _run(benchmark, lambda: _ids(pg_engine, SHORT_CTI), scale.rounds * 4, expected)


def _targets(comments: list[Any], assoc: Any) -> list[tuple[str, int]]:
    return [(type(t).__name__, t.id) for t in (assoc.get(c) for c in comments)]


def _expected_targets(engine: Engine) -> list[tuple[str, int]]:
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT target_type, target_id FROM bench_poly_pair_comments ORDER BY id LIMIT 1000"
        )).all()
    return [("Post" if kind == "post" else "Photo", ident) for kind, ident in rows]


def test_targets_arc(benchmark: Any, pg_engine: Engine, data: None, scale: Scale) -> None:
    record(benchmark, question="polymorphic:targets-1000", case="exclusive arc + selectinload",
           role="pattern", rows=1000, scale=scale, plan="1 + one SELECT per target type")

    def run() -> list[tuple[str, int]]:
        with Session(pg_engine) as session:
            stmt = select(ArcComment).options(*ARC.eager()).order_by(ArcComment.id).limit(1000)
            return _targets(list(session.scalars(stmt)), ARC)

    _run(benchmark, run, scale.rounds * 2, _expected_targets(pg_engine))


def test_targets_pair_batched(benchmark: Any, pg_engine: Engine, data: None,
                              scale: Scale) -> None:
    record(benchmark, question="polymorphic:targets-1000", case="type/id pair, load() batched",
           role="alternative", rows=1000, scale=scale, plan="1 + one SELECT per target type")

    def run() -> list[tuple[str, int]]:
        with Session(pg_engine) as session:
            stmt = select(PairComment).order_by(PairComment.id).limit(1000)
            comments = list(session.scalars(stmt))
            PAIR.load(session, comments)
            return _targets(comments, PAIR)

    _run(benchmark, run, scale.rounds * 2, _expected_targets(pg_engine))


def test_targets_pair_per_row(benchmark: Any, pg_engine: Engine, data: None,
                              scale: Scale) -> None:
    record(benchmark, question="polymorphic:targets-1000", case="type/id pair, per row (N+1)",
           role="baseline", rows=1000, scale=scale, plan="1 + one SELECT per comment",
           slower_by_at_least=20)

    def run() -> list[tuple[str, int]]:
        with Session(pg_engine) as session:
            stmt = select(PairComment).order_by(PairComment.id).limit(1000)
            return _targets(list(session.scalars(stmt)), PAIR)

    _run(benchmark, run, scale.rounds, _expected_targets(pg_engine))
