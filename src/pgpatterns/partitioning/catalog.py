"""Read a partitioned table's partitions and their bounds back from the catalog.

Examples:
    >>> [p.name for p in existing_partitions(session, Event)]  # doctest: +SKIP
    ['events_default', 'events_p2026_01', 'events_p2026_02']
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Text, bindparam, cast, select, text
from sqlalchemy.orm import Session

from pgpatterns.ddl import MAXVALUE, MINVALUE
from pgpatterns.ddl.base import regname
from pgpatterns.errors import PartitionError
from pgpatterns.partitioning.declare import PartitionScheme, partition_scheme

__all__ = ["ExistingPartition", "Parent", "existing_partitions", "read_parent", "read_partitions"]

_PARENT = text(
    "SELECT c.oid, n.nspname AS schema, c.relkind AS kind, c.relrowsecurity AS rls,"
    " c.relforcerowsecurity AS force_rls, current_setting('server_version_num')::int AS version"
    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE c.oid = to_regclass(:n)"
)
_PARTITIONS = text(
    "SELECT c.relname AS name, n.nspname AS schema, pg_get_expr(c.relpartbound, c.oid) AS bound"
    " FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
    " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE i.inhparent = :oid ORDER BY 1"
)
_RANGE = re.compile(r"^FOR VALUES FROM \((.*)\) TO \((.*)\)$", re.DOTALL)
_LITERAL = re.compile(r"^'((?:[^']|'')*)'$")


@dataclass(frozen=True)
class Parent:
    """The partitioned table as the catalog sees it."""

    oid: int
    schema: str
    rls: bool
    force_rls: bool
    version: int


@dataclass(frozen=True)
class ExistingPartition:
    """One attached partition: ``low``/``high`` are key values (``MINVALUE``/``MAXVALUE``
    for open ends; both ``None`` for the default partition or a non-range bound)."""

    name: str
    schema: str
    bound: str
    low: Any = None
    high: Any = None

    @property
    def is_default(self) -> bool:
        return self.bound == "DEFAULT"


def conn_of(session: Session | Connection) -> Connection:
    return session.connection() if isinstance(session, Session) else session


def read_parent(conn: Connection, scheme: PartitionScheme) -> Parent:
    table = scheme.table
    row = conn.execute(_PARENT, {"n": regname(table.name, table.schema)}).mappings().first()
    if row is None or row["kind"] != "p":
        what = "does not exist" if row is None else "is not a partitioned table"
        raise PartitionError(
            f"{table.fullname} {what} in the database; create it with metadata.create_all "
            "(partition_by() must run before that) or in a migration first."
        )
    return Parent(row["oid"], row["schema"], row["rls"], row["force_rls"], row["version"])


def _element(raw: str) -> Any:
    raw = raw.strip()
    if raw in ("MINVALUE", "MAXVALUE"):
        return MINVALUE if raw == "MINVALUE" else MAXVALUE
    match = _LITERAL.match(raw)
    return match.group(1).replace("''", "'") if match else raw


def read_partitions(
    conn: Connection, scheme: PartitionScheme, parent: Parent
) -> list[ExistingPartition]:
    """Every partition of ``parent``; range bounds converted to the key's Python type.

    The bound text comes from ``pg_get_expr``; its literals are cast back to the key type
    by PostgreSQL itself (one query), so time zones and formats round-trip exactly.
    """
    rows = conn.execute(_PARTITIONS, {"oid": parent.oid}).mappings().all()
    parsed: list[tuple[dict[str, Any], Any, Any]] = []
    texts: list[str] = []
    for found in rows:
        row = dict(found)
        if row["bound"] is None:
            continue  # dropped after this transaction's snapshot (REPEATABLE READ and above)
        match = _RANGE.match(row["bound"]) if scheme.method == "range" else None
        if match is None:
            parsed.append((row, None, None))
            continue
        low, high = _element(match.group(1)), _element(match.group(2))
        for value in (low, high):
            if isinstance(value, str):
                texts.append(value)
        parsed.append((row, low, high))
    values: dict[str, Any] = {}
    if texts:
        column = scheme.key_column
        params = [bindparam(f"v{i}", t, type_=Text) for i, t in enumerate(texts)]
        typed = conn.execute(select(*(cast(p, column.type) for p in params))).one()
        values = dict(zip(texts, typed, strict=True))
    out = []
    for row, low, high in parsed:
        out.append(
            ExistingPartition(
                row["name"],
                row["schema"],
                row["bound"],
                values.get(low, low) if isinstance(low, str) else low,
                values.get(high, high) if isinstance(high, str) else high,
            )
        )
    return out


def existing_partitions(session: Session | Connection, target: Any) -> list[ExistingPartition]:
    """The partitions of ``target`` (a model or Table declared with ``partition_by``).

    Examples:
        >>> existing_partitions(session, Event)[0].low  # doctest: +SKIP
        datetime.datetime(2026, 1, 1, 0, 0, tzinfo=datetime.timezone.utc)
    """
    scheme = partition_scheme(target)
    conn = conn_of(session)
    return read_partitions(conn, scheme, read_parent(conn, scheme))
