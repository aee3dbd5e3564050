"""Schedule a materialized view's refresh with pg_cron, inside PostgreSQL.

Examples:
    >>> job_id = schedule_refresh(session, shop_totals, "*/5 * * * *")  # doctest: +SKIP
    >>> session.commit()  # doctest: +SKIP

Warning:
    Needs the pg_cron extension (1.4+ to target another database), which must be in
    ``shared_preload_libraries`` and can only be created in one database per cluster
    (``cron.database_name``, default ``postgres``). Managed services (RDS, Cloud SQL, Azure,
    Supabase) ship it; on Debian install ``postgresql-15-cron``. Without it, call
    :func:`~pgpatterns.views.refresh` from your own scheduler.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from pgpatterns.ddl.base import pg_dialect, regname
from pgpatterns.errors import ViewScheduleError
from pgpatterns.views.declare import check_session
from pgpatterns.views.refresh import RefreshMaterializedView, refresh_stmt

__all__ = [
    "schedule_refresh",
    "schedule_refresh_async",
    "unschedule_refresh",
    "unschedule_refresh_async",
]

_FIELD = r"[0-9A-Za-z*,/\-$]+"
_CRON = re.compile(
    rf"^(@(yearly|annually|monthly|weekly|daily|hourly)|[1-5]?[0-9] seconds|"
    rf"{_FIELD}( +{_FIELD}){{4}})$"
)
_ENV = text(
    "SELECT (SELECT extversion FROM pg_extension WHERE extname = 'pg_cron') AS version,"
    " current_database() AS here, current_setting('cron.database_name', true) AS cron_db,"
    " current_setting('shared_preload_libraries') AS preload,"
    " EXISTS (SELECT FROM pg_available_extensions WHERE name = 'pg_cron') AS available"
)
_SCHEMA_OF = text(
    "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE c.oid = to_regclass(:n)"
)


def _conn(session: Session | Connection) -> Connection:
    return session.connection() if isinstance(session, Session) else session


def _check_cron(cron: str) -> None:
    if not isinstance(cron, str) or not _CRON.match(cron.strip()):
        raise ViewScheduleError(
            f"schedule {cron!r} is not a pg_cron schedule: use five cron fields such as "
            "'*/5 * * * *' (every 5 minutes), '@hourly'/'@daily', or 'N seconds' (pg_cron 1.5+)."
        )


def _require_cron(conn: Connection, database: str | None) -> tuple[str, str]:
    env = conn.execute(_ENV).mappings().one()
    if env["version"] is None:
        if env["cron_db"] and env["cron_db"] != env["here"]:
            how = (
                f"pg_cron lives in database {env['cron_db']!r} (cron.database_name), not in "
                f"{env['here']!r}; connect this session to {env['cron_db']!r} and pass "
                f"database={env['here']!r} so the job runs here."
            )
        elif env["available"] and "pg_cron" in (env["preload"] or ""):
            how = "it is installed and preloaded: run CREATE EXTENSION pg_cron (as a superuser)."
        elif env["available"]:
            how = (
                "it is installed but not preloaded: add pg_cron to shared_preload_libraries, "
                "restart PostgreSQL, then CREATE EXTENSION pg_cron."
            )
        else:
            how = (
                "the server does not have it (Debian: apt install postgresql-15-cron; managed "
                "services: enable the pg_cron extension). Or call refresh() from your own "
                "scheduler instead."
            )
        raise ViewScheduleError(f"cannot schedule a refresh: pg_cron is not available; {how}")
    target = database or env["here"]
    if target != env["here"] and _version(env["version"]) < (1, 4):
        raise ViewScheduleError(
            f"pg_cron {env['version']} cannot run jobs in another database "
            "(cron.schedule_in_database needs 1.4+); upgrade pg_cron."
        )
    return str(env["here"]), str(target)


def refresh_command(stmt: RefreshMaterializedView, schema: str) -> str:
    """The ``REFRESH`` text pg_cron stores and runs: schema-qualified, and quoted for the
    server itself (no driver ``%`` escaping: pg_cron runs it as it is)."""
    element = RefreshMaterializedView(stmt.mv, concurrently=stmt.concurrently, schema=schema)
    return str(element.compile(dialect=pg_dialect()))


def _version(raw: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", raw)[:2])


def schedule_refresh(
    session: Session | Connection,
    mv: Any,
    cron: str,
    *,
    concurrently: bool = True,
    job_name: str | None = None,
    database: str | None = None,
) -> int:
    """Create (or update, by job name) a pg_cron job that refreshes ``mv``; return its id.

    Examples:
        >>> schedule_refresh(session, shop_totals, "*/5 * * * *")  # doctest: +SKIP
        3

    The command is the same ``REFRESH`` that :func:`~pgpatterns.views.refresh` runs,
    schema-qualified (pg_cron does not use your search_path). ``database`` runs the job in
    another database than the session's (the session must then be connected to the
    database where pg_cron is installed, and ``mv`` must name its schema). The job is
    written in the caller's transaction: commit to keep it.

    Raises:
        ViewScheduleError: pg_cron is missing (says why and what to do), or ``cron`` is not
            a schedule pg_cron understands.
        ViewRefreshError: ``concurrently=True`` without a unique key.
    """
    stmt = refresh_stmt(mv, concurrently=concurrently)
    _check_cron(cron)
    for what, value in (("job_name", job_name), ("database", database)):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ViewScheduleError(
                f"schedule_refresh(): {what} must be a non-empty string or None, got {value!r}."
            )
    check_session("schedule_refresh()", session)
    conn = _conn(session)
    here, target = _require_cron(conn, database)
    schema = stmt.mv.schema
    if schema is None:
        if target != here:
            raise ViewScheduleError(
                f"{stmt.mv.describe()} has no schema and runs in database {target!r}, where "
                "this session cannot look it up; declare it with schema='...'."
            )
        schema = conn.execute(_SCHEMA_OF, {"n": regname(stmt.mv.name, None)}).scalar()
        if schema is None:
            raise ViewScheduleError(
                f"{stmt.mv.describe()} does not exist in this database; create it first."
            )
    command = refresh_command(stmt, schema)
    name = job_name or f"refresh {schema}.{stmt.mv.name}"
    params = {"job": name, "schedule": cron.strip(), "command": command, "db": target}
    if target == here:
        sql = "SELECT cron.schedule(:job, :schedule, :command)"
    else:
        sql = "SELECT cron.schedule_in_database(:job, :schedule, :command, :db)"
    job_id = conn.execute(text(sql), params).scalar()
    return int(job_id)  # type: ignore[arg-type]


def unschedule_refresh(
    session: Session | Connection, mv: Any = None, *, job_name: str | None = None
) -> bool:
    """Remove the refresh job of ``mv`` (or ``job_name``); ``False`` when there was none.

    Examples:
        >>> unschedule_refresh(session, job_name="refresh public.shop_totals")  # doctest: +SKIP
        True
    """
    if job_name is not None and (not isinstance(job_name, str) or not job_name.strip()):
        raise ViewScheduleError(
            f"unschedule_refresh(): job_name must be a non-empty string, got {job_name!r}."
        )
    if job_name is None and mv is None:
        raise ViewScheduleError("unschedule_refresh(): pass the materialized view or job_name.")
    check_session("unschedule_refresh()", session)
    conn = _conn(session)
    _require_cron(conn, None)
    if job_name is None:
        if mv is None:
            raise ViewScheduleError("unschedule_refresh(): pass the materialized view or job_name.")
        stmt = refresh_stmt(mv, concurrently=False)
        schema = stmt.mv.schema or conn.execute(
            _SCHEMA_OF, {"n": regname(stmt.mv.name, None)}
        ).scalar()
        job_name = f"refresh {schema}.{stmt.mv.name}"
    removed = conn.execute(
        text(
            "SELECT count(cron.unschedule(jobid)) FROM cron.job"
            " WHERE jobname = :job AND username = current_user"
        ),
        {"job": job_name},
    ).scalar()
    return bool(removed)


async def schedule_refresh_async(session: AsyncSession, mv: Any, cron: str, **kw: Any) -> int:
    """:func:`schedule_refresh` for an ``AsyncSession`` (through ``run_sync``: a few
    dependent catalog reads before one write)."""
    result: int = await session.run_sync(lambda s: schedule_refresh(s, mv, cron, **kw))
    return result


async def unschedule_refresh_async(session: AsyncSession, mv: Any = None, **kw: Any) -> bool:
    """:func:`unschedule_refresh` for an ``AsyncSession``."""
    result: bool = await session.run_sync(lambda s: unschedule_refresh(s, mv, **kw))
    return result
