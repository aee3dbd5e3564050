"""Measuring vector indexes: recall against exact search, ef_search tuning, build reports."""

from __future__ import annotations

import re
import statistics
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Connection, Index, func, select, text
from sqlalchemy import true as sql_true
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.schema import CreateIndex

from pgpatterns.errors import VectorArgumentError, VectorError, VectorQueryError
from pgpatterns.vector.search import nearest
from pgpatterns.vector.settings import check_k
from pgpatterns.vector.spec import INFO_KEY, VectorSpec, finite_float
from pgpatterns.vector.target import (
    SyncConn,
    Target,
    Where,
    check_session,
    query_list,
    resolve,
    where_clause,
)

__all__ = [
    "EfSearchPoint",
    "EfSearchTuning",
    "IndexBuildReport",
    "VectorSetup",
    "VectorSetupWarning",
    "check_vector_setup",
    "check_vector_setup_async",
    "index_build_report",
    "index_build_report_async",
    "recall_at_k",
    "recall_at_k_async",
    "tune_ef_search",
    "tune_ef_search_async",
]

_MEMORY = re.compile(r"[0-9]{1,12}\s*(?:kB|MB|GB|TB)?")
_FIXED_CVE = (0, 8, 2)  # the parallel HNSW build vulnerability is fixed in pgvector 0.8.2


class VectorSetupWarning(UserWarning):
    """The installed pgvector is missing, old, or has a known security issue."""


def _ids(session: SyncConn, table: Any, spec_or_column: Any, query: Any, k: int,
         **kw: Any) -> tuple[list[Any], float]:
    target = resolve(table, spec_or_column)
    key = target.primary_key().name
    start = time.perf_counter()
    hits = nearest(session, target.table, spec_or_column, query, k, **kw)
    return [hit.item._mapping[key] for hit in hits], time.perf_counter() - start


_SEARCH_OPTIONS = frozenset({
    "ef_search", "probes", "iterative", "max_scan_tuples", "max_distance", "exact",
    "candidates", "exact_below",
})


def _checked(
    session: object, target: Target, queries: object, k: object, where: Where,
    search: dict[str, Any],
) -> list[Any]:
    """Every argument of a measurement checked before its first search (none is sent)."""
    check_session(session)
    check_k("k", k)
    where_clause(where)
    unknown = sorted(set(search) - _SEARCH_OPTIONS)
    if unknown:
        raise VectorArgumentError(
            f"unknown search option(s) {unknown}: pass options of nearest() "
            f"({', '.join(sorted(_SEARCH_OPTIONS))}).", argument=unknown[0], given=search)
    checked = query_list("queries", queries)
    for query in checked:
        target.spec.check_query(query)
    return checked


def _recall(found: Sequence[Any], truth: Sequence[Any]) -> tuple[int, int]:
    return len(set(found) & set(truth)), len(truth)


def recall_at_k(
    session: SyncConn,
    model: Any,
    spec_or_column: Any,
    queries: Iterable[Any],
    k: int,
    *,
    where: Where = None,
    **search: Any,
) -> float:
    """Recall@k of the index: the share of the exact ``k`` nearest that the index returns.

    Examples:
        >>> recall_at_k(session, Doc, Doc.embedding, sample_queries, 10, ef_search=80)  # doctest: +SKIP
        0.973

    Every query runs twice through :func:`pgpatterns.vector.nearest`: with the index (the
    ``search`` keyword arguments: ``ef_search``, ``iterative``, ``candidates`` ...) and with
    ``exact=True``, which no vector index can serve. Queries with no exact result are
    skipped; with none at all the recall is 1.0.
    """  # noqa: E501
    target = resolve(model, spec_or_column)
    table = target.table
    queries = _checked(session, target, queries, k, where, search)
    hit = total = 0
    for query in queries:
        truth, _ = _ids(session, table, spec_or_column, query, k, where=where, exact=True)
        found, _ = _ids(session, table, spec_or_column, query, k, where=where, **search)
        got, size = _recall(found, truth)
        hit, total = hit + got, total + size
    return hit / total if total else 1.0


@dataclass(frozen=True)
class EfSearchPoint:
    """One ef_search value: recall@k and the median query latency in milliseconds."""

    ef_search: int
    recall: float
    median_ms: float


@dataclass(frozen=True)
class EfSearchTuning:
    """The smallest ef_search reaching the target (``None`` if none did) and the curve."""

    ef_search: int | None
    target: float
    points: list[EfSearchPoint] = field(default_factory=list)


