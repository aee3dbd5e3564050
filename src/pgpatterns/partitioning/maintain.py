"""Partition maintenance: create upcoming partitions, retire old ones, check the default.

Examples:
    >>> ensure_partitions(session, Event, ahead=3)  # doctest: +SKIP
    ['events_p2026_05', 'events_p2026_06', 'events_p2026_07', 'events_p2026_08']
    >>> retain(session, Event, keep="12 months", mode="drop")  # doctest: +SKIP
    ['events_p2025_04']
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Connection, MetaData, Table, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from pgpatterns.ddl import MAXVALUE, MINVALUE, Partition, RowLevelSecurity, SchemaObject
from pgpatterns.errors import (
    DefaultPartitionConflictError,
    PartitionBoundsError,
    PartitionError,
    PartitionRetentionError,
)
from pgpatterns.partitioning._apply import (
    autocommit,
    create_partition,
    detach_partition,
    locked,
)
from pgpatterns.partitioning._checks import check_ahead, check_now, window
from pgpatterns.partitioning.bounds import bound_key, show
from pgpatterns.partitioning.catalog import (
    ExistingPartition,
    Parent,
    conn_of,
    read_parent,
    read_partitions,
)
from pgpatterns.partitioning.declare import (
    PartitionScheme,
    coerce,
    partition_scheme,
    python_type,
)
from pgpatterns.partitioning.periods import Step, zone

__all__ = [
    "BlockedRange",
    "check_default_partition",
    "check_default_partition_async",
    "ensure_partitions",
    "ensure_partitions_async",
    "retain",
    "retain_async",
]

@dataclass(frozen=True)
class BlockedRange:
    """Rows of the default partition inside ``[low, high)``, where a partition is wanted."""

    default_partition: str
    low: Any
    high: Any
    rows: int


def _step(scheme: PartitionScheme, interval: str | int | None) -> Step:
    if interval is not None:
        step = Step.parse(interval)
        step.check_key(python_type(scheme.key_column), scheme.key[0])
        return step
    if scheme.interval is None:
        raise PartitionBoundsError(
            f"{scheme.table.name}: no interval; pass interval='1 month' here or to "
            "partition_by(), so new partitions have a known width."
        )
    return scheme.interval


def _now(conn: Connection | None, scheme: PartitionScheme, now: Any) -> Any:
    kind = python_type(scheme.key_column)
    if now is not None:
        return now
    if kind is not None and issubclass(kind, int):
        assert conn is not None  # integer keys: "now" is the largest key in the table
        top = conn.execute(select(func.max(scheme.key_column))).scalar()
        return top or 0
    current = dt.datetime.now(dt.timezone.utc).astimezone(zone(scheme.timezone))
    if kind is dt.date:
        return current.date()
    if not getattr(scheme.key_column.type, "timezone", False):
        return current.replace(tzinfo=None)
    return current


def _uncovered(
    window: tuple[Any, Any], parts: list[ExistingPartition]
) -> list[tuple[Any, Any]]:
    pieces = [window]
    for part in parts:
        if part.low is None or part.high is None:
            continue
        lo, hi = bound_key(part.low, True), bound_key(part.high, False)
        nxt = []
        for a, b in pieces:
            ka, kb = bound_key(a, True), bound_key(b, False)
            if hi <= ka or lo >= kb:
                nxt.append((a, b))
                continue
            if ka < lo:
                nxt.append((a, part.low))
            if hi < kb:
                nxt.append((part.high, b))
        pieces = nxt
    return pieces


def _precheck(scheme: PartitionScheme, step: Step, ahead: int, now: Any) -> None:
    """The window's bounds exist, checked before any SQL when ``now`` needs no query."""
    kind = python_type(scheme.key_column)
    if now is not None or kind is None or not issubclass(kind, int):
        window(scheme, step, ahead, _now(None, scheme, now))


def _wanted(
    conn: Connection, scheme: PartitionScheme, parts: list[ExistingPartition], step: Step,
    ahead: int, now: Any,
) -> list[tuple[Any, Any]]:
    out: list[tuple[Any, Any]] = []
    for period in window(scheme, step, ahead, _now(conn, scheme, now)):
        out += _uncovered(period, parts)
    return out


def _blocked(
    conn: Connection, scheme: PartitionScheme, parts: list[ExistingPartition],
    ranges: list[tuple[Any, Any]],
) -> list[BlockedRange]:
    default = next((p for p in parts if p.is_default), None)
    if default is None or not ranges:
        return []
    key = scheme.key_column
    table = Table(default.name, MetaData(), Column(key.name, key.type), schema=default.schema)
    col = table.c[key.name]
    counts = [
        select(func.count()).select_from(table).where(col >= low, col < high).scalar_subquery()
        for low, high in ranges
    ]
    found = conn.execute(select(*counts)).one()
    return [
        BlockedRange(default.name, low, high, int(n))
        for (low, high), n in zip(ranges, found, strict=True)
        if n
    ]


