"""One comparison of declared objects with the catalog, for ``diff`` and for migrations.

Examples:
    >>> from pgpatterns.ddl.compare import compare
    >>> [f.action for f in compare(conn, metadata)]  # doctest: +SKIP
    ['create', 'replace', 'drop']

:func:`compare` returns :class:`Finding` s: what differs (``lines``, the text
:func:`pgpatterns.ddl.diff` returns) and the statements that fix it in both directions
(``drop``/``restore`` for what the database has, ``create``/``undo`` for the declaration),
which :mod:`pgpatterns.alembic` turns into migration operations.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, MetaData, Table, text
from sqlalchemy.schema import CreateIndex, DropIndex

from pgpatterns.ddl.base import (
    SchemaObject,
    expected_index_definitions,
    index_definitions,
    pg_dialect,
    prepared_twins,
    qualified_text,
    relation_grants,
)
from pgpatterns.ddl.extension import Extension
from pgpatterns.ddl.function import Function
from pgpatterns.ddl.matview import compare_indexes
from pgpatterns.ddl.partition import Partition
from pgpatterns.ddl.registry import attached, ordered
from pgpatterns.ddl.rls import RowLevelSecurity
from pgpatterns.ddl.undeclared import undeclared
from pgpatterns.ddl.view import ViewBase

__all__ = ["Finding", "compare"]


@dataclass
class Finding:
    """One difference and the statements that resolve it.

    ``action`` is ``"create"`` (declared, absent), ``"replace"`` (declared, different, or
    depending on something replaced), ``"drop"`` (in the database, not declared) or
    ``"report"`` (reported only: nothing safe to generate). Upgrade runs ``drop`` then
    ``create``; downgrade runs ``undo`` then ``restore``.
    """

    action: str
    kind: str
    label: str
    lines: list[str] = field(default_factory=list)
    drop: list[str] = field(default_factory=list)
    restore: list[str] = field(default_factory=list)
    create: list[str] = field(default_factory=list)
    undo: list[str] = field(default_factory=list)
    obj: SchemaObject | None = None
    index: str | None = None  # a table index by name (Alembic's own ops may cover it)


def compare(conn: Connection, target: MetaData | Iterable[SchemaObject]) -> list[Finding]:
    """Every difference between ``target`` and the database, in an order safe to apply.

    With a ``MetaData``, its tables' named indexes are compared in full and objects on its
    tables (and in its schemas) that it does not declare are reported too.
    """
    objects = attached(target) if isinstance(target, MetaData) else ordered(target)
    findings: dict[int, Finding] = {}
    differing: list[tuple[SchemaObject, list[str]]] = []
    with prepared_twins(conn, objects):
        for obj in objects:
            lines = obj.reflect_diff(conn)
            if lines:
                differing.append((obj, lines))
    for obj, lines in differing:
        findings[id(obj)] = _declared(conn, obj, lines)
    _dependents(conn, objects, findings)
    result = [findings[id(o)] for o in objects if id(o) in findings]
    if isinstance(target, MetaData):
        result += _table_indexes(conn, target)
        result += undeclared(conn, target, objects)
    return result


def _declared(conn: Connection, obj: SchemaObject, lines: list[str]) -> Finding:
    """The finding for a declared object that differs (or is missing)."""
    kind, label = obj.kind, obj.describe()
    create = statements(obj)
    undo = [] if obj.keep_on_drop else statements(obj, drop=True)
    if isinstance(obj, (RowLevelSecurity, Extension)) or hasattr(obj, "set_sql"):
        # an ALTER of flags (restore puts the old ones back) / an extension: never dropped
        restore = [] if isinstance(obj, Extension) else current_sql(conn, obj)
        if isinstance(obj, RowLevelSecurity) or (hasattr(obj, "set_sql") and obj.exists(conn)):
            create = list(getattr(obj, "set_sql")())  # noqa: B009
        if isinstance(obj, Extension) and obj.exists(conn):
            return Finding("report", kind, label, lines, obj=obj)
        return Finding("create", kind, label, lines, create=create, undo=restore or undo, obj=obj)
    if isinstance(obj, Partition):
        return _partition(conn, obj, lines)
    current = current_sql(conn, obj)
    if not current:
        return Finding("create", kind, label, lines, create=create, undo=undo, obj=obj)
    if isinstance(obj, ViewBase):  # a replace keeps the grants
        create += relation_grants(conn, obj.name, obj.schema)
    drop = statements(obj, drop=True)
    return Finding("replace", kind, label, lines, drop, current, create, drop, obj=obj)


def statements(obj: SchemaObject, *, drop: bool = False) -> list[str]:
    """``obj``'s CREATE (or DROP) statements, one string each (never split on ``;``: a
    function body holds semicolons)."""
    dialect = pg_dialect()
    elements = obj.drop_ddl() if drop else obj.create_ddl()
    return [str(e.compile(dialect=dialect)).strip() for e in elements]


def current_sql(conn: Connection, obj: SchemaObject) -> list[str]:
    """Statements re-creating what the database has now for ``obj`` (``[]``: absent)."""
    if isinstance(obj, Function):
        oid = obj._regprocedure(conn)
        if oid is None:
            return []
        sql = conn.execute(text("SELECT pg_get_functiondef(:o)"), {"o": oid}).scalar()
        return [str(sql).strip()]
    if isinstance(obj, Partition):
        row = obj._catalog(conn)
        return [] if row is None else [_attach(obj, str(row["bound"]))]
    method = getattr(obj, "current_sql", None)
    return [] if method is None else list(method(conn))


def _attach(part: Partition, bound: str) -> str:
    parent = qualified_text(part.parent_table.name, part.parent_table.schema)
    return f"ALTER TABLE {parent} ATTACH PARTITION {qualified_text(part.name, part.schema)} {bound}"


def _partition(conn: Connection, part: Partition, lines: list[str]) -> Finding:
    """A partition is never dropped to change it: detached, then attached with its new bound
    (ATTACH checks the rows; no data is rewritten or lost)."""
    label = part.describe()
    row = part._catalog(conn)
    if row is None:
        create, undo = statements(part), statements(part, drop=True)
        return Finding("create", part.kind, label, lines, create=create, undo=undo, obj=part)
    parent = qualified_text(part.parent_table.name, part.parent_table.schema)
    name = qualified_text(part.name, part.schema)
    dialect = pg_dialect()
    compiler = dialect.ddl_compiler(dialect, None)  # type: ignore[arg-type]
    attach = [_attach(part, part.bound_sql(compiler))]
    detach_new = [f"ALTER TABLE {parent} DETACH PARTITION {name}"]
    if row["parent"] is None:  # a plain table of that name: attach it as it is
        return Finding("replace", part.kind, label, lines, [], [], attach, detach_new, obj=part)
    old = conn.execute(text("SELECT CAST(:o AS regclass)::text"), {"o": row["parent"]}).scalar()
    detach = [f"ALTER TABLE {old} DETACH PARTITION {name}"]
    restore = [f"ALTER TABLE {old} ATTACH PARTITION {name} {row['bound']}"]
    return Finding(
        "replace", part.kind, label, lines, detach, restore, attach, detach_new, obj=part
    )


_DEPENDENTS = """
SELECT DISTINCT CASE WHEN d.classid = 'pg_rewrite'::regclass THEN 'pg_class'
                     ELSE d.classid::regclass::text END,
                CASE WHEN d.classid = 'pg_rewrite'::regclass THEN r.ev_class
                     ELSE d.objid END::bigint,
                d.refobjid::bigint