def tune_ef_search(
    session: SyncConn,
    model: Any,
    spec_or_column: Any,
    queries: Sequence[Any],
    k: int,
    *,
    target: float = 0.95,
    values: Sequence[int] = (10, 20, 40, 80, 160, 320, 640, 1000),
    where: Where = None,
    **search: Any,
) -> EfSearchTuning:
    """Sweep ``hnsw.ef_search`` upwards until recall@k reaches ``target``.

    Examples:
        >>> tuning = tune_ef_search(session, Doc, Doc.embedding, sample, 10, target=0.95)  # doctest: +SKIP
        >>> tuning.ef_search, [(p.ef_search, p.recall) for p in tuning.points]  # doctest: +SKIP
        (40, [(10, 0.81), (20, 0.9), (40, 0.96)])

    The exact results are computed once; values below ``k`` are skipped (they cannot return
    ``k`` rows). Use a sample of real queries, with the filters production uses.
    """  # noqa: E501
    if not 0 < finite_float("target", target) <= 1:
        raise VectorQueryError(f"target recall must be in (0, 1], got {target!r}.")
    check_k("k", k)
    resolved = resolve(model, spec_or_column)
    table = resolved.table
    queries = _checked(session, resolved, queries, k, where, search)
    values = [check_k("values[]", v) for v in query_list("values", values)]
    truths = [
        _ids(session, table, spec_or_column, q, k, where=where, exact=True)[0] for q in queries
    ]
    points: list[EfSearchPoint] = []
    for ef in sorted(v for v in values if v >= k):
        hit = total = 0
        times: list[float] = []
        for query, truth in zip(queries, truths, strict=True):
            found, seconds = _ids(
                session, table, spec_or_column, query, k, where=where, ef_search=ef, **search
            )
            got, size = _recall(found, truth)
            hit, total, times = hit + got, total + size, [*times, seconds]
        recall = hit / total if total else 1.0
        points.append(EfSearchPoint(ef, recall, statistics.median(times) * 1000 if times else 0))
        if recall >= target:
            return EfSearchTuning(ef, target, points)
    return EfSearchTuning(None, target, points)


