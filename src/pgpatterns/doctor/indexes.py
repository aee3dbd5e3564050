"""Index lints: unindexed foreign keys, duplicates, overlaps, invalid, unused, btree on arrays.

Examples:
    >>> from pgpatterns.doctor import doctor
    >>> [f.id for f in doctor(conn, lints=["duplicate_index"])]  # doctest: +SKIP
    ['duplicate_index']
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import text

from pgpatterns.doctor._model import IN_SCOPE, Context, Finding, lint

__all__ = ["fk_indexed", "foreign_keys", "indexes", "link_tables"]

# Every foreign key in scope with its columns, their types, the table's primary key and the
# columns its policies read (the tenant column).
_FKS = text(
    "SELECT con.oid::bigint AS oid, quote_ident(con.conname) AS name, c.oid::bigint AS rel,"  # noqa: S608 (constant fragments)
    " con.confrelid::bigint AS refrel, c.oid::regclass::text AS tbl,"
    " con.confrelid::regclass::text AS ref, con.conkey::int[] AS cols,"
    " ARRAY(SELECT quote_ident(a.attname) FROM unnest(con.conkey) WITH ORDINALITY k(n, i)"
    "  JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.i)"
    "  AS colnames,"
    " ARRAY(SELECT format_type(a.atttypid, a.atttypmod) FROM unnest(con.conkey)"
    "  WITH ORDINALITY k(n, i) JOIN pg_attribute a ON a.attrelid = con.conrelid"
    "  AND a.attnum = k.n ORDER BY k.i) AS types,"
    " ARRAY(SELECT format_type(a.atttypid, a.atttypmod) FROM unnest(con.confkey)"
    "  WITH ORDINALITY k(n, i) JOIN pg_attribute a ON a.attrelid = con.confrelid"
    "  AND a.attnum = k.n ORDER BY k.i) AS reftypes,"
    " ARRAY(SELECT DISTINCT d.refobjsubid::int FROM pg_policy p JOIN pg_depend d"
    "  ON d.classid = 'pg_policy'::regclass AND d.objid = p.oid"
    "  AND d.refclassid = 'pg_class'::regclass AND d.refobjid = p.polrelid"
    "  AND d.refobjsubid > 0 WHERE p.polrelid = c.oid) AS tenant_cols,"
    " (SELECT pk.conkey::int[] FROM pg_constraint pk"
    "  WHERE pk.conrelid = c.oid AND pk.contype = 'p') AS pk,"
    " EXISTS (SELECT FROM pg_trigger t WHERE t.tgrelid = c.oid AND NOT t.tgisinternal"
    "  AND (t.tgtype & 1) = 1 AND (t.tgtype & 16) = 16) AS row_update_trigger"
    " FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid"
    " JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE con.contype = 'f' AND con.conparentid = 0 AND " + IN_SCOPE + " ORDER BY 5, 2"
)

# Statistics through the functions the pg_stat_* views call (the views read every relation).
_INDEXES = text(
    "SELECT i.indexrelid::bigint AS oid, i.indexrelid::regclass::text AS name,"  # noqa: S608 (constant fragments)
    " c.oid::bigint AS rel, c.oid::regclass::text AS tbl, am.amname::text AS am,"
    " i.indisunique AS is_unique, i.indisprimary AS is_primary, i.indisvalid AS valid,"
    " string_to_array(i.indkey::text, ' ')::int[] AS keys, i.indnkeyatts AS nkeys,"
    " i.indclass::text AS opclasses, i.indcollation::text AS collations,"
    " i.indoption::text AS options, pg_get_expr(i.indexprs, i.indrelid) AS exprs,"
    " pg_get_expr(i.indpred, i.indrelid) AS pred,"
    " (i.indexrelid, i.indrelid) IN (SELECT k.conindid, k.conrelid FROM pg_constraint k"
    "  WHERE k.conindid <> 0) AS backs_constraint,"
    " ARRAY(SELECT quote_ident(a.attname) FROM unnest(i.indkey::int2[]) k(n)"
    "  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.n"
    "  JOIN pg_type ty ON ty.oid = a.atttypid WHERE ty.typcategory = 'A') AS array_cols,"
    " pg_stat_get_numscans(i.indexrelid) AS idx_scan,"
    " pg_stat_get_numscans(c.oid) AS seq_scan, c.relkind::text AS relkind"
    " FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid"
    " JOIN pg_namespace n ON n.oid = c.relnamespace"
    " JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam"
    " WHERE c.relkind IN ('r', 'p', 'm') AND " + IN_SCOPE + " ORDER BY 4, 2"
)

_DEFS = text(
    "SELECT i::bigint AS oid, pg_get_indexdef(i) AS def FROM unnest(CAST(:oids AS oid[])) i"
)

#: An index is "unused" only once its table has been read this often without it.
UNUSED_AFTER_READS = 100


def foreign_keys(ctx: Context) -> list[dict[str, Any]]:
    """The foreign keys in scope (one catalog query per run)."""
    return ctx.rows("fks", _FKS)


def indexes(ctx: Context) -> list[dict[str, Any]]:
    """The indexes of tables and materialized views in scope (with their tables' reads)."""
    if "indexes" not in ctx.cache:
        rows = ctx.rows("indexes", _INDEXES)
        reads: dict[int, int] = {}
        for ix in rows:
            reads[ix["rel"]] = reads.get(ix["rel"], ix["seq_scan"]) + ix["idx_scan"]
        for ix in rows:
            ix["table_reads"] = reads[ix["rel"]]
    rows_: list[dict[str, Any]] = ctx.cache["indexes"]
    return rows_


def definitions(ctx: Context, oids: list[int]) -> dict[int, str]:
    """``CREATE INDEX`` statements of the indexes ``oids`` (one query for all)."""
    if not oids:
        return {}
    rows = ctx.conn.execute(_DEFS, {"oids": oids}).mappings()
    return {row["oid"]: row["def"] for row in rows}


def fk_indexed(ctx: Context, fk: dict[str, Any]) -> bool:
    """Whether an index leads with the foreign key's columns (in any order).

    The tenant column (one the table's policies read) may be left out: an index on
    ``(parent_id)`` serves the key ``(tenant_id, parent_id)``; one on ``(tenant_id)`` does not.
    """
    if "index_keys" not in ctx.cache:
        keys: dict[int, list[list[int]]] = {}
        for ix in indexes(ctx):
            if ix["valid"] and ix["pred"] is None:
                keys.setdefault(ix["rel"], []).append(ix["keys"][:ix["nkeys"]])
        ctx.cache["index_keys"] = keys
    cols = set(fk["cols"])
    need = (cols - set(fk["tenant_cols"])) or cols
    for key in ctx.cache["index_keys"].get(fk["rel"], []):
        lead: set[int] = set()
        for col in key:
            if col not in cols:
                break
            lead.add(col)
        if lead and need <= lead:
            return True
    return False


def link_tables(ctx: Context) -> dict[int, list[dict[str, Any]]]:
    """Tables whose primary key is made of exactly their two foreign keys' columns (the
    tenant column aside)."""
    by_rel: dict[int, list[dict[str, Any]]] = {}
    for fk in foreign_keys(ctx):
        by_rel.setdefault(fk["rel"], []).append(fk)
    links = {}
    for rel, fks in by_rel.items():
        if len(fks) != 2 or fks[0]["pk"] is None:
            continue
        both = set(fks[0]["cols"]) | set(fks[1]["cols"])
        if set(fks[0]["pk"]) in (both, both - set(fks[0]["tenant_cols"])):
            links[rel] = fks
    return links


@lint("unindexed_foreign_key", "warning", "foreign key without an index leading with its columns",
      "pgpatterns.indexes.index_report (every relationship column indexed)")
def _unindexed_fk(ctx: Context) -> Iterator[Finding]:
    links = link_tables(ctx)
    for fk in foreign_keys(ctx):
        if fk["rel"] in links or fk_indexed(ctx, fk):
            continue
        cols = ", ".join(fk["colnames"])
        yield ctx.finding(
            "unindexed_foreign_key", f"{fk['tbl']}.{fk['name']}",
            f"foreign key {fk['name']} ({cols}) -> {fk['ref']} has no index leading with its "
            f"columns: every DELETE or key UPDATE on {fk['ref']} scans {fk['tbl']}, and joins "
            "from the parent cannot use an index.",
            {"table": fk["tbl"], "references": fk["ref"], "columns": fk["colnames"]},
            f"CREATE INDEX CONCURRENTLY ON {fk['tbl']} ({cols});",
        )


@lint("link_table_without_reverse_index", "warning",
      "link table whose second foreign key has no index (reverse lookups scan the table)",
      "pgpatterns.associations.association_table (primary key + reverse index)")
def _link_reverse(ctx: Context) -> Iterator[Finding]:
    for fks in link_tables(ctx).values():
        for fk in fks:
            if fk_indexed(ctx, fk):
                continue
            other = fks[1] if fk is fks[0] else fks[0]
            cols = list(fk["colnames"]) + [c for c in other["colnames"]
                                           if c not in fk["colnames"]]
            yield ctx.finding(
                "link_table_without_reverse_index", f"{fk['tbl']}.{fk['name']}",
                f"link table {fk['tbl']}: its primary key leads with {other['ref']}'s side, "
                f"and no index leads with {', '.join(fk['colnames'])}, so finding the "
                f"{other['ref']} rows of one {fk['ref']} row scans the whole table.",
                {"table": fk["tbl"], "columns": fk["colnames"], "primary_key": fk["pk"]},
                f"CREATE INDEX CONCURRENTLY ON {fk['tbl']} ({', '.join(cols)});",
            )


def _duplicate_key(ix: dict[str, Any]) -> tuple[Any, ...]:
    return (ix["rel"], ix["am"], tuple(ix["keys"]), ix["nkeys"], ix["opclasses"],
            ix["collations"], ix["options"], ix["exprs"], ix["pred"])


@lint("duplicate_index", "warning", "two indexes with the same definition",
      "pgpatterns.ddl.diff (one declared index per access path)")
def _duplicates(ctx: Context) -> Iterator[Finding]:
    seen: dict[tuple[Any, ...], dict[str, Any]] = {}
    pairs = []
    for ix in indexes(ctx):
        key = _duplicate_key(ix)
        first = seen.get(key)
        if first is None:
            seen[key] = ix
            continue
        if first["is_unique"] != ix["is_unique"]:
            continue
        drop, keep = (first, ix) if ix["backs_constraint"] else (ix, first)
        if not drop["backs_constraint"]:
            pairs.append((drop, keep))
    defs = definitions(ctx, [d["oid"] for pair in pairs for d in pair])
    for drop, keep in pairs:
        yield ctx.finding(
            "duplicate_index", drop["name"],
            f"index {drop['name']} duplicates {keep['name']} on {drop['tbl']}: every write "
            "maintains both and the planner uses one.",
            {"index": defs[drop["oid"]], "duplicate_of": defs[keep["oid"]]},
            f"DROP INDEX CONCURRENTLY {drop['name']};",
        )


@lint("overlapping_index", "info",
      "btree index whose columns lead another btree index (the longer one serves both)",
      "pgpatterns.indexes.covering_index")
def _overlapping(ctx: Context) -> Iterator[Finding]:
    by_rel: dict[int, list[dict[str, Any]]] = {}
    for ix in indexes(ctx):
        if ix["am"] == "btree" and ix["valid"] and ix["exprs"] is None and ix["pred"] is None:
            by_rel.setdefault(ix["rel"], []).append(ix)
    pairs = []
    for plain in by_rel.values():
        for ix in plain:
            if ix["is_unique"] or ix["backs_constraint"]:
                continue
            n = ix["nkeys"]
            for other in plain:
                if (other is not ix and other["nkeys"] > n
                        and other["keys"][:n] == ix["keys"][:n]
                        and other["opclasses"].split()[:n] == ix["opclasses"].split()[:n]
                        and other["options"].split()[:n] == ix["options"].split()[:n]):
                    pairs.append((ix, other))
                    break
    defs = definitions(ctx, [d["oid"] for pair in pairs for d in pair])
    for ix, other in pairs:
        yield ctx.finding(
            "overlapping_index", ix["name"],
            f"index {ix['name']} is a leading prefix of {other['name']}, which serves "
            "the same lookups; dropping it saves its writes and space.",
            {"index": defs[ix["oid"]], "covered_by": defs[other["oid"]]},
            f"DROP INDEX CONCURRENTLY {ix['name']};",
        )


@lint("invalid_index", "error", "index left invalid by a failed CREATE INDEX CONCURRENTLY",
      "pgpatterns.ddl.create_all (indexes built in one transaction, or rebuilt)")
def _invalid(ctx: Context) -> Iterator[Finding]:
    bad = [ix for ix in indexes(ctx) if not ix["valid"] and ix["relkind"] != "p"]
    defs = definitions(ctx, [ix["oid"] for ix in bad])
    for ix in bad:
        yield ctx.finding(
            "invalid_index", ix["name"],
            f"index {ix['name']} is invalid (a CREATE INDEX CONCURRENTLY failed): the "
            "planner never uses it, yet every write still maintains it. Remove the "
            "cause (duplicate keys for a unique index, a lock timeout) and rebuild it.",
            {"index": defs[ix["oid"]], "indisvalid": False},
            f"REINDEX INDEX CONCURRENTLY {ix['name']};",
        )


@lint("unused_index", "info", "index never scanned while its table was read",
      "pgpatterns.indexes.index_report")
def _unused(ctx: Context) -> Iterator[Finding]:
    fk_leads = {(fk["rel"], frozenset(fk["cols"])) for fk in foreign_keys(ctx)}
    unused = []
    for ix in indexes(ctx):
        if (ix["idx_scan"] is None or ix["idx_scan"] > 0 or ix["is_unique"]
                or ix["backs_constraint"] or not ix["valid"]
                or ix["table_reads"] < UNUSED_AFTER_READS):
            continue
        if any((ix["rel"], frozenset(ix["keys"][:k])) in fk_leads
               for k in range(1, len(ix["keys"]) + 1)):
            continue  # serves a foreign key's checks even when queries do not use it
        unused.append(ix)
    defs = definitions(ctx, [ix["oid"] for ix in unused])
    for ix in unused:
        yield ctx.finding(
            "unused_index", ix["name"],
            f"index {ix['name']} has not been scanned since statistics were reset, while "
            f"{ix['tbl']} was read {ix['table_reads']} times; it costs every write.",
            {"index": defs[ix["oid"]], "idx_scan": ix["idx_scan"],
             "table_reads": ix["table_reads"]},
            f"DROP INDEX CONCURRENTLY {ix['name']};",
        )


@lint("btree_array_index", "warning", "btree index on an array column",
      "pgpatterns.arrays.array_gin")
def _btree_array(ctx: Context) -> Iterator[Finding]:
    bad = [ix for ix in indexes(ctx)
           if ix["am"] == "btree" and ix["array_cols"] and not ix["backs_constraint"]]
    defs = definitions(ctx, [ix["oid"] for ix in bad])
    for ix in bad:
        cols = ", ".join(ix["array_cols"])
        yield ctx.finding(
            "btree_array_index", ix["name"],
            f"btree index {ix['name']} on array column {cols}: it only serves equality "
            "of whole arrays, not @>, && or ANY(); a GIN index serves those.",
            {"index": defs[ix["oid"]], "array_columns": ix["array_cols"]},
            f"CREATE INDEX CONCURRENTLY ON {ix['tbl']} USING gin ({cols});\n"
            f"DROP INDEX CONCURRENTLY {ix['name']};",
        )
