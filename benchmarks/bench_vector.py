"""vector: pgvector search through pgpatterns.vector — recall and latency.

Data: N vectors (quick 10^4, default 10^5) of DIM dimensions (quick 64, default 96), a
seeded Gaussian mixture of 100 clusters, cosine metric; or a user's embeddings from the
``.npy`` file named by ``PGPATTERNS_VECTOR_NPY`` (float32, shape (N, DIM); the first N rows,
queries drawn from the same file). Why 96 and not 384 dims at default scale: building the
five indexes on 10^5 x 384 vectors takes several minutes on the 2-core reference machine,
beyond the suite's budget; the ``large`` scale uses 384 dims. Recall@10 is measured against
numpy brute force (the exact answer), latency as the median over Q queries per round
(Q = 50 quick, 100 default), one connection, through :func:`pgpatterns.vector.nearest`.

Questions:

* ``vector:knn`` -- exact scan vs HNSW (m=16, ef_construction=64) at ef_search 10..320;
  the hand-written ``ORDER BY embedding <=> :q LIMIT 10`` at ef_search 40 is the limit.
* ``vector:filtered-10pct`` / ``vector:filtered-1pct`` -- plain HNSW (rows returned and
  recall in ``extra``) vs iterative scan (pattern) vs exact search with a btree prefilter
  (limit; on a copy of the filter column that has the btree, so the HNSW cases are not
  replanned onto it).
* ``vector:quantized`` -- full-precision HNSW vs halfvec + rerank vs binary + rerank:
  index size, build time and recall in ``extra``.
* ``vector:ivfflat`` -- IVFFlat (lists = N/1000) at the probes matching HNSW's recall vs HNSW.
* ``vector:quantized-384`` -- the issue's size/recall target at its 384 dimensions, on a
  smaller set (quick 2*10^3, default 2*10^4 vectors): full-precision HNSW vs halfvec +
  rerank vs binary + rerank at the default pool (40) and at 160. Index size
  (``pg_relation_size``), build time, size ratio to the full index, recall@10 and per-query
  latency in ``extra``; the target (binary index >= 4x smaller, recall@10 >= 0.9 after
  rerank) is stated in ``target_note`` and judged in ``extra`` (``size_target_met``,
  ``recall_target_met``), never asserted. Data: the same generator as the other questions
  (100 clusters, spread 0.45 per dimension, seeded), unchanged, at 384 dims: not tuned for
  this question. Its caveat: clusters hold n/100 vectors (200 at default scale), and a
  binary pool close to that size finds most of the query's cluster, so recall at pool 160
  is higher here than it would be on the 10^5 set (clusters of 1000).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from sqlalchemy import BigInteger, Column, Engine, Index, Integer, MetaData, Table, text
from sqlalchemy.schema import CreateTable

from benchmarks.conftest import Scale, record
from pgpatterns.bulk import copy_rows
from pgpatterns.explain import explain, plan_summary
from pgpatterns.vector import VectorSpec, index_build_report, nearest, nearest_stmt

pytestmark = pytest.mark.requires_extension("vector")
K = 10
EF_VALUES = (10, 20, 40, 80, 160, 320)


def _dim(scale: Scale) -> int:
    return scale.pick(quick=64, default=96, large=384)


_STATE: dict[str, Any] = {}


def _specs(dim: int, n: int) -> dict[str, VectorSpec]:
    return {
        "full": VectorSpec(dim, metric="cosine", m=16, ef_construction=64),
        "halfvec": VectorSpec(dim, metric="cosine", quantize="halfvec"),
        "binary": VectorSpec(dim, metric="cosine", quantize="binary"),
        "ivfflat": VectorSpec(dim, metric="cosine", index="ivfflat", lists=max(n // 1000, 1)),
    }


def generate(scale: Scale, n: int, dim: int, queries: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` vectors and ``queries`` query vectors: the user's ``.npy`` file or the mixture."""
    path = os.environ.get("PGPATTERNS_VECTOR_NPY")
    rng = np.random.default_rng(scale.seed)
    if path:
        data = np.load(path).astype(np.float32)
        picks = rng.choice(len(data), size=queries, replace=False)
        return data[:n], data[picks] + rng.normal(0, 0.01, (queries, data.shape[1]))
    centers = rng.normal(size=(100, dim))

    def points(count: int) -> np.ndarray:
        return (centers[rng.integers(0, 100, count)]
                + rng.normal(scale=0.45, size=(count, dim))).astype(np.float32)

    return points(n), points(queries)


