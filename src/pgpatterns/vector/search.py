"""Nearest-neighbour search: the statement, and sync and async actions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Generic, TypeVar

from sqlalchemy import Float, Select, bindparam, func, literal, literal_column, select
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from pgpatterns.errors import VectorArgumentError, VectorQueryError
from pgpatterns.vector.settings import (
    BIGINT_MAX,
    Iterative,
    check_flag,
    check_k,
    effective_iterative,
    pool_size,
    search_settings,
    settings_stmt,
)
from pgpatterns.vector.spec import VectorSpec, finite_float
from pgpatterns.vector.steps import Steps, run, run_async
from pgpatterns.vector.target import AsyncConn, SyncConn, Target, Where, resolve, where_clause

__all__ = [
    "Iterative",
    "Neighbor",
    "nearest",
    "nearest_async",
    "nearest_stmt",
    "search_settings",
]

T = TypeVar("T")


@dataclass(frozen=True)
class Neighbor(Generic[T]):
    """One search result: the row (a mapped instance, or a Core ``Row``) and its distance."""

    item: T
    distance: float


def nearest_stmt(
    model: Any,
    spec_or_column: Any,
    query_vector: Any,
    k: int,
    *,
    where: Where = None,
    max_distance: float | None = None,
    iterative: Iterative = "auto",
    exact: bool = False,
    candidates: int | None = None,
) -> Select[Any]:
    """The ``SELECT`` of the ``k`` nearest rows and their ``distance``, nearest first.

    Examples:
        >>> from sqlalchemy import Column, Integer, MetaData, Table
        >>> spec = VectorSpec(3)
        >>> docs = Table("docs", MetaData(), Column("id", Integer, primary_key=True),
        ...              spec.column("embedding"))
        >>> print(nearest_stmt(docs, spec, [1, 2, 3], 5))  # doctest: +NORMALIZE_WHITESPACE
        SELECT docs.id, docs.embedding, docs.embedding <=> :query_vector AS distance
        FROM docs ORDER BY docs.embedding <=> :query_vector
         LIMIT __[POSTCOMPILE_param_1]

    It orders by the spec's bare distance operator ascending with a ``LIMIT`` — the only
    shape an HNSW/IVFFlat index serves — and renders ``k`` as a literal so a prepared
    (generic) plan still knows how few rows are wanted. With a relaxed iterative scan, a
    ``max_distance``, or a quantized spec, the index scan sits in a ``MATERIALIZED`` CTE and
    the outer query re-sorts by the exact distance, filters by ``max_distance``, and keeps
    ``k``. With ``exact`` the ordering is wrapped so that no vector index can serve it.
    Arguments are those of :func:`nearest`; it does not apply the settings: execute it with
    :func:`nearest`, or apply :func:`search_settings` yourself.
    """
    target = resolve(model, spec_or_column)
    return build_stmt(
        target, target.spec.query_param(query_vector), k, clause=where_clause(where),
        max_distance=None if max_distance is None else bindparam(
            "max_distance", check_max_distance(target.spec, max_distance), type_=Float),
        iterative=iterative, exact=exact, candidates=candidates,
    )


def check_max_distance(spec: VectorSpec, value: object) -> float:
    """A finite ``max_distance``; negative only under ``inner_product`` (``<#>`` is negated).

    Every other metric's distance is >= 0, so a negative bound would return ``[]`` whatever
    the data: refused instead of silently matching nothing.
    """
    bound = finite_float("max_distance", value)
    if bound < 0 and spec.metric != "inner_product":
        raise VectorArgumentError(
            f"max_distance={value!r} is negative, but {spec.metric} distances are >= 0: "
            "nothing could ever match. Pass a bound >= 0 (or drop max_distance).",
            argument="max_distance", given=value,
        )
    return bound


def build_stmt(
    target: Target,
    query: ColumnElement[Any],
    k: int,
    *,
    clause: ColumnElement[bool] | None,
    max_distance: ColumnElement[Any] | None,
    iterative: Iterative,
    exact: bool,
    candidates: int | None,
) -> Select[Any]:
    """:func:`nearest_stmt` on a resolved target, with ``query`` already a bind parameter."""
    spec, column = target.spec, target.column
    check_k("k", k)
    pool = k if exact else pool_size(spec, k, candidates)
    mode = effective_iterative(spec, iterative, clause is not None or max_distance is not None)
    full = spec.exact_distance(column, query)
    order = full + literal_column("0") if exact else spec.distance(column, query)
    label = "distance" if "distance" not in target.table.c else "distance_"
    entity: list[Any] = [target.entity] if target.entity is not None else list(target.table.c)
    inner = select(*entity, full.label(label))
    if clause is not None:
        inner = inner.where(clause)
    inner = inner.order_by(order).limit(literal(pool, literal_execute=True))
    wrap = max_distance is not None or (
        not exact and (mode == "relaxed" or spec.quantize is not None)
    )
    if not wrap:
        return inner
    cte = inner.cte("nearest_candidates").prefix_with("MATERIALIZED")
    dist = cte.c[label]
    outer_entity = [aliased(target.entity, cte)] if target.entity is not None else [
        cte.c[c.name] for c in target.table.c
    ]
    outer = select(*outer_entity, dist)
    if max_distance is not None:
        outer = outer.where(dist <= max_distance)
    # "+ 0": PostgreSQL 17+ knows the CTE's rows come out of an index scan ordered by this
    # distance and would skip the sort, but a relaxed (or re-ranked) scan is not ordered.
    return outer.order_by(dist + literal_column("0")).limit(literal(k, literal_execute=True))


@lru_cache(maxsize=256)
def _cached_stmt(
    target: Target, k: int, max_distance: bool, iterative: Iterative, exact: bool,
    candidates: int | None,
) -> Select[Any]:
    # Unfiltered searches differ only in their parameters: build each shape once, so its
    # cache key stays memoized and a search costs little more than hand-written SQL.
    return build_stmt(
        target, bindparam("query_vector", type_=target.spec.column_type), k, clause=None,
        max_distance=bindparam("max_distance", type_=Float) if max_distance else None,
        iterative=iterative, exact=exact, candidates=candidates,
    )


def _prepare(
    model: Any, spec_or_column: Any, query_vector: Any, k: int, kw: dict[str, Any]
) -> tuple[Select[Any] | None, Select[Any], dict[str, Any], bool]:
    target = resolve(model, spec_or_column)
    where, max_distance = kw["where"], kw["max_distance"]
    settings = search_settings(
        target.spec, k,
        filtered=where is not None or max_distance is not None,
        ef_search=kw["ef_search"], probes=kw["probes"],
        iterative=kw["iterative"], max_scan_tuples=kw["max_scan_tuples"],
        exact=kw["exact"], candidates=kw["candidates"],
    )
    shape = dict(iterative=kw["iterative"], exact=kw["exact"], candidates=kw["candidates"])
    if where is not None:
        stmt = nearest_stmt(model, spec_or_column, query_vector, k, where=where,
                            max_distance=max_distance, **shape)
        return settings_stmt(settings), stmt, {}, target.entity is not None
    params: dict[str, Any] = {"query_vector": target.spec.check_query(query_vector)}
    if max_distance is not None:
        params["max_distance"] = check_max_distance(target.spec, max_distance)
    stmt = _cached_stmt(target, k, max_distance is not None, **shape)
    return settings_stmt(settings), stmt, params, target.entity is not None


def count_stmt(
    model: Any, spec_or_column: Any, where: Where, exact: bool, exact_below: int | None
) -> Select[Any] | None:
    """``SELECT count(*)`` of at most ``exact_below + 1`` rows matching ``where`` (or None)."""
    if exact_below is None:
        return None
    check_k("exact_below", exact_below)
    check_flag("exact", exact)
    clause = where_clause(where)
    if clause is None or exact:
        raise VectorQueryError(
            "exact_below chooses exact search for a filter matching few rows: "
            + ("pass where=..., or drop exact_below." if clause is None
               else "exact=True already searches exactly; drop exact_below.")
        )
    table = resolve(model, spec_or_column).table
    matching: Select[Any] = select(literal_column("1")).select_from(table).where(clause)
    # One row past the threshold tells "more than exact_below"; LIMIT is a bigint.
    limit = min(exact_below + 1, BIGINT_MAX)
    return select(func.count()).select_from(matching.limit(limit).subquery())


def _exactly(kw: dict[str, Any]) -> dict[str, Any]:
    # Index-scan settings do not apply to an exact search: drop them.
    return {**kw, "exact": True, "ef_search": None, "probes": None, "iterative": "auto",
            "max_scan_tuples": None, "candidates": None}


def _search(
    model: Any, spec_or_column: Any, query_vector: Any, k: int, exact_below: int | None,
    kw: dict[str, Any],
) -> Steps[list[Neighbor[Any]]]:
    settings, stmt, params, orm = _prepare(model, spec_or_column, query_vector, k, kw)
    count = count_stmt(model, spec_or_column, kw["where"], kw["exact"], exact_below)
    if count is not None and (yield count, {}).scalar_one() <= exact_below:
        settings, stmt, params, orm = _prepare(model, spec_or_column, query_vector, k,
                                               _exactly(kw))
    if settings is not None:
        yield settings, {}
    rows: Sequence[Any] = (yield stmt, params).all()
    return [Neighbor(row[0] if orm else row, float(row[-1])) for row in rows]


def nearest(
    session: SyncConn,
    model: Any,
    spec_or_column: Any,
    query_vector: Any,
    k: int,
    *,
    where: Where = None,
    ef_search: int | None = None,
    probes: int | None = None,
    iterative: Iterative = "auto",
    max_scan_tuples: int | None = None,
    max_distance: float | None = None,
    exact: bool = False,
    candidates: int | None = None,
    exact_below: int | None = None,
) -> list[Neighbor[Any]]:
    """The ``k`` rows nearest to ``query_vector``, nearest first, with their distances.

    Examples:
        >>> hits = nearest(session, Doc, Doc.embedding, query, 10,  # doctest: +SKIP
        ...                where=Doc.tenant_id == 7)
        >>> [(hit.item.title, round(hit.distance, 3)) for hit in hits][:1]  # doctest: +SKIP
        [('Intro to HNSW', 0.124)]

    Args:
        session: ``Session`` or ``Connection`` (:func:`nearest_async` for asyncio).
        model: The mapped class (results are instances) or a ``Table`` (results are rows).
        spec_or_column: The vector column (declared with ``spec.mapped_column()``) or its
            :class:`VectorSpec`.
        query_vector: Floats (list, numpy array, pgvector ``Vector``), a ``SparseVector``, or
            a ``"0101"`` string / pgvector ``Bit`` for bit columns.
        k: How many rows to return.
        where: A filter (or a list of them, AND-ed) on ``model``. With a filter, ``auto``
            turns on pgvector's relaxed iterative scan so ``k`` rows come back when they
            exist (a plain HNSW scan stops after ``ef_search`` candidates, filtered or not).
        ef_search: ``hnsw.ef_search`` (``k``..1000): higher is slower with better recall.
        probes: ``ivfflat.probes`` (1..lists).
        iterative: ``auto`` (relaxed when filtered, else off), ``strict``, ``relaxed``, ``off``.
        max_scan_tuples: ``hnsw.max_scan_tuples``, the iterative scan's budget (20000).
        max_distance: Keep only rows within this distance (applied outside the index scan).
        exact: Exact search: no vector index is used (a btree may still serve ``where``).
        candidates: Re-ranking pool for a quantized spec (default ``max(16*k, 160)`` for
            binary quantization, ``max(4*k, 40)`` for halfvec).
        exact_below: With ``where``: first count the matching rows (up to this many + 1,
            one extra statement) and search exactly when at most this many match. Reading
            a few thousand rows through a btree beats walking the graph for a very
            selective filter, and PostgreSQL's planner does not see it (pgvector's cost
            model). Index the filter's columns, or the count scans the table.

    Settings are applied with ``set_config(name, value, true)`` (bind parameters) in the
    caller's transaction: they end with it, so a pooled connection is never left changed.

    Warning:
        Settings persist until the transaction ends: a later query in the same transaction
        sees them. Iterative scans need pgvector 0.8. HNSW results are approximate; measure
        with :func:`pgpatterns.vector.recall_at_k`.

    Raises:
        VectorQueryError: bad query vector, ``k``, ``ef_search < k`` or options that do not
            fit the index — before any SQL is sent.
        VectorError: the column cannot be resolved.
    """
    return run(session, _search(model, spec_or_column, query_vector, k, exact_below, dict(
        where=where, ef_search=ef_search, probes=probes, iterative=iterative,
        max_scan_tuples=max_scan_tuples, max_distance=max_distance, exact=exact,
        candidates=candidates,
    )))


async def nearest_async(
    session: AsyncConn,
    model: Any,
    spec_or_column: Any,
    query_vector: Any,
    k: int,
    *,
    where: Where = None,
    ef_search: int | None = None,
    probes: int | None = None,
    iterative: Iterative = "auto",
    max_scan_tuples: int | None = None,
    max_distance: float | None = None,
    exact: bool = False,
    candidates: int | None = None,
    exact_below: int | None = None,
) -> list[Neighbor[Any]]:
    """The asyncio twin of :func:`nearest` (``AsyncSession`` or ``AsyncConnection``).

    Examples:
        >>> hits = await nearest_async(session, Doc, Doc.embedding, query, 5)  # doctest: +SKIP
    """
    return await run_async(session, _search(
        model, spec_or_column, query_vector, k, exact_below, dict(
            where=where, ef_search=ef_search, probes=probes, iterative=iterative,
            max_scan_tuples=max_scan_tuples, max_distance=max_distance, exact=exact,
            candidates=candidates,
        )))
