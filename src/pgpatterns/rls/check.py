"""``check_rls``: find row-level security mistakes in a live database.

Examples:
    >>> from pgpatterns.rls import check_rls
    >>> with Session(engine) as session:  # doctest: +SKIP
    ...     assert check_rls(session) == [], check_rls(session)

Run it in your test suite against the migrated schema; every finding says what is wrong,
why it matters and how to fix it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table, literal_column, select, text
from sqlalchemy import table as table_clause
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from pgpatterns.ddl.base import regname
from pgpatterns.errors import ExplainError, RLSError
from pgpatterns.explain import Plan, explain
from pgpatterns.rls.check_tenant import TENANT_KINDS, tenant_findings

__all__ = ["KINDS", "Finding", "check_rls", "check_rls_async"]

KINDS = (
    "rls_disabled",
    "no_policies",
    "unindexed_policy_column",
    "per_row_function",
    "per_row_subquery",
    "view_without_security_invoker",
    "matview_over_rls",
    "partition_missing_policy",
    *TENANT_KINDS,
    "unchecked",
)
"""Every ``Finding.kind`` :func:`check_rls` can report."""


@dataclass(frozen=True)
class Finding:
    """One problem: ``kind`` (one of :data:`KINDS`), the relation, and an explanation.

    Examples:
        >>> str(Finding("no_policies", "app.docs", "RLS is on but no policy exists"))
        'no_policies: app.docs: RLS is on but no policy exists'
    """

    kind: str
    relation: str
    message: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.relation}: {self.message}"



_TABLES = text(
    "SELECT c.oid::bigint AS id, n.nspname AS schema, c.relname AS name, c.relispartition AS part,"
    " c.relrowsecurity AS rls, c.relforcerowsecurity AS force,"
    " pg_has_role(c.relowner, 'USAGE') AS owned,"
    " ARRAY(SELECT p.polname::text FROM pg_policy p WHERE p.polrelid = c.oid ORDER BY 1)"
    "   AS policies,"
    " ARRAY(SELECT DISTINCT r::regrole::text FROM pg_policy p, unnest(p.polroles) r"
    "       WHERE p.polrelid = c.oid AND r <> 0 ORDER BY 1) AS roles"
    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE c.relkind IN ('r', 'p')"
    " AND CASE WHEN CAST(:ids AS oid[]) IS NULL THEN n.nspname = ANY(CAST(:schemas AS text[]))"
    "  ELSE c.oid = ANY(CAST(:ids AS oid[])) END"
    " ORDER BY 2, 3"
)

_UNINDEXED = text(
    "SELECT DISTINCT p.polrelid::bigint AS id, a.attname AS col FROM pg_policy p"
    " JOIN pg_depend d ON d.classid = 'pg_policy'::regclass AND d.objid = p.oid"
    "  AND d.refclassid = 'pg_class'::regclass AND d.refobjid = p.polrelid"
    "  AND d.refobjsubid > 0"
    " JOIN pg_attribute a ON a.attrelid = p.polrelid AND a.attnum = d.refobjsubid"
    " WHERE p.polrelid = ANY(CAST(:ids AS oid[])) AND NOT EXISTS (SELECT FROM pg_index i"
    "  WHERE i.indrelid = p.polrelid AND i.indkey[0] = d.refobjsubid)"
    " ORDER BY 1, 2"
)

# Views and materialized views reaching (through other views) a table with RLS enabled.
_VIEWS = text(
    "WITH RECURSIVE deps AS ("
    "  SELECT DISTINCT r.ev_class AS view, d.refobjid AS rel FROM pg_rewrite r"
    "  JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid"
    "   AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> r.ev_class),"
    " reach AS (SELECT view, rel FROM deps"
    "  UNION SELECT r.view, d.rel FROM reach r JOIN deps d ON d.view = r.rel)"
    " SELECT v.oid::bigint AS id, n.nspname AS schema, v.relname AS name, v.relkind AS kind,"
    "  array_agg(DISTINCT t.oid::regclass::text) AS tables,"
    "  EXISTS (SELECT FROM unnest(coalesce(v.reloptions, '{}')) o WHERE lower(o) IN"
    "   ('security_invoker=true', 'security_invoker=on', 'security_invoker=yes',"
    "    'security_invoker=1')) AS invoker,"
    # a definer-rights door that is safe: a security_barrier view filtering by a setting
    "  (EXISTS (SELECT FROM unnest(coalesce(v.reloptions, '{}')) o WHERE lower(o) IN"
    "   ('security_barrier=true', 'security_barrier=on', 'security_barrier=yes',"
    "    'security_barrier=1'))"
    "   AND pg_get_viewdef(v.oid) LIKE '%current_setting(%') AS filtered,"
    # who may read it directly: PUBLIC or any role the RLS tables' policies name
    "  has_table_privilege('public', v.oid, 'SELECT') OR EXISTS (SELECT FROM pg_policy p,"
    "   unnest(p.polroles) r WHERE p.polrelid = ANY(array_agg(DISTINCT t.oid)) AND r <> 0"
    "   AND has_table_privilege(r, v.oid, 'SELECT')) AS readable"
    " FROM reach JOIN pg_class v ON v.oid = reach.view"
    " JOIN pg_namespace n ON n.oid = v.relnamespace"
    " JOIN pg_class t ON t.oid = reach.rel AND t.relkind IN ('r', 'p') AND t.relrowsecurity"
    " WHERE v.relkind IN ('v', 'm') AND CASE WHEN CAST(:ids AS oid[]) IS NULL"
    "  THEN n.nspname = ANY(CAST(:schemas AS text[]))"
    "  ELSE t.oid = ANY(CAST(:ids AS oid[])) END"
    " GROUP BY v.oid, n.nspname, v.relname, v.relkind, v.reloptions ORDER BY 2, 3"
)

_PARTITIONS = text(
    "SELECT c.oid::bigint AS id, i.inhparent::regclass::text AS parent, c.relrowsecurity AS rls,"
    " ARRAY(SELECT pp.polname::text FROM pg_policy pp WHERE pp.polrelid = i.inhparent"
    "  AND NOT EXISTS (SELECT FROM pg_policy cp WHERE cp.polrelid = c.oid"
    "   AND cp.polname = pp.polname AND cp.polcmd = pp.polcmd"
    "   AND cp.polroles = pp.polroles AND cp.polpermissive = pp.polpermissive"
    "   AND pg_get_expr(cp.polqual, cp.polrelid) IS NOT DISTINCT FROM"
    "       pg_get_expr(pp.polqual, pp.polrelid)"
    "   AND pg_get_expr(cp.polwithcheck, cp.polrelid) IS NOT DISTINCT FROM"
    "       pg_get_expr(pp.polwithcheck, pp.polrelid))"
    "  ORDER BY 1) AS missing"
    " FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
    " WHERE c.oid = ANY(CAST(:ids AS oid[]))"
    "  AND EXISTS (SELECT FROM pg_policy WHERE polrelid = i.inhparent)"
)

_BYPASS = text(
    "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user"
)

# Plan text: string literals, casts (with type modifiers), then name( = a function call.
_LITERAL = re.compile(r"'(?:[^']|'')*'")
_CAST = re.compile(
    r'::(?:"[^"]+"|[\w.]+)(?:\s+(?:varying|precision|with|without|time|zone))*'
    r"(?:\(\d+(?:,\s*\d+)?\))?(?:\[\])*"
)
_CALL = re.compile(r'("(?:[^"]|"")+"|[A-Za-z_][\w$]*)(?:\.("(?:[^"]|"")+"|[A-Za-z_][\w$]*))?\(')
_PER_ROW_SUBPLAN = re.compile(r"(?<!hashed )SubPlan \d+")
_NO_INDEX_SCANS = {"enable_indexscan": "off", "enable_bitmapscan": "off",
                   "enable_indexonlyscan": "off"}


def check_rls(
    session: Session | Connection,
    tables: Iterable[Table | str] | None = None,
    *,
    schemas: Sequence[str] | None = None,
    role: str | None = None,
    plans: bool = True,
) -> list[Finding]:
    """Row-level security findings for ``tables`` (default: every table of ``schemas``).

    Examples:
        >>> [f.kind for f in check_rls(session, [docs])]  # doctest: +SKIP
        ['unindexed_policy_column']

    What is reported (``Finding.kind``):

    * ``rls_disabled``: the table has policies, but RLS is off, so they do nothing;
    * ``no_policies``: RLS is on but no policy exists (no role other than the owner sees a
      row; usually a forgotten policy);
    * ``unindexed_policy_column``: a column a policy reads has no index leading with it;
    * ``per_row_function`` / ``per_row_subquery``: the plan of ``SELECT ... FROM table``,
      taken with ``EXPLAIN (VERBOSE)`` as the policy's role, evaluates a function call or a
      correlated subquery of the policy for every row (wrap it: ``initplan(...)``);
    * ``view_without_security_invoker`` / ``matview_over_rls``: a view (directly or
      through other views) or materialized view reads an RLS table with its owner's rights;
    * ``partition_missing_policy``: a partition lacks RLS or one of its parent's policies,
      so querying the partition directly bypasses them;
    * ``rls_not_forced``: RLS is on but not forced and a role its policies name owns the
      table, so that role sees every row;
    * ``fk_without_tenant``: a foreign key between two tables whose policies read the same
      (tenant) column does not include it, so a row can reference another tenant's row;
    * ``unprotected_reference``: a table without RLS references an RLS table (a link
      table or copy every tenant reads and writes);
    * ``definer_function_reads_rls``: a ``SECURITY DEFINER`` function the application role
      may execute reads an RLS table with an owner's rights that bypass the policies;
    * ``trigger_reads_under_rls``: a trigger function without ``SECURITY DEFINER`` reads an
      RLS table, so its checks and updates see only the invoker's rows;
    * ``unchecked``: a plan could not be taken as ``role``.

    Args:
        session: A ``Session`` or ``Connection`` (:func:`check_rls_async` for asyncio).
        tables: ``Table`` objects or ``"schema.name"`` strings to check.
        schemas: Without ``tables``: the schemas to scan (default ``current_schema()``).
        role: The role to plan as. Default: the current role unless it bypasses RLS
            (superuser, ``BYPASSRLS``, or owner without FORCE), else the first role the
            table's policies name (the current role must be allowed to ``SET ROLE``).
        plans: Set ``False`` to skip the ``EXPLAIN`` checks.

    Warning:
        Plans are taken with index scans disabled (inside a rolled-back savepoint) so every
        policy condition shows as a per-row filter; a function call left in it is one the
        planner did not turn into an initPlan. ``EXPLAIN`` does not run the query.
    """
    conn = session.connection() if isinstance(session, Session) else session
    if not isinstance(conn, Connection):
        raise RLSError(
            f"check_rls() takes a Session or Connection, got {type(session).__name__}; use "
            "check_rls_async() for AsyncSession/AsyncConnection."
        )
    if schemas is not None and (isinstance(schemas, str) or not isinstance(
            schemas, (list, tuple)) or not all(isinstance(x, str) for x in schemas)):
        raise RLSError(f"check_rls(): schemas must be a list of schema names, got {schemas!r}.")
    if role is not None and (not isinstance(role, str) or not role):
        raise RLSError(f"check_rls(): role must be a role name, got {role!r}.")
    ids = _resolve(conn, tables)
    params: dict[str, Any] = {"ids": ids, "schemas": None}
    if ids is None:
        params["schemas"] = list(schemas) if schemas else [
            conn.execute(text("SELECT current_schema()")).scalar_one()
        ]
    rows = [dict(r) for r in conn.execute(_TABLES, params).mappings()]
    names = {r["id"]: _qualified(r["schema"], r["name"]) for r in rows}
    findings = [f for r in rows for f in _table_findings(r, names[r["id"]])]
    all_ids = list(names)
    for u in conn.execute(_UNINDEXED, {"ids": all_ids}).mappings():
        findings.append(Finding("unindexed_policy_column", names[u["id"]], (
            f"a policy reads column {u['col']} but no index leads with it: every query "
            f"filters the whole table; CREATE INDEX ON ... ({u['col']})."
        )))
    for p in conn.execute(_PARTITIONS, {"ids": all_ids}).mappings():
        problems = [] if p["rls"] else ["row-level security is disabled"]
        if p["missing"]:
            problems.append(f"policies {', '.join(p['missing'])} are missing or differ")
        if problems:
            findings.append(Finding("partition_missing_policy", names[p["id"]], (
                f"partition of {p['parent']}: {'; '.join(problems)}; a query on the "
                "partition itself applies only its own policies. Copy them "
                "(for_partitions()) to every partition."
            )))
    findings.extend(_view_findings(conn, params))
    findings.extend(Finding(*f) for f in tenant_findings(conn, all_ids, names))
    if plans:
        bypass = bool(conn.execute(_BYPASS).scalar())
        for r in rows:
            if r["rls"] and r["policies"]:
                findings.extend(_plan_findings(conn, r, names[r["id"]], role, bypass))
    return findings


async def check_rls_async(
    session: AsyncSession | AsyncConnection,
    tables: Iterable[Table | str] | None = None,
    **kw: Any,
) -> list[Finding]:
    """The asyncio twin of :func:`check_rls` (same arguments).

    Examples:
        >>> findings = await check_rls_async(session)  # doctest: +SKIP

    The checks are a sequence of catalog reads and plans with decisions in between, so this
    runs :func:`check_rls` through ``run_sync`` rather than duplicating it.
    """
    wanted = list(tables) if tables is not None else None
    if isinstance(session, (AsyncSession, AsyncConnection)):
        return await session.run_sync(lambda s: check_rls(s, wanted, **kw))
    raise RLSError(
        f"check_rls_async() takes an AsyncSession or AsyncConnection, got "
        f"{type(session).__name__}; use check_rls() for Session/Connection."
    )


def _table_findings(r: Mapping[str, Any], name: str) -> Iterator[Finding]:
    if r["policies"] and not r["rls"]:
        yield Finding("rls_disabled", name, (
            f"policies {', '.join(r['policies'])} exist but row-level security is "
            "disabled, so they are ignored and every role sees every row; run ALTER "
            "TABLE ... ENABLE ROW LEVEL SECURITY (enable_rls(table))."
        ))
    elif r["rls"] and not r["policies"] and not r["part"]:
        yield Finding("no_policies", name, (
            "row-level security is enabled but there is no policy, so only the owner "
            "(and superusers) see rows; add a policy for the application role, or "
            "disable RLS if the table is owner-only."
        ))


def _qualified(schema: str, name: str) -> str:
    return f"{schema}.{name}"


def _resolve(conn: Connection, tables: Iterable[Table | str] | None) -> list[int] | None:
    if tables is None:
        return None
    if isinstance(tables, (str, Table)) or not isinstance(tables, Iterable):
        raise RLSError(
            f"check_rls(): tables must be a list of Table objects or names, got {tables!r}."
        )
    wanted: list[str] = []
    for t in tables:
        if isinstance(t, Table):
            wanted.append(regname(t.name, t.schema))
        elif isinstance(t, str) and t:
            wanted.append(t)
        else:
            raise RLSError(f"check_rls(): tables must be Table objects or names, got {t!r}.")
    stmt: Any = text(
        "SELECT n, to_regclass(n)::oid::bigint FROM unnest(CAST(:names AS text[])) WITH ORDINALITY"
        " AS u(n, i) ORDER BY i"
    )
    found = conn.execute(stmt, {"names": wanted}).all()
    missing = [n for n, oid in found if oid is None]
    if missing:
        raise RLSError(
            f"check_rls(): no table {', '.join(missing)} (on the search_path); create it "
            "first or fix the name."
        )
    return [int(oid) for _, oid in found]


def _view_findings(conn: Connection, params: Mapping[str, Any]) -> Iterator[Finding]:
    for r in conn.execute(_VIEWS, params).mappings():
        name, tables = _qualified(r["schema"], r["name"]), ", ".join(sorted(r["tables"]))
        if r["kind"] == "m" and r["readable"]:
            yield Finding("matview_over_rls", name, (
                f"materialized view over {tables} (row-level security) that the application "
                "role may read: it is filled with its owner's rights, so every reader sees "
                "every row; revoke SELECT on it and read it through a tenant-filtered view "
                "(views.tenant_materialized_view())."
            ))
        elif r["kind"] == "v" and not r["invoker"] and not r["filtered"]:
            yield Finding("view_without_security_invoker", name, (
                f"reads {tables} (row-level security) with its owner's rights, who bypasses "
                "the policies, so every reader sees every row; ALTER VIEW ... SET "
                "(security_invoker = true) (rls_view() does this)."
            ))


def _plan_findings(
    conn: Connection, row: Mapping[str, Any], name: str, role: str | None, bypass: bool
) -> Iterator[Finding]:
    target = role
    if target is None and (bypass or (row["owned"] and not row["force"])):
        if not row["roles"]:
            yield Finding("unchecked", name, (
                "the current role bypasses row-level security and the policies name no "
                "role to plan as; pass role= or connect as the application role."
            ))
            return
        target = row["roles"][0]
    settings: dict[str, str] = dict(_NO_INDEX_SCANS)
    if target is not None:
        settings["role"] = target
    relation = table_clause(row["name"], schema=row["schema"])
    stmt: Select[Any] = select(literal_column("1")).select_from(relation)
    try:
        plan = explain(conn, stmt, verbose=True, settings=settings)
    except (ExplainError, DBAPIError) as exc:
        yield Finding("unchecked", name, (
            f"could not plan as role {target!r} ({str(exc).splitlines()[0]}); connect as a "
            "member of that role or pass role=."
        ))
        return
    calls, subplans = _per_row(plan)
    if calls:
        yield Finding("per_row_function", name, (
            f"the policy calls {', '.join(calls)} for every row (plan filter); wrap the call "
            "so it runs once per statement: (SELECT f()) / initplan(func.f()), or use "
            "current_tenant()/current_user_id()."
        ))
    if subplans:
        yield Finding("per_row_subquery", name, (
            "the policy runs a correlated subquery for every row (a join back to the row); "
            "write it as column IN (SELECT ... WHERE user = (SELECT ...)) (member_of())."
        ))


def _per_row(plan: Plan) -> tuple[list[str], bool]:
    """Function calls and correlated subplans in per-row filters (InitPlans excluded)."""
    calls: list[str] = []
    subplan = False
    stack = [plan.root]
    while stack:
        node = stack.pop()
        if node.get("Parent Relationship") == "InitPlan":
            continue  # evaluated once per statement
        for key in ("Filter", "Join Filter"):
            cond = node.get(key)
            if not isinstance(cond, str):
                continue
            bare = _CAST.sub("", _LITERAL.sub("''", cond))
            for match in _CALL.finditer(bare):
                word = match.group(2) or match.group(1)
                if word.isupper() and not word.startswith('"'):
                    continue  # NULLIF(, COALESCE(, ANY (: SQL syntax, not a call
                called = match.group(0)[:-1]
                if called not in calls:
                    calls.append(called)
            subplan = subplan or bool(_PER_ROW_SUBPLAN.search(bare))
        stack.extend(node.get("Plans", ()))
    return calls, subplan
