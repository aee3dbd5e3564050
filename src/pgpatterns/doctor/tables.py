"""Table lints: keys, foreign key types, trees, sequences, materialized views, partitions.

Examples:
    >>> from pgpatterns.doctor import doctor
    >>> [f.id for f in doctor(conn, lints=["no_primary_key"])]  # doctest: +SKIP
    ['no_primary_key']
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import exists, select, text
from sqlalchemy import table as table_clause

from pgpatterns.doctor._model import IN_SCOPE, Context, Finding, lint
from pgpatterns.doctor.indexes import foreign_keys

__all__: list[str] = []

_NO_PK = text(
    "SELECT c.oid::regclass::text AS tbl, c.reltuples::bigint AS reltuples"  # noqa: S608 (constant fragments)
    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND " + IN_SCOPE +
    " AND NOT EXISTS (SELECT FROM pg_constraint k WHERE k.conrelid = c.oid"
    "  AND k.contype = 'p') ORDER BY 1"
)

# Sequences with how far they got, against the smaller of their own maximum and the maximum
# of the integer column they feed (a bigint sequence behind an integer column stops there).
_SEQUENCES = text(
    "SELECT c.oid::regclass::text AS seq, s.last_value, s.max_value, s.increment_by,"  # noqa: S608 (constant fragments)
    " col.tbl, col.col, col.type,"
    " least(s.max_value, CASE col.type WHEN 'smallint' THEN 32767"
    "  WHEN 'integer' THEN 2147483647 ELSE s.max_value END) AS lim"
    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    " JOIN pg_sequences s ON s.schemaname = n.nspname AND s.sequencename = c.relname"
    " LEFT JOIN LATERAL (SELECT d.refobjid::regclass::text AS tbl,"
    "  quote_ident(a.attname) AS col, format_type(a.atttypid, NULL) AS type"
    "  FROM pg_depend d JOIN pg_attribute a ON a.attrelid = d.refobjid"
    "  AND a.attnum = d.refobjsubid WHERE d.classid = 'pg_class'::regclass"
    "  AND d.objid = c.oid AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0 LIMIT 1) col"
    "  ON true"
    " WHERE c.relkind = 'S' AND s.increment_by > 0 AND s.last_value IS NOT NULL"
    " AND " + IN_SCOPE + " ORDER BY 1"
)

_MATVIEWS = text(
    "SELECT c.oid::regclass::text AS mv FROM pg_class c"  # noqa: S608 (constant fragments)
    " JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE c.relkind = 'm' AND " + IN_SCOPE + " AND NOT EXISTS (SELECT FROM pg_index i"
    "  WHERE i.indrelid = c.oid AND i.indisunique AND i.indisvalid AND i.indpred IS NULL"
    "  AND i.indexprs IS NULL) ORDER BY 1"
)

_DEFAULTS = text(
    "SELECT c.oid::regclass::text AS parent, d.oid::regclass::text AS part,"  # noqa: S608 (constant fragments)
    " dn.nspname::text AS part_schema, d.relname::text AS part_name,"
    " has_table_privilege(d.oid, 'SELECT') AS readable,"
    " greatest(d.reltuples, 0)::bigint AS reltuples, coalesce(st.n_live_tup, 0) AS n_live_tup"
    " FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid"
    " JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_class d ON d.oid = p.partdefid"
    " JOIN pg_namespace dn ON dn.oid = d.relnamespace"
    " LEFT JOIN pg_stat_user_tables st ON st.relid = d.oid"
    " WHERE p.partdefid <> 0 AND " + IN_SCOPE + " ORDER BY 1"
)

#: A sequence is reported at this fraction of its limit (``error`` from 90%).
SEQUENCE_WARN = 0.75


@lint("no_primary_key", "warning", "table without a primary key",
      "pgpatterns.columns.IdentityPrimaryKey")
def _no_pk(ctx: Context) -> Iterator[Finding]:
    for r in ctx.rows("no_pk", _NO_PK):
        yield ctx.finding(
            "no_primary_key", r["tbl"],
            f"{r['tbl']} has no primary key: rows cannot be addressed one by one (ORM "
            "identity, logical replication's UPDATE/DELETE, deduplication), and duplicates "
            "go unnoticed.",
            {"table": r["tbl"], "reltuples": r["reltuples"]},
            f"ALTER TABLE {r['tbl']} ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY "
            "PRIMARY KEY;\n-- or: ALTER TABLE ... ADD PRIMARY KEY (<the natural key>);",
        )


@lint("fk_type_mismatch", "warning", "foreign key column typed differently from its target",
      "pgpatterns.rls.tenant_foreign_key / sqlalchemy ForeignKey (the type follows the key)")
def _fk_types(ctx: Context) -> Iterator[Finding]:
    for fk in foreign_keys(ctx):
        pairs = [(c, t, rt) for c, t, rt in zip(fk["colnames"], fk["types"], fk["reftypes"],
                                                strict=False) if t != rt]
        if not pairs:
            continue
        alter = ", ".join(f"ALTER COLUMN {c} TYPE {rt}" for c, _, rt in pairs)
        yield ctx.finding(
            "fk_type_mismatch", f"{fk['tbl']}.{fk['name']}",
            f"foreign key {fk['name']} -> {fk['ref']}: "
            + "; ".join(f"{c} is {t} but references {rt}" for c, t, rt in pairs)
            + " (joins cast, and the narrower side overflows first).",
            {"columns": fk["colnames"], "types": fk["types"], "referenced_types": fk["reftypes"]},
            f"ALTER TABLE {fk['tbl']} {alter};",
        )


@lint("tree_without_cycle_guard", "warning",
      "self-referencing foreign key (a tree) without a trigger guarding against cycles",
      "pgpatterns.trees.tree_guard")
def _trees(ctx: Context) -> Iterator[Finding]:
    for fk in foreign_keys(ctx):
        if fk["rel"] != fk["refrel"] or fk["row_update_trigger"]:
            continue
        yield ctx.finding(
            "tree_without_cycle_guard", f"{fk['tbl']}.{fk['name']}",
            f"{fk['tbl']} references itself ({', '.join(fk['colnames'])}) with no row "
            "trigger on UPDATE: moving a node under its own descendant makes a cycle that "
            "recursive queries never leave.",
            {"table": fk["tbl"], "columns": fk["colnames"], "row_update_trigger": False},
            "-- attach(Base.metadata, *pgpatterns.trees.tree_guard(Model)); then create_all "
            "or a migration creates the guard function and trigger",
        )


@lint("sequence_near_overflow", "warning", "sequence (or the column it feeds) near its maximum",
      "pgpatterns.columns.IdentityPrimaryKey (bigint)")
def _sequences(ctx: Context) -> Iterator[Finding]:
    for r in ctx.rows("sequences", _SEQUENCES):
        used = r["last_value"] / r["lim"]
        if used < SEQUENCE_WARN:
            continue
        target = f"column {r['tbl']}.{r['col']} ({r['type']})" if r["tbl"] else "its maximum"
        fix = (f"ALTER TABLE {r['tbl']} ALTER COLUMN {r['col']} TYPE bigint;\n"
               f"ALTER SEQUENCE {r['seq']} AS bigint;" if r["tbl"]
               else f"ALTER SEQUENCE {r['seq']} AS bigint MAXVALUE 9223372036854775807;")
        yield ctx.finding(
            "sequence_near_overflow", r["seq"],
            f"sequence {r['seq']} is at {r['last_value']} of {r['lim']} ({used:.0%}) for "
            f"{target}: inserts fail when it runs out.",
            {"last_value": r["last_value"], "limit": r["lim"], "column": r["col"],
             "column_type": r["type"], "used": round(used, 4)},
            fix, severity="error" if used >= 0.9 else None,
        )


@lint("matview_without_unique_index", "warning",
      "materialized view without a unique index: REFRESH ... CONCURRENTLY is impossible",
      "pgpatterns.views.materialized_view(unique_key=...)")
def _matviews(ctx: Context) -> Iterator[Finding]:
    for r in ctx.rows("matviews", _MATVIEWS):
        yield ctx.finding(
            "matview_without_unique_index", r["mv"],
            f"materialized view {r['mv']} has no unique index on plain columns, so it can "
            "only be refreshed with REFRESH MATERIALIZED VIEW (no CONCURRENTLY), which locks "
            "out every reader until it finishes.",
            {"materialized_view": r["mv"]},
            f"CREATE UNIQUE INDEX ON {r['mv']} (<key columns>);",
        )


@lint("rows_in_default_partition", "warning", "rows in a default partition",
      "pgpatterns.partitioning.ensure_partitions / check_default_partition")
def _defaults(ctx: Context) -> Iterator[Finding]:
    for r in ctx.rows("defaults", _DEFAULTS):
        if r["readable"]:  # one tuple at most: cheaper and surer than statistics
            probe = select(exists().select_from(table_clause(r["part_name"],
                                                              schema=r["part_schema"])))
            has_rows = bool(ctx.conn.execute(probe).scalar())
        else:
            has_rows = max(r["reltuples"], r["n_live_tup"]) > 0
        if has_rows:
            yield ctx.finding(
                "rows_in_default_partition", r["part"],
                f"default partition {r['part']} of {r['parent']} holds rows: they are "
                "scanned by every query no bound excludes, and creating the partition they "
                "belong in must first move them under an exclusive lock.",
                {"parent": r["parent"], "reltuples": r["reltuples"],
                 "n_live_tup": r["n_live_tup"]},
                f"-- check_default_partition(session, <model of {r['parent']}>) names the "
                "ranges; create those partitions (ensure_partitions), moving the rows out of "
                "the default first",
            )
