"""vector: pgvector search through pgpatterns.vector — recall and latency.

Data: N vectors of 384 dimensions (quick 10^4, default 10^5, large 10^6), a seeded Gaussian
mixture (see :func:`generate`), cosine metric; or a user's embeddings from the ``.npy`` file
named by ``PGPATTERNS_VECTOR_NPY`` (float32, shape (rows, dim); the first N rows are the
data, the next rows the queries, so no query is in the table). 200 measured queries, and 100
more that only :func:`pgpatterns.vector.tune_ef_search` sees. Recall@10 is measured against
numpy brute force (the exact answer); latency is the median over rounds of all 200 queries,
one connection, through :func:`pgpatterns.vector.nearest` (``per_query_ms`` in ``extra``).

Questions:

* ``vector:knn`` -- exact scan vs HNSW (m=16, ef_construction=64) over ef_search 10..320 (a
  curve), and the pattern: the ef_search :func:`tune_ef_search` picks on the tuning queries
  for recall@10 >= 0.96 (the target, 0.95, plus a margin for the tuning sample's error).
  The limit is hand-written SQL doing the same work (``set_config`` then ``ORDER BY
  embedding <=> :q LIMIT 10``, returning the same columns).
* ``vector:filtered-10pct`` / ``vector:filtered-1pct`` -- plain HNSW (rows returned and
  recall in ``extra``) vs iterative scan (pattern) vs exact search with a btree prefilter
  (limit); and the pattern's query when the filter column has a btree too, so the planner
  chooses between the two indexes, and with ``exact_below`` (count the matching rows
  first, search exactly when at most 2000 match).
* ``vector:quantized`` -- full-precision HNSW vs halfvec + rerank vs binary quantization +
  rerank at its default pool (160 for k=10) and at 40, 80 and 320: index size, build
  time, size ratio to the full index and recall in ``extra``.
* ``vector:ivfflat`` -- IVFFlat (lists = N/1000) at the probes matching HNSW's recall vs HNSW.

Targets (issue #8, default scale, judged in the report, never asserted): recall@10 >= 0.95
at least 10x faster than the exact scan; filtered 1% search returns k rows for every query
with recall@10 >= 0.9; the binary-quantized index >= 4x smaller than the full-precision
index with recall@10 >= 0.9 after rerank.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Index,
    Integer,
    MetaData,
    Table,
    bindparam,
    func,
    select,
    text,
)
from sqlalchemy import true as sql_true
from sqlalchemy.schema import CreateTable

from benchmarks.conftest import Scale, record
from pgpatterns.bulk import copy_rows
from pgpatterns.explain import explain, plan_summary
from pgpatterns.vector import (
    IndexBuildReport,
    VectorSpec,
    index_build_report,
    nearest,
    nearest_stmt,
    tune_ef_search,
)
from pgpatterns.vector.search import count_stmt
from pgpatterns.vector.settings import pool_size

pytestmark = pytest.mark.requires_extension("vector")
K = 10
DIM = 384
QUERIES, TUNING_QUERIES = 200, 100
# Tune for a little more than the target: recall measured on 100 tuning queries has a
# sampling error of about 0.01, and the target applies to the 200 measured queries.
TUNE_FOR = 0.96
EF_VALUES = (10, 20, 40, 80, 160, 320)
BINARY_POOLS = (40, 80, 320)
EXACT_BELOW = 2000  # filters matching at most this many rows are searched exactly


def generate(scale: Scale, n: int, queries: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` vectors and ``queries`` query vectors: the user's ``.npy`` file or the mixture.

    The mixture is hierarchical, like topics in a corpus: a shared offset (0.5 x a random
    direction, as real embeddings share a mean direction), 100 topics N(0, 1) per dimension,
    10 subtopics per topic N(0, 0.6) around it, 100 leaves per subtopic N(0, 0.9) around
    that, and each point its leaf plus N(0, 0.6). Queries are drawn the same way. The
    spreads were chosen so the neighbour profile matches real embeddings: for
    all-MiniLM-L6-v2 embeddings of 10^5 real texts (:mod:`benchmarks.embeddings`), a
    query's mean cosine similarity to its 1st / 10th / 100th neighbour and to the median row
    was 0.78 / 0.59 / 0.46 / 0.07; this mixture gives about 0.80 / 0.61 / 0.52 / 0.08. A
    flat mixture (isotropic clusters) puts a query's first 100 neighbours at nearly the same
    distance, which no real embedding model does and which makes quantization look far
    worse than it is.
    """
    path = os.environ.get("PGPATTERNS_VECTOR_NPY")
    if path:
        data = np.load(path).astype(np.float32)
        if len(data) < n + queries:
            raise ValueError(f"{path} has {len(data)} rows; this scale needs {n + queries} "
                             f"({n} to search, {queries} held out as queries).")
        return data[:n], data[n:n + queries]
    rng = np.random.default_rng(scale.seed)
    topics = rng.normal(size=(100, DIM)) + 0.5 * rng.normal(size=DIM)
    subtopics = np.repeat(topics, 10, axis=0) + rng.normal(scale=0.6, size=(1000, DIM))
    leaves = np.repeat(subtopics, 100, axis=0) + rng.normal(scale=0.9, size=(10**5, DIM))

    def points(count: int) -> np.ndarray:
        picks = rng.integers(0, len(leaves), count)
        return (leaves[picks] + rng.normal(scale=0.6, size=(count, DIM))).astype(np.float32)

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