@dataclass(frozen=True)
class IndexBuildReport:
    """What building a vector index cost and whether it fit in ``maintenance_work_mem``."""

    name: str
    seconds: float
    size_bytes: int
    rows: int
    estimated_bytes: int
    maintenance_work_mem_bytes: int
    overflowed: bool
    notices: tuple[str, ...]

    @property
    def advice(self) -> str:
        """A one-line ``maintenance_work_mem`` recommendation."""
        need_mb = -(-max(self.estimated_bytes, self.size_bytes) * 5 // 4 // 2**20)
        if self.overflowed or need_mb * 2**20 > self.maintenance_work_mem_bytes:
            return (
                f"the graph needs about {need_mb} MB but maintenance_work_mem is "
                f"{self.maintenance_work_mem_bytes // 2**20} MB: set it to {need_mb}MB for the "
                "build (set_config('maintenance_work_mem', ..., true)), or builds slow down "
                "several times."
            )
        return f"fits: about {need_mb} MB needed, maintenance_work_mem is enough."


def _spec_of(index: Index) -> VectorSpec:
    spec = index.info.get(INFO_KEY)
    if isinstance(spec, VectorSpec):
        return spec
    raise VectorError(
        f"index {index.name!r} was not declared by a VectorSpec: build it with "
        "spec.index_on(column) so the report knows its type and parameters."
    )


def _estimate(spec: VectorSpec, rows: int) -> int:
    # pgvector keeps the whole graph in memory while building: per element the value, 2*m
    # level-0 neighbour slots (plus ~1/ln(m) of that on upper levels) and ~100 bytes of
    # bookkeeping. An estimate, to compare with maintenance_work_mem — not an exact figure.
    value = {"vector": 4 * spec.dim, "halfvec": 2 * spec.dim, "bit": spec.dim // 8,
             "sparsevec": 8 * spec.dim}[spec.index_storage] + 8
    if spec.index == "ivfflat":
        return spec.lists * value
    return rows * (value + int(2 * spec.m * 10 * 1.4) + 100)


def index_build_report(
    session: Session | Connection,
    index: Index,
    *,
    maintenance_work_mem: str | None = None,
) -> IndexBuildReport:
    """Build ``index`` (``CREATE INDEX``) in the caller's transaction and report on it.

    Examples:
        >>> report = index_build_report(session, spec.index_on(Doc.embedding))  # doctest: +SKIP
        >>> report.overflowed, report.advice  # doctest: +SKIP
        (False, 'fits: about 230 MB needed, maintenance_work_mem is enough.')

    Args:
        session: ``Session`` or ``Connection`` (psycopg 3); the transaction is not committed.
        index: An index from :meth:`VectorSpec.index` whose table exists and holds the data.
        maintenance_work_mem: Set for this build only (``"512MB"``), transaction-locally.

    Whether the build overflowed memory is read from pgvector's NOTICE ("hnsw graph no
    longer fits into maintenance_work_mem"), captured with a psycopg notice handler.
    """
    check_session(session)
    spec = _spec_of(index)
    if maintenance_work_mem is not None and (
        not isinstance(maintenance_work_mem, str)
        or not _MEMORY.fullmatch(maintenance_work_mem.strip())
    ):
        raise VectorArgumentError(
            f"maintenance_work_mem={maintenance_work_mem!r:.80} is not accepted: pass a size "
            "such as '512MB' or '2GB'.", argument="maintenance_work_mem",
            given=maintenance_work_mem)
    conn = session.connection() if isinstance(session, Session) else session
    if maintenance_work_mem is not None:
        conn.execute(select(func.set_config("maintenance_work_mem", maintenance_work_mem,
                                            sql_true())))
    assert index.table is not None
    rows = int(conn.execute(select(func.count()).select_from(index.table)).scalar_one())
    mwm = int(conn.execute(select(func.pg_size_bytes(func.current_setting(
        "maintenance_work_mem")))).scalar_one())
    raw = cast(Any, conn.connection.driver_connection)
    notices: list[str] = []

    def handler(diag: Any) -> None:
        notices.append(" ".join(p for p in (diag.message_primary, diag.message_detail) if p))

    raw.add_notice_handler(handler)
    try:
        start = time.perf_counter()
        conn.execute(CreateIndex(index))
        seconds = time.perf_counter() - start
    finally:
        raw.remove_notice_handler(handler)
    preparer = conn.dialect.identifier_preparer
    schema = index.table.schema
    qualified = (preparer.quote_schema(schema) + "." if schema else "") + preparer.quote(
        str(index.name))
    size = int(conn.execute(select(func.pg_relation_size(func.to_regclass(qualified))))
               .scalar_one())
    return IndexBuildReport(
        str(index.name), seconds, size, rows, _estimate(spec, rows), mwm,
        any("no longer fits into maintenance_work_mem" in n for n in notices), tuple(notices),
    )


@dataclass(frozen=True)
class VectorSetup:
    """The pgvector installed in the database and what it means for this library."""

    version: str | None
    iterative_scans: bool
    problems: tuple[str, ...]


def _version(text_version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text_version.split(".") if part.isdigit())


def check_vector_setup(session: SyncConn) -> VectorSetup:
    """Check the pgvector version; warn (:class:`VectorSetupWarning`), never raise.

    Examples:
        >>> check_vector_setup(session)  # doctest: +SKIP
        VectorSetup(version='0.8.6', iterative_scans=True, problems=())

    Below 0.8.2 it warns about the parallel HNSW build vulnerability fixed there; below
    0.8.0 that iterative scans (filtered searches returning ``k`` rows) are missing.
    """
    check_session(session)
    stmt = text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
    version = session.execute(stmt).scalar_one_or_none()
    problems: list[str] = []
    if version is None:
        problems.append("pgvector is not installed in this database: CREATE EXTENSION vector.")
    else:
        parsed = _version(version)
        if parsed < (0, 8, 0):
            problems.append(
                f"pgvector {version} has no iterative index scans: filtered HNSW searches "
                "can return fewer than k rows. Upgrade to 0.8.2 or later."
            )
        if parsed < _FIXED_CVE:
            problems.append(
                f"pgvector {version} is older than 0.8.2, which fixes a security issue in "
                "parallel HNSW index builds: upgrade, or build HNSW indexes with "
                "max_parallel_maintenance_workers = 0 until then."
            )
    for problem in problems:
        warnings.warn(problem, VectorSetupWarning, stacklevel=2)
    return VectorSetup(
        version, version is not None and _version(version) >= (0, 8, 0), tuple(problems)
    )


async def _run_sync(session: AsyncSession | AsyncConnection, fn: Any, *args: Any,
                    **kw: Any) -> Any:
    # Measurement loops many queries in one transaction; run_sync reuses the sync code
    # path exactly (the async driver still does the I/O) instead of duplicating it.
    check_session(session, asyncio=True)
    return await session.run_sync(lambda sync: fn(sync, *args, **kw))


async def recall_at_k_async(session: AsyncSession | AsyncConnection, *args: Any,
                            **kw: Any) -> float:
    """Asyncio twin of :func:`recall_at_k` (same arguments).

    Examples:
        >>> await recall_at_k_async(session, Doc, Doc.embedding, sample, 10)  # doctest: +SKIP
    """
    return cast(float, await _run_sync(session, recall_at_k, *args, **kw))


async def tune_ef_search_async(session: AsyncSession | AsyncConnection, *args: Any,
                               **kw: Any) -> EfSearchTuning:
    """Asyncio twin of :func:`tune_ef_search` (same arguments).

    Examples:
        >>> await tune_ef_search_async(session, Doc, Doc.embedding, sample, 10)  # doctest: +SKIP
    """
    return cast(EfSearchTuning, await _run_sync(session, tune_ef_search, *args, **kw))


async def index_build_report_async(session: AsyncSession | AsyncConnection, index: Index,
                                   **kw: Any) -> IndexBuildReport:
    """Asyncio twin of :func:`index_build_report` (same arguments).

    Examples:
        >>> await index_build_report_async(session, spec.index_on(Doc.embedding))  # doctest: +SKIP
    """
    return cast(IndexBuildReport, await _run_sync(session, index_build_report, index, **kw))


async def check_vector_setup_async(session: AsyncSession | AsyncConnection) -> VectorSetup:
    """Asyncio twin of :func:`check_vector_setup`.

    Examples:
        >>> (await check_vector_setup_async(session)).version  # doctest: +SKIP
        '0.8.6'
    """
    return cast(VectorSetup, await _run_sync(session, check_vector_setup))