def check_default_partition(
    session: Session | Connection, target: Any, *, ahead: int = 3,
    interval: str | int | None = None, now: Any = None,
) -> list[BlockedRange]:
    """Rows in the default partition that would block :func:`ensure_partitions`.

    Examples:
        >>> check_default_partition(session, Event)  # doctest: +SKIP
        [BlockedRange(default_partition='events_default', low=..., high=..., rows=42)]

    PostgreSQL refuses to create a partition while the default partition holds rows that
    belong to it. Move them first: in one transaction, detach the default partition,
    create the new partition, ``INSERT ... SELECT`` the rows from the detached table into
    the parent, delete them from it, and attach it again.
    """
    scheme = partition_scheme(target)
    ahead = check_ahead(ahead, "check_default_partition")
    now = check_now(scheme, now, "check_default_partition")
    step = _step(scheme, interval)
    _precheck(scheme, step, ahead, now)
    conn = conn_of(session)
    parent = read_parent(conn, scheme)
    parts = read_partitions(conn, scheme, parent)
    ranges = _wanted(conn, scheme, parts, step, ahead, now)
    return _blocked(conn, scheme, parts, ranges)


def _name(scheme: PartitionScheme, step: Step, low: Any, taken: set[str]) -> str:
    name = scheme.partition_name(f"p{step.label(low)}")
    if name in taken:
        iso = show(low).replace("-", "_").replace(":", "").replace("+", "_").replace(" ", "_")
        name = scheme.partition_name(f"p{iso.replace('T', '_').replace('.', '_')}")
    if name in taken:
        raise PartitionError(
            f"{scheme.table.name}: partition name {name} is taken by a partition with other "
            "bounds; rename that partition."
        )
    return name


def _rls_for(scheme: PartitionScheme, parent: Parent, part: Partition) -> list[SchemaObject]:
    from pgpatterns.partitioning.security import parent_rls_for
    from pgpatterns.rls import rls_objects

    if rls_objects(scheme.table):
        return parent_rls_for(part)  # the same copies partition_by() declares
    if parent.rls:  # enabled in the database only: deny direct reads of the partition
        return [RowLevelSecurity(part.table, force=parent.force_rls)]
    return []


def ensure_partitions(
    session: Session | Connection, target: Any, *, ahead: int = 3,
    interval: str | int | None = None, now: Any = None,
) -> list[str]:
    """Create the partitions for the current period and ``ahead`` more; return new names.

    Examples:
        >>> ensure_partitions(session, Event, ahead=3)  # doctest: +SKIP
        ['events_p2026_05', 'events_p2026_06', 'events_p2026_07', 'events_p2026_08']

    Idempotent, and it fills gaps: every period from now to ``ahead`` periods later that no
    partition covers is created, clipped around partitions that cover part of it, even
    when later ones exist. Runs on one table are serialized by an advisory lock, so two
    concurrent runs create each partition once. Row-level security declared on the parent
    through :mod:`pgpatterns.rls` is copied to each new partition (if it is only enabled in
    the database, the new partition gets RLS with no policy: direct reads see nothing).

    Raises:
        DefaultPartitionConflictError: the default partition holds rows of a period to
            create (see :func:`check_default_partition`); nothing is created.
        PartitionError: the table does not exist or is not partitioned.

    Warning:
        Creating a partition next to a default partition scans the default partition
        under an ACCESS EXCLUSIVE lock: keep the default small, or have none.
    """
    scheme = partition_scheme(target)
    ahead = check_ahead(ahead, "ensure_partitions")
    now = check_now(scheme, now, "ensure_partitions")
    step = _step(scheme, interval)
    _precheck(scheme, step, ahead, now)
    conn = conn_of(session)
    parent = read_parent(conn, scheme)
    created: list[str] = []
    with locked(conn, parent):
        parts = read_partitions(conn, scheme, parent)
        ranges = _wanted(conn, scheme, parts, step, ahead, now)
        blocked = _blocked(conn, scheme, parts, ranges)
        if blocked:
            lines = "; ".join(f"{b.rows} rows in [{show(b.low)}, {show(b.high)})" for b in blocked)
            raise DefaultPartitionConflictError(
                f"{scheme.table.name}: the default partition {blocked[0].default_partition} "
                f"holds rows for partitions to create ({lines}); PostgreSQL would refuse. "
                "Move those rows out of the default partition first (see "
                "check_default_partition); nothing was created."
            )
        taken = {p.name for p in parts}
        for low, high in ranges:
            name = _name(scheme, step, low, taken)
            part = Partition(name, scheme.table, schema=parent.schema, range_=(low, high))
            if create_partition(conn, scheme, parent, part, _rls_for(scheme, parent, part)):
                created.append(name)
            taken.add(name)
    return created


