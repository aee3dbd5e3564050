"""Security lints: row-level security (through ``check_rls``), policies, functions, extensions.

Examples:
    >>> from pgpatterns.doctor import doctor
    >>> [f.id for f in doctor(conn, lints=["always_true_policy"])]  # doctest: +SKIP
    ['always_true_policy']
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import text

from pgpatterns.doctor._model import IN_SCOPE, Context, Finding, lint
from pgpatterns.rls import check_rls

__all__ = ["MIN_PGVECTOR", "version_below"]

#: pgvector releases below this have a known vulnerability (a buffer overflow in parallel
#: HNSW index builds, fixed in 0.8.2).
MIN_PGVECTOR = (0, 8, 2)

_TABLE_NAMES = text(
    "SELECT n.nspname || '.' || c.relname AS raw, c.oid::regclass::text AS name"  # noqa: S608 (constant fragments)
    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE c.relkind IN ('r', 'p', 'v', 'm') AND " + IN_SCOPE
)

_POLICIES = text(
    "SELECT c.oid::regclass::text AS tbl, quote_ident(p.polname) AS name, p.polcmd::text AS cmd,"  # noqa: S608 (constant fragments)
    " p.polpermissive AS permissive,"
    " ARRAY(SELECT CASE WHEN r = 0 THEN 'public' ELSE r::regrole::text END"
    "  FROM unnest(p.polroles) r ORDER BY 1) AS roles,"
    " pg_get_expr(p.polqual, p.polrelid) AS qual,"
    " pg_get_expr(p.polwithcheck, p.polrelid) AS withcheck"
    " FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid"
    " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE " + IN_SCOPE + " ORDER BY 1, 2"
)

_POLICY_COLUMNS = text(
    "SELECT c.oid::regclass::text AS tbl, quote_ident(a.attname) AS col,"  # noqa: S608 (constant fragments)
    " array_agg(DISTINCT p.polname::text) AS policies"
    " FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid"
    " JOIN pg_namespace n ON n.oid = c.relnamespace"
    " JOIN pg_depend d ON d.classid = 'pg_policy'::regclass AND d.objid = p.oid"
    "  AND d.refclassid = 'pg_class'::regclass AND d.refobjid = p.polrelid"
    "  AND d.refobjsubid > 0"
    " JOIN pg_attribute a ON a.attrelid = p.polrelid AND a.attnum = d.refobjsubid"
    " WHERE " + IN_SCOPE + " AND NOT c.relispartition AND NOT EXISTS (SELECT FROM pg_index i"
    "  WHERE i.indrelid = p.polrelid AND i.indkey[0] = d.refobjsubid)"
    " GROUP BY 1, 2 ORDER BY 1, 2"
)

_DEFINER = text(
    "SELECT p.oid::regprocedure::text AS sig, p.proconfig AS config"
    " FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
    " WHERE p.prosecdef AND n.nspname = ANY(CAST(:schemas AS text[]))"
    " AND NOT EXISTS (SELECT FROM unnest(coalesce(p.proconfig, '{}')) s"
    "  WHERE s LIKE 'search\\_path=%')"
    " AND NOT EXISTS (SELECT FROM pg_depend e WHERE e.classid = 'pg_proc'::regclass"
    "  AND e.objid = p.oid AND e.deptype = 'e') ORDER BY 1"
)

_EXTENSIONS = text(
    "SELECT quote_ident(x.extname) AS name, x.extversion AS version,"
    " quote_ident(n.nspname) AS schema, x.extrelocatable AS relocatable,"
    " n.nspname = ANY(CAST(:schemas AS text[])) AS in_scope,"
    " has_schema_privilege('public', n.oid, 'CREATE') AS public_create"
    " FROM pg_extension x JOIN pg_namespace n ON n.oid = x.extnamespace"
    " WHERE x.extname <> 'plpgsql' ORDER BY 1"
)

_RLS_TITLES = {
    "policy_exists_rls_disabled": "policies exist but row-level security is disabled",
    "rls_enabled_no_policy": "row-level security enabled without any policy",
    "rls_not_forced": "row-level security not forced while a policy role owns the table",
    "view_without_security_invoker": "view reading RLS tables with its owner's rights",
    "matview_over_rls": "materialized view over RLS tables (every reader sees every row)",
    "partition_missing_policy": "partition without its parent's RLS or policies",
    "fk_without_tenant": "foreign key between tenant tables without the tenant column",
    "unprotected_reference": "table without RLS referencing an RLS table",
    "definer_function_reads_rls": "SECURITY DEFINER function the app role runs reads RLS tables",
    "trigger_reads_under_rls": "invoker-rights trigger reading RLS tables",
    "policy_per_row_call": "policy calls a function or subquery per row (plans; --plans)",
}

# check_rls kinds -> (doctor lint id, severity, pattern, fix template with {rel})
_RLS_KINDS: dict[str, tuple[str, str, str, str]] = {
    "rls_disabled": (
        "policy_exists_rls_disabled", "error", "pgpatterns.rls.enable_rls",
        "ALTER TABLE {rel} ENABLE ROW LEVEL SECURITY;"),
    "no_policies": (
        "rls_enabled_no_policy", "warning", "pgpatterns.rls.TenantScoped / policy",
        "-- CREATE POLICY ... ON {rel} ... (pgpatterns.rls.policy), or, if only the owner "
        "uses {rel}: ALTER TABLE {rel} DISABLE ROW LEVEL SECURITY;"),
    "rls_not_forced": (
        "rls_not_forced", "error", "pgpatterns.rls.enable_rls(force=True)",
        "ALTER TABLE {rel} FORCE ROW LEVEL SECURITY;"),
    "view_without_security_invoker": (
        "view_without_security_invoker", "error", "pgpatterns.rls.rls_view",
        "ALTER VIEW {rel} SET (security_invoker = true);"),
    "matview_over_rls": (
        "matview_over_rls", "error", "pgpatterns.views.tenant_materialized_view",
        "REVOKE ALL ON {rel} FROM PUBLIC;\n-- read it through "
        "pgpatterns.views.tenant_materialized_view's filtered view"),
    "partition_missing_policy": (
        "partition_missing_policy", "error", "pgpatterns.rls.for_partitions",
        "-- copy the parent's policies to {rel}: pgpatterns.rls.for_partitions(...)"),
    "fk_without_tenant": (
        "fk_without_tenant", "error", "pgpatterns.rls.tenant_foreign_key",
        "-- recreate the foreign key of {rel} with the tenant column first "
        "(pgpatterns.rls.tenant_foreign_key / ddl.CompositeForeignKey)"),
    "unprotected_reference": (
        "unprotected_reference", "warning", "pgpatterns.rls.TenantScoped",
        "-- make {rel} tenant-scoped (TenantScoped / secure_table), or declare it shared"),
    "definer_function_reads_rls": (
        "definer_function_reads_rls", "warning", "pgpatterns.ddl.Function (security_definer=False)",
        "-- make the function SECURITY INVOKER, or REVOKE EXECUTE ... FROM the app role"),
    "trigger_reads_under_rls": (
        "trigger_reads_under_rls", "warning", "pgpatterns.trees.tree_guard (definer trigger)",
        "-- make the trigger function SECURITY DEFINER with SET search_path = pg_catalog, "
        "pg_temp"),
    "per_row_function": (
        "policy_per_row_call", "warning", "pgpatterns.rls.initplan",
        "-- wrap the policy's function calls: (SELECT f()) (pgpatterns.rls.initplan)"),
    "per_row_subquery": (
        "policy_per_row_call", "warning", "pgpatterns.rls.initplan",
        "-- rewrite the policy's correlated subquery as an uncorrelated one "
        "(pgpatterns.rls.initplan)"),
}


def version_below(version: str, minimum: tuple[int, ...]) -> bool:
    """Whether a dotted ``version`` sorts before ``minimum``.

    Examples:
        >>> version_below("0.8.1", (0, 8, 2)), version_below("0.10.0", (0, 8, 2))
        (True, False)
    """
    parts = tuple(int(p) for p in re.findall(r"\d+", version)[:len(minimum)])
    return parts < minimum


def _rls(ctx: Context) -> list[Any]:
    if "check_rls" not in ctx.cache:
        ctx.cache["check_rls"] = check_rls(ctx.conn, schemas=list(ctx.schemas),
                                           plans=ctx.plans, role=ctx.role)
    return list(ctx.cache["check_rls"])


def _names(ctx: Context) -> dict[str, str]:
    return {r["raw"]: r["name"] for r in ctx.rows("table_names", _TABLE_NAMES)}


def _from_check_rls(lint_id: str, kinds: tuple[str, ...]
                    ) -> Callable[[Context], Iterator[Finding]]:
    def run(ctx: Context) -> Iterator[Finding]:
        names = _names(ctx)
        for f in _rls(ctx):
            if f.kind in kinds:
                rel = names.get(f.relation, f.relation)
                fix = _RLS_KINDS[f.kind][3].format(rel=rel)
                yield ctx.finding(lint_id, rel, f.message, {"check_rls": f.kind}, fix)
    return run


for _kind, (_id, _severity, _pattern, _) in _RLS_KINDS.items():
    if _id in ("policy_per_row_call",) and _kind != "per_row_function":
        continue
    _kinds = tuple(k for k, v in _RLS_KINDS.items() if v[0] == _id)
    lint(_id, _severity, _RLS_TITLES[_id], _pattern)(_from_check_rls(_id, _kinds))


@lint("multiple_permissive_policies", "warning",
      "several permissive policies for one role and command (each is evaluated, OR-ed)",
      "pgpatterns.rls.policy (one policy per role and command)")
def _multiple_permissive(ctx: Context) -> Iterator[Finding]:
    by_table: dict[str, dict[tuple[str, str], list[str]]] = {}
    for p in ctx.rows("policies", _POLICIES):
        if not p["permissive"]:
            continue
        cmds = "rawd" if p["cmd"] == "*" else p["cmd"]
        for role in p["roles"]:
            for cmd in cmds:
                by_table.setdefault(p["tbl"], {}).setdefault((role, cmd), []).append(p["name"])
    words = {"r": "SELECT", "a": "INSERT", "w": "UPDATE", "d": "DELETE"}
    for tbl, groups in by_table.items():
        overlaps = {f"{role} {words[cmd]}": names for (role, cmd), names in groups.items()
                    if len(names) > 1}
        if overlaps:
            yield ctx.finding(
                "multiple_permissive_policies", tbl,
                f"{tbl} has several permissive policies for "
                f"{', '.join(sorted(overlaps))}: each is evaluated for every row and OR-ed, "
                "so a query pays for all of them, and a loose one opens the others.",
                {"overlaps": dict(sorted(overlaps.items()))},
                "-- merge them into one policy per role and command "
                "(USING (a) OR (b)), or make the narrowing ones AS RESTRICTIVE",
            )


@lint("always_true_policy", "error", "permissive policy whose condition is always true",
      "pgpatterns.rls.TenantScoped / tenant_isolation")
def _always_true(ctx: Context) -> Iterator[Finding]:
    for p in ctx.rows("policies", _POLICIES):
        parts = [k for k in ("qual", "withcheck") if (p[k] or "").strip("() ") == "true"]
        if p["permissive"] and parts:
            what = " and ".join("USING" if k == "qual" else "WITH CHECK" for k in parts)
            yield ctx.finding(
                "always_true_policy", f"{p['tbl']}.{p['name']}",
                f"policy {p['name']} on {p['tbl']} has {what} (true) for "
                f"{', '.join(p['roles'])}: those roles see (or write) every row, as if "
                "there were no row-level security.",
                {"policy": p["name"], "roles": p["roles"], "cmd": p["cmd"],
                 "using": p["qual"], "with_check": p["withcheck"]},
                f"DROP POLICY {p['name']} ON {p['tbl']};\n-- and declare the tenant "
                "condition instead (pgpatterns.rls.tenant_isolation)",
            )


@lint("unindexed_policy_column", "warning", "column read by a policy without a leading index",
      "pgpatterns.rls.TenantScoped (the tenant index)")
def _policy_columns(ctx: Context) -> Iterator[Finding]:
    for r in ctx.rows("policy_columns", _POLICY_COLUMNS):
        yield ctx.finding(
            "unindexed_policy_column", f"{r['tbl']}.{r['col']}",
            f"policies {', '.join(sorted(r['policies']))} of {r['tbl']} read column "
            f"{r['col']} but no index leads with it: every query filters the whole table.",
            {"table": r["tbl"], "column": r["col"], "policies": sorted(r["policies"])},
            f"CREATE INDEX CONCURRENTLY ON {r['tbl']} ({r['col']});",
        )


@lint("definer_function_search_path", "error",
      "SECURITY DEFINER function without a pinned search_path",
      "pgpatterns.ddl.Function(security_definer=True, search_path=...)")
def _definer(ctx: Context) -> Iterator[Finding]:
    for r in ctx.rows("definer", _DEFINER):
        yield ctx.finding(
            "definer_function_search_path", r["sig"],
            f"{r['sig']} runs with its owner's rights and the caller's search_path: a caller "
            "who can create objects in a schema on that path can make it call theirs.",
            {"function": r["sig"], "proconfig": r["config"]},
            f"ALTER FUNCTION {r['sig']} SET search_path = pg_catalog, pg_temp;",
        )


@lint("extension_in_public", "warning",
      "extension in a schema every role may create objects in",
      "pgpatterns.ddl.Extension(schema=...)")
def _extensions(ctx: Context) -> Iterator[Finding]:
    for r in ctx.rows("extensions", _EXTENSIONS):
        if r["in_scope"] and r["public_create"]:
            yield ctx.finding(
                "extension_in_public", f"extension {r['name']}",
                f"extension {r['name']} lives in schema {r['schema']}, where every role may "
                "create objects: one can shadow its functions and operators for other users.",
                {"extension": r["name"], "schema": r["schema"], "public_create": True},
                (f"ALTER EXTENSION {r['name']} SET SCHEMA extensions;" if r["relocatable"]
                 else "-- reinstall the extension in a schema of its own")
                + f"\nREVOKE CREATE ON SCHEMA {r['schema']} FROM PUBLIC;",
            )


@lint("pgvector_outdated", "error", "pgvector older than 0.8.2 (known vulnerabilities)",
      "pgpatterns.vector.check_vector_setup")
def _pgvector(ctx: Context) -> Iterator[Finding]:
    for r in ctx.rows("extensions", _EXTENSIONS):
        # like every lint, only what lives in the schemas examined (the extension's schema)
        if r["in_scope"] and r["name"] == "vector" and version_below(r["version"], MIN_PGVECTOR):
            yield ctx.finding(
                "pgvector_outdated", "extension vector",
                f"pgvector {r['version']} is older than 0.8.2, which fixes a buffer overflow "
                "in parallel HNSW index builds; install 0.8.2 or later on the server.",
                {"version": r["version"], "minimum": ".".join(map(str, MIN_PGVECTOR))},
                "ALTER EXTENSION vector UPDATE;  -- after installing pgvector >= 0.8.2",
            )