@dataclass
class Data:
    engine: Engine
    table: Table
    ivf: Table
    specs: dict[str, VectorSpec]
    builds: dict[str, IndexBuildReport]
    n: int
    dim: int
    queries: np.ndarray
    tuning: np.ndarray
    truth: dict[str | None, list[list[int]]]
    stats: dict[str, Any]
    seen: dict[str, Any] = field(default_factory=dict)  # medians/recalls later cases compare


def _specs(n: int, dim: int) -> dict[str, VectorSpec]:
    return {
        "full": VectorSpec(dim, metric="cosine", m=16, ef_construction=64),
        "halfvec": VectorSpec(dim, metric="cosine", quantize="halfvec"),
        "binary": VectorSpec(dim, metric="cosine", quantize="binary"),
        "ivfflat": VectorSpec(dim, metric="cosine", index="ivfflat", lists=max(n // 1000, 1)),
    }


def _stats(vectors: np.ndarray, queries: np.ndarray) -> dict[str, Any]:
    # How far apart the data is, to compare with real embeddings (cosine similarity).
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    top = np.sort((queries / np.linalg.norm(queries, axis=1, keepdims=True)) @ unit.T, axis=1)
    return {"data": os.environ.get("PGPATTERNS_VECTOR_NPY") or "mixture",
            "cos_nn1": round(float(top[:, -1].mean()), 3),
            "cos_nn10": round(float(top[:, -K].mean()), 3),
            "cos_nn100": round(float(top[:, -100].mean()), 3),
            "cos_median": round(float(np.median(top, axis=1).mean()), 3)}


@pytest.fixture(scope="module")
def data(pg_module_engine: Engine, scale: Scale) -> Iterator[Data]:
    engine = pg_module_engine
    n = scale.pick(quick=10**4, default=10**5)
    vectors, queries = generate(scale, n, QUERIES + TUNING_QUERIES)
    dim = vectors.shape[1]  # a user's file decides the dimension
    specs = _specs(n, dim)
    cat = np.random.default_rng(scale.seed + 1).integers(0, 100, n)  # 0: 1%; < 10: 10%
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
    metadata.drop_all(engine)
    with engine.begin() as conn:
        conn.execute(CreateTable(table))
        conn.execute(CreateTable(ivf))
        copy_rows(conn, table, ((i, int(cat[i]), int(cat[i]), vectors[i]) for i in range(n)))
        conn.execute(text("INSERT INTO bench_vector_items_ivf SELECT id, embedding "
                          "FROM bench_vector_items"))
        Index("bench_vector_items_cat_b", table.c.cat_b).create(conn)
    builds = {}
    for name, spec in specs.items():
        target = ivf if name == "ivfflat" else table
        with engine.begin() as conn:
            builds[name] = index_build_report(conn, spec.index_on(target.c.embedding),
                                              maintenance_work_mem="1GB")
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(
            text("VACUUM ANALYZE bench_vector_items, bench_vector_items_ivf"))
    measured = queries[:QUERIES]
    yield Data(
        engine=engine, table=table, ivf=ivf, specs=specs, builds=builds, n=n, dim=dim,
        queries=measured, tuning=queries[QUERIES:], stats=_stats(vectors, measured),
        truth={None: _truth(vectors, measured, None),
               "10pct": _truth(vectors, measured, cat < 10),
               "1pct": _truth(vectors, measured, cat == 0)},
    )
    metadata.drop_all(engine)


def _recall(found: list[list[int]], truth: list[list[int]]) -> float:
    hit = sum(len(set(f) & set(t)) for f, t in zip(found, truth, strict=True))
    return hit / max(sum(len(t) for t in truth), 1)


def _case(benchmark: Any, data: Data, scale: Scale, *, question: str, case: str, role: str,
          spec: VectorSpec, truth: str | None = None, rounds: int | None = None,
          **search: Any) -> dict[str, Any]:
    table = data.ivf if spec.index == "ivfflat" else data.table
    found: list[list[int]] = []

    def once() -> None:
        with data.engine.connect() as conn:
            found[:] = [[h.item.id for h in nearest(conn, table, spec, q, K, **search)]
                        for q in data.queries]
            conn.rollback()

    plan_kw = {k: v for k, v in search.items() if k in ("where", "exact", "iterative",
                                                         "candidates")}
    with data.engine.connect() as conn:
        if search.get("exact_below"):  # the plan of the branch nearest() takes
            count = count_stmt(table, spec, search["where"], False, search["exact_below"])
            plan_kw["exact"] = conn.scalar(count) <= search["exact_below"]
        plan = plan_summary(explain(conn, nearest_stmt(table, spec, data.queries[0], K,
                                                       **plan_kw)))
    extra: dict[str, Any] = {"queries_per_round": len(data.queries), **data.stats}
    if rounds is not None and rounds < scale.rounds:
        extra["rounds_note"] = f"{rounds} round(s): each round is {len(data.queries)} queries"
    record(benchmark, question=question, case=case, role=role, rows=data.n, scale=scale,
           plan=plan, dim=data.dim, **extra)
    benchmark.pedantic(once, rounds=rounds or scale.rounds, iterations=1, warmup_rounds=0)
    wanted = data.truth[truth]
    recall = _recall(found, wanted)
    returned = sum(len(f) for f in found) / max(sum(len(t) for t in wanted), 1)
    median = benchmark.stats.stats.median
    benchmark.extra_info.update(
        recall_at_10=round(recall, 4), returned=round(returned, 4),
        queries_short_of_k=sum(len(f) < len(t) for f, t in zip(found, wanted, strict=True)),
        per_query_ms=round(median * 1000 / len(data.queries), 3))
    return {"recall": recall, "returned": returned, "found": found, "median": median}


# --- vector:knn ---------------------------------------------------------------------------

def test_knn_exact(benchmark: Any, data: Data, scale: Scale) -> None:
    got = _case(benchmark, data, scale, question="vector:knn", case="exact scan",
                role="baseline", spec=data.specs["full"], exact=True, rounds=1)
    data.seen["exact_median"] = got["median"]
    assert got["recall"] > 0.999  # the exact answer (ties aside)


@pytest.mark.parametrize("ef", EF_VALUES)
def test_knn_hnsw(benchmark: Any, data: Data, scale: Scale, ef: int) -> None:
    got = _case(benchmark, data, scale, question="vector:knn", case=f"hnsw ef_search={ef}",
                role="alternative", spec=data.specs["full"], ef_search=max(ef, K))
    benchmark.extra_info["ef_search"] = ef
    assert got["returned"] == 1.0 and got["recall"] > 0.3


def _tuned_ef(data: Data) -> int:
    if "ef" not in data.seen:
        with data.engine.connect() as conn:
            tuning = tune_ef_search(conn, data.table, data.specs["full"], list(data.tuning), K,
                                    target=TUNE_FOR)
            conn.rollback()
        data.seen["ef"] = tuning.ef_search or 1000
        data.seen["ef_points"] = [(p.ef_search, round(p.recall, 3)) for p in tuning.points]
    return int(data.seen["ef"])


def test_knn_tuned(benchmark: Any, data: Data, scale: Scale) -> None:
    ef = _tuned_ef(data)
    got = _case(benchmark, data, scale, question="vector:knn",
                case=f"nearest, ef_search={ef} from tune_ef_search(target={TUNE_FOR})",
                role="pattern", spec=data.specs["full"], ef_search=ef)
    speedup = data.seen["exact_median"] / got["median"]
    data.seen["tuned_recall"] = got["recall"]
    benchmark.extra_info.update(
        ef_search=ef, tuning_curve=data.seen["ef_points"], speedup_vs_exact=round(speedup, 1),
        target_note="issue target: recall@10 >= 0.95 at least 10x faster than the exact scan",
        recall_target_met=got["recall"] >= 0.95, speed_target_met=speedup >= 10)
    assert got["returned"] == 1.0


def test_knn_handwritten(benchmark: Any, data: Data, scale: Scale) -> None:
    """The same work by hand: set ef_search, bind the vector, fetch the same columns."""
    ef = _tuned_ef(data)
    column_type = data.specs["full"].column_type
    stmt = text("SELECT id, cat, cat_b, embedding, embedding <=> CAST(:q AS vector) AS d "
                "FROM bench_vector_items ORDER BY embedding <=> CAST(:q AS vector) LIMIT 10"
                ).bindparams(bindparam("q", type_=column_type)).columns(embedding=column_type)
    setting = select(func.set_config("hnsw.ef_search", str(ef), sql_true()))
    found: list[list[int]] = []
    record(benchmark, question="vector:knn", case=f"hand-written SQL, ef_search={ef}",
           role="limit", rows=data.n, scale=scale, plan="Limit > Index Scan (hnsw)",
           dim=data.dim, pattern_within=1.2)

    def once() -> None:
        with data.engine.connect() as conn:
            found[:] = []
            for q in data.queries:
                conn.execute(setting)
                found.append([row.id for row in conn.execute(stmt, {"q": q})])
            conn.rollback()

    benchmark.pedantic(once, rounds=scale.rounds, iterations=1, warmup_rounds=0)
    benchmark.extra_info.update(
        recall_at_10=round(_recall(found, data.truth[None]), 4), ef_search=ef,
        per_query_ms=round(benchmark.stats.stats.median * 1000 / len(data.queries), 3))
    assert all(len(f) == K for f in found)


# --- vector:filtered-* --------------------------------------------------------------------

FILTERED_CASES = [
    ("plain hnsw (iterative off)", "baseline"),
    ("nearest(where=...) iterative scan", "pattern"),
    ("nearest(where=...), filter column has a btree: planner's choice", "alternative"),
    (f"nearest(where=..., exact_below={EXACT_BELOW}), filter column has a btree",
     "alternative"),
    ("exact, btree prefilter", "limit"),
]


@pytest.mark.parametrize("share", ["10pct", "1pct"])
@pytest.mark.parametrize(("case", "role"), FILTERED_CASES)
def test_filtered(benchmark: Any, data: Data, scale: Scale, share: str, case: str,
                  role: str) -> None:
    table = data.table
    column = table.c.cat if role in ("baseline", "pattern") else table.c.cat_b
    where = column == 0 if share == "1pct" else column < 10
    kw: dict[str, Any] = {"where": where}
    if role == "baseline":
        kw["iterative"] = "off"
    elif role == "limit":
        kw["exact"] = True
    elif "exact_below" in case:
        kw["exact_below"] = EXACT_BELOW
    got = _case(benchmark, data, scale, question=f"vector:filtered-{share}", case=case,
                role=role, spec=data.specs["full"], truth=share, **kw)
    if role == "pattern" and share == "1pct":
        benchmark.extra_info.update(
            target_note="issue target: k rows for every query, recall@10 >= 0.9",
            k_rows_target_met=benchmark.extra_info["queries_short_of_k"] == 0,
            recall_target_met=got["recall"] >= 0.9)
    if role != "baseline":
        assert got["returned"] == 1.0
    if role == "limit":
        assert got["recall"] > 0.999


# --- vector:quantized ---------------------------------------------------------------------

QUANTIZED_CASES = [("full", "baseline", None), ("halfvec", "alternative", None)] + [
    ("binary", "pattern" if pool is None else "alternative", pool) for pool in (None,
                                                                                *BINARY_POOLS)
]


@pytest.mark.parametrize(("name", "role", "candidates"), QUANTIZED_CASES)
def test_quantized(benchmark: Any, data: Data, scale: Scale, name: str, role: str,
                   candidates: int | None) -> None:
    spec = data.specs[name]
    build, full = data.builds[name], data.builds["full"]
    kw = {"candidates": candidates} if candidates else {}
    pool = None if spec.quantize is None else pool_size(spec, K, candidates)
    label = f"{name} hnsw" + ("" if pool is None else f" + rerank (pool {pool}"
                              + (", the default)" if candidates is None else ")"))
    got = _case(benchmark, data, scale, question="vector:quantized", case=label, role=role,
                spec=spec, **kw)
    ratio = full.size_bytes / build.size_bytes
    benchmark.extra_info.update(
        index_mb=round(build.size_bytes / 2**20, 2), build_s=round(build.seconds, 2),
        build_overflowed_memory=build.overflowed, size_vs_full=round(ratio, 2), pool=pool)
    if role == "pattern":
        benchmark.extra_info.update(
            target_note="issue target: binary index >= 4x smaller than the full-precision "
                        "index, recall@10 >= 0.9 after rerank",
            size_target_met=ratio >= 4, recall_target_met=got["recall"] >= 0.9)
    assert got["returned"] == 1.0


# --- vector:ivfflat -----------------------------------------------------------------------

def test_ivfflat_hnsw(benchmark: Any, data: Data, scale: Scale) -> None:
    ef = _tuned_ef(data)
    got = _case(benchmark, data, scale, question="vector:ivfflat",
                case=f"hnsw ef_search={ef} (tuned)", role="pattern", spec=data.specs["full"],
                ef_search=ef)
    data.seen["hnsw_recall"] = got["recall"]


def test_ivfflat_matched(benchmark: Any, data: Data, scale: Scale) -> None:
    spec = data.specs["ivfflat"]
    target = data.seen.get("hnsw_recall", 0.95)
    probes = spec.lists
    truth = _truth_for_tuning(data)
    for candidate in (1, 2, 4, 8, 16, 32, 64):  # smallest probes matching HNSW's recall
        if candidate > spec.lists:
            break
        with data.engine.connect() as conn:
            found = [[h.item.id for h in nearest(conn, data.ivf, spec, q, K, probes=candidate)]
                     for q in data.tuning]
        if _recall(found, truth) >= target - 0.01:
            probes = candidate
            break
    got = _case(benchmark, data, scale, question="vector:ivfflat",
                case=f"ivfflat lists={spec.lists} probes={probes}", role="alternative",
                spec=spec, probes=probes)
    benchmark.extra_info.update(probes=probes, build_s=round(data.builds["ivfflat"].seconds, 2))
    assert got["returned"] == 1.0


def _truth_for_tuning(data: Data) -> list[list[int]]:
    with data.engine.connect() as conn:
        return [[h.item.id for h in nearest(conn, data.ivf, data.specs["ivfflat"], q, K,
                                            exact=True)] for q in data.tuning]