def retain(
    session: Session | Connection, target: Any, *, keep: str | int | None = None,
    before: Any = None, mode: str = "detach", now: Any = None, concurrently: bool | None = None,
) -> list[str]:
    """Detach (and with ``mode="drop"`` drop) partitions entirely older than ``keep``.

    Examples:
        >>> retain(session, Event, keep="12 months", mode="drop")  # doctest: +SKIP
        ['events_p2025_04']

    A partition goes when its upper bound is at or before ``now - keep`` (or ``before``):
    detaching is instant and leaves a standalone table (archive it, then drop it);
    ``mode="drop"`` detaches then drops. ``concurrently`` (default: when possible) uses
    ``DETACH ... CONCURRENTLY`` (PostgreSQL 14+, no default partition, and a session in
    autocommit mode, since it cannot run in a transaction block), which never blocks
    queries on the parent. Otherwise every step runs in the caller's transaction.

    Raises:
        PartitionRetentionError: a partition to remove contains ``now`` or later values
            (it receives current writes), ``keep`` is not positive, or ``concurrently=True``
            cannot be honoured; nothing is detached or dropped.
    """
    scheme = partition_scheme(target)
    owner = scheme.table.name
    if mode not in ("detach", "drop"):
        raise PartitionRetentionError(f"{owner}: mode={mode!r}; use 'detach' or 'drop'.")
    if (keep is None) == (before is None):
        raise PartitionRetentionError(
            f"{owner}: pass exactly one of keep='12 months' (relative to now) or before=<value>."
        )
    now = check_now(scheme, now, "retain")
    if before is not None:
        before = coerce(scheme.key_column, before, scheme.timezone)
    keep_step = Step.parse(keep) if keep is not None else None
    if keep_step is not None and scheme.key_column is not None:
        try:
            python_type: type | None = scheme.key_column.type.python_type
        except NotImplementedError:
            python_type = None
        keep_step.check_key(python_type, scheme.key_column.name)
    if concurrently is not None and not isinstance(concurrently, bool):
        raise PartitionRetentionError(
            f"{owner}: concurrently={concurrently!r} must be True, False or None (default)."
        )
    conn = conn_of(session)
    parent = read_parent(conn, scheme)
    current = _now(conn, scheme, now)
    cutoff = keep_step.subtract_from(current) if keep_step is not None else before
    with locked(conn, parent):
        parts = read_partitions(conn, scheme, parent)
        old = [
            p for p in parts
            if p.high is not None and p.high is not MAXVALUE and p.high is not MINVALUE
            and bound_key(p.high, False) <= bound_key(cutoff, False)
        ]
        for p in old:
            if bound_key(p.high, False) > bound_key(current, False):
                raise PartitionRetentionError(
                    f"{owner}: retention would remove {p.name} [{show(p.low)}, {show(p.high)}), "
                    f"which holds now ({show(current)}) or later values and still receives "
                    "writes; choose a cutoff before now. Nothing was detached or dropped."
                )
        use_concurrently = _concurrently(conn, parent, parts, concurrently, owner)
        removed = [
            p.name for p in old
            if detach_partition(conn, scheme, parent, p, concurrently=use_concurrently,
                                drop=mode == "drop")
        ]
    return removed


def _concurrently(
    conn: Connection, parent: Parent, parts: list[ExistingPartition], wanted: bool | None,
    owner: str,
) -> bool:
    reasons = []
    if parent.version < 140000:
        reasons.append("it needs PostgreSQL 14+")
    if any(p.is_default for p in parts):
        reasons.append("the table has a default partition")
    if not autocommit(conn):
        reasons.append(
            "it cannot run inside a transaction block (use a session on an engine with "
            "execution_options(isolation_level='AUTOCOMMIT'))"
        )
    if wanted and reasons:
        raise PartitionRetentionError(
            f"{owner}: cannot DETACH CONCURRENTLY: {'; '.join(reasons)}. Pass "
            "concurrently=None to fall back to a plain detach (brief ACCESS EXCLUSIVE lock)."
        )
    return bool(wanted is not False and not reasons)


async def ensure_partitions_async(session: AsyncSession, target: Any, **kw: Any) -> list[str]:
    """:func:`ensure_partitions` for an ``AsyncSession`` (``run_sync``: the steps depend on
    each other's catalog reads and hold one advisory lock)."""
    result: list[str] = await session.run_sync(lambda s: ensure_partitions(s, target, **kw))
    return result


async def retain_async(session: AsyncSession, target: Any, **kw: Any) -> list[str]:
    """:func:`retain` for an ``AsyncSession`` (through ``run_sync``, like ensure)."""
    result: list[str] = await session.run_sync(lambda s: retain(s, target, **kw))
    return result


async def check_default_partition_async(
    session: AsyncSession, target: Any, **kw: Any
) -> list[BlockedRange]:
    """:func:`check_default_partition` for an ``AsyncSession``."""
    result: list[BlockedRange] = await session.run_sync(
        lambda s: check_default_partition(s, target, **kw)
    )
    return result