def _truth(vectors: np.ndarray, queries: np.ndarray, mask: np.ndarray | None) -> list[list[int]]:
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    result = []
    for q in queries:
        dist = 1 - unit @ (q / np.linalg.norm(q))
        if mask is not None:
            dist = np.where(mask, dist, np.inf)
        top = np.argsort(dist, kind="stable")[:K]
        result.append([int(i) for i in top if np.isfinite(dist[i])])
    return result


@pytest.fixture(scope="module")
def _drop_at_end() -> Iterator[dict[str, Any]]:
    yield _STATE
    engine = _STATE.pop("engine", None)
    if engine is not None:
        _STATE["metadata"].drop_all(engine)
    _STATE.clear()


@pytest.fixture
def data(pg_engine: Engine, scale: Scale, _drop_at_end: dict[str, Any]) -> dict[str, Any]:
    if "engine" in _STATE:
        return _STATE
    n, dim = scale.pick(quick=10**4, default=10**5), _dim(scale)
    q = scale.pick(quick=50, default=100)
    vectors, queries = generate(scale, n, dim, q)
    n, dim = vectors.shape
    specs = _specs(dim, n)
    rng = np.random.default_rng(scale.seed + 1)
    cat = rng.integers(0, 100, n)  # cat == 0: 1%; cat < 10: 10%, independent of clusters
    metadata = MetaData()
    table = Table("bench_vector_items", metadata,
                  Column("id", BigInteger, primary_key=True, autoincrement=False),
                  Column("cat", Integer, nullable=False),
                  Column("cat_b", Integer, nullable=False),  # same values, with a btree
                  specs["full"].column("embedding", nullable=False))
    # IVFFlat on a copy: on one column, the planner would choose between the two indexes.
    ivf = Table("bench_vector_items_ivf", metadata,
                Column("id", BigInteger, primary_key=True, autoincrement=False),
                specs["ivfflat"].column("embedding", nullable=False))
    metadata.drop_all(pg_engine)
    with pg_engine.begin() as conn:
        conn.execute(CreateTable(table))
        conn.execute(CreateTable(ivf))
        copy_rows(conn, table, ((i, int(cat[i]), int(cat[i]), vectors[i]) for i in range(n)))
        conn.execute(text("INSERT INTO bench_vector_items_ivf SELECT id, embedding "
                          "FROM bench_vector_items"))
        Index("bench_vector_items_cat_b", table.c.cat_b).create(conn)
    builds = {}
    for name, spec in specs.items():
        target = ivf if name == "ivfflat" else table
        with pg_engine.begin() as conn:
            builds[name] = index_build_report(conn, spec.index_on(target.c.embedding),
                                              maintenance_work_mem="1GB")
    with pg_engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(
            text("VACUUM ANALYZE bench_vector_items, bench_vector_items_ivf"))
    _STATE.update(
        engine=pg_engine, metadata=metadata, table=table, ivf=ivf, specs=specs, builds=builds, n=n,
        dim=dim, queries=queries,
        truth={None: _truth(vectors, queries, None),
               "10pct": _truth(vectors, queries, cat < 10),
               "1pct": _truth(vectors, queries, cat == 0)},
    )
    return _STATE


def _recall(found: list[list[int]], truth: list[list[int]]) -> float:
    hit = sum(len(set(f) & set(t)) for f, t in zip(found, truth, strict=True))
    return hit / max(sum(len(t) for t in truth), 1)


