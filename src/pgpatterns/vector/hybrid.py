"""Hybrid search: full-text and vector rankings fused with Reciprocal Rank Fusion."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Float, Select, cast, func, literal, select
from sqlalchemy.dialects.postgresql import REGCONFIG
from sqlalchemy.sql.elements import ColumnElement

from pgpatterns.errors import VectorArgumentError, VectorQueryError
from pgpatterns.vector.settings import Iterative, check_k, search_settings, settings_stmt
from pgpatterns.vector.steps import Steps, run, run_async
from pgpatterns.vector.target import AsyncConn, SyncConn, Where, resolve, where_clause

__all__ = ["HybridHit", "hybrid_search", "hybrid_search_async", "hybrid_search_stmt"]

T = TypeVar("T")


@dataclass(frozen=True)
class HybridHit(Generic[T]):
    """One fused result: the row, its RRF score and its rank in each list (None: absent)."""

    item: T
    score: float
    vector_rank: int | None
    text_rank: int | None


def hybrid_search_stmt(
    model: Any,
    spec_or_column: Any,
    query_vector: Any,
    text_query: str | ColumnElement[Any],
    *,
    document: ColumnElement[Any],
    k: int = 10,
    candidates: int | None = None,
    rrf_k: int = 60,
    language: str = "english",
    where: Where = None,
) -> Select[Any]:
    """The ``SELECT`` fusing a vector and a full-text ranking with Reciprocal Rank Fusion.

    Examples:
        >>> stmt = hybrid_search_stmt(Doc, Doc.embedding, query_vec, "hnsw tuning",  # doctest: +SKIP
        ...                           document=Doc.search, k=5)

    Each side keeps its ``candidates`` best rows — nearest by the spec's index distance
    (ranked by the exact distance), and ``document @@ websearch_to_tsquery(language, text)``
    ranked by ``ts_rank_cd`` — and a row scores ``1/(rrf_k + vector rank) + 1/(rrf_k + text
    rank)`` (a missing rank adds 0). Columns: the entity (or the table's columns), ``score``,
    ``vector_rank``, ``text_rank``; best first. Arguments are those of :func:`hybrid_search`.
    """  # noqa: E501
    target = resolve(model, spec_or_column)
    spec, column, pk = target.spec, target.column, target.primary_key()
    check_k("k", k)
    pool = check_k("candidates", candidates if candidates is not None else max(k, 40))
    rrf = check_k("rrf_k", rrf_k)
    clause = where_clause(where)
    query = spec.query_param(query_vector)
    index_distance = spec.distance(column, query)
    vec_inner = select(pk.label("id"), spec.exact_distance(column, query).label("d"))
    txt_query: ColumnElement[Any]
    if not isinstance(language, str) or not language or "\x00" in language:
        raise VectorArgumentError(
            f"language={language!r:.80} is not accepted: pass the name of a text search "
            "configuration such as 'english' or 'simple'.", argument="language", given=language)
    if isinstance(text_query, str):
        if not text_query.strip():
            raise VectorQueryError("text_query is empty: pass the user's search words.")
        if "\x00" in text_query:
            raise VectorArgumentError(
                "text_query contains a NUL character, which PostgreSQL text cannot hold: "
                "strip it (text.replace('\\x00', '')).", argument="text_query",
                given=text_query)
        txt_query = func.websearch_to_tsquery(cast(literal(language), REGCONFIG), text_query)
    elif isinstance(text_query, ColumnElement):
        txt_query = text_query
    else:
        raise VectorArgumentError(
            f"text_query={text_query!r:.80} is not accepted: pass the user's words (a str) "
            "or a tsquery expression (func.to_tsquery(...)).", argument="text_query",
            given=text_query)
    if not isinstance(document, ColumnElement) and not hasattr(document, "__clause_element__"):
        raise VectorArgumentError(
            f"document={document!r:.80} is not accepted: pass the tsvector column or "
            "expression (Doc.search).", argument="document", given=document)
    text_rank = func.ts_rank_cd(document, txt_query)
    txt_inner = select(pk.label("id"), text_rank.label("r")).where(
        document.bool_op("@@")(txt_query)
    )
    if clause is not None:
        vec_inner = vec_inner.where(clause)
        txt_inner = txt_inner.where(clause)
    limit = literal(pool, literal_execute=True)
    vec_sub = vec_inner.order_by(index_distance).limit(limit).subquery("vector_candidates")
    txt_sub = txt_inner.order_by(text_rank.desc(), pk).limit(limit).subquery("text_candidates")
    vec = select(
        vec_sub.c.id, func.row_number().over(order_by=(vec_sub.c.d, vec_sub.c.id)).label("rank")
    ).cte("vector_ranked")
    txt = select(
        txt_sub.c.id,
        func.row_number().over(order_by=(txt_sub.c.r.desc(), txt_sub.c.id)).label("rank"),
    ).cte("text_ranked")

    def part(rank: ColumnElement[Any]) -> ColumnElement[Any]:
        return func.coalesce(literal(1.0) / (literal(float(rrf)) + rank), literal(0.0))

    score = cast(part(vec.c.rank) + part(txt.c.rank), Float).label("score")
    key = func.coalesce(vec.c.id, txt.c.id).label("id")
    fused = (
        select(key, score, vec.c.rank.label("vector_rank"), txt.c.rank.label("text_rank"))
        .select_from(vec.join(txt, vec.c.id == txt.c.id, full=True))
        .order_by(score.desc(), key)
        .limit(literal(k, literal_execute=True))
        .subquery("fused")
    )
    entity: list[Any] = [target.entity] if target.entity is not None else list(target.table.c)
    return (
        select(*entity, fused.c.score, fused.c.vector_rank, fused.c.text_rank)
        .join_from(target.entity if target.entity is not None else target.table, fused,
                   pk == fused.c.id)
        .order_by(fused.c.score.desc(), pk)
    )


def _prepare(model: Any, spec_or_column: Any, query_vector: Any, text_query: Any,
             kw: dict[str, Any]) -> tuple[Select[Any] | None, Select[Any], bool]:
    target = resolve(model, spec_or_column)
    pool = kw["candidates"] if kw["candidates"] is not None else max(check_k("k", kw["k"]), 40)
    settings = search_settings(
        target.spec, check_k("candidates", pool), filtered=kw["where"] is not None,
        ef_search=kw.pop("ef_search"), iterative=kw.pop("iterative"),
        candidates=pool if target.spec.quantize else None,
    )
    stmt = hybrid_search_stmt(model, spec_or_column, query_vector, text_query, **kw)
    return settings_stmt(settings), stmt, target.entity is not None


def _search(model: Any, spec_or_column: Any, query_vector: Any, text_query: Any,
            kw: dict[str, Any]) -> Steps[list[HybridHit[Any]]]:
    settings, stmt, orm = _prepare(model, spec_or_column, query_vector, text_query, kw)
    if settings is not None:
        yield settings, {}
    rows: Sequence[Any] = (yield stmt, {}).all()
    return [HybridHit(row[0] if orm else row, float(row[-3]), row[-2], row[-1]) for row in rows]


def hybrid_search(
    session: SyncConn,
    model: Any,
    spec_or_column: Any,
    query_vector: Any,
    text_query: str | ColumnElement[Any],
    *,
    document: ColumnElement[Any],
    k: int = 10,
    candidates: int | None = None,
    rrf_k: int = 60,
    language: str = "english",
    where: Where = None,
    ef_search: int | None = None,
    iterative: Iterative = "auto",
) -> list[HybridHit[Any]]:
    """Hybrid (keyword + semantic) search, fused with Reciprocal Rank Fusion; best first.

    Examples:
        >>> hits = hybrid_search(session, Doc, Doc.embedding, query_vec,  # doctest: +SKIP
        ...                      "postgres vector index", document=Doc.search, k=5)
        >>> [(h.item.title, h.vector_rank, h.text_rank) for h in hits][:1]  # doctest: +SKIP
        [('pgvector HNSW', 1, 2)]

    Args:
        session: ``Session`` or ``Connection`` (:func:`hybrid_search_async` for asyncio).
        model: Mapped class or ``Table`` with a single-column primary key.
        spec_or_column: The vector column or its :class:`VectorSpec`.
        query_vector: The embedding of the query text.
        text_query: The user's words (``websearch_to_tsquery`` syntax), or a tsquery.
        document: The ``tsvector`` column or expression (give it a GIN index).
        k: Results to return.
        candidates: Rows each side contributes (default ``max(k, 40)``).
        rrf_k: RRF constant (60, as in the original paper): larger flattens the ranks.
        language: Text search configuration for ``text_query``.
        where: Filter applied to both sides.
        ef_search: ``hnsw.ef_search`` (at least ``candidates``); iterative: as in
            :func:`pgpatterns.vector.nearest`.

    Raises:
        VectorQueryError: bad vector, empty text, ``k``/``candidates``/``rrf_k`` <= 0.
    """
    return run(session, _search(model, spec_or_column, query_vector, text_query, dict(
        document=document, k=k, candidates=candidates, rrf_k=rrf_k, language=language,
        where=where, ef_search=ef_search, iterative=iterative,
    )))


async def hybrid_search_async(
    session: AsyncConn,
    model: Any,
    spec_or_column: Any,
    query_vector: Any,
    text_query: str | ColumnElement[Any],
    *,
    document: ColumnElement[Any],
    k: int = 10,
    candidates: int | None = None,
    rrf_k: int = 60,
    language: str = "english",
    where: Where = None,
    ef_search: int | None = None,
    iterative: Iterative = "auto",
) -> list[HybridHit[Any]]:
    """The asyncio twin of :func:`hybrid_search`.

    Examples:
        >>> hits = await hybrid_search_async(session, Doc, Doc.embedding, vec,  # doctest: +SKIP
        ...                                  "hnsw", document=Doc.search)
    """
    return await run_async(session, _search(
        model, spec_or_column, query_vector, text_query, dict(
            document=document, k=k, candidates=candidates, rrf_k=rrf_k, language=language,
            where=where, ef_search=ef_search, iterative=iterative,
        )))
