"""pgpatterns.vector without a database: spec validation, query checks, SQL shapes."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Column, Integer, MetaData, Table, create_engine, event
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session
from sqlalchemy.schema import CreateIndex

from pgpatterns.errors import PatternError, VectorError, VectorQueryError, VectorSpecError
from pgpatterns.vector import VectorSpec, hybrid_search_stmt, nearest, nearest_stmt, search_settings

SPEC = VectorSpec(3)
metadata = MetaData()
docs = Table("docs", metadata, Column("id", Integer, primary_key=True), Column("cat", Integer),
             SPEC.column("embedding"))
plain = Table("plain", metadata, Column("id", Integer, primary_key=True),
              Column("embedding", SPEC.column_type))


def sql(stmt: Any) -> str:
    compiled = stmt.compile(dialect=postgresql.dialect(),
                            compile_kwargs={"render_postcompile": True})
    return " ".join(str(compiled).split())


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"dim": 3, "metric": "hamming"}, "does not apply to storage 'vector'"),
    ({"dim": 3, "metric": "cosine", "storage": "bit"}, "does not apply to storage 'bit'"),
    ({"dim": 3, "metric": "dot"}, "metric='dot'"),
    ({"dim": 0}, "out of range"),
    ({"dim": 3000}, "at most 2000"),
    ({"dim": 3, "index": "ivfflat", "metric": "l1"}, "ivfflat has no operator class"),
    ({"dim": 3, "storage": "sparsevec", "index": "ivfflat"}, "ivfflat has no operator class"),
    ({"dim": 3, "quantize": "binary", "index": None}, "without an index"),
    ({"dim": 3, "storage": "sparsevec", "quantize": "halfvec"}, "needs storage vector"),
    ({"dim": 3, "m": 1}, "m=1"),
    ({"dim": 3, "m": 40, "ef_construction": 64}, "at least 2*m"),
    ({"dim": 3, "index": "ivfflat", "lists": 0}, "lists=0"),
    ({"dim": 3.0}, "must be an int"),
])
def test_spec_rejects_bad_combinations(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(VectorSpecError) as info:
        VectorSpec(**kwargs)
    assert message in str(info.value)
    assert isinstance(info.value, PatternError)


def test_spec_accepts_what_pgvector_indexes() -> None:
    assert VectorSpec(3000, quantize="halfvec").opclass == "halfvec_cosine_ops"
    assert VectorSpec(3000, quantize="binary").opclass == "bit_hamming_ops"
    assert VectorSpec(64, storage="bit", metric="jaccard").opclass == "bit_jaccard_ops"
    assert VectorSpec(3, storage="sparsevec", metric="l1").opclass == "sparsevec_l1_ops"
    assert VectorSpec(3, index="ivfflat", lists=10).index_with == {"lists": 10}


def test_index_ddl_has_opclass_and_with_for_every_variant() -> None:
    md = MetaData()
    specs = [VectorSpec(3), VectorSpec(3, quantize="halfvec"), VectorSpec(3, quantize="binary"),
             VectorSpec(3, index="ivfflat", metric="l2", lists=7)]
    t = Table("t", md, Column("id", Integer), Column("e", specs[0].column_type))
    ddl = [sql(CreateIndex(s.index_on(t.c.e, name=f"i{n}"))) for n, s in enumerate(specs)]
    assert ddl == [
        "CREATE INDEX i0 ON t USING hnsw (e vector_cosine_ops) WITH (m = 16, ef_construction = 64)",
        "CREATE INDEX i1 ON t USING hnsw (CAST(e AS HALFVEC(3)) halfvec_cosine_ops) "
        "WITH (m = 16, ef_construction = 64)",
        "CREATE INDEX i2 ON t USING hnsw (CAST(binary_quantize(e) AS BIT(3)) bit_hamming_ops) "
        "WITH (m = 16, ef_construction = 64)",
        "CREATE INDEX i3 ON t USING ivfflat (e vector_l2_ops) WITH (lists = 7)",
    ]
    with pytest.raises(VectorSpecError, match="index=None"):
        VectorSpec(3, index=None).index_on(t.c.e)
    with pytest.raises(VectorSpecError, match="needs a table column"):
        VectorSpec(3).index_on("e")


@pytest.mark.parametrize(("spec", "value", "message"), [
    (SPEC, [1, 2], "has 2 dimensions but the column has 3"),
    (SPEC, [1, math.nan, 2], "NaN or infinity"),
    (SPEC, np.array([1, np.inf, 2]), "NaN or infinity"),
    (SPEC, [0, 0, 0], "all zeros"),
    (SPEC, "[1,2,3]", "sequence of numbers"),
    (SPEC, [[1, 2, 3]], "one-dimensional"),
    (SPEC, [1, 2, 1e39], "overflows float4"),
    (VectorSpec(3, quantize="halfvec"), [1, 2, 70000], "overflows halfvec"),
    (VectorSpec(4, storage="bit", metric="jaccard"), "0000", "all zero"),
    (VectorSpec(4, storage="bit", metric="hamming"), "01x1", "only hold 0 and 1"),
    (VectorSpec(4, storage="bit", metric="hamming"), "011", "3 dimensions"),
])
def test_query_vector_checks(spec: VectorSpec, value: Any, message: str) -> None:
    with pytest.raises(VectorQueryError) as info:
        spec.check_query(value)
    assert message in str(info.value)


def test_zero_vector_is_fine_for_l2() -> None:
    assert VectorSpec(3, metric="l2").check_query([0, 0, 0]).tolist() == [0, 0, 0]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"k": 0}, "k must be a positive int"),
    ({"k": 10, "ef_search": 5}, "ef_search=5 must be between k=10"),
    ({"k": 10, "ef_search": 2000}, "and 1000"),
    ({"k": 10, "probes": 3}, "probes is an ivfflat setting"),
    ({"k": 10, "iterative": "sideways"}, "iterative='sideways'"),
    ({"k": 10, "candidates": 50}, "quantize=None"),
    ({"k": 10, "exact": True, "ef_search": 40}, "exact=True"),
])
def test_search_settings_rejects(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(VectorQueryError) as info:
        search_settings(SPEC, **kwargs)
    assert message in str(info.value)


def test_ivfflat_settings() -> None:
    spec = VectorSpec(3, index="ivfflat", lists=20)
    assert search_settings(spec, 5, probes=4, filtered=True) == {
        "plan_cache_mode": "force_custom_plan", "ivfflat.iterative_scan": "relaxed_order",
        "ivfflat.probes": "4"}
    with pytest.raises(VectorQueryError, match="needs an hnsw index"):
        search_settings(spec, 5, iterative="strict")
    with pytest.raises(VectorQueryError, match="exceeds lists=20"):
        search_settings(spec, 5, probes=21)


def test_rerank_pool_raises_ef_search() -> None:
    half, spec = VectorSpec(3, quantize="halfvec"), VectorSpec(3, quantize="binary")
    assert "hnsw.ef_search" not in search_settings(half, 10)  # pool 40 = pgvector's default
    assert search_settings(half, 20)["hnsw.ef_search"] == "80"  # halfvec: max(4*k, 40)
    assert search_settings(spec, 5)["hnsw.ef_search"] == "160"  # binary: max(16*k, 160)
    assert search_settings(spec, 20)["hnsw.ef_search"] == "320"
    assert search_settings(spec, 100)["hnsw.ef_search"] == "1000"  # pgvector's maximum
    assert search_settings(spec, 10, candidates=200)["hnsw.ef_search"] == "200"
    assert search_settings(spec, 10, candidates=40) == {}  # an explicit pool wins
    with pytest.raises(VectorQueryError, match="re-ranking pool"):
        search_settings(spec, 10, candidates=200, ef_search=100)


def test_nearest_errors_before_any_sql() -> None:
    engine = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    sent: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: sent.append(a[2]))
    with Session(engine) as session:
        for bad in ({"query_vector": [1, 2], "k": 3}, {"query_vector": [1, 2, 3], "k": 0},
                    {"query_vector": [0, 0, 0], "k": 3},
                    {"query_vector": [1, 2, 3], "k": 10, "ef_search": 4},
                    {"query_vector": [1, 2, 3], "k": 3, "exact_below": 100},  # no where
                    {"query_vector": [1, 2, 3], "k": 3, "exact_below": 0, "where": docs.c.cat == 1},
                    {"query_vector": [1, 2, 3], "k": 3, "exact_below": 10, "exact": True,
                     "where": docs.c.cat == 1},
                    {"query_vector": [1, 2], "k": 3, "exact_below": 10,  # checked before the count
                     "where": docs.c.cat == 1}):
            with pytest.raises(VectorQueryError):
                nearest(session, docs, docs.c.embedding, **bad)
    assert sent == []


def test_resolve_errors() -> None:
    with pytest.raises(VectorError, match="not declared with a VectorSpec"):
        nearest_stmt(plain, plain.c.embedding, [1, 2, 3], 3)
    with pytest.raises(VectorError, match="is not a column of docs"):
        nearest_stmt(docs, plain.c.embedding, [1, 2, 3], 3)
    assert "plain.embedding" in sql(nearest_stmt(plain, SPEC, [1, 2, 3], 3))  # found by type
    with pytest.raises(VectorError, match="mapped class or a Table"):
        nearest_stmt(object(), SPEC, [1, 2, 3], 3)


def test_plain_shape_orders_by_bare_operator_with_literal_limit() -> None:
    assert sql(nearest_stmt(docs, SPEC, [1, 2, 3], 5)) == (
        "SELECT docs.id, docs.cat, docs.embedding, docs.embedding <=> %(query_vector)s AS "
        "distance FROM docs ORDER BY docs.embedding <=> %(query_vector)s LIMIT 5")


def test_filtered_shape_resorts_in_materialized_cte_with_threshold_outside() -> None:
    text = sql(nearest_stmt(docs, SPEC, [1, 2, 3], 5, where=docs.c.cat == 1, max_distance=0.5))
    assert text.startswith("WITH nearest_candidates AS MATERIALIZED (SELECT")
    inner, outer = text.split(") SELECT ", 1)
    assert "WHERE docs.cat = %(cat_1)s::INTEGER ORDER BY docs.embedding <=> " in inner
    assert "LIMIT 5" in inner and "distance <= " not in inner
    assert outer.endswith("WHERE nearest_candidates.distance <= %(max_distance)s "
                          "ORDER BY nearest_candidates.distance + 0 LIMIT 5")
    with pytest.raises(VectorQueryError, match="finite"):
        nearest_stmt(docs, SPEC, [1, 2, 3], 5, max_distance=math.inf)


def test_exact_and_rerank_shapes() -> None:
    exact = sql(nearest_stmt(docs, SPEC, [1, 2, 3], 5, exact=True, where=docs.c.cat == 1))
    assert "ORDER BY (docs.embedding <=> %(query_vector)s) + 0 LIMIT 5" in exact
    assert "MATERIALIZED" not in exact
    binary = VectorSpec(3, quantize="binary")
    text = sql(nearest_stmt(docs, binary, [1, 2, 3], 5, candidates=30))
    assert ("ORDER BY CAST(binary_quantize(docs.embedding) AS BIT(3)) <~> "
            "binary_quantize(CAST(%(query_vector)s AS VECTOR(3))) LIMIT 30") in text
    assert text.endswith("ORDER BY nearest_candidates.distance + 0 LIMIT 5")


def test_settings_are_bind_parameters() -> None:
    from pgpatterns.vector.settings import settings_stmt

    compiled = settings_stmt({"hnsw.ef_search": "80"}).compile(dialect=postgresql.dialect())
    assert str(compiled).startswith("SELECT set_config(%(set_config_2)s::VARCHAR, %(")
    assert list(compiled.params.values()) == ["hnsw.ef_search", "80"]


def test_hybrid_shape() -> None:
    from sqlalchemy import func

    text = sql(hybrid_search_stmt(docs, SPEC, [1, 2, 3], "postgres",
                                  document=func.to_tsvector("english", docs.c.id), k=3))
    assert "FULL OUTER JOIN text_ranked" in text and "ts_rank_cd(" in text
    assert "websearch_to_tsquery(CAST(%(param_" in text and "AS REGCONFIG)" in text
    with pytest.raises(VectorQueryError, match="empty"):
        hybrid_search_stmt(docs, SPEC, [1, 2, 3], " ", document=docs.c.id)


def test_unfiltered_statement_is_built_once_and_bound_per_call() -> None:
    from pgpatterns.vector.search import _prepare

    def prepared(vector: list[int], k: int = 5, **kw: Any) -> Any:
        base = dict(where=None, ef_search=None, probes=None, iterative="auto",
                    max_scan_tuples=None, max_distance=None, exact=False, candidates=None)
        return _prepare(docs, SPEC, vector, k, {**base, **kw})

    first, second = prepared([1, 2, 3]), prepared([3, 2, 1])
    assert first[1] is second[1]  # one statement object: its cache key stays memoized
    assert [list(p["query_vector"]) for p in (first[2], second[2])] == [[1, 2, 3], [3, 2, 1]]
    assert prepared([1, 2, 3], k=6)[1] is not first[1]
    within = prepared([1, 2, 3], max_distance=0.5)
    assert within[1] is not first[1] and within[2]["max_distance"] == 0.5
    assert "nearest_candidates.distance <= %(max_distance)s" in str(
        within[1].compile(dialect=postgresql.dialect()))
    filtered = prepared([1, 2, 3], where=docs.c.cat == 1)
    assert filtered[2] == {} and filtered[1] is not prepared([1, 2, 3], where=docs.c.cat == 1)[1]
    with pytest.raises(VectorQueryError, match="dimension"):
        prepared([1, 2])  # validated before the cached statement is used