FROM pg_depend d LEFT JOIN pg_rewrite r ON d.classid = 'pg_rewrite'::regclass AND r.oid = d.objid
WHERE d.deptype = 'n' AND d.refobjid = ANY(CAST(:oids AS oid[]))
"""


def catalog_key(conn: Connection, obj: SchemaObject) -> tuple[str, int] | None:
    """``(catalog, oid)`` of ``obj`` in the database, or None (absent, or nothing depends)."""
    if isinstance(obj, Function):
        oid = obj._regprocedure(conn)
        return None if oid is None else ("pg_proc", int(oid))
    if isinstance(obj, Partition):
        oid = conn.execute(
            text("SELECT to_regclass(:n)::oid"), {"n": qualified_text(obj.name, obj.schema)}
        ).scalar()
        return None if oid is None else ("pg_class", int(oid))
    method = getattr(obj, "catalog_key", None)
    return None if method is None else method(conn)


def _dependents(conn: Connection, objects: list[SchemaObject], found: dict[int, Finding]) -> None:
    """Add declared objects that depend (per ``pg_depend``) on a replaced one: they are
    dropped before it and created again after it."""
    replaced = [o for o in objects if id(o) in found and found[id(o)].action == "replace"]
    if not replaced:
        return
    keys: dict[tuple[str, int], SchemaObject] = {}
    for obj in objects:
        key = catalog_key(conn, obj)
        if key is not None:
            keys[key] = obj
    queue = [catalog_key(conn, o) for o in replaced]
    seen: set[int] = set()
    while queue:
        oids = [k[1] for k in queue if k is not None and k[1] not in seen]
        seen.update(oids)
        queue = []
        if not oids:
            break
        for cls, oid, ref in conn.execute(text(_DEPENDENTS), {"oids": oids}):
            dep = keys.get((cls, int(oid)))
            if dep is None or int(oid) == int(ref) or id(dep) in found:
                continue
            current = current_sql(conn, dep)
            drop = statements(dep, drop=True)
            create = statements(dep)
            if isinstance(dep, ViewBase):
                create += relation_grants(conn, dep.name, dep.schema)
            found[id(dep)] = Finding(
                "replace", dep.kind, dep.describe(), [], drop, current, create, drop, obj=dep
            )
            queue.append((cls, int(oid)))


def _table_indexes(conn: Connection, metadata: MetaData) -> list[Finding]:
    """Named indexes of the MetaData's tables, compared in full (method, operator classes,
    ``WITH`` options, predicate, uniqueness); missing ones are reported too."""
    result = []
    for table in metadata.sorted_tables:
        indexes = [i for i in table.indexes if i.name is not None]
        if not indexes:
            continue
        actual = index_definitions(conn, table.name, table.schema)
        if not actual and not _exists(conn, table):
            continue
        expected = expected_index_definitions(conn, table, indexes)
        declared = {str(i.name): i for i in indexes}
        for line in compare_indexes(f"table {table.fullname}", actual, expected):
            name = line.split(": index ", 1)[1].split(" ", 1)[0]
            if name not in declared:
                continue  # undeclared indexes: Alembic's own comparison reports them
            result.append(_index_finding(conn, table, declared[name], line, name in actual))
    return result


def _index_finding(conn: Connection, table: Table, index: Any, line: str, exists: bool) -> Finding:
    dialect = pg_dialect()
    create = [str(CreateIndex(index).compile(dialect=dialect)).strip()]
    drop = [str(DropIndex(index).compile(dialect=dialect)).strip()]
    label = f"index {index.name} on {table.fullname}"
    if not exists:
        return Finding("report", "index", label, [line], create=create, undo=drop, index=index.name)
    old = conn.execute(
        text("SELECT pg_get_indexdef(to_regclass(:n))"),
        {"n": qualified_text(str(index.name), table.schema)},
    ).scalar()
    return Finding(
        "replace", "index", label, [line], drop, [str(old)], create, drop, index=str(index.name)
    )


def _exists(conn: Connection, table: Table) -> bool:
    name = qualified_text(table.name, table.schema)
    return conn.execute(text("SELECT to_regclass(:n)"), {"n": name}).scalar() is not None
