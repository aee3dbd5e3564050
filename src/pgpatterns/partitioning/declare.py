"""Declare a partitioned table and its partitions; validated before any SQL is sent.

Examples:
    >>> import datetime as dt
    >>> from sqlalchemy import BigInteger, Column, DateTime, MetaData, PrimaryKeyConstraint, Table
    >>> from pgpatterns.partitioning import default_partition, partition_by, range_partition
    >>> events = Table("events", MetaData(), Column("id", BigInteger),
    ...                Column("at", DateTime(timezone=True)), PrimaryKeyConstraint("id", "at"))
    >>> scheme = partition_by(events, "range", "at", interval="1 month",
    ...                       partitions=[range_partition("2026-01-01", "2026-02-01"),
    ...                                   default_partition()])
    >>> [p.name for p in scheme.partitions]
    ['events_p2026_01', 'events_default']
    >>> events.dialect_options["postgresql"]["partition_by"]
    'RANGE (at)'
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Column, Connection, Index, Table, UniqueConstraint, event
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.elements import ColumnElement

from pgpatterns.ddl import MAXVALUE, MINVALUE, Partition, attach
from pgpatterns.ddl.base import pg_dialect, short_name
from pgpatterns.errors import PartitionBoundsError, PartitionError, PartitionKeyError
from pgpatterns.partitioning.periods import Step, zone

__all__ = [
    "SCHEME_INFO",
    "DefaultSpec",
    "HashSpec",
    "ListSpec",
    "PartitionScheme",
    "RangeSpec",
    "default_partition",
    "hash_partitions",
    "list_partition",
    "partition_by",
    "partition_scheme",
    "range_partition",
]

SCHEME_INFO = "pgpatterns.partitioning.scheme"
"""``Table.info`` key holding the :class:`PartitionScheme` declared by :func:`partition_by`."""
_METHODS = ("range", "list", "hash")


@dataclass(frozen=True)
class RangeSpec:
    """``FOR VALUES FROM (low) TO (high)``: ``low`` included, ``high`` excluded."""

    low: Any
    high: Any
    name: str | None = None


@dataclass(frozen=True)
class ListSpec:
    """``FOR VALUES IN (values...)``."""

    values: tuple[Any, ...]
    name: str | None = None


@dataclass(frozen=True)
class HashSpec:
    """``FOR VALUES WITH (MODULUS m, REMAINDER r)``."""

    modulus: int
    remainder: int
    name: str | None = None


@dataclass(frozen=True)
class DefaultSpec:
    """``DEFAULT``: rows no other partition accepts."""

    name: str | None = None


Spec = RangeSpec | ListSpec | HashSpec | DefaultSpec


def range_partition(low: Any, high: Any, *, name: str | None = None) -> RangeSpec:
    """A range partition ``[low, high)``; ``MINVALUE``/``MAXVALUE`` for open ends.

    Examples:
        >>> range_partition("2026-01-01", "2026-02-01").high
        '2026-02-01'

    ISO strings are converted to the key column's type; the default name is
    ``<table>_p<low>``.
    """
    return RangeSpec(low, high, name)


def list_partition(*values: Any, name: str | None = None) -> ListSpec:
    """A list partition holding ``values`` (default name ``<table>_<first value>``).

    Examples:
        >>> list_partition("fr", "be").values
        ('fr', 'be')
    """
    return ListSpec(tuple(values), name)


def hash_partitions(modulus: int, *, prefix: str | None = None) -> list[HashSpec]:
    """``modulus`` hash partitions covering every remainder (``<table>_h0`` ...).

    Examples:
        >>> [(s.modulus, s.remainder) for s in hash_partitions(2)]
        [(2, 0), (2, 1)]
    """
    if isinstance(modulus, bool) or not isinstance(modulus, int) or not 1 <= modulus <= 10_000:
        raise PartitionBoundsError(
            f"hash_partitions({modulus!r}): the number of partitions must be an int from 1 to "
            "10000 (each is a table; thousands already cost planning time on every query)."
        )
    return [
        HashSpec(modulus, r, None if prefix is None else f"{prefix}{r}") for r in range(modulus)
    ]


def default_partition(*, name: str | None = None) -> DefaultSpec:
    """The default partition (``<table>_default``): catches rows outside every bound.

    Examples:
        >>> default_partition().name is None
        True
    """
    return DefaultSpec(name)


@dataclass(eq=False)
class PartitionScheme:
    """How a table is partitioned, as declared by :func:`partition_by`."""

    table: Table
    method: str
    key: tuple[str, ...]
    expression: ColumnElement[Any] | None
    interval: Step | None
    timezone: str
    partitions: list[Partition] = field(default_factory=list)

    @property
    def key_column(self) -> Column[Any]:
        """The single key column (range maintenance needs exactly one)."""
        if len(self.key) != 1 or self.expression is not None:
            raise PartitionError(
                f"{self.table.name} is partitioned by {self.partition_by}; partition "
                "maintenance needs a range key on exactly one column."
            )
        return self.table.c[self.key[0]]

    @property
    def partition_by(self) -> str:
        """The ``PARTITION BY`` clause text (what ``postgresql_partition_by`` holds)."""
        return self.clause_for(pg_dialect())

    def clause_for(self, dialect: Dialect) -> str:
        """The ``PARTITION BY`` clause quoted by ``dialect`` (``%`` doubled for psycopg's
        paramstyle, as the dialect does for every identifier it renders)."""
        return f"{self.method.upper()} ({_render_key(self.key, self.expression, dialect)})"

    def partition_name(self, suffix: str) -> str:
        """``<table>_<suffix>``, shortened with a hash when over PostgreSQL's 63 bytes
        (:func:`pgpatterns.ddl.base.short_name`: deterministic, never truncated silently)."""
        return short_name(self.table.name, suffix=f"_{suffix}")


def _table_of(target: Any) -> Table:
    table = target if isinstance(target, Table) else getattr(target, "__table__", None)
    if not isinstance(table, Table):
        raise PartitionError(
            f"expected a Table or a mapped class, got {target!r}; pass the model class "
            "(e.g. Event) or its __table__."
        )
    return table


def partition_scheme(target: Any) -> PartitionScheme:
    """The :class:`PartitionScheme` declared for a model or table by :func:`partition_by`."""
    table = _table_of(target)
    scheme = table.info.get(SCHEME_INFO)
    if not isinstance(scheme, PartitionScheme):
        raise PartitionError(
            f"{table.name} has no partitioning declared by pgpatterns; call "
            f"partition_by({table.name}, 'range', '<column>', ...) first."
        )
    return scheme


def partition_by(
    target: Any,
    method: str,
    key: str | Sequence[str] | ColumnElement[Any],
    *,
    partitions: Sequence[Spec | Sequence[Spec]] = (),
    interval: str | int | None = None,
    timezone: str = "UTC",
    allow_gaps: bool = False,
) -> PartitionScheme:
    """Declare ``target`` (a model class or Table) partitioned by ``method`` on ``key``.

    Examples:
        >>> from sqlalchemy import Column, Integer, MetaData, Table, Text
        >>> t = Table("users", MetaData(), Column("id", Integer, primary_key=True),
        ...           Column("region", Text))
        >>> partition_by(t, "list", "region")
        Traceback (most recent call last):
        ...
        pgpatterns.errors.PartitionKeyError: users: primary key (id) does not include ...

    Sets ``PARTITION BY`` on the table and attaches the declared partitions
    (:func:`range_partition`, :func:`list_partition`, :func:`hash_partitions`,
    :func:`default_partition`) to its MetaData, so ``create_all`` creates them after it.
    ``interval`` (range on one column) is the width :func:`ensure_partitions` uses;
    ``timezone`` is where period boundaries of a ``timestamptz`` key fall.

    Raises:
        PartitionKeyError: a primary key / unique constraint / unique index lacks a key
            column (PostgreSQL can only enforce uniqueness within one partition), an
            expression key on a table with unique constraints, an unknown column.
        PartitionBoundsError: overlapping range partitions, gaps (unless ``allow_gaps``),
            a value in two list partitions, hash remainders missing, a bad interval.

    Warning:
        Declare it before ``create_all``: an existing table cannot be turned into a
        partitioned one (create a new table and move the rows). Indexes and row triggers
        declared on the parent reach every partition (PostgreSQL 13+). Row-level security
        does not in PostgreSQL (a partition read by name applies its own policies), so the
        parent's RLS, FORCE and policies declared through :mod:`pgpatterns.rls` (e.g. by
        ``TenantScoped``) are copied to each declared partition with
        :func:`pgpatterns.rls.for_partitions`, including policies declared after this call
        (they are copied again before ``create_all``).
    """
    table = _table_of(target)
    owner = table.name
    if not isinstance(method, str) or method.lower() not in _METHODS:
        raise PartitionError(
            f"{owner}: method={method!r} is not a partitioning method; use 'range', 'list' "
            "or 'hash'."
        )
    method = method.lower()
    if table.info.get(SCHEME_INFO) is not None:
        raise PartitionError(f"{owner}: partition_by() was already called for this table.")
    names, expression = _key(table, key)
    _check_uniques(table, names, expression)
    if method == "list" and (len(names) != 1 and expression is None):
        raise PartitionKeyError(
            f"{owner}: list partitioning takes exactly one key column (got {list(names)}); "
            "use range partitioning for several columns."
        )
    step = _interval(table, method, names, expression, interval)
    zone(timezone)
    clause = f"{method.upper()} ({_render_key(names, expression, pg_dialect())})"
    current = table.dialect_options["postgresql"]["partition_by"]
    if current is not None and current != clause:
        raise PartitionError(
            f"{owner}: postgresql_partition_by={current!r} is already set on the table; "
            f"remove it from __table_args__ and let partition_by() set {clause!r}."
        )
    scheme = PartitionScheme(table, method, names, expression, step, timezone)
    flat: list[Spec] = []
    for item in partitions:
        flat += [item] if _is_spec(item) else list(item)  # type: ignore[list-item, arg-type]
    from pgpatterns.partitioning.bounds import build_partitions

    scheme.partitions = build_partitions(scheme, flat, allow_gaps=allow_gaps)
    table.dialect_kwargs["postgresql_partition_by"] = clause
    table.info[SCHEME_INFO] = scheme
    event.listen(table, "before_create", _quote_for_connection)
    event.listen(table, "after_create", _restore_clause)
    if scheme.partitions:
        from pgpatterns.partitioning.security import attach_parent_rls

        attach(table.metadata, *scheme.partitions)
        attach_parent_rls(table.metadata)  # and again before create_all: RLS declared later
    return scheme


def _quote_for_connection(table: Table, connection: Connection, **kw: Any) -> None:
    """``CREATE TABLE`` puts ``postgresql_partition_by`` in verbatim: give it the key quoted
    by the executing dialect (a key named ``k d%s`` must reach psycopg as ``k d%%s``)."""
    scheme = table.info.get(SCHEME_INFO)
    if isinstance(scheme, PartitionScheme):
        table.dialect_kwargs["postgresql_partition_by"] = scheme.clause_for(connection.dialect)


def _restore_clause(table: Table, connection: Connection, **kw: Any) -> None:
    scheme = table.info.get(SCHEME_INFO)
    if isinstance(scheme, PartitionScheme):
        table.dialect_kwargs["postgresql_partition_by"] = scheme.partition_by


def _is_spec(item: Any) -> bool:
    return isinstance(item, RangeSpec | ListSpec | HashSpec | DefaultSpec)


def _key(
    table: Table, key: str | Sequence[str] | ColumnElement[Any]
) -> tuple[tuple[str, ...], ColumnElement[Any] | None]:
    if isinstance(key, Column):
        key = key.name
    if isinstance(key, ColumnElement):
        return (), key
    names = (key,) if isinstance(key, str) else tuple(key)
    unknown = [n for n in names if not isinstance(n, str) or n not in table.c]
    if not names or unknown:
        raise PartitionKeyError(
            f"{table.name}: partition key {unknown or list(names)} names no column of the "
            f"table; use some of {list(table.c.keys())}."
        )
    return names, None


def _check_uniques(
    table: Table, names: tuple[str, ...], expression: ColumnElement[Any] | None
) -> None:
    found: list[tuple[str, list[str]]] = []
    if table.primary_key.columns:
        found.append(("primary key", [c.name for c in table.primary_key.columns]))
    for cons in table.constraints:
        if isinstance(cons, UniqueConstraint):
            label = f"unique constraint {cons.name or ''}".strip()
            found.append((label, list(cons.columns.keys())))
    for index in table.indexes:
        if isinstance(index, Index) and index.unique:
            cols = [e.name for e in index.expressions if isinstance(e, Column)]
            found.append((f"unique index {index.name}", cols))
    for what, cols in found:
        shown = ", ".join(cols)
        if expression is not None:
            raise PartitionKeyError(
                f"{table.name}: {what} ({shown}) cannot be enforced with an expression "
                "partition key: PostgreSQL needs unique constraints to contain the key "
                "columns themselves. Partition by a column (store the expression in a "
                "generated column), or drop the unique constraint."
            )
        missing = [n for n in names if n not in cols]
        if missing:
            raise PartitionKeyError(
                f"{table.name}: {what} ({shown}) does not include partition key column(s) "
                f"{', '.join(missing)}: PostgreSQL enforces uniqueness only within one "
                f"partition, so it refuses this. Add {', '.join(missing)} to it (e.g. "
                f"PrimaryKeyConstraint({', '.join(repr(c) for c in [*cols, *missing])})), or "
                "enforce the uniqueness in a separate, unpartitioned table."
            )


def _render_key(
    names: tuple[str, ...], expression: ColumnElement[Any] | None, dialect: Dialect
) -> str:
    if expression is not None:
        # the key refers to the table's own columns: render them unqualified
        options = {"literal_binds": True, "include_table": False}
        return f"({expression.compile(dialect=dialect, compile_kwargs=options)})"
    return ", ".join(dialect.identifier_preparer.quote(n) for n in names)


def _interval(
    table: Table,
    method: str,
    names: tuple[str, ...],
    expression: ColumnElement[Any] | None,
    interval: str | int | None,
) -> Step | None:
    if interval is None:
        return None
    if method != "range" or len(names) != 1:
        raise PartitionBoundsError(
            f"{table.name}: interval= is for range partitioning on one column (it is the "
            "width ensure_partitions() gives each new partition); drop it here."
        )
    step = Step.parse(interval)
    step.check_key(python_type(table.c[names[0]]), names[0])
    return step


def python_type(column: Column[Any]) -> type | None:
    """The Python type of ``column``'s values, when SQLAlchemy knows it."""
    try:
        found: type = column.type.python_type
    except NotImplementedError:
        return None
    return found


def coerce(column: Column[Any], value: Any, timezone: str) -> Any:
    """An ISO string turned into the key column's Python type (dates, datetimes, ints)."""
    if value is MINVALUE or value is MAXVALUE or not isinstance(value, str):
        return value
    kind = python_type(column)
    try:
        if kind is dt.datetime:
            parsed = dt.datetime.fromisoformat(value)
            aware = getattr(column.type, "timezone", False)
            if aware and parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=zone(timezone))
            return parsed
        if kind is dt.date:
            return dt.date.fromisoformat(value)
        if kind is int:
            return int(value)
    except ValueError as exc:
        raise PartitionBoundsError(
            f"bound {value!r} is not a valid {kind.__name__ if kind else 'value'} for "
            f"{column.name}; use ISO format (e.g. '2026-01-01') or a Python value."
        ) from exc
    return value