def _case(benchmark: Any, data: dict[str, Any], scale: Scale, *, question: str, case: str,
          role: str, spec: VectorSpec, truth: str | None = None, rounds: int | None = None,
          **search: Any) -> dict[str, Any]:
    engine: Engine = data["engine"]
    table: Table = data["ivf"] if spec.index == "ivfflat" else data["table"]
    queries = data["queries"]
    found: list[list[int]] = []

    def once() -> None:
        with engine.connect() as conn:
            found[:] = [[h.item.id for h in nearest(conn, table, spec, q, K, **search)]
                        for q in queries]
            conn.rollback()

    plan_kw = {k: v for k, v in search.items() if k in ("where", "exact", "iterative")}
    with engine.connect() as conn:
        plan = plan_summary(explain(conn, nearest_stmt(table, spec, queries[0], K, **plan_kw)))
    extra: dict[str, Any] = {"queries_per_round": len(queries)}
    if rounds is not None and rounds < scale.rounds:
        extra["rounds_note"] = f"{rounds} round(s): each round is {len(queries)} full scans"
    record(benchmark, question=question, case=case, role=role, rows=data["n"], scale=scale,
           plan=plan, dim=data["dim"], **extra)
    benchmark.pedantic(once, rounds=rounds or scale.rounds, iterations=1, warmup_rounds=0)
    recall = _recall(found, data["truth"][truth])
    returned = sum(len(f) for f in found) / max(sum(len(t) for t in data["truth"][truth]), 1)
    benchmark.extra_info.update(recall_at_10=round(recall, 4), returned=round(returned, 4))
    return {"recall": recall, "returned": returned, "found": found}


# --- vector:knn ---------------------------------------------------------------------------

def test_knn_exact(benchmark: Any, data: dict[str, Any], scale: Scale) -> None:
    got = _case(benchmark, data, scale, question="vector:knn", case="exact scan",
                role="baseline", spec=data["specs"]["full"], exact=True, rounds=1)
    assert got["recall"] > 0.999  # the exact answer (ties aside)


@pytest.mark.parametrize("ef", EF_VALUES)
def test_knn_hnsw(benchmark: Any, data: dict[str, Any], scale: Scale, ef: int) -> None:
    role = "pattern" if ef == 40 else "alternative"
    got = _case(benchmark, data, scale, question="vector:knn", case=f"hnsw ef_search={ef}",
                role=role, spec=data["specs"]["full"], ef_search=max(ef, K))
    benchmark.extra_info["ef_search"] = ef
    assert got["returned"] == 1.0 and got["recall"] > 0.3


def test_knn_handwritten(benchmark: Any, data: dict[str, Any], scale: Scale) -> None:
    engine, queries = data["engine"], data["queries"]
    stmt = text("SELECT id FROM bench_vector_items ORDER BY embedding <=> "
                "CAST(:q AS vector) LIMIT 10")
    texts = ["[" + ",".join(f"{v:.7g}" for v in q) + "]" for q in queries]
    found: list[list[int]] = []
    record(benchmark, question="vector:knn", case="hand-written SQL, ef_search=40", role="limit",
           rows=data["n"], scale=scale, plan="Limit > Index Scan (hnsw)", dim=data["dim"])

    def once() -> None:
        with engine.connect() as conn:
            found[:] = [list(conn.execute(stmt, {"q": t}).scalars()) for t in texts]
            conn.rollback()

    benchmark.pedantic(once, rounds=scale.rounds, iterations=1, warmup_rounds=0)
    benchmark.extra_info["recall_at_10"] = round(_recall(found, data["truth"][None]), 4)
    assert all(len(f) == K for f in found)


# --- vector:filtered-* --------------------------------------------------------------------

