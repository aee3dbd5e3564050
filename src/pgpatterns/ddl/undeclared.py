"""Objects the database has but the MetaData does not declare (part of :func:`compare`).

Examples:
    >>> from pgpatterns.ddl.undeclared import undeclared
    >>> [f.label for f in undeclared(conn, metadata, attached(metadata))]  # doctest: +SKIP
    ['policy open on items']

On the MetaData's tables: policies and triggers (not internal ones: foreign keys). In its
schemas (``None`` meaning the connection's current schema): views, materialized views and
functions that belong to no extension. A permissive policy nobody declared opens a table,
so it is a finding like any other. Partitions nobody declared are left alone (they are
often created at run time) and never dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from sqlalchemy import Connection, MetaData, text

from pgpatterns.ddl.base import SchemaObject, pg_dialect, qualified_text, relation_grants
from pgpatterns.ddl.function import Function
from pgpatterns.ddl.policy import Policy, policy_sql
from pgpatterns.ddl.trigger import Trigger
from pgpatterns.ddl.view import ViewBase

if TYPE_CHECKING:
    from pgpatterns.ddl.compare import Finding

__all__ = ["undeclared"]

_POLICIES = (
    "SELECT m.n, p.polname AS name, p.polcmd AS command, p.polpermissive AS permissive,"
    " ARRAY(SELECT CASE WHEN r = 0 THEN 'public' ELSE r::regrole::text END"
    "       FROM unnest(p.polroles) r ORDER BY 1) AS roles,"
    " pg_get_expr(p.polqual, p.polrelid) AS using,"
    " pg_get_expr(p.polwithcheck, p.polrelid) AS with_check"
    " FROM unnest(CAST(:names AS text[])) AS m(n)"
    " JOIN pg_policy p ON p.polrelid = to_regclass(m.n) ORDER BY 1, 2"
)
_TRIGGERS = (
    "SELECT m.n, t.tgname, pg_get_triggerdef(t.oid)"
    " FROM unnest(CAST(:names AS text[])) AS m(n) JOIN pg_trigger t"
    " ON t.tgrelid = to_regclass(m.n) AND NOT t.tgisinternal ORDER BY 1, 2"
)
_RELATIONS = """
SELECT c.oid, c.relname, c.relkind, coalesce(c.reloptions, '{}'), pg_get_viewdef(c.oid),
       EXISTS (SELECT 1 FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
               WHERE d.refobjid = c.oid AND d.classid = 'pg_rewrite'::regclass
               AND r.ev_class <> c.oid)
FROM pg_class c WHERE c.relnamespace = to_regnamespace(:s) AND c.relkind IN ('v', 'm')
AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.objid = c.oid AND e.deptype = 'e')
ORDER BY c.oid DESC
"""
_FUNCTIONS = """
SELECT p.oid, quote_ident(n.nspname) || '.' || quote_ident(p.proname)
       || '(' || pg_get_function_identity_arguments(p.oid) || ')', pg_get_functiondef(p.oid),
       EXISTS (SELECT 1 FROM pg_depend d WHERE d.refobjid = p.oid AND d.deptype = 'n')
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE p.pronamespace = to_regnamespace(:s) AND p.prokind = 'f'
AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.objid = p.oid AND e.deptype = 'e')
ORDER BY p.oid DESC
"""


def undeclared(
    conn: Connection, metadata: MetaData, objects: Iterable[SchemaObject]
) -> list[Finding]:
    """Findings (``drop``, or ``report`` when something depends on it) for what the
    database has on the MetaData's tables and in its schemas but nothing declares."""
    from pgpatterns.ddl.compare import Finding

    objects = list(objects)
    prep = pg_dialect().identifier_preparer
    result: list[Finding] = []
    tables = {qualified_text(t.name, t.schema): t for t in metadata.sorted_tables}
    names = {"names": list(tables)}
    declared = {
        (o.kind, o.table.name, o.table.schema, o.name)
        for o in objects
        if isinstance(o, (Policy, Trigger))
    }
    for row in conn.execute(text(_POLICIES), names):
        table = tables[row.n]
        if ("policy", table.name, table.schema, row.name) in declared:
            continue
        where = f"on {table.fullname}"
        drop = [f"DROP POLICY {prep.quote(row.name)} ON {prep.format_table(table)}"]
        line = f"policy {row.name} {where} is in the database but not declared"
        restore = [policy_sql(conn, row.name, table, dict(row._mapping))]
        label = f"policy {row.name} {where}"
        result.append(Finding("drop", "policy", label, [line], drop, restore))
    for n, name, definition in conn.execute(text(_TRIGGERS), names):
        table = tables[n]
        if ("trigger", table.name, table.schema, name) in declared:
            continue
        where = f"on {table.fullname}"
        drop = [f"DROP TRIGGER {prep.quote(name)} ON {prep.format_table(table)}"]
        line = f"trigger {name} {where} is in the database but not declared ({definition})"
        label = f"trigger {name} {where}"
        result.append(Finding("drop", "trigger", label, [line], drop, [definition]))
    for schema in _schemas(conn, metadata, objects):
        result += _relations(conn, schema, objects)
        result += _functions(conn, schema, objects)
    return result


def _schemas(conn: Connection, metadata: MetaData, objects: list[SchemaObject]) -> list[str]:
    current = str(conn.execute(text("SELECT current_schema()")).scalar())
    found = [t.schema for t in metadata.tables.values()]
    found += [o.schema for o in objects if o.kind != "extension"]
    return sorted({s or current for s in found})


def _relations(conn: Connection, schema: str, objects: list[SchemaObject]) -> list[Finding]:
    from pgpatterns.ddl.compare import Finding

    declared = {(o.schema or None, o.name) for o in objects if isinstance(o, ViewBase)}
    current = str(conn.execute(text("SELECT current_schema()")).scalar())
    result = []
    for oid, name, kind, options, definition, used in conn.execute(text(_RELATIONS), {"s": schema}):
        if (schema, name) in declared or (schema == current and (None, name) in declared):
            continue
        what = "MATERIALIZED VIEW" if kind == "m" else "VIEW"
        label = f"{what.lower()} {schema}.{name}"
        target = qualified_text(name, schema)
        line = f"{label} is in the database but not declared"
        if used:
            result.append(Finding("report", what.lower(), label, [line + " (others depend on it)"]))
            continue
        opts = f" WITH ({', '.join(options)})" if options else ""
        restore = [f"CREATE {what} {target}{opts} AS {str(definition).strip().rstrip(';')}"]
        restore += _index_sql(conn, oid) + relation_grants(conn, name, schema)
        drop = [f"DROP {what} {target}"]
        result.append(Finding("drop", what.lower(), label, [line], drop, restore))
    return result


def _index_sql(conn: Connection, oid: int) -> list[str]:
    query = "SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = :o ORDER BY 1"
    return [str(s) for s in conn.execute(text(query), {"o": oid}).scalars()]


def _functions(conn: Connection, schema: str, objects: list[SchemaObject]) -> list[Finding]:
    from pgpatterns.ddl.compare import Finding

    declared = {o._regprocedure(conn) for o in objects if isinstance(o, Function)}
    result = []
    for oid, signature, definition, used in conn.execute(text(_FUNCTIONS), {"s": schema}):
        if oid in declared:
            continue
        label = f"function {signature}"
        line = f"{label} is in the database but not declared"
        if used:
            result.append(Finding("report", "function", label, [line + " (others depend on it)"]))
            continue
        drop = [f"DROP FUNCTION {signature}"]
        result.append(Finding("drop", "function", label, [line], drop, [str(definition).strip()]))
    return result
