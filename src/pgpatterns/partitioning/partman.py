"""Hand a partitioned table's maintenance to pg_partman instead of :func:`ensure_partitions`.

Examples:
    >>> use_pg_partman(session, Event, premake=3, retention="12 months")  # doctest: +SKIP
    PartmanConfig(parent_table='public.events', interval='1 month', premake=3, ...)

Warning:
    Needs the pg_partman extension (4.x or 5.x; Debian: ``postgresql-15-partman``) created
    in the database. Its background worker (``pg_partman_bgw`` in
    ``shared_preload_libraries``) or a cron job must call ``run_maintenance`` regularly;
    :func:`run_pg_partman_maintenance` does it once. pg_partman creates and names its own
    partitions (``<table>_p<start>``) and a default partition. pg_partman does not copy
    row-level security or policies to the partitions it makes: :func:`use_pg_partman` and
    :func:`run_pg_partman_maintenance` give every partition the parent's (declared through
    :mod:`pgpatterns.rls`), but partitions its background worker creates lack them until
    the next :func:`run_pg_partman_maintenance` (``check_rls`` reports them): with
    tenant-scoped tables, run maintenance through :func:`run_pg_partman_maintenance`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from pgpatterns.errors import PartmanError
from pgpatterns.partitioning.catalog import conn_of, read_parent
from pgpatterns.partitioning.declare import partition_scheme
from pgpatterns.partitioning.periods import Step
from pgpatterns.partitioning.security import secure_partitions

__all__ = [
    "PartmanConfig",
    "run_pg_partman_maintenance",
    "use_pg_partman",
    "use_pg_partman_async",
]

_EXT = text(
    "SELECT e.extversion AS version, n.nspname AS schema FROM pg_extension e"
    " JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_partman'"
)


@dataclass(frozen=True)
class PartmanConfig:
    """The ``part_config`` row pg_partman keeps for the table."""

    parent_table: str
    interval: str
    premake: int
    retention: str | None
    retention_keep_table: bool
    version: str


def _partman(conn: Connection) -> tuple[str, str, int]:
    row = conn.execute(_EXT).first()
    if row is None:
        raise PartmanError(
            "pg_partman is not installed in this database: install the package (Debian: "
            "postgresql-15-partman), then CREATE SCHEMA partman; CREATE EXTENSION pg_partman "
            "SCHEMA partman. Or keep maintenance in pgpatterns with ensure_partitions()/retain()."
        )
    version, schema = str(row[0]), str(row[1])
    major = int(re.findall(r"\d+", version)[0])
    if major < 4:
        raise PartmanError(f"pg_partman {version} is too old; pgpatterns supports 4.x and 5.x.")
    return version, schema, major


def use_pg_partman(
    session: Session | Connection,
    target: Any,
    *,
    interval: str | int | None = None,
    premake: int = 3,
    retention: str | int | None = None,
    retention_keep_table: bool = False,
    start: Any = None,
) -> PartmanConfig:
    """Register ``target`` (declared with ``partition_by(..., "range", col)``) with pg_partman.

    Examples:
        >>> use_pg_partman(session, Event, retention="12 months")  # doctest: +SKIP

    ``interval`` defaults to the one given to ``partition_by``; ``premake`` is how many
    periods ahead pg_partman keeps ready (like ``ensure_partitions(ahead=)``); ``retention``
    makes its maintenance drop (or, with ``retention_keep_table``, only detach) partitions
    older than that. Runs in the caller's transaction.

    Raises:
        PartmanError: pg_partman missing or too old.
        PartitionBoundsError: bad interval.
    """
    scheme = partition_scheme(target)
    column = scheme.key_column
    step = Step.parse(interval) if interval is not None else scheme.interval
    if step is None:
        raise PartmanError(
            f"{scheme.table.name}: pass interval='1 month' (or set it in partition_by())."
        )
    if isinstance(premake, bool) or not isinstance(premake, int) or premake < 1:
        raise PartmanError(f"premake={premake!r} must be an int >= 1.")
    retention_text = None
    if retention is not None:
        retention_text = Step.parse(retention).text
    conn = conn_of(session)
    version, ext_schema, major = _partman(conn)
    parent = read_parent(conn, scheme)
    qualified = f"{parent.schema}.{scheme.table.name}"  # pg_partman's own text format
    fn = conn.dialect.identifier_preparer.quote_schema(ext_schema)
    params: dict[str, Any] = {
        "parent": qualified,
        "control": column.name,
        "type": "native" if major < 5 else "range",
        "interval": step.text,
        "premake": premake,
        "start": None if start is None else str(start),
    }
    conn.execute(
        text(
            f"SELECT {fn}.create_parent(p_parent_table => :parent, p_control => :control,"
            " p_type => :type, p_interval => :interval, p_premake => :premake,"
            " p_start_partition => :start)"
        ),
        params,
    )
    conn.execute(
        # fn: the extension's schema, quoted by the dialect; every value is a bind parameter
        text(
            f"UPDATE {fn}.part_config SET retention = :retention,"  # noqa: S608
            " retention_keep_table = :keep, infinite_time_partitions = true"
            " WHERE parent_table = :parent"
        ),
        {"retention": retention_text, "keep": retention_keep_table, "parent": qualified},
    )
    secure_partitions(conn, scheme, parent)  # pg_partman does not copy RLS or policies
    return PartmanConfig(
        qualified, step.text, premake, retention_text, retention_keep_table, version
    )


def run_pg_partman_maintenance(session: Session | Connection, target: Any) -> None:
    """Run pg_partman's maintenance for ``target`` once (creates ahead, applies retention).

    Examples:
        >>> run_pg_partman_maintenance(session, Event)  # doctest: +SKIP
    """
    scheme = partition_scheme(target)
    conn = conn_of(session)
    _, ext_schema, _ = _partman(conn)
    parent = read_parent(conn, scheme)
    fn = conn.dialect.identifier_preparer.quote_schema(ext_schema)
    conn.execute(
        text(f"SELECT {fn}.run_maintenance(p_parent_table => :parent)"),
        {"parent": f"{parent.schema}.{scheme.table.name}"},
    )
    secure_partitions(conn, scheme, parent)


async def use_pg_partman_async(session: AsyncSession, target: Any, **kw: Any) -> PartmanConfig:
    """:func:`use_pg_partman` for an ``AsyncSession`` (through ``run_sync``)."""
    result: PartmanConfig = await session.run_sync(lambda s: use_pg_partman(s, target, **kw))
    return result
