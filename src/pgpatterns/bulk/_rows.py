"""Row shapes for copy_rows: which columns, and checking each row as it streams."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from psycopg import sql
from sqlalchemy import Table

from pgpatterns.bulk._checks import ValueSpec, check_rows, flat, model_spec
from pgpatterns.errors import BulkLoadError

__all__: list[str] = []

_MISSING = object()


@dataclass
class _Plan:
    """What to copy: validated before any SQL is sent; shared by the sync and async paths."""

    table: Table
    name: tuple[str, ...]  # (schema, table) or (table,)
    label: str  # the quoted, possibly schema-qualified name: also the to_regclass() argument
    columns: tuple[str, ...]
    values: Iterator[Sequence[Any]]  # validates the remaining rows as they stream
    empty: bool
    models: list[ValueSpec | None] = field(default_factory=list)  # value checks, by column


def _resolve_table(table: object) -> Table:
    if isinstance(table, Table):
        return table
    found = getattr(table, "__table__", None)
    if isinstance(found, Table):
        return found
    raise BulkLoadError(
        f"copy_rows needs a sqlalchemy Table or a class mapped to one, got {table!r}: COPY "
        "loads exactly one table. Pass the Table (or the mapped class whose __table__ is it)."
    )


def _check_names(table: Table, label: str, names: Sequence[str], source: str) -> None:
    known = {c.name: c for c in table.columns}  # database names, not Column.key
    if any(not isinstance(name, str) for name in names):
        raise BulkLoadError(f"{source} for {label} must be column names (str), got {names!r}.")
    unknown = [name for name in names if name not in known]
    if unknown:
        raise BulkLoadError(
            f"{label} has no column {', '.join(map(repr, unknown))} (named in {source}); "
            f"its columns are {', '.join(known)}. Fix the name or add the column to the Table."
        )
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise BulkLoadError(f"column {name!r} is named twice in {source} for {label}.")
        seen.add(name)
        if known[name].computed is not None:
            raise BulkLoadError(
                f"column {name!r} of {label} is a generated column: PostgreSQL computes it and "
                f"COPY cannot write it. Leave it out of {source}."
            )


def _dict_values(rows: Iterator[Any], columns: tuple[str, ...], label: str) -> Iterator[Any]:
    expected = frozenset(columns)
    for index, row in enumerate(rows):
        if not (type(row) is dict or isinstance(row, Mapping)):
            raise BulkLoadError(
                f"row {index} for {label} is a {type(row).__name__} but row 0 was a dict: "
                "pass all rows as dicts or all as tuples."
            )
        if row.keys() != expected:
            missing = sorted(expected - row.keys())
            extra = sorted(set(row.keys()) - expected, key=str)
            raise BulkLoadError(
                f"row {index} for {label} has different keys from the columns being copied "
                f"({', '.join(columns)}): missing {missing}, unexpected {extra}. Every dict "
                "row needs exactly the same keys (use None for NULL)."
            )
        yield [row[name] for name in columns]


def _tuple_values(rows: Iterator[Any], columns: tuple[str, ...], label: str) -> Iterator[Any]:
    width = len(columns)
    for index, row in enumerate(rows):
        if not (type(row) is tuple or _is_sequence(row)):
            raise BulkLoadError(
                f"row {index} for {label} is a {type(row).__name__} but row 0 was a tuple: "
                "pass all rows as tuples or all as dicts."
            )
        if len(row) != width:
            raise BulkLoadError(
                f"row {index} for {label} has {len(row)} values, expected {width} for the "
                f"columns ({', '.join(columns)}). Pass columns=... to copy fewer columns."
            )
        yield row


def _is_sequence(row: object) -> bool:
    return isinstance(row, Sequence) and not isinstance(row, (str, bytes, bytearray))


def _rows_iterator(rows: object, label: str) -> Iterator[Any]:
    if rows is None or isinstance(rows, (str, bytes, bytearray, Mapping)) or not isinstance(
        rows, Iterable
    ):
        raise BulkLoadError(
            f"copy_rows(): rows={rows!r:.80} for {label} is not accepted: pass an iterable "
            "of dicts or tuples (a list, a generator; use [] for none)."
        )
    return iter(rows)


def _plan(table: object, rows: Iterable[Any], columns: Sequence[str] | None) -> _Plan:
    """Validate what can be validated before any SQL is sent, and peek at the first row."""
    target = _resolve_table(table)
    parts = (target.schema, target.name) if target.schema else (target.name,)
    label = sql.Identifier(*parts).as_string()
    chosen: tuple[str, ...] | None = None
    if columns is not None:
        if isinstance(columns, str):
            raise BulkLoadError(
                f"columns for {label} must be a sequence of column names, got the string "
                f"{columns!r}: write columns=[{columns!r}]."
            )
        chosen = tuple(columns)
        _check_names(target, label, chosen, "columns")
    iterator = _rows_iterator(rows, label)
    first = next(iterator, _MISSING)
    if first is _MISSING:
        return _Plan(target, parts, label, chosen or (), iter(()), empty=True)
    rest = chain([first], iterator)
    if isinstance(first, Mapping):
        keys = tuple(first.keys())
        if chosen is None:
            _check_names(target, label, keys, "the keys of row 0")
            chosen = keys
        values = _dict_values(rest, chosen, label)
    elif _is_sequence(first):
        if chosen is None:
            chosen = tuple(c.name for c in target.columns if c.computed is None)
        values = _tuple_values(rest, chosen, label)
    else:
        raise BulkLoadError(
            f"row 0 for {label} is a {type(first).__name__}: rows must be dicts (keys are "
            "column names) or tuples (in the order of columns=...)."
        )
    if not chosen:
        raise BulkLoadError(f"no columns to copy into {label}: row 0 is empty.")
    by_name = {c.name: c for c in target.columns}
    models = [model_spec(by_name[name].type) for name in chosen]
    plan = _Plan(target, parts, label, chosen, values, empty=False, models=models)
    # Validate row 0 now (its shape and what the model's types tell), before any SQL.
    head = next(plan.values)
    checks = flat([(pos, name, models[pos]) for pos, name in enumerate(chosen)])
    next(check_rows(iter([head]), checks, label))
    plan.values = chain([head], plan.values)
    return plan