@pytest.mark.parametrize("share", ["10pct", "1pct"])
@pytest.mark.parametrize(("case", "role"), [
    ("plain hnsw (iterative off)", "baseline"),
    ("nearest(where=...) iterative scan", "pattern"),
    ("exact, btree prefilter", "limit"),
])
def test_filtered(benchmark: Any, data: dict[str, Any], scale: Scale, share: str, case: str,
                  role: str) -> None:
    table = data["table"]
    column = table.c.cat_b if role == "limit" else table.c.cat
    where = column == 0 if share == "1pct" else column < 10
    kw: dict[str, Any] = {"where": where}
    if role == "baseline":
        kw["iterative"] = "off"
    elif role == "limit":
        kw["exact"] = True
    got = _case(benchmark, data, scale, question=f"vector:filtered-{share}", case=case,
                role=role, spec=data["specs"]["full"], truth=share, **kw)
    if role != "baseline":
        assert got["returned"] == 1.0
    if role == "limit":
        assert got["recall"] > 0.999


# --- vector:quantized ---------------------------------------------------------------------

@pytest.mark.parametrize(("name", "role", "candidates"), [
    ("full", "baseline", None), ("halfvec", "alternative", None), ("binary", "pattern", None),
    ("binary", "alternative", 160),
])
def test_quantized(benchmark: Any, data: dict[str, Any], scale: Scale, name: str, role: str,
                   candidates: int | None) -> None:
    build = data["builds"][name]
    kw = {"candidates": candidates} if candidates else {}
    pool = candidates or (40 if name != "full" else None)
    got = _case(benchmark, data, scale, question="vector:quantized", case=f"{name} hnsw"
                + (f" + rerank (pool {pool})" if pool else ""),
                role=role, spec=data["specs"][name], **kw)
    benchmark.extra_info.update(index_mb=round(build.size_bytes / 2**20, 2),
                                build_s=round(build.seconds, 2),
                                size_vs_full=round(data["builds"]["full"].size_bytes
                                                   / build.size_bytes, 2))
    assert got["returned"] == 1.0


# --- vector:ivfflat -----------------------------------------------------------------------

def test_ivfflat_hnsw(benchmark: Any, data: dict[str, Any], scale: Scale) -> None:
    got = _case(benchmark, data, scale, question="vector:ivfflat", case="hnsw ef_search=40",
                role="pattern", spec=data["specs"]["full"], ef_search=40)
    data["hnsw_recall"] = got["recall"]


def test_ivfflat_matched(benchmark: Any, data: dict[str, Any], scale: Scale) -> None:
    spec = data["specs"]["ivfflat"]
    target = data.get("hnsw_recall", 0.95)
    engine, table = data["engine"], data["ivf"]
    probes = spec.lists
    for candidate in (1, 2, 4, 8, 16, 32, 64):  # smallest probes matching HNSW's recall
        if candidate > spec.lists:
            break
        with engine.connect() as conn:
            found = [[h.item.id for h in nearest(conn, table, spec, q, K, probes=candidate)]
                     for q in data["queries"][:20]]
        if _recall(found, data["truth"][None][:20]) >= target - 0.01:
            probes = candidate
            break
    got = _case(benchmark, data, scale, question="vector:ivfflat",
                case=f"ivfflat lists={spec.lists} probes={probes}", role="alternative",
                spec=spec, probes=probes)
    benchmark.extra_info.update(probes=probes, build_s=round(data["builds"]["ivfflat"].seconds, 2))
    assert got["returned"] == 1.0


# --- vector:quantized-384 -----------------------------------------------------------------

DIM_384 = 384
_Q384: dict[str, Any] = {}
_TARGET_NOTE = ("issue target (default scale, 384 dims): the binary-quantized index at least "
                "4x smaller than the full-precision HNSW index (size_vs_full >= 4) with "
                "recall@10 >= 0.9 after rerank; reported here, not asserted")


@pytest.fixture(scope="module")
def _drop_384_at_end() -> Iterator[dict[str, Any]]:
    yield _Q384
    engine = _Q384.pop("engine", None)
    if engine is not None:
        _Q384["metadata"].drop_all(engine)
    _Q384.clear()


