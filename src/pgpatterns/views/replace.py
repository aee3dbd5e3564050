"""Replace a materialized view's definition without losing its indexes or grants.

Examples:
    >>> replace_materialized_view(session, shop_totals_v2)  # doctest: +SKIP
    Replaced(name='shop_totals', indexes=['shop_totals_key', 'shop_totals_cents'], ...)

``DROP`` + ``CREATE`` (what migration tools emit for a changed definition) loses every index
created next to the view, and leaves readers with no view at all in between. Here the new
definition is built under a temporary name with all its indexes, then swapped in: drop the
old one, rename the new one and its indexes, re-grant, in the caller's transaction.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Connection, Index, Table, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.schema import CreateIndex
from sqlalchemy.sql import visitors
from sqlalchemy.sql.compiler import DDLCompiler
from sqlalchemy.sql.ddl import ExecutableDDLElement

from pgpatterns.ddl import MaterializedView
from pgpatterns.ddl.base import qualified, regname
from pgpatterns.ddl.view import ViewBase
from pgpatterns.errors import ViewReplaceError
from pgpatterns.views.declare import as_view, check_session
from pgpatterns.views.tenant import tenant_rows

__all__ = ["Replaced", "replace_materialized_view", "replace_materialized_view_async"]

# Privileges a materialized view can be granted (aclexplode() spells them like this).
_PRIVILEGES = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES",
                         "TRIGGER", "MAINTAIN"})

_OLD = text("SELECT c.oid, c.relkind FROM pg_class c WHERE c.oid = to_regclass(:n)")
_DEPENDENTS = text(
    "SELECT DISTINCT v.oid::regclass::text FROM pg_depend d"
    " JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class v ON v.oid = r.ev_class"
    " WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjid = :oid AND v.oid <> :oid"
)
_INDEXES = text(
    "SELECT i.relname AS name, x.indisunique AS is_unique, am.amname AS method,"
    " (x.indexprs IS NOT NULL OR x.indpred IS NOT NULL) AS complex,"
    " array(SELECT a.attname FROM unnest(x.indkey) WITH ORDINALITY k(num, pos)"
    "       JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.num"
    "       ORDER BY k.pos) AS columns"
    " FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_am am ON am.oid = i.relam"
    " WHERE x.indrelid = :oid ORDER BY i.relname"
)
_GRANTS = text(
    "SELECT a.privilege_type AS privilege, r.rolname AS role FROM pg_class c"
    " CROSS JOIN LATERAL aclexplode(c.relacl) a LEFT JOIN pg_roles r ON r.oid = a.grantee"
    " WHERE c.oid = :oid AND a.grantee <> c.relowner ORDER BY 2, 1"
)


@dataclass(frozen=True)
class Replaced:
    """What :func:`replace_materialized_view` did."""

    name: str
    indexes: list[str]
    kept: list[str]
    grants: list[tuple[str, str]]
    created: bool


def replace_materialized_view(
    session: Session | Connection, mv: Any, *, keep_indexes: bool = True
) -> Replaced:
    """Swap in ``mv``'s (new) definition, keeping indexes and grants; in one transaction.

    Examples:
        >>> replace_materialized_view(session, shop_totals_v2)  # doctest: +SKIP

    The indexes of the new one are the declared ones plus, with ``keep_indexes`` (default),
    every index found on the old one under another name (created by hand or by a migration),
    re-created on the same columns with the same method and uniqueness. Privileges granted
    on the old view are granted again. If the view does not exist yet it is just created.
    Commit soon: the swap holds an ACCESS EXCLUSIVE lock on the view until commit; the slow
    part (running the query, building indexes) happens before it is taken.

    Raises:
        ViewReplaceError: other views depend on it (the DROP would need CASCADE), or an
            existing index uses expressions / a WHERE clause / columns the new query no
            longer produces. Nothing is created or dropped.

    The reader view of a :func:`~pgpatterns.views.tenant_materialized_view` is accepted:
    it is dropped, its private rows replaced, and it is created again with its grant to the
    readers (other grants on the reader view are not carried over).

    Warning:
        Comments, ownership and column-level grants are not carried over. Needs the new
        definition to keep the view's name (it is the same object, redefined).
    """
    if not isinstance(keep_indexes, bool):
        raise ViewReplaceError(
            f"replace_materialized_view(): keep_indexes must be True or False, got "
            f"{keep_indexes!r}."
        )
    found = as_view(mv)
    rows = tenant_rows(found)
    if rows is not None:
        return _replace_tenant_form(session, found, rows, keep_indexes)
    obj = found
    if not isinstance(obj, MaterializedView):
        raise ViewReplaceError(
            f"{obj.describe()} is a plain view; use CREATE OR REPLACE VIEW (or drop and "
            "create it) since it holds no data or indexes to keep."
        )
    check_session("replace_materialized_view()", session)
    conn = session.connection() if isinstance(session, Session) else session
    old = conn.execute(_OLD, {"n": regname(obj.name, obj.schema)}).first()
    if old is None:
        for ddl in obj.create_ddl():
            conn.execute(ddl)
        names = [str(i.name) for i in obj._indexes]
        return Replaced(obj.name, names, [], [], created=True)
    oid, relkind = old
    if relkind != "m":
        raise ViewReplaceError(
            f"{obj.describe()}: the database object with that name is not a materialized view "
            f"(relkind {relkind!r}); drop or rename it first."
        )
    dependents = list(conn.execute(_DEPENDENTS, {"oid": oid}).scalars())
    if dependents:
        raise ViewReplaceError(
            f"cannot replace {obj.describe()}: views {dependents} depend on it, and dropping "
            "the old definition would need CASCADE (dropping them too). Drop those views, "
            "replace, then create them again (in one migration)."
        )
    declared = {str(i.name) for i in obj._indexes}
    existing = [r._asdict() for r in conn.execute(_INDEXES, {"oid": oid})]
    kept = [r for r in existing if r["name"] not in declared] if keep_indexes else []
    produced = set(obj.table.c.keys())
    for row in kept:
        lost = [c for c in row["columns"] if c not in produced]
        if row["complex"] or lost:
            why = (
                "it uses expressions or a WHERE clause"
                if row["complex"]
                else f"the new query no longer produces {lost}"
            )
            raise ViewReplaceError(
                f"cannot keep index {row['name']} of {obj.describe()}: {why}. Declare it on "
                "materialized_view(indexes=[...]) so its definition is known, or pass "
                "keep_indexes=False to let it go."
            )
    grants = [(r.privilege, r.role) for r in conn.execute(_GRANTS, {"oid": oid})]
    return _swap(conn, obj, kept, grants)


def _replace_tenant_form(
    session: Session | Connection, reader: ViewBase, rows: MaterializedView, keep_indexes: bool
) -> Replaced:
    """The per-tenant form: drop the reader view, replace its rows, create it again (with
    its grant to the readers), all in the caller's transaction."""
    check_session("replace_materialized_view()", session)
    conn = session.connection() if isinstance(session, Session) else session
    if reader.exists(conn):
        for ddl in reader.drop_ddl():
            conn.execute(ddl)
    done = replace_materialized_view(conn, rows, keep_indexes=keep_indexes)
    for ddl in reader.create_ddl():
        conn.execute(ddl)
    return done


