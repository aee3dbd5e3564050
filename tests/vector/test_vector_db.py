"""pgpatterns.vector against a real PostgreSQL with pgvector (embedded 18 and system 15).

The data set (20k vectors of 32 dims: a seeded Gaussian mixture of 50 clusters, category
``cat`` uniform over 100 values so ``cat == c`` keeps 1% of rows independently of the
clusters) is loaded once per module, with three HNSW indexes (full precision, halfvec and
binary quantized) and ANALYZE; the tables are dropped at the end. References: numpy brute
force for exactness, ``nearest(exact=True)`` for recall.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from psycopg import sql
from sqlalchemy import (
    Column,
    Computed,
    Connection,
    Engine,
    Integer,
    MetaData,
    Table,
    Text,
    event,
    func,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.schema import CreateTable

from pgpatterns.bulk import copy_rows
from pgpatterns.explain import explain, has_seq_scan, uses_index
from pgpatterns.testing import Database
from pgpatterns.testing.plugin import PgSchema
from pgpatterns.vector import (
    VectorSetupWarning,
    VectorSpec,
    check_vector_setup,
    check_vector_setup_async,
    hybrid_search,
    hybrid_search_async,
    index_build_report,
    nearest,
    nearest_async,
    nearest_stmt,
    recall_at_k,
    recall_at_k_async,
    tune_ef_search,
)

N, DIM, CATS = 20_000, 32, 100
SPEC = VectorSpec(DIM, metric="cosine")
HALF = VectorSpec(DIM, metric="cosine", quantize="halfvec")
BINARY = VectorSpec(DIM, metric="cosine", quantize="binary")
INDEX = "vec_t_items_embedding_hnsw_idx"


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "vec_t_items"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    cat: Mapped[int]
    embedding: Mapped[Any] = SPEC.mapped_column(nullable=False)


for _spec in (SPEC, HALF, BINARY):
    _spec.index_on(Item.__table__.c.embedding)


def generate(n: int, queries: int, seed: int = 20261126) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(50, DIM))

    def points(count: int) -> np.ndarray:
        picked = centers[rng.integers(0, 50, count)]
        return (picked + rng.normal(scale=0.35, size=(count, DIM))).astype(np.float32)

    return points(n), rng.integers(0, CATS, n), points(queries)


VECTORS, CAT, QUERIES = generate(N, 40)

_LOADED: dict[str, Engine] = {}


@pytest.fixture(scope="module")
def _cleanup() -> Iterator[dict[str, Engine]]:
    yield _LOADED
    for engine in _LOADED.values():
        Base.metadata.drop_all(engine)
    _LOADED.clear()


@pytest.fixture
def data(pg_engine: Engine, _cleanup: dict[str, Engine]) -> Engine:
    if "engine" not in _LOADED:
        with pg_engine.begin() as conn:
            Base.metadata.drop_all(conn)
            conn.execute(CreateTable(Item.__table__))  # indexes after the load: faster
            copy_rows(conn, Item, ((i, int(CAT[i]), VECTORS[i]) for i in range(N)),
                      columns=["id", "cat", "embedding"])
            conn.execute(select(func.set_config("maintenance_work_mem", "256MB", True)))
            for index in Item.__table__.indexes:  # type: ignore[attr-defined]
                index.create(conn)
            conn.execute(text("ANALYZE vec_t_items"))
        _LOADED["engine"] = pg_engine
    return pg_engine


@pytest.fixture
def session(data: Engine) -> Iterator[Session]:
    with Session(data) as s:
        yield s


# --- exactness: nearest(exact=True) == numpy brute force, every storage and metric -------

def _reference(metric: str, rows: np.ndarray, q: np.ndarray) -> np.ndarray:
    if metric == "l2":
        return np.sqrt(((rows - q) ** 2).sum(axis=1))
    if metric == "inner_product":
        return -(rows @ q)
    if metric == "cosine":
        return 1 - (rows @ q) / (np.linalg.norm(rows, axis=1) * np.linalg.norm(q))
    if metric == "l1":
        return np.abs(rows - q).sum(axis=1)
    if metric == "hamming":
        return (rows != q).sum(axis=1).astype(float)
    inter, union = (rows & q).sum(axis=1), (rows | q).sum(axis=1)
    return 1 - inter / union


COMBOS = [(s, m) for s in ("vector", "halfvec", "sparsevec")
          for m in ("l2", "inner_product", "cosine", "l1")]
COMBOS += [("bit", "hamming"), ("bit", "jaccard")]


@pytest.fixture
def small(pg_schema: PgSchema) -> Iterator[tuple[Connection, dict[tuple[str, str], Table]]]:
    metadata = MetaData()
    tables = {
        (s, m): Table(f"small_{s}_{m}", metadata, Column("id", Integer, primary_key=True),
                      VectorSpec(6, metric=m, storage=s, index=None).column("v"))  # type: ignore[arg-type]
        for s, m in COMBOS
    }
    with pg_schema.engine.connect() as conn:
        metadata.create_all(conn)
        conn.commit()
        yield conn, tables


def _as_value(storage: str, row: np.ndarray) -> Any:
    if storage == "bit":
        return "".join("1" if b else "0" for b in row)
    if storage == "sparsevec":
        from pgvector import SparseVector
        return SparseVector(row.astype(np.float32))
    return row.astype(np.float32)


@given(data=st.data())
def test_exact_equals_numpy_for_every_metric(
    small: tuple[Connection, dict[tuple[str, str], Table]], data: st.DataObject
) -> None:
    conn, tables = small
    for (storage, metric), table in tables.items():
        bits = storage == "bit"
        n = data.draw(st.integers(1, 12), label="rows")
        k = data.draw(st.integers(1, 14), label="k")
        cells = st.booleans() if bits else st.integers(-4, 4)
        undefined_at_zero = metric in ("cosine", "jaccard")
        vec = st.lists(cells, min_size=6, max_size=6).filter(
            lambda v, z=undefined_at_zero: any(v) or not z)
        rows = np.array(data.draw(st.lists(vec, min_size=n, max_size=n)))
        q = np.array(data.draw(vec))
        trans = conn.begin()
        try:
            conn.execute(table.insert(), [
                {"id": i, "v": _as_value(storage, row)} for i, row in enumerate(rows)])
            hits = nearest(conn, table, table.c.v, _as_value(storage, q), k, exact=True)
        finally:
            trans.rollback()
        ref = _reference(metric, rows, q)
        got = [h.distance for h in hits]
        assert len(hits) == min(k, n)
        assert np.allclose(got, np.sort(ref)[: len(hits)], rtol=1e-4, atol=1e-4), (storage, metric)
        for hit in hits:  # every row's distance is its own, not just the sorted list
            assert np.isclose(hit.distance, ref[hit.item.id], rtol=1e-4, atol=1e-4)


# --- index: recall, plans, filtered search, prepared statements ----------------------------

def test_index_recall_meets_floor(session: Session) -> None:
    recall = recall_at_k(session, Item, Item.embedding, QUERIES[:20], 10)
    assert recall >= 0.9, recall  # stated floor: HNSW m=16, ef_construction=64, ef_search=40
    tuning = tune_ef_search(session, Item, Item.embedding, QUERIES[:10], 10, target=0.99)
    assert tuning.points and tuning.points[0].ef_search == 10
    assert [p.ef_search for p in tuning.points] == sorted(p.ef_search for p in tuning.points)
    if tuning.ef_search is not None:
        assert tuning.points[-1].recall >= 0.99


def test_helper_uses_index_and_naive_descending_form_does_not(session: Session) -> None:
    q = QUERIES[0]
    plan = explain(session, nearest_stmt(Item, Item.embedding, q, 10))
    assert uses_index(plan, INDEX) and not has_seq_scan(plan, "vec_t_items")
    similarity = 1 - Item.embedding.cosine_distance(q)
    naive = select(Item, similarity.label("s")).order_by(similarity.desc()).limit(10)
    plan = explain(session, naive)
    assert not uses_index(plan, INDEX) and has_seq_scan(plan, "vec_t_items")
    hits = nearest(session, Item, Item.embedding, q, 10)
    assert [h.item.id for h in hits] == [r.Item.id for r in session.execute(naive)][:10] or (
        recall_at_k(session, Item, SPEC, [q], 10) >= 0.8)


def test_filtered_one_percent_returns_k_only_with_iterative_scan(session: Session) -> None:
    where = Item.cat == 7  # 1% of the rows, spread over every cluster
    plain_counts, iterative_counts = [], []
    for q in QUERIES[:5]:
        for mode, counts in (("off", plain_counts), ("auto", iterative_counts)):
            stmt = nearest_stmt(Item, Item.embedding, q, 10, where=where,
                                iterative=mode)  # type: ignore[arg-type]
            settings_ = {"hnsw.iterative_scan": "off" if mode == "off" else "relaxed_order"}
            assert uses_index(explain(session, stmt, settings=settings_), INDEX)
            hits = nearest(session, Item, Item.embedding, q, 10, where=where,
                           iterative=mode)  # type: ignore[arg-type]
            assert all(h.item.cat == 7 for h in hits)
            assert [h.distance for h in hits] == sorted(h.distance for h in hits)
            counts.append(len(hits))
    assert max(plain_counts) < 10, plain_counts  # the plain HNSW scan loses rows
    assert iterative_counts == [10] * 5, iterative_counts
    assert recall_at_k(session, Item, Item.embedding, QUERIES[:5], 10, where=where) >= 0.9


def test_exact_below_searches_exactly_when_few_rows_match(data: Engine) -> None:
    q, few = QUERIES[2], Item.cat == 7  # about 1% of the rows
    statements: list[str] = []

    def remember(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        statements.append(statement)

    with Session(data) as session:
        matching = session.scalar(select(func.count()).select_from(Item).where(few))
        assert matching is not None and 0 < matching < N
        exact = nearest(session, Item, Item.embedding, q, 10, where=few, exact=True)
        event.listen(data, "before_cursor_execute", remember)
        try:
            hits = nearest(session, Item, Item.embedding, q, 10, where=few,
                           exact_below=matching, ef_search=40)
            counted, searched = statements[0], statements[-1]
            statements.clear()
            more = nearest(session, Item, Item.embedding, q, 10, where=few,
                           exact_below=matching - 1)
        finally:
            event.remove(data, "before_cursor_execute", remember)
    assert [h.item.id for h in hits] == [h.item.id for h in exact]
    assert "count(*)" in counted and "MATERIALIZED" not in searched  # exact: no index scan
    assert "MATERIALIZED" in statements[-1]  # one row too many: the iterative index scan
    assert len(more) == 10 and all(h.item.cat == 7 for h in more)


def _generic_plan(
    conn: Connection, name: str, vector: np.ndarray, *more: int
) -> dict[str, Any]:
    """EXPLAIN the generic plan of a statement psycopg prepared (vector param first)."""
    conn.execute(select(func.set_config("plan_cache_mode", "force_generic_plan", True)))
    vector_text = "[" + ",".join(str(float(v)) for v in vector) + "]"
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur:
        args = sql.SQL(", ").join([sql.SQL("{}::vector").format(sql.Literal(vector_text)),
                                   *map(sql.Literal, more)])
        cur.execute(sql.SQL("EXPLAIN (FORMAT JSON) EXECUTE {}({})").format(
            sql.Identifier(name), args), prepare=False)
        row = cur.fetchone()
    assert row is not None
    plan: dict[str, Any] = row[0][0]["Plan"]
    return plan


def test_repeated_calls_on_one_connection_keep_the_index(data: Engine) -> None:
    q, table = QUERIES[1], Item.__table__
    with data.connect() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None and raw.prepare_threshold == 5  # psycopg prepares from the 6th
        first = [h.item.id for h in nearest(conn, table, SPEC, q, 10)]
        for _ in range(12):  # past the 5 custom plans PostgreSQL tries before a generic one
            assert [h.item.id for h in nearest(conn, table, SPEC, q, 10)] == first
        filtered = [h.item.id for h in nearest(conn, table, SPEC, q, 10, where=table.c.cat < 50)]
        for _ in range(12):
            again = nearest(conn, table, SPEC, q, 10, where=table.c.cat < 50)
            assert [h.item.id for h in again] == filtered
        naive = select(table.c.id).order_by(table.c.embedding.cosine_distance(q)).limit(10)
        for _ in range(7):
            conn.execute(naive).all()
        prepared = {
            row.statement: row for row in conn.execute(text(
                "SELECT name, statement, generic_plans, custom_plans FROM pg_prepared_statements"
                " WHERE statement LIKE '%<=>%'"))
        }
        ours = next(r for t, r in prepared.items() if "LIMIT 10" in t and "WHERE" not in t)
        with_filter = next(r for t, r in prepared.items() if "MATERIALIZED" in t)
        theirs = next(r for t, r in prepared.items() if "LIMIT $" in t)
        assert with_filter.generic_plans == 0  # filtered: every call planned with its values
        # A generic plan keeps the index for the helper's statement (LIMIT is a literal)...
        plan = _generic_plan(conn, ours.name, q)
        assert json.dumps(plan).count(INDEX) == 1 and plan["Plan Rows"] == 10
        # ...while the naive statement's generic plan is costed for 10% of the table.
        plan = _generic_plan(conn, theirs.name, q, 10)
        assert plan["Plan Rows"] == N // 10
        conn.rollback()


def test_settings_do_not_leak_to_the_next_transaction(data: Engine) -> None:
    with data.connect() as conn:
        defaults = conn.execute(text(
            "SELECT current_setting('hnsw.ef_search'), current_setting('hnsw.iterative_scan'),"
            " current_setting('plan_cache_mode')")).one()
        conn.rollback()
        nearest(conn, Item.__table__, SPEC, QUERIES[2], 10, where=Item.cat == 3, ef_search=123)
        inside = conn.execute(text(
            "SELECT current_setting('hnsw.ef_search'), current_setting('hnsw.iterative_scan'),"
            " current_setting('plan_cache_mode')")).one()
        assert tuple(inside) == ("123", "relaxed_order", "force_custom_plan")
        conn.commit()
        after = conn.execute(text(
            "SELECT current_setting('hnsw.ef_search'), current_setting('hnsw.iterative_scan'),"
            " current_setting('plan_cache_mode')")).one()
        assert after == defaults and after[0] == "40"


@pytest.mark.parametrize(("spec", "index", "pool"), [
    (HALF, "vec_t_items_embedding_hnsw_halfvec_idx", 40),
    # 32 bits keep little of a 32-dim vector: the pool must be large (at 384 dims, 16*k is).
    (BINARY, "vec_t_items_embedding_hnsw_binary_idx", 400),
])
def test_quantized_search_uses_its_index_and_reranks(
    session: Session, spec: VectorSpec, index: str, pool: int
) -> None:
    q = QUERIES[3]
    plan = explain(session, nearest_stmt(Item, spec, q, 10))
    assert uses_index(plan, index) and not uses_index(plan, INDEX)
    hits = nearest(session, Item, spec, q, 10, candidates=pool)
    distances = [h.distance for h in hits]
    assert len(hits) == 10 and distances == sorted(distances)
    # re-ranked: each distance is the full-precision one (numpy), not the quantized one
    # (comparing the top hit with the exact top hit would depend on the HNSW build, which
    # is randomized: one query in a clustered set can miss its cluster on some builds)
    for hit in hits:
        v = VECTORS[hit.item.id].astype(np.float64)
        full = 1 - float(v @ q) / (np.linalg.norm(v) * np.linalg.norm(q))
        assert np.isclose(hit.distance, full, rtol=1e-4, atol=1e-6), (hit.distance, full)
    recall = recall_at_k(session, Item, spec, QUERIES[:10], 10, candidates=pool)
    assert recall >= 0.9, recall


def test_max_distance_is_applied_outside_the_index_scan(session: Session) -> None:
    q = QUERIES[4]
    exact = nearest(session, Item, SPEC, q, 10, exact=True)
    limit = exact[4].distance
    hits = nearest(session, Item, SPEC, q, 10, max_distance=limit)
    assert hits and all(h.distance <= limit for h in hits) and len(hits) <= 5
    assert uses_index(explain(session, nearest_stmt(Item, SPEC, q, 10, max_distance=limit)),
                      INDEX)


async def test_nearest_async_matches_sync(pg_async_session: Any, data: Engine) -> None:
    q = QUERIES[5]
    with Session(data) as s:
        expected = [h.item.id for h in nearest(s, Item, SPEC, q, 10, where=Item.cat < 50)]
    hits = await nearest_async(pg_async_session, Item, SPEC, q, 10, where=Item.cat < 50)
    assert [h.item.id for h in hits] == expected
    with Session(data) as s:
        exact = [h.item.id for h in nearest(s, Item, SPEC, q, 10, where=Item.cat == 3,
                                             exact=True)]
    few = await nearest_async(pg_async_session, Item, SPEC, q, 10, where=Item.cat == 3,
                              exact_below=N)  # every count is <= N: exact
    assert [h.item.id for h in few] == exact
    recall = await recall_at_k_async(pg_async_session, Item, SPEC, QUERIES[:3], 10)
    assert recall >= 0.8


# --- hybrid search ----------------------------------------------------------------------

class Doc(Base):
    __tablename__ = "vec_t_docs"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    body: Mapped[str] = mapped_column(Text)
    search: Mapped[Any] = mapped_column(
        TSVECTOR, Computed("to_tsvector('english', body)", persisted=True))
    embedding: Mapped[Any] = VectorSpec(3, metric="l2", index=None).mapped_column()


DOCS = [
    (1, "postgres vector index tuning", [0.0, 0.0, 1.0]),
    (2, "vector search in postgres", [0.0, 0.1, 0.9]),
    (3, "cooking pasta at home", [0.0, 0.0, 0.95]),
    (4, "gardening tips", [5.0, 5.0, 5.0]),
    (5, "postgres backups", [9.0, 9.0, 9.0]),
]


def _rrf(lists: list[list[int]], k: int = 60) -> dict[int, float]:
    scores: dict[int, float] = {}
    for ranking in lists:
        for rank, key in enumerate(ranking, start=1):
            scores[key] = scores.get(key, 0.0) + 1 / (k + rank)
    return scores


@pytest.fixture
def docs(pg_schema: PgSchema) -> Engine:
    with pg_schema.engine.begin() as conn:
        Doc.__table__.create(conn)  # type: ignore[attr-defined]
        copy_rows(conn, Doc, [(i, b, np.array(e, dtype=np.float32)) for i, b, e in DOCS],
                  columns=["id", "body", "embedding"])
    return pg_schema.engine


async def test_hybrid_search_fuses_with_rrf(
    docs: Engine, pg_schema: PgSchema, pg_database: Database
) -> None:
    q = [0.0, 0.0, 1.0]
    with Session(docs) as s:
        hits = hybrid_search(s, Doc, Doc.embedding, q, "postgres vector", document=Doc.search,
                             k=4, candidates=3)
        vector_order = [1, 3, 2]  # l2 from q, 3 best
        text_order = [r.id for r in s.execute(
            select(Doc.id).where(Doc.search.bool_op("@@")(
                func.websearch_to_tsquery("english", "postgres vector")))
            .order_by(func.ts_rank_cd(Doc.search, func.websearch_to_tsquery(
                "english", "postgres vector")).desc(), Doc.id))]
    expected = sorted(_rrf([vector_order, text_order]).items(), key=lambda kv: (-kv[1], kv[0]))
    assert [(h.item.id, round(h.score, 9)) for h in hits] == [
        (key, round(score, 9)) for key, score in expected[:4]]
    assert hits[0].vector_rank == 1 and hits[0].text_rank is not None
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    engine = create_async_engine(
        pg_database.url, connect_args=pg_database.search_path_args(pg_schema.name))
    try:
        async with AsyncSession(engine) as session:
            again = await hybrid_search_async(session, Doc, Doc.embedding, q, "postgres vector",
                                              document=Doc.search, k=4, candidates=3)
            assert [h.item.id for h in again] == [h.item.id for h in hits]
    finally:
        await engine.dispose()


# --- build report and setup check -------------------------------------------------------

def test_index_build_report_reads_the_memory_notice(pg_schema: PgSchema) -> None:
    spec = VectorSpec(DIM, metric="l2", m=8, ef_construction=32)
    metadata = MetaData()
    table = Table("build_items", metadata, Column("id", Integer, primary_key=True),
                  spec.column("embedding"))
    with pg_schema.engine.begin() as conn:
        metadata.create_all(conn)
        copy_rows(conn, table, ((i, VECTORS[i]) for i in range(4000)))
    with pg_schema.engine.connect() as conn:
        small = index_build_report(conn, spec.index_on(table.c.embedding, name="small_mem"),
                                   maintenance_work_mem="1MB")
        big = index_build_report(conn, spec.index_on(table.c.embedding, name="big_mem"),
                                 maintenance_work_mem="64MB")
        conn.rollback()
    assert small.overflowed and any("maintenance_work_mem" in n for n in small.notices)
    assert "set it to" in small.advice
    assert not big.overflowed and big.advice.startswith("fits")
    assert big.rows == 4000 and big.size_bytes > 0 and big.seconds > 0


async def test_check_vector_setup(session: Session, pg_async_session: Any) -> None:
    version = session.execute(text(
        "SELECT extversion FROM pg_extension WHERE extname = 'vector'")).scalar_one()
    old = tuple(int(p) for p in version.split(".")) < (0, 8, 2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        setup = check_vector_setup(session)
    assert setup.version == version and setup.iterative_scans
    assert any(issubclass(w.category, VectorSetupWarning) for w in caught) == old
    assert bool(setup.problems) == old
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert (await check_vector_setup_async(pg_async_session)).version == version
