"""Column types from the catalog and the psycopg dumpers that send them (binary or text)."""

from __future__ import annotations

import importlib
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.abc import AdaptContext, Buffer
from psycopg.adapt import Dumper
from psycopg.pq import Format
from psycopg.types import TypeInfo
from sqlalchemy import text

from pgpatterns.bulk._checks import Checks, check_rows, db_spec, flat, fuse
from pgpatterns.bulk._rows import _Plan
from pgpatterns.errors import BulkLoadError

__all__: list[str] = []

# The column types as the database has them, not as the model declares them: binary COPY
# applies no casts, so a model saying Integer for a bigint column would fail. Domains are
# sent as their base type (a domain's binary input is its base type's).
_COLUMN_TYPES = text(
    "SELECT a.attname, b.oid AS type_oid, b.typname, b.typarray,"
    " pg_catalog.format_type(a.atttypid, a.atttypmod) AS type_label"
    " FROM pg_catalog.pg_attribute AS a"
    " JOIN pg_catalog.pg_type AS t ON t.oid = a.atttypid"
    " JOIN pg_catalog.pg_type AS b"
    "   ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END"
    " WHERE a.attrelid = pg_catalog.to_regclass(:name) AND a.attnum > 0"
    " AND NOT a.attisdropped"
)


_PGVECTOR_TYPES = ("vector", "halfvec", "sparsevec")


@dataclass
class _Setup:
    """How to copy: the statement and the column types, from the database's catalog."""

    statement: sql.Composed
    oids: list[int]
    labels: list[str]
    format: Format
    checks: Checks  # per-row value checks: the model's and the table's types, fused


class _TextPassthroughDumper(Dumper):
    """Text-format dumper for a type psycopg does not know: ``str`` values pass unchanged."""

    format = Format.TEXT
    type_label = "this type"

    def dump(self, obj: Any) -> Buffer | None:
        if isinstance(obj, str):
            encoding = self.connection.info.encoding if self.connection else "utf-8"
            return obj.encode(encoding)
        raise TypeError(
            f"copy_rows sends {self.type_label} values as text in PostgreSQL's input syntax: "
            f"pass a str, got {type(obj).__name__}"
        )


class _StrictBinaryDumper(Dumper):
    """Binary bool/int2/int4/float4 dumper refusing what psycopg's C dumpers would mangle.

    Those silently truncate (``2**20 + 5`` reaches a smallint column as 5, ``1e300`` a real
    column as Infinity) or coerce (``"no"`` becomes true), and binary COPY leaves no check to
    the server. Registered by OID on the COPY cursor only; arrays use them for elements too.
    """

    format = Format.BINARY
    type_name = "boolean"
    packer: struct.Struct | None = None  # None: boolean

    def dump(self, obj: Any) -> Buffer | None:
        if self.packer is None:
            if isinstance(obj, str) or obj not in (0, 1):
                raise TypeError(f"{obj!r} is not a boolean: pass True or False")
            return b"\x01" if obj else b"\x00"
        if isinstance(obj, bool):
            raise TypeError(f"a bool is not a number: pass an int for {self.type_name} "
                            "(True is not 1)")
        try:
            return self.packer.pack(obj)
        except (struct.error, OverflowError) as exc:
            raise OverflowError(f"{obj!r} is not a {self.type_name} (out of range)") from exc


_STRICT = {
    16: ("boolean", None),
    21: ("smallint", "!h"),
    23: ("integer", "!i"),
    700: ("real", "!f"),
}


def _register_strict_dumpers(cursor: AdaptContext) -> None:
    for oid, (name, fmt) in _STRICT.items():
        packer = struct.Struct(fmt) if fmt else None
        attrs = {"oid": oid, "type_name": name, "packer": packer}
        cursor.adapters.register_dumper(None, type(name, (_StrictBinaryDumper,), attrs))


def _has_dumper(cursor: AdaptContext, oid: int, fmt: Format) -> bool:
    try:
        cursor.adapters.get_dumper_by_oid(oid, fmt)
    except psycopg.ProgrammingError:
        return False
    return True


def _register_pgvector(cursor: AdaptContext, info: TypeInfo) -> None:
    try:  # e.g. pgvector.psycopg.vector.register_vector_info; without pgvector: text, str values
        module = importlib.import_module(f"pgvector.psycopg.{info.name}")
    except ImportError:
        return
    # On the cursor's adapters only: the caller's connection is left unchanged.
    getattr(module, f"register_{info.name}_info")(cursor, info)


