"""Nearest-neighbour search: statement builder, search settings, sync and async actions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeAlias, TypeVar

from sqlalchemy import Column, Select, Table, and_, func, inspect, literal, literal_column, select
from sqlalchemy import true as sql_true
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import ColumnElement

from pgpatterns.errors import VectorError, VectorQueryError
from pgpatterns.vector.spec import INFO_KEY, VectorSpec, finite_float

__all__ = [
    "Iterative",
    "Neighbor",
    "nearest",
    "nearest_async",
    "nearest_stmt",
    "search_settings",
]

T = TypeVar("T")
Iterative: TypeAlias = Literal["auto", "strict", "relaxed", "off"]
Where: TypeAlias = ColumnElement[bool] | Sequence[ColumnElement[bool]] | None
SyncConn: TypeAlias = Session | Connection
AsyncConn: TypeAlias = AsyncSession | AsyncConnection

_MAX_EF_SEARCH = 1000


@dataclass(frozen=True)
class Neighbor(Generic[T]):
    """One search result: the row (a mapped instance, or a Core ``Row``) and its distance."""

    item: T
    distance: float


@dataclass(frozen=True)
class Target:
    """What a search runs against: the selectable, its vector column and spec."""

    table: Table
    column: Column[Any]
    spec: VectorSpec
    entity: Any  # the mapped class, or None for a Core Table

    def primary_key(self) -> Column[Any]:
        keys = list(self.table.primary_key.columns)
        if len(keys) != 1:
            raise VectorError(
                f"table {self.table.name} needs a single-column primary key for this search "
                f"(it has {len(keys)}): results are matched by key. Add one."
            )
        return keys[0]


def resolve(model: Any, spec_or_column: Any) -> Target:
    """Find the table, vector column and spec from ``(Model, spec or column)``."""
    if isinstance(model, Table):
        table, entity = model, None
    else:
        mapper = inspect(model, raiseerr=False)
        local = getattr(mapper, "local_table", None)
        if not isinstance(local, Table):
            raise VectorError(
                f"vector search needs a mapped class or a Table, got {model!r}."
            )
        table, entity = local, model
    if isinstance(spec_or_column, VectorSpec):
        spec = spec_or_column
        tagged = [c for c in table.columns if c.info.get(INFO_KEY) == spec]
        if not tagged:
            wanted = type(spec.column_type)
            tagged = [
                c for c in table.columns
                if isinstance(c.type, wanted) and getattr(c.type, "dim", None) == spec.dim
            ]
        if len(tagged) != 1:
            raise VectorError(
                f"cannot tell which column of {table.name} {spec!r} describes ({len(tagged)} "
                "candidates): pass the column (Doc.embedding) instead, declared with "
                "spec.mapped_column()."
            )
        return Target(table, tagged[0], spec, entity)
    column = getattr(spec_or_column, "expression", spec_or_column)
    if not isinstance(column, Column) or column.table is not table:
        raise VectorError(
            f"{spec_or_column!r} is not a column of {table.name}: pass one of its vector "
            "columns (Doc.embedding) or the VectorSpec it was declared with."
        )
    found = column.info.get(INFO_KEY)
    if not isinstance(found, VectorSpec):
        raise VectorError(
            f"column {table.name}.{column.name} was not declared with a VectorSpec, so its "
            "metric and index are unknown: declare it with spec.mapped_column() / "
            "spec.column(), or pass the VectorSpec instead of the column."
        )
    return Target(table, column, found, entity)


def _where_clause(where: Where) -> ColumnElement[bool] | None:
    if where is None:
        return None
    if isinstance(where, ColumnElement):
        return where
    return and_(sql_true(), *where)


def check_k(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise VectorQueryError(
            f"{name} must be a positive int, got {value!r}: a search returns {name} rows."
        )
    return value


def effective_iterative(spec: VectorSpec, iterative: Iterative, filtered: bool) -> str:
    """``off``/``strict``/``relaxed`` after resolving ``auto`` and checking the index."""
    if iterative not in ("auto", "strict", "relaxed", "off"):
        raise VectorQueryError(
            f"iterative={iterative!r}: use 'auto', 'strict', 'relaxed' or 'off'."
        )
    if spec.index is None:
        return "off"
    if iterative == "auto":
        return "relaxed" if filtered else "off"
    if iterative == "strict" and spec.index == "ivfflat":
        raise VectorQueryError(
            "iterative='strict' needs an hnsw index: ivfflat scans only support relaxed "
            "order. Use iterative='relaxed' (results are re-sorted) or 'auto'."
        )
    return iterative


def pool_size(spec: VectorSpec, k: int, candidates: int | None) -> int:
    """How many rows the index returns before re-ranking (``k`` when nothing is re-ranked)."""
    if candidates is not None:
        check_k("candidates", candidates)
        if spec.quantize is None:
            raise VectorQueryError(
                "candidates= is the re-ranking pool of a quantized spec, but this spec has "
                "quantize=None: its distances are already exact. Drop candidates."
            )
        if candidates < k:
            raise VectorQueryError(f"candidates={candidates} is smaller than k={k}: use >= k.")
        return candidates
    return max(4 * k, 40) if spec.quantize is not None else k


def search_settings(
    spec: VectorSpec,
    k: int,
    *,
    filtered: bool = False,
    ef_search: int | None = None,
    probes: int | None = None,
    iterative: Iterative = "auto",
    max_scan_tuples: int | None = None,
    exact: bool = False,
    candidates: int | None = None,
) -> dict[str, str]:
    """The transaction-local settings :func:`nearest` applies, validated.

    Examples:
        >>> search_settings(VectorSpec(3), 10, filtered=True, ef_search=80)
        {'plan_cache_mode': 'force_custom_plan', 'hnsw.iterative_scan': 'relaxed_order', 'hnsw.ef_search': '80'}

    Empty for an unfiltered, untuned search (no round trip). With a filter,
    ``plan_cache_mode`` is forced to custom plans: after five executions psycopg prepares a
    statement, and a generic plan (estimated without the filter's values) may abandon the
    vector index. See :func:`nearest` for the arguments.
    """  # noqa: E501
    check_k("k", k)
    pool = pool_size(spec, k, candidates)
    mode = effective_iterative(spec, iterative, filtered)
    settings: dict[str, str] = {}
    if filtered:
        # A generic plan is estimated without the filter's values: it may pick the wrong
        # index (or none) once psycopg has prepared the statement. Plan each call instead.
        settings["plan_cache_mode"] = "force_custom_plan"
    # Unfiltered and untuned, nothing is set: one round trip, and LIMIT k is a literal, so
    # even a generic plan keeps the index.
    explicit = filtered or iterative != "auto"
    if exact or spec.index is None:
        for name, value in (("ef_search", ef_search), ("probes", probes)):
            if value is not None:
                raise VectorQueryError(f"{name} tunes an index scan; drop it with exact=True.")
        return settings
    if spec.index == "hnsw":
        if probes is not None:
            raise VectorQueryError("probes is an ivfflat setting; this spec's index is hnsw.")
        if explicit:
            settings["hnsw.iterative_scan"] = {"off": "off"}.get(mode, f"{mode}_order")
        if ef_search is not None:
            check_k("ef_search", ef_search)
            if ef_search < pool or ef_search > _MAX_EF_SEARCH:
                what = f"k={k}" if pool == k else f"the re-ranking pool ({pool})"
                raise VectorQueryError(
                    f"ef_search={ef_search} must be between {what} and {_MAX_EF_SEARCH}: an "
                    "HNSW scan returns at most ef_search rows (without iterative scans), so "
                    f"fewer than {pool} would come back. Raise ef_search."
                )
            settings["hnsw.ef_search"] = str(ef_search)
        elif pool > 40:
            settings["hnsw.ef_search"] = str(min(pool, _MAX_EF_SEARCH))
        if max_scan_tuples is not None:
            settings["hnsw.max_scan_tuples"] = str(check_k("max_scan_tuples", max_scan_tuples))
    else:
        if ef_search is not None or max_scan_tuples is not None:
            raise VectorQueryError(
                "ef_search and max_scan_tuples are hnsw settings; this spec's index is "
                "ivfflat: use probes= (and iterative=) instead."
            )
        if explicit:
            settings["ivfflat.iterative_scan"] = "relaxed_order" if mode != "off" else "off"
        if probes is not None:
            if check_k("probes", probes) > spec.lists:
                raise VectorQueryError(
                    f"probes={probes} exceeds lists={spec.lists}: at most every list is probed."
                )
            settings["ivfflat.probes"] = str(probes)
    return settings


def _settings_stmt(settings: Mapping[str, str]) -> Select[Any] | None:
    # set_config(name, value, is_local => true): bind parameters, reverted at transaction end.
    if not settings:
        return None
    return select(*(func.set_config(name, value, sql_true()) for name, value in settings.items()))


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
    spec, column = target.spec, target.column
    check_k("k", k)
    pool = k if exact else pool_size(spec, k, candidates)
    clause = _where_clause(where)
    mode = effective_iterative(spec, iterative, clause is not None or max_distance is not None)
    query = spec.query_param(query_vector)
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
        outer = outer.where(dist <= finite_float("max_distance", max_distance))
    # "+ 0": PostgreSQL 17+ knows the CTE's rows come out of an index scan ordered by this
    # distance and would skip the sort, but a relaxed (or re-ranked) scan is not ordered.
    return outer.order_by(dist + literal_column("0")).limit(literal(k, literal_execute=True))


def _prepare(
    model: Any, spec_or_column: Any, query_vector: Any, k: int, kw: dict[str, Any]
) -> tuple[Select[Any] | None, Select[Any], bool]:
    target = resolve(model, spec_or_column)
    settings = search_settings(
        target.spec, k,
        filtered=kw["where"] is not None or kw["max_distance"] is not None,
        ef_search=kw.pop("ef_search"), probes=kw.pop("probes"),
        iterative=kw["iterative"], max_scan_tuples=kw.pop("max_scan_tuples"),
        exact=kw["exact"], candidates=kw["candidates"],
    )
    stmt = nearest_stmt(model, spec_or_column, query_vector, k, **kw)
    return _settings_stmt(settings), stmt, target.entity is not None


def _neighbors(rows: Sequence[Any], orm: bool) -> list[Neighbor[Any]]:
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
        candidates: Re-ranking pool for a quantized spec (default ``max(4*k, 40)``).

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
    settings, stmt, orm = _prepare(model, spec_or_column, query_vector, k, dict(
        where=where, ef_search=ef_search, probes=probes, iterative=iterative,
        max_scan_tuples=max_scan_tuples, max_distance=max_distance, exact=exact,
        candidates=candidates,
    ))
    if settings is not None:
        session.execute(settings)
    return _neighbors(session.execute(stmt).all(), orm)


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
) -> list[Neighbor[Any]]:
    """The asyncio twin of :func:`nearest` (``AsyncSession`` or ``AsyncConnection``).

    Examples:
        >>> hits = await nearest_async(session, Doc, Doc.embedding, query, 5)  # doctest: +SKIP
    """
    settings, stmt, orm = _prepare(model, spec_or_column, query_vector, k, dict(
        where=where, ef_search=ef_search, probes=probes, iterative=iterative,
        max_scan_tuples=max_scan_tuples, max_distance=max_distance, exact=exact,
        candidates=candidates,
    ))
    if settings is not None:
        await session.execute(settings)
    return _neighbors((await session.execute(stmt)).all(), orm)
