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
    "SELECT p.polname AS name, p.polcmd AS command, p.polpermissive AS permissive,"
    " ARRAY(SELECT CASE WHEN r = 0 THEN 'public' ELSE r::regrole::text END"
    "       FROM unnest(p.polroles) r ORDER BY 1) AS roles,"
    " pg_get_expr(p.polqual, p.polrelid) AS using,"
    " pg_get_expr(p.polwithcheck, p.polrelid) AS with_check"
    " FROM pg_policy p WHERE p.polrelid = to_regclass(:t) ORDER BY 1"
)
_TRIGGERS = (
    "SELECT t.tgname, pg_get_triggerdef(t.oid) FROM pg_trigger t"
    " WHERE t.tgrelid = to_regclass(:t) AND NOT t.tgisinternal ORDER BY 1"
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
    for table in metadata.sorted_tables:
        on = prep.format_table(table)
        where = f"on {table.fullname}"
        policies = {o.name for o in objects if isinstance(o, Policy) and o.table is table}
        for row in conn.execute(text(_POLICIES), {"t": qualified_text(table.name, table.schema)}):
            if row.name in policies:
                continue
            found = dict(row._mapping)
            drop = [f"DROP POLICY {prep.quote(row.name)} ON {on}"]
            line = f"policy {row.name} {where} is in the database but not declared"
            restore = [policy_sql(conn, row.name, table, found)]
            result.append(
                Finding("drop", "policy", f"policy {row.name} {where}", [line], drop, restore)
            )
        triggers = {o.name for o in objects if isinstance(o, Trigger) and o.table is table}
        for name, definition in conn.execute(
            text(_TRIGGERS), {"t": qualified_text(table.name, table.schema)}
        ):
            if name in triggers:
                continue
            drop = [f"DROP TRIGGER {prep.quote(name)} ON {on}"]
            line = f"trigger {name} {where} is in the database but not declared ({definition})"
            result.append(
                Finding("drop", "trigger", f"trigger {name} {where}", [line], drop, [definition])
            )
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