def _setup(cursor: AdaptContext, plan: _Plan, catalog: Sequence[Any]) -> _Setup:
    """Choose the COPY format and the column OIDs from the database's own column types."""
    if not catalog:
        raise BulkLoadError(
            f"table {plan.label} does not exist in the database (or is not on the "
            "search_path): create it first, e.g. with metadata.create_all()."
        )
    by_name = {row.attname: row for row in catalog}
    missing = [name for name in plan.columns if name not in by_name]
    if missing:
        raise BulkLoadError(
            f"column {', '.join(map(repr, missing))} of the Table {plan.label} does not exist "
            "in the database table: the model and the schema differ; migrate the database."
        )
    types = [by_name[name] for name in plan.columns]
    for row in types:
        oid = row.type_oid
        if row.typname in _PGVECTOR_TYPES and not _has_dumper(cursor, oid, Format.BINARY):
            _register_pgvector(cursor, TypeInfo(row.typname, oid, row.typarray))
    binary = all(_has_dumper(cursor, row.type_oid, Format.BINARY) for row in types)
    fmt = Format.BINARY if binary else Format.TEXT
    if binary:
        _register_strict_dumpers(cursor)
    else:
        for row in types:
            if not _has_dumper(cursor, row.type_oid, Format.TEXT):
                attrs = {"oid": row.type_oid, "type_label": row.type_label}
                dumper = type("_TextPassthroughDumper", (_TextPassthroughDumper,), attrs)
                cursor.adapters.register_dumper(None, dumper)
    statement = sql.SQL("COPY {table} ({columns}) FROM STDIN (FORMAT {format})").format(
        table=sql.Identifier(*plan.name),
        columns=sql.SQL(", ").join(sql.Identifier(name) for name in plan.columns),
        format=sql.SQL("BINARY" if binary else "TEXT"),
    )
    checks = flat([
        (pos, name, fuse(model, db_spec(row.typname, row.type_label), row.typname, binary))
        for pos, (name, model, row) in enumerate(zip(plan.columns, plan.models, types,
                                                     strict=True))
    ])
    oids = [row.type_oid for row in types]
    return _Setup(statement, oids, [r.type_label for r in types], fmt, checks)


def _first_row(cursor: AdaptContext, plan: _Plan, setup: _Setup) -> Sequence[Any]:
    """Row 0, checked against the database's types and dumped once before COPY starts."""
    first = next(check_rows(plan.values, setup.checks, plan.label))
    for name, oid, label, value in zip(plan.columns, setup.oids, setup.labels, first,
                                       strict=True):
        if value is None:
            continue
        try:
            cursor.adapters.get_dumper_by_oid(oid, setup.format)(type(value), cursor).dump(value)
        except Exception as exc:
            raise BulkLoadError(
                f"row 0 for {plan.label} could not be written: column {name!r} ({label}) got "
                f"{type(value).__name__} {value!r:.80}: {exc}. Values must have the Python "
                "type psycopg dumps for the column (see pgpatterns.bulk). Nothing was written."
            ) from exc
    return first


def rows_to_write(plan: _Plan, setup: _Setup, first: Sequence[Any]) -> Iterator[Sequence[Any]]:
    """Row 0 (already checked) then the other rows, each checked as it streams."""
    yield first
    yield from check_rows(plan.values, setup.checks, plan.label, start=1)


def _db_error(plan: _Plan, exc: psycopg.Error) -> BulkLoadError:
    diag = exc.diag
    message = diag.message_primary or str(exc)
    detail = f" ({diag.message_detail})" if diag.message_detail else ""
    where = f" [{diag.context.strip()}]" if diag.context else ""
    return BulkLoadError(
        f"COPY into {plan.label} failed: {message}{detail}{where}. Nothing was written "
        "(rolled back to copy_rows' savepoint; the transaction is still usable)."
    )


def _row_error(
    cursor: AdaptContext, plan: _Plan, setup: _Setup, index: int, values: Any, exc: Exception
) -> BulkLoadError:
    """A value psycopg could not dump (e.g. a float for numeric); name its column if we can."""
    if isinstance(exc, psycopg.Error) and exc.sqlstate:
        return _db_error(plan, exc)  # the server ended the COPY early
    column = ""
    for name, oid, label, value in zip(plan.columns, setup.oids, setup.labels, values, strict=True):
        if value is None:
            continue
        try:
            dumper = cursor.adapters.get_dumper_by_oid(oid, setup.format)
            dumper(type(value), cursor).dump(value)
        except Exception:
            column = f" column {name!r} ({label}) got {type(value).__name__} {value!r:.80}:"
            break
    return BulkLoadError(
        f"row {index} for {plan.label} could not be written:{column} {exc}. Values must have "
        "the Python type psycopg dumps for the column (see pgpatterns.bulk). Nothing was "
        "written (rolled back to copy_rows' savepoint; the transaction is still usable)."
    )