def _swap(
    conn: Connection, obj: MaterializedView, kept: list[dict[str, Any]],
    grants: list[tuple[str, str | None]],
) -> Replaced:
    tag = secrets.token_hex(4)
    twin = dataclasses.replace(obj, name=f"pgp_new_{tag}", indexes=(), depends_on=())
    final: list[tuple[str, Index]] = []
    for n, index in enumerate(obj._indexes):
        final.append((str(index.name), _retarget(index, twin.table, f"pgp_new_{tag}_{n}")))
    for n, row in enumerate(kept, start=len(final)):
        made = Index(
            f"pgp_new_{tag}_{n}",
            *(twin.table.c[c] for c in row["columns"]),
            unique=row["is_unique"],
            postgresql_using=row["method"],
        )
        final.append((row["name"], made))
    for ddl in twin.create_ddl():
        conn.execute(ddl)
    for _, index in final:
        conn.execute(CreateIndex(index))
    for ddl in obj.drop_ddl():
        conn.execute(ddl)  # old indexes go with it, freeing their names
    schema = obj.schema
    conn.execute(_Rename("MATERIALIZED VIEW", schema, twin.name, obj.name))
    for name, index in final:
        conn.execute(_Rename("INDEX", schema, str(index.name), name))
    done: list[tuple[str, str]] = []
    for privilege, role in grants:
        if privilege not in _PRIVILEGES:
            continue
        conn.execute(_Grant(privilege, schema, obj.name, role))
        done.append((privilege, role or "PUBLIC"))
    return Replaced(
        obj.name, [n for n, _ in final], [str(r["name"]) for r in kept], done, created=False
    )


class _Rename(ExecutableDDLElement):
    """``ALTER <kind> [schema.]old RENAME TO new``, quoted by the executing dialect."""

    inherit_cache = False

    def __init__(self, kind: str, schema: str | None, old: str, new: str) -> None:
        self.kind, self.schema, self.old, self.new = kind, schema, old, new


class _Grant(ExecutableDDLElement):
    """``GRANT <privilege> ON [schema.]name TO role`` (``PUBLIC`` for ``None``)."""

    inherit_cache = False

    def __init__(self, privilege: str, schema: str | None, name: str, role: str | None) -> None:
        self.privilege, self.schema, self.name, self.role = privilege, schema, name, role


@compiles(_Rename)
def _compile_rename(element: _Rename, compiler: DDLCompiler, **kw: Any) -> str:
    old = qualified(compiler, element.old, element.schema)
    return f"ALTER {element.kind} {old} RENAME TO {compiler.preparer.quote(element.new)}"


@compiles(_Grant)
def _compile_grant(element: _Grant, compiler: DDLCompiler, **kw: Any) -> str:
    who = "PUBLIC" if element.role is None else compiler.preparer.quote(element.role)
    target = qualified(compiler, element.name, element.schema)
    return f"GRANT {element.privilege} ON {target} TO {who}"


def _retarget(index: Index, table: Table, name: str) -> Index:
    """``index`` rebuilt over ``table``'s same-named columns under ``name``."""

    def swap(element: Any) -> Any:
        if isinstance(element, Column) and element.name in table.c:
            return table.c[element.name]
        return None

    exprs: Sequence[Any] = [
        visitors.replacement_traverse(e, {}, swap)  # type: ignore[call-overload]
        for e in index.expressions
    ]
    return Index(name, *exprs, unique=index.unique, **index.dialect_kwargs)


async def replace_materialized_view_async(
    session: AsyncSession, mv: Any, *, keep_indexes: bool = True
) -> Replaced:
    """:func:`replace_materialized_view` for an ``AsyncSession``.

    A dozen dependent catalog reads and DDL steps: run through ``run_sync`` rather than
    duplicated (each step is one statement; there is nothing to overlap).
    """
    result: Replaced = await session.run_sync(
        lambda s: replace_materialized_view(s, mv, keep_indexes=keep_indexes)
    )
    return result
