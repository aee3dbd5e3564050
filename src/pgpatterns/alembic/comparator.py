"""The autogenerate comparator: :func:`pgpatterns.ddl.compare.compare` turned into operations.

Examples:
    >>> from pgpatterns.alembic.comparator import compare_schema_objects  # doctest: +SKIP

Runs after Alembic's own table comparison (``DispatchPriority.LAST``) and

* emits the schema-object operations: extensions first (tables may use their types), then
  drops (undeclared objects, and replaced ones in reverse dependency order, before
  Alembic's table changes), and creates last (after the tables they need);
* removes from Alembic's operations what would be wrong: ``info={...}`` holding
  pgpatterns objects (not Python source), ``drop_table`` of partitions (Alembic issue
  #539: children are not in the MetaData) and of tables that belong to an extension
  (PostGIS's ``spatial_ref_sys``), ``drop_constraint`` of a declared
  :class:`~pgpatterns.ddl.CompositeForeignKey`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from typing import Any

from alembic.operations import ops
from sqlalchemy import Connection, MetaData, text

from pgpatterns.alembic.ops import CreateSchemaObjectOp, DropSchemaObjectOp, SchemaObjectOp
from pgpatterns.ddl.base import regname
from pgpatterns.ddl.compare import Finding, compare
from pgpatterns.ddl.foreign_key import CompositeForeignKey
from pgpatterns.ddl.registry import attached

__all__ = ["compare_schema_objects", "operations_for"]


def compare_schema_objects(autogen_context: Any, upgrade_ops: ops.UpgradeOps, *_: Any) -> None:
    """Alembic comparator (``schema`` level) for every MetaData in the context.

    ``context.configure(..., pgpatterns=False)`` turns it off for one run;
    ``pgpatterns_undeclared="report"`` leaves objects nothing declares in place (``diff``
    still reports them) instead of dropping them, for schemas another tool also manages.
    """
    if autogen_context.opts.get("pgpatterns", True) is False:
        return
    keep_undeclared = autogen_context.opts.get("pgpatterns_undeclared", "drop") == "report"
    conn: Connection = autogen_context.connection
    metadata = autogen_context.metadata
    metadatas: list[MetaData] = (
        [] if metadata is None else list(metadata) if isinstance(metadata, Iterable) else [metadata]
    )
    _clean_alembic_ops(conn, upgrade_ops, metadatas)
    alembic_indexes = _alembic_index_names(upgrade_ops.ops)
    front: list[SchemaObjectOp] = []
    drops: list[SchemaObjectOp] = []
    creates: list[SchemaObjectOp] = []
    for md in metadatas:
        findings = [
            f
            for f in compare(conn, md)
            if (f.index is None or f.index not in alembic_indexes)
            and not (keep_undeclared and f.obj is None and f.index is None)
        ]
        first, down, up = operations_for(findings)
        front += first
        drops += down
        creates += up
    upgrade_ops.ops[:0] = [*front, *drops]
    upgrade_ops.ops.extend(creates)


def operations_for(
    findings: list[Finding],
) -> tuple[list[SchemaObjectOp], list[SchemaObjectOp], list[SchemaObjectOp]]:
    """``(extensions, drops, creates)``: drops in reverse order of the findings (which are
    in dependency order), undeclared objects' drops first."""
    front: list[SchemaObjectOp] = []
    undeclared: list[SchemaObjectOp] = []
    declared: list[SchemaObjectOp] = []
    creates: list[SchemaObjectOp] = []
    for f in findings:
        if f.action == "report":
            continue
        if f.drop:
            drop = DropSchemaObjectOp(f.kind, f.label, f.drop, f.restore)
            (declared if f.obj is not None else undeclared).append(drop)
        if f.create:
            target = front if f.kind in ("extension", "role") else creates
            target.append(CreateSchemaObjectOp(f.kind, f.label, f.create, f.undo))
    return front, [*undeclared, *reversed(declared)], creates


def _alembic_index_names(operations: list[Any]) -> set[str]:
    names: set[str] = set()
    for op in operations:
        if isinstance(op, ops.ModifyTableOps):
            names |= _alembic_index_names(op.ops)
        elif isinstance(op, (ops.CreateIndexOp, ops.DropIndexOp)):
            names.add(str(op.index_name))
    return names


def _clean_alembic_ops(conn: Connection, upgrade_ops: ops.UpgradeOps, mds: list[MetaData]) -> None:
    fks = {
        (o.table.name, o.name)
        for md in mds
        for o in attached(md)
        if isinstance(o, CompositeForeignKey)
    }
    kept = []
    for op in upgrade_ops.ops:
        if isinstance(op, ops.CreateTableOp):
            op.info = _literal_info(op.info)
        if isinstance(op, ops.DropTableOp) and _never_dropped(conn, op.table_name, op.schema):
            continue
        if isinstance(op, ops.ModifyTableOps):
            op.ops = [
                o
                for o in op.ops
                if not (
                    isinstance(o, ops.DropConstraintOp)
                    and (op.table_name, o.constraint_name) in fks
                )
            ]
            if not op.ops:
                continue
        kept.append(op)
    upgrade_ops.ops[:] = kept


def _literal_info(info: dict[Any, Any] | None) -> dict[Any, Any]:
    """The entries of ``Table.info`` that render as Python source (pgpatterns objects do
    not: ``info={RowLevelSecurity(...)}`` made migrations a SyntaxError)."""
    kept = {}
    for key, value in (info or {}).items():
        try:
            ast.literal_eval(repr({key: value}))
        except (ValueError, SyntaxError):
            continue
        kept[key] = value
    return kept


def _never_dropped(conn: Connection, name: str, schema: str | None) -> bool:
    """A partition (its parent's comparison must not drop it) or a table that belongs to an
    extension (PostGIS's ``spatial_ref_sys``, visible through the ``search_path``)."""
    query = text(
        "SELECT c.relispartition OR EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid"
        " AND d.classid = 'pg_class'::regclass AND d.deptype = 'e')"
        " FROM pg_class c WHERE c.oid = to_regclass(:n)"
    )
    return bool(conn.execute(query, {"n": regname(name, schema)}).scalar())