@pytest.fixture
def data384(pg_engine: Engine, scale: Scale, _drop_384_at_end: dict[str, Any]) -> dict[str, Any]:
    if "engine" in _Q384:
        return _Q384
    n, q = scale.pick(quick=2000, default=2 * 10**4, large=10**5), scale.pick(quick=50, default=100)
    vectors, queries = generate(scale, n, DIM_384, q)
    n, dim = vectors.shape
    specs = {
        "full": VectorSpec(dim, metric="cosine", m=16, ef_construction=64),
        "halfvec": VectorSpec(dim, metric="cosine", quantize="halfvec"),
        "binary": VectorSpec(dim, metric="cosine", quantize="binary"),
    }
    metadata = MetaData()
    # One table, three indexes: each query orders by its own index's expression, so the
    # planner cannot serve one spec's query with another spec's index.
    table = Table("bench_vector_items_384", metadata,
                  Column("id", BigInteger, primary_key=True, autoincrement=False),
                  specs["full"].column("embedding", nullable=False))
    metadata.drop_all(pg_engine)
    with pg_engine.begin() as conn:
        conn.execute(CreateTable(table))
        copy_rows(conn, table, ((i, vectors[i]) for i in range(n)))
    builds = {}
    for name, spec in specs.items():
        with pg_engine.begin() as conn:
            builds[name] = index_build_report(conn, spec.index_on(table.c.embedding),
                                              maintenance_work_mem="1GB")
    with pg_engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(
            text("VACUUM ANALYZE bench_vector_items_384"))
    truth = _truth(vectors, queries, None)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    sims = (queries / np.linalg.norm(queries, axis=1, keepdims=True)) @ unit.T
    top = np.sort(sims, axis=1)
    _Q384.update(engine=pg_engine, metadata=metadata, table=table, specs=specs, builds=builds,
                 n=n, dim=dim, queries=queries, truth={None: truth},
                 # How far apart the data is, to compare with real embeddings (cosine).
                 data_stats={"data": os.environ.get("PGPATTERNS_VECTOR_NPY")
                             or f"mixture: 100 clusters of ~{n // 100}, spread 0.45",
                             "cos_nn1": round(float(top[:, -1].mean()), 3),
                             "cos_nn10": round(float(top[:, -K].mean()), 3),
                             "cos_median": round(float(np.median(top, axis=1).mean()), 3)})
    return _Q384


@pytest.mark.parametrize(("name", "role", "candidates"), [
    ("full", "baseline", None), ("halfvec", "alternative", None), ("binary", "pattern", None),
    ("binary", "alternative", 160),
])
def test_quantized_384(benchmark: Any, data384: dict[str, Any], scale: Scale, name: str,
                       role: str, candidates: int | None) -> None:
    data, builds = data384, data384["builds"]
    spec: VectorSpec = data["specs"][name]
    kw = {"candidates": candidates} if candidates else {}
    pool = candidates or (40 if name != "full" else None)
    case = f"{name} hnsw" + (f" + rerank (pool {pool})" if pool else " ef_search=40")
    got = _case(benchmark, data, scale, question="vector:quantized-384", case=case, role=role,
                spec=spec, **kw)
    build, full = builds[name], builds["full"]
    ratio = full.size_bytes / build.size_bytes
    median = benchmark.stats.stats.median
    extra: dict[str, Any] = {
        "index_bytes": build.size_bytes, "index_mb": round(build.size_bytes / 2**20, 2),
        "build_s": round(build.seconds, 2), "build_overflowed_memory": build.overflowed,
        "size_vs_full": round(ratio, 2),
        "per_query_ms": round(median * 1000 / len(data["queries"]), 3),
        "pool": pool, **data["data_stats"],
    }
    if name == "binary":
        extra.update(target_note=_TARGET_NOTE, size_target_met=ratio >= 4,
                     recall_target_met=got["recall"] >= 0.9)
    benchmark.extra_info.update(extra)
    assert got["returned"] == 1.0  # k rows per query; size and recall are reported, not asserted
