"""``doctor``: read a live database's catalogs and name what the patterns would have avoided.

Examples:
    >>> from pgpatterns.doctor import doctor
    >>> with engine.connect() as conn:  # doctest: +SKIP
    ...     assert doctor(conn) == [], "\\n".join(map(str, doctor(conn)))

Every lint is a catalog (or statistics) query; nothing reads table data except one tuple of
each default partition, and plans are taken only with ``plans=True``. Each
:class:`Finding` has an id, a severity, the object, the evidence it was decided from, the
pgpatterns API whose form avoids it and the fix as DDL. ``pgpatterns doctor URL`` prints
the same findings as text, JSON or SARIF (see docs/recipes/doctor.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Session

from pgpatterns.doctor import indexes as _indexes  # noqa: F401 (registers lints)
from pgpatterns.doctor import security as _security  # noqa: F401 (registers lints)
from pgpatterns.doctor import tables as _tables  # noqa: F401 (registers lints)
from pgpatterns.doctor._model import LINTS, SEVERITIES, Context, Finding, Lint
from pgpatterns.errors import ArgumentError

__all__ = [
    "LINTS",
    "SEVERITIES",
    "Finding",
    "Lint",
    "at_least",
    "doctor",
    "doctor_async",
    "load_baseline",
    "user_schemas",
    "without_baseline",
]

_USER_SCHEMAS = text(
    "SELECT n.nspname::text FROM pg_namespace n WHERE n.nspname !~ '^pg_'"
    " AND n.nspname <> 'information_schema' AND NOT EXISTS (SELECT FROM pg_depend e"
    "  WHERE e.classid = 'pg_namespace'::regclass AND e.objid = n.oid AND e.deptype = 'e')"
    " ORDER BY 1"
)

_SHOW_SEARCH_PATH = text("SELECT current_setting('search_path')")
_SET_SEARCH_PATH = text("SELECT set_config('search_path', :path, :local)")


def user_schemas(conn: Connection) -> list[str]:
    """Every schema but PostgreSQL's own and those extensions create."""
    return list(conn.execute(_USER_SCHEMAS).scalars())


def doctor(
    session: Session | Connection,
    *,
    schemas: Sequence[str] | None = None,
    lints: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
    plans: bool = False,
    role: str | None = None,
) -> list[Finding]:
    """Findings for the database ``session`` is connected to, most severe first.

    Examples:
        >>> [(f.id, f.object) for f in doctor(session, schemas=["app"])]  # doctest: +SKIP
        [('rls_not_forced', 'app.docs'), ('unindexed_foreign_key', 'app.lines.lines_doc_fk')]

    Args:
        session: A ``Session`` or ``Connection`` (:func:`doctor_async` for asyncio).
        schemas: The schemas to check (default: every user schema, see
            :func:`user_schemas`). Objects extensions own are never checked.
        lints: Only these lint ids (default: all of :data:`LINTS`).
        exclude: Lint ids to skip.
        plans: Also take plans (``check_rls``'s per-row policy checks, as ``role``).
        role: The role plans are taken as (see :func:`pgpatterns.rls.check_rls`).

    Raises:
        ArgumentError: an unknown lint id, or ``schemas`` is not a list of names; raised
            before any SQL is sent.
    """
    chosen = _chosen(lints, exclude)
    if schemas is not None and (isinstance(schemas, str)
                                or not all(isinstance(s, str) and s for s in schemas)):
        raise ArgumentError(
            f"doctor(): schemas must be a list of schema names, got {schemas!r}; e.g. "
            "schemas=['public']."
        )
    conn = session.connection() if isinstance(session, Session) else session
    if not isinstance(conn, Connection):
        raise ArgumentError(
            f"doctor() takes a Session or Connection, got {type(session).__name__}; use "
            "doctor_async() for AsyncSession/AsyncConnection."
        )
    ctx = Context(conn, list(schemas) if schemas is not None else user_schemas(conn),
                  plans=plans, role=role)
    # Names are printed schema-qualified whatever the caller's search_path (stable
    # fingerprints); the caller's setting is restored afterwards.
    if getattr(conn.connection.dbapi_connection, "autocommit", False):  # no transaction
        saved = conn.execute(_SHOW_SEARCH_PATH).scalar_one()
        conn.execute(_SET_SEARCH_PATH, {"path": "", "local": False})
        try:
            findings = [f for spec in chosen for f in spec.run(ctx)]
        finally:
            conn.execute(_SET_SEARCH_PATH, {"path": saved, "local": False})
    else:
        savepoint = conn.begin_nested()
        try:
            conn.execute(_SET_SEARCH_PATH, {"path": "", "local": True})
            findings = [f for spec in chosen for f in spec.run(ctx)]
        finally:
            savepoint.rollback()
    rank = {s: i for i, s in enumerate(reversed(SEVERITIES))}
    return sorted(findings, key=lambda f: (rank[f.severity], f.id, f.object))


async def doctor_async(session: AsyncSession | AsyncConnection, **kw: Any) -> list[Finding]:
    """The asyncio twin of :func:`doctor` (same keyword arguments).

    Examples:
        >>> findings = await doctor_async(session)  # doctest: +SKIP
    """
    if not isinstance(session, (AsyncSession, AsyncConnection)):
        raise ArgumentError(
            f"doctor_async() takes an AsyncSession or AsyncConnection, got "
            f"{type(session).__name__}; use doctor() for Session/Connection."
        )
    return await session.run_sync(lambda s: doctor(s, **kw))


def _chosen(lints: Iterable[str] | None, exclude: Iterable[str]) -> list[Lint]:
    names = list(LINTS) if lints is None else list(lints)
    skip = set(exclude)
    unknown = sorted((set(names) | skip) - set(LINTS))
    if unknown:
        raise ArgumentError(
            f"doctor(): unknown lint ids {unknown}; the lints are: {', '.join(LINTS)}."
        )
    return [LINTS[n] for n in LINTS if n in names and n not in skip]


def at_least(findings: Iterable[Finding], severity: str) -> list[Finding]:
    """The findings of ``severity`` or worse (what ``--fail-on`` counts).

    Examples:
        >>> at_least([], "warning")
        []
    """
    if severity not in SEVERITIES:
        raise ArgumentError(
            f"severity must be one of {', '.join(SEVERITIES)}, got {severity!r}."
        )
    floor = SEVERITIES.index(severity)
    return [f for f in findings if SEVERITIES.index(f.severity) >= floor]


def load_baseline(path: str | Path) -> set[str]:
    """The fingerprints recorded in a baseline file (a ``--format json`` report).

    Examples:
        >>> load_baseline("doctor-baseline.json")  # doctest: +SKIP
        {'unused_index:public.orders_note_idx'}

    Raises:
        ArgumentError: the file is missing or is not a doctor JSON report.
    """
    try:
        data = json.loads(Path(path).read_text())
        items = data["findings"] if isinstance(data, dict) else data
        return {item["fingerprint"] if isinstance(item, dict) else str(item) for item in items}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ArgumentError(
            f"baseline {path}: {exc}; pass a file written by "
            "`pgpatterns doctor URL --format json > FILE`."
        ) from exc


def without_baseline(findings: Iterable[Finding], baseline: set[str]) -> list[Finding]:
    """``findings`` minus those whose fingerprint the baseline records."""
    return [f for f in findings if f.fingerprint not in baseline]
