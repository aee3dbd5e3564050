"""``check_rls``'s composition checks: where tenants leak at the seams between patterns.

Examples:
    >>> from pgpatterns.rls import check_rls
    >>> [f.kind for f in check_rls(session)]  # doctest: +SKIP
    ['fk_without_tenant', 'unprotected_reference']

Each check is one catalog query over the tables :func:`~pgpatterns.rls.check_rls` was asked
about; nothing is planned or executed. "Tenant column" means a column that a policy of the
table reads (``pg_depend`` records it), so the checks hold for any policy shape, not only
``TenantScoped``'s.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from sqlalchemy import Connection, text

__all__ = ["TENANT_KINDS", "tenant_findings"]

TENANT_KINDS = (
    "rls_not_forced",
    "fk_without_tenant",
    "unprotected_reference",
    "definer_function_reads_rls",
    "trigger_reads_under_rls",
)

_POLICY_COLUMNS = (
    "pol_cols AS (SELECT DISTINCT p.polrelid AS rel, a.attname::text AS col FROM pg_policy p"
    " JOIN pg_depend d ON d.classid = 'pg_policy'::regclass AND d.objid = p.oid"
    "  AND d.refclassid = 'pg_class'::regclass AND d.refobjid = p.polrelid"
    "  AND d.refobjsubid > 0"
    " JOIN pg_attribute a ON a.attrelid = p.polrelid AND a.attnum = d.refobjsubid)"
)
_FKS = (
    "fks AS (SELECT f.conname::text AS name, f.conrelid, f.confrelid,"
    " ARRAY(SELECT a.attname::text FROM unnest(f.conkey) k"
    "  JOIN pg_attribute a ON a.attrelid = f.conrelid AND a.attnum = k) AS cols,"
    " ARRAY(SELECT a.attname::text FROM unnest(f.confkey) k"
    "  JOIN pg_attribute a ON a.attrelid = f.confrelid AND a.attnum = k) AS refcols"
    " FROM pg_constraint f WHERE f.contype = 'f' AND f.conparentid = 0)"
)
# The roles a table's policies name: the application roles whose view of it matters.
_ROLES = (
    "ARRAY(SELECT DISTINCT r FROM pg_policy pp, unnest(pp.polroles) r"
    " WHERE pp.polrelid = c.oid AND r <> 0)"
)

# The queries below join constant fragments of this module (no value, no identifier).
_NOT_FORCED = text(
    "SELECT c.oid::bigint AS id, array_agg(DISTINCT r.rolname::text) AS roles"  # noqa: S608 (constant fragments)
    " FROM pg_class c, unnest(" + _ROLES + ") pr JOIN pg_roles r ON r.oid = pr"
    " WHERE c.oid = ANY(CAST(:ids AS oid[])) AND c.relrowsecurity"
    "  AND NOT c.relforcerowsecurity AND pg_has_role(r.oid, c.relowner, 'USAGE')"
    " GROUP BY 1 ORDER BY 1"
)

_FK_WITHOUT_TENANT = text(
    "WITH " + _POLICY_COLUMNS + ", " + _FKS +  # noqa: S608 (constant fragments)
    " SELECT f.conrelid::bigint AS id, f.name, f.confrelid::regclass::text AS parent,"
    "  t.col FROM fks f"
    " JOIN pol_cols t ON t.rel = f.conrelid"
    " JOIN pol_cols t2 ON t2.rel = f.confrelid AND t2.col = t.col"
    " WHERE f.conrelid = ANY(CAST(:ids AS oid[])) AND NOT (t.col = ANY(f.cols))"
    "  AND NOT EXISTS (SELECT FROM fks g WHERE g.conrelid = f.conrelid"
    "   AND g.confrelid = f.confrelid AND g.cols @> (f.cols || t.col)"
    "   AND g.refcols @> (f.refcols || t.col))"
    " ORDER BY 1, 2"
)

_UNPROTECTED = text(
    "WITH " + _FKS +  # noqa: S608 (constant fragments)
    " SELECT f.conrelid::bigint AS id, array_agg(DISTINCT p.oid::regclass::text) AS parents"
    " FROM fks f JOIN pg_class c ON c.oid = f.conrelid"
    " JOIN pg_class p ON p.oid = f.confrelid"
    " WHERE f.conrelid = ANY(CAST(:ids AS oid[])) AND NOT c.relrowsecurity"
    "  AND NOT c.relispartition AND p.relrowsecurity"
    "  AND EXISTS (SELECT FROM pg_policy WHERE polrelid = p.oid)"
    " GROUP BY 1 ORDER BY 1"
)

# Functions named in another function's body cannot be tracked by pg_depend (plpgsql bodies
# are text), so these two checks look for the table's name in the body: a heuristic that
# errs on the side of reporting.
_DEFINER = text(
    "SELECT p.oid::regprocedure::text AS fn, array_agg(DISTINCT c.oid::regclass::text) AS tables,"  # noqa: S608 (constant fragments)
    " array_agg(DISTINCT r.rolname::text) AS roles"
    " FROM pg_class c JOIN pg_proc p ON p.prosecdef AND p.prokind = 'f'"
    "  AND p.prorettype <> 'trigger'::regtype"
    "  AND strpos(lower(p.prosrc), lower(c.relname::text)) > 0"
    " CROSS JOIN LATERAL unnest(" + _ROLES + ") pr JOIN pg_roles r ON r.oid = pr"
    " JOIN pg_roles o ON o.oid = p.proowner"
    " WHERE c.oid = ANY(CAST(:ids AS oid[])) AND c.relrowsecurity"
    "  AND has_function_privilege(r.oid, p.oid, 'EXECUTE')"
    "  AND (o.rolsuper OR o.rolbypassrls"
    "       OR (pg_has_role(o.oid, c.relowner, 'USAGE') AND NOT c.relforcerowsecurity))"
    " GROUP BY 1 ORDER BY 1"
)

_INVOKER_TRIGGERS = text(
    "SELECT tg.tgrelid::bigint AS id, tg.tgname::text AS trigger, p.oid::regprocedure::text"
    "  AS fn, array_agg(DISTINCT c.oid::regclass::text) AS tables"
    " FROM pg_trigger tg JOIN pg_proc p ON p.oid = tg.tgfoid AND NOT p.prosecdef"
    " JOIN pg_language l ON l.oid = p.prolang AND l.lanname IN ('plpgsql', 'sql')"
    " JOIN pg_class c ON c.relrowsecurity AND c.relkind IN ('r', 'p')"
    "  AND c.relnamespace = (SELECT relnamespace FROM pg_class WHERE oid = tg.tgrelid)"
    "  AND strpos(lower(p.prosrc), lower(c.relname::text)) > 0"
    " WHERE tg.tgrelid = ANY(CAST(:ids AS oid[])) AND NOT tg.tgisinternal"
    " GROUP BY 1, 2, 3 ORDER BY 1, 2"
)


def tenant_findings(
    conn: Connection, ids: list[int], names: Mapping[int, str]
) -> Iterator[tuple[str, str, str]]:
    """``(kind, relation, message)`` for every composition problem among ``ids``."""
    params: dict[str, Any] = {"ids": ids}
    for r in conn.execute(_NOT_FORCED, params).mappings():
        yield "rls_not_forced", names[r["id"]], (
            f"row-level security is enabled but not forced, and role(s) "
            f"{', '.join(r['roles'])} named by its policies own the table (or are members "
            "of its owner), so for them the policies do nothing: they see every tenant. "
            "ALTER TABLE ... FORCE ROW LEVEL SECURITY (enable_rls(table, force=True)), or "
            "connect the application as a role that does not own the table."
        )
    for r in conn.execute(_FK_WITHOUT_TENANT, params).mappings():
        yield "fk_without_tenant", names[r["id"]], (
            f"foreign key {r['name']} references {r['parent']} without {r['col']}: foreign "
            "keys are checked without row-level security, so a row can point at another "
            f"tenant's row. Add FOREIGN KEY ({r['col']}, ...) REFERENCES {r['parent']} "
            f"({r['col']}, ...) (TenantScoped / secure_table() add it)."
        )
    for r in conn.execute(_UNPROTECTED, params).mappings():
        yield "unprotected_reference", names[r["id"]], (
            f"references {', '.join(r['parents'])} (row-level security) but has no "
            "row-level security itself: every role reads and deletes every tenant's rows "
            "in it (a link table, a copy). Give it the tenant column, composite keys and "
            "the policy (secure_table(), or association_table() between TenantScoped "
            "models)."
        )
    for r in conn.execute(_DEFINER, params).mappings():
        yield "definer_function_reads_rls", r["fn"], (
            f"SECURITY DEFINER function executable by {', '.join(r['roles'])} reads "
            f"{', '.join(r['tables'])} with the rights of an owner that bypasses row-level "
            "security: callers get every tenant's rows through it. REVOKE EXECUTE from the "
            "application role, or make it SECURITY INVOKER."
        )
    for r in conn.execute(_INVOKER_TRIGGERS, params).mappings():
        yield "trigger_reads_under_rls", names[r["id"]], (
            f"trigger {r['trigger']} ({r['fn']}) reads {', '.join(r['tables'])} with the "
            "invoker's rights, so it sees only the invoker's rows: a check that no other "
            "row exists (a cycle, a duplicate) or an update of other rows (a copy) misses "
            "other tenants' rows. Make the function SECURITY DEFINER with a pinned "
            "search_path (pgpatterns' trees and denormalize triggers are)."
        )
