"""Denormalized copies and counter caches kept consistent by triggers (via pgpatterns.ddl).

Examples:
    >>> from pgpatterns.ddl import attach
    >>> from pgpatterns.denormalize import counter_cache, denormalized
    >>> author_name = denormalized(Post.author_name, User.name)  # doctest: +SKIP
    >>> post_count = counter_cache(User.post_count, Post)  # doctest: +SKIP
    >>> attach(Base.metadata, *author_name, *post_count)  # doctest: +SKIP
    >>> drift_count(session, author_name, post_count)  # rows that disagree  # doctest: +SKIP
    [0, 0]

:func:`denormalized` keeps ``posts.author_name`` equal to ``users.name`` through the foreign
key ``posts.author_id``: a BEFORE trigger on the child copies the value on INSERT and when
the foreign key (or the copy itself) is updated, and an AFTER trigger on the parent pushes a
changed value to its children. :func:`counter_cache` keeps ``users.post_count`` equal to the
number of posts with AFTER INSERT/DELETE/UPDATE/TRUNCATE triggers on the child. Both hold for
raw SQL, bulk updates, COPY and foreign-key cascades, since they live in the database.

Row-level security. The trigger functions are ``SECURITY DEFINER`` with a pinned
``search_path`` (``pg_catalog, pg_temp``; for tables declared without a schema the body adds
the schema of the table that fired the trigger, after ``pg_catalog``), so they read and write
with their owner's rights: when tenant 1 renames a shared user, the copies in tenant 2's rows
follow, and a counter counts children its writer cannot see or update. They return
``trigger`` (nothing the application can call for rows) and ``EXECUTE`` on them is revoked
from ``PUBLIC``. Their owner (who runs ``create_all``) must see every row: a superuser, a
role with ``BYPASSRLS``, or the tables' owner when their RLS is not forced. A copy reads the
parent its row references whatever the writer may see: make cross-tenant references
impossible (``pgpatterns.rls.tenant_foreign_key``). :func:`drift_count` refuses to count
under row-level security (it would miss the rows the role cannot see): run it as the owner.

Warning:
    Write cost, measured in ``benchmarks/bench_denormalize.py``:

    - Every child INSERT (and change of its foreign key) reads the parent row ``FOR SHARE``.
      The lock is what makes the copy safe against a concurrent rename of the parent (the
      insert waits for the rename to commit, then copies the new value); it also writes the
      parent row's lock bits, so inserts get measurably slower and a rename waits for open
      transactions that inserted children.
    - Changing the source value updates every child row (an index on the child's foreign key
      is required for that to be cheap: add one).
    - A counter cache turns every child INSERT/DELETE into an UPDATE of the parent row, which
      holds the parent's row lock until commit: concurrent inserts for the *same* parent
      queue behind each other (a hot parent is a bottleneck), and two transactions touching
      the same parents in different orders can deadlock (PostgreSQL aborts one; retry it).
    - The parent's own triggers (e.g. an ``updated_at`` trigger) fire on counter updates.
    - A copy and a counter cache on the same foreign key: declare the copy with
      ``lock="update"``, or concurrent inserts of children of one parent deadlock (both
      hold ``FOR SHARE``, then both UPDATE the parent for the counter).
    - Use ``backfill()`` once when adding a copy or counter to a table that has rows, and
      ``drift()`` to verify; ``SERIALIZABLE`` / ``REPEATABLE READ`` writers may get
      serialization failures instead of waiting.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    ForeignKey,
    Select,
    Table,
    Update,
    case,
    func,
    null,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import DDLCompiler
from sqlalchemy.sql.elements import ColumnElement

from pgpatterns._tables import resolve_column, resolve_table, type_name
from pgpatterns.ddl import Function, SchemaObject, Trigger, new, old
from pgpatterns.ddl.base import body_ident, body_table, regname, short_name
from pgpatterns.errors import DenormalizeError

__all__ = ["Maintained", "counter_cache", "denormalized", "drift_count", "drift_count_async"]

# Trigger functions run as their owner with this path; when the tables have no schema, the
# body puts the schema of the table that fired the trigger after pg_catalog (see _prologue).
_SEARCH_PATH = ("pg_catalog", "pg_temp")


@dataclass(eq=False)
class TriggerFunction(Function):
    """A SECURITY DEFINER trigger function that ``PUBLIC`` may not attach to other tables.

    Trigger functions cannot be called directly; ``REVOKE EXECUTE ... FROM PUBLIC`` also
    keeps other roles from attaching this one (which runs with its owner's rights) to a
    table of their own. A trigger fires whatever the writer's ``EXECUTE`` privilege.
    """

    def statement_count(self, action: str) -> int:
        return 2 if action == "create" else 1

    def render_create(self, compiler: DDLCompiler) -> list[str]:
        revoke = f"REVOKE ALL ON FUNCTION {self.signature(compiler, names=False)} FROM PUBLIC"
        return [*super().render_create(compiler), revoke]


def _trigger_function(name: str, body: str, schema: str | None) -> TriggerFunction:
    return TriggerFunction(
        name, returns="trigger", language="plpgsql", body=body, schema=schema,
        security_definer=True, search_path=_SEARCH_PATH,
    )


def _prologue(owner: str, *tables: Table) -> str:
    """Body lines that make unqualified table names resolve in the firing table's schema."""
    schemas = {t.schema for t in tables}
    if schemas == {None}:
        return (
            "  PERFORM pg_catalog.set_config('search_path', 'pg_catalog, '"
            " || pg_catalog.quote_ident(TG_TABLE_SCHEMA) || ', pg_temp', true);\n"
        )
    if None in schemas:
        names = ", ".join(f"{t.name} ({t.schema or 'no schema'})" for t in tables)
        raise DenormalizeError(
            f"{owner}: tables {names}: declare every table with a schema, or none (they then "
            "live in one schema). The triggers run as their owner with a pinned search_path, "
            "so a table without a schema is looked up in the schema of the table that fired "
            "the trigger."
        )
    return ""


@dataclass(frozen=True)
class Maintained:
    """The trigger functions and triggers of one copy or counter, and statements to check it.

    Examples:
        >>> attach(metadata, *maintained)  # yields the schema objects  # doctest: +SKIP
    """

    objects: tuple[SchemaObject, ...]
    _drift: Select[Any] = field(repr=False)
    _backfill: Update = field(repr=False)

    def __iter__(self) -> Iterator[SchemaObject]:
        return iter(self.objects)

    def drift(self) -> Select[Any]:
        """``SELECT count(*)`` of rows whose copy/counter disagrees with the source (0 = ok).

        NULL when row-level security applies to the role running it on one of the tables
        (the count would miss the rows it cannot see); :func:`drift_count` raises then.
        """
        return self._drift

    def backfill(self) -> Update:
        """An UPDATE that recomputes every stored copy/counter (run once on existing data).

        Run it as the tables' owner: under row-level security it fixes only the rows the
        role running it can see.
        """
        return self._backfill


def _drift_select(joined: Any, mismatch: ColumnElement[bool], *tables: Table) -> Select[Any]:
    """``count(*)`` of mismatching rows, or NULL when row-level security filters any table
    for the role running it (a count of the rows it can see would be a wrong answer)."""
    filtered = or_(*(func.row_security_active(regname(t.name, t.schema)) for t in tables))
    return select(case((filtered, null()), else_=func.count())).select_from(joined).where(
        mismatch
    )


def _drift_result(maintained: Maintained, value: Any) -> int:
    if value is None:
        raise DenormalizeError(
            f"drift of {maintained.objects[0].name}: row-level security applies to the role "
            "running it on one of the tables, so it would count only the rows that role can "
            "see (0 when the copies it cannot see are stale). Run it as the tables' owner "
            "(a superuser, a role with BYPASSRLS, or the owner when RLS is not forced)."
        )
    return int(value)


def drift_count(session: Session | Connection, *maintained: Maintained) -> list[int]:
    """Run each ``maintained.drift()``: rows whose copy/counter disagrees (0 = consistent).

    Examples:
        >>> drift_count(session, author_name, post_count)  # doctest: +SKIP
        [0, 0]

    Raises:
        DenormalizeError: row-level security applies to the session's role on a table
            involved; the count would miss the rows it cannot see. Run it as the owner.
    """
    _check_maintained(maintained)
    return [_drift_result(m, session.execute(m.drift()).scalar()) for m in maintained]


async def drift_count_async(session: AsyncSession, *maintained: Maintained) -> list[int]:
    """:func:`drift_count` for an ``AsyncSession`` (same statements, same checks)."""
    _check_maintained(maintained)
    return [_drift_result(m, (await session.execute(m.drift())).scalar()) for m in maintained]


def _check_maintained(maintained: tuple[Any, ...]) -> None:
    if not maintained or not all(isinstance(m, Maintained) for m in maintained):
        raise DenormalizeError(
            f"drift_count(): pass what denormalized()/counter_cache() returned, got "
            f"{maintained!r}."
        )


def _column(target: Any, owner: str, what: str) -> Column[Any]:
    element = target.__clause_element__() if hasattr(target, "__clause_element__") else target
    table = getattr(element, "table", None)
    if not isinstance(element, Column) or not isinstance(table, Table):
        raise DenormalizeError(
            f"{owner}: {what} {target!r} is not a column of a table; pass a Column or a mapped "
            "attribute (e.g. Post.author_name)."
        )
    return element


def _foreign_key(
    child: Table, parent: Table, via: Any, owner: str
) -> tuple[Column[Any], Column[Any]]:
    """(child fk column, parent referenced column) of a single-column foreign key."""
    if via is not None:
        fk_col = resolve_column(child, via, DenormalizeError, owner)
        keys = [fk for fk in fk_col.foreign_keys if fk.column.table is parent]
        if not keys:
            raise DenormalizeError(
                f"{owner}: {child.name}.{fk_col.name} has no foreign key to {parent.name}; pass "
                f"via= the column of {child.name} that references {parent.name}."
            )
        fk: ForeignKey = keys[0]
    else:
        found = [fk for fk in child.foreign_keys if fk.column.table is parent]
        if len(found) != 1:
            raise DenormalizeError(
                f"{owner}: {child.name} has {len(found)} foreign keys to {parent.name}; pass "
                "via= the referencing column to say which one to follow."
            )
        fk = found[0]
    if fk.constraint is not None and len(fk.constraint.elements) != 1:
        raise DenormalizeError(
            f"{owner}: the foreign key {child.name} -> {parent.name} has several columns; only "
            "single-column foreign keys are supported."
        )
    assert fk.parent is not None
    return fk.parent, fk.column


def _name(prefix: str | None, default: tuple[str, ...], suffix: str, owner: str) -> str:
    if prefix is None:
        return short_name(*default, suffix=suffix)
    if not isinstance(prefix, str) or not prefix or "\x00" in prefix:
        raise DenormalizeError(
            f"{owner}: name={prefix!r} must be a non-empty string (the prefix of the trigger "
            "and function names); pass e.g. name='posts_author'."
        )
    return short_name(prefix, suffix=suffix)


def denormalized(
    target_column: Any,
    source_column: Any,
    *,
    via: Any = None,
    name: str | None = None,
    lock: str = "share",
) -> Maintained:
    """Keep ``target_column`` (on the child) equal to ``source_column`` (on the parent).

    Examples:
        >>> author_name = denormalized(Post.author_name, User.name,
        ...                            via=Post.author_id)  # doctest: +SKIP
        >>> attach(Base.metadata, *author_name)  # doctest: +SKIP

    Args:
        target_column: the stored copy, e.g. ``Post.author_name`` (same type as the source).
        source_column: the original, e.g. ``User.name``.
        via: the child's foreign-key column to the parent; inferred when there is one.
        name: prefix of the generated function/trigger names
            (default ``<child>_<target>``).
        lock: how the child's trigger locks the parent row while copying: ``"share"``
            (``FOR SHARE``: concurrent inserts of children of one parent do not wait for
            each other) or ``"update"`` (``FOR NO KEY UPDATE``: they do). Use ``"update"``
            when a :func:`counter_cache` (or anything else that UPDATEs the parent on child
            inserts) shares the foreign key: two transactions each holding ``FOR SHARE``
            and then both updating the parent deadlock.

    Raises:
        DenormalizeError: the columns are not table columns, their types differ, the child
            has no (or several) single-column foreign keys to the parent, the target is
            the foreign key itself, or one table has a schema and the other has none.
    """
    owner = "denormalized"
    target = _column(target_column, owner, "target_column")
    source = _column(source_column, owner, "source_column")
    child, parent = target.table, source.table
    owner = f"denormalized {child.name}.{target.name} <- {parent.name}.{source.name}"
    if child is parent:
        raise DenormalizeError(f"{owner}: the copy and its source are in the same table.")
    if type_name(target.type) != type_name(source.type):
        raise DenormalizeError(
            f"{owner}: {child.name}.{target.name} is {type_name(target.type)} but "
            f"{parent.name}.{source.name} is {type_name(source.type)}; a copy of another type "
            "can be truncated or fail to cast. Declare the copy with the source's type."
        )
    fk_col, key = _foreign_key(child, parent, via, owner)
    if target is fk_col:
        raise DenormalizeError(f"{owner}: the target is the foreign key itself.")
    locks = {"share": "FOR SHARE", "update": "FOR NO KEY UPDATE"}
    if not isinstance(lock, str) or lock not in locks:
        raise DenormalizeError(
            f"{owner}: lock={lock!r} is not supported; pass 'share' (default) or 'update' "
            "(when a counter cache also updates the parent on child inserts)."
        )
    start = _prologue(owner, child, parent)
    q_fk, q_target, q_key, q_src = (body_ident(c.name) for c in (fk_col, target, key, source))
    # identifiers through the one body quoting path; no values are pasted into the bodies
    copy_body = f"""
BEGIN
  IF TG_OP = 'UPDATE' AND NEW.{q_fk} IS NOT DISTINCT FROM OLD.{q_fk}
     AND NEW.{q_target} IS NOT DISTINCT FROM OLD.{q_target} THEN
    RETURN NEW;
  END IF;
  IF NEW.{q_fk} IS NULL THEN
    NEW.{q_target} := NULL;
  ELSE
{start}    -- the lock waits for a concurrent change of the source, then copies its new value
    SELECT p.{q_src} INTO NEW.{q_target} FROM {body_table(parent)} p
     WHERE p.{q_key} = NEW.{q_fk} {locks[lock]};
  END IF;
  RETURN NEW;
END"""  # noqa: S608
    push_body = f"""
BEGIN
{start}  UPDATE {body_table(child)} c SET {q_target} = NEW.{q_src}
   WHERE c.{q_fk} = NEW.{q_key} AND c.{q_target} IS DISTINCT FROM NEW.{q_src};
  RETURN NULL;
END"""  # noqa: S608
    default = (child.name, target.name)
    copy_name = _name(name, default, "_copy", owner)
    push_name = _name(name, default, "_push", owner)
    copy_fn = _trigger_function(copy_name, copy_body, child.schema)
    copy_trg = Trigger(
        copy_name, child, copy_fn, timing="before",
        events=["insert", "update"], update_of=[fk_col.name, target.name],
    )
    push_fn = _trigger_function(push_name, push_body, child.schema)
    push_trg = Trigger(
        push_name, parent, push_fn, timing="after", events=["update"],
        update_of=[source.name],
        when=new(source.name).is_distinct_from(old(source.name)),
    )
    joined = child.outerjoin(parent, fk_col == key)
    drift = _drift_select(joined, target.is_distinct_from(source), child, parent)
    fresh = select(source).where(key == fk_col).scalar_subquery()
    backfill = child.update().values({target.name: fresh}).where(target.is_distinct_from(fresh))
    return Maintained((copy_fn, copy_trg, push_fn, push_trg), drift, backfill)


def counter_cache(
    parent_column: Any, child_table: Any, *, via: Any = None, name: str | None = None
) -> Maintained:
    """Keep ``parent_column`` equal to the number of ``child_table`` rows pointing at the row.

    Examples:
        >>> post_count = counter_cache(User.post_count, Post)  # doctest: +SKIP
        >>> attach(Base.metadata, *post_count)  # doctest: +SKIP

    ``parent_column`` must be an integer ``NOT NULL`` column with ``server_default="0"``
    (new parents start at zero). Inserts, deletes, moves between parents (an UPDATE of the
    foreign key), foreign-key cascades and ``TRUNCATE`` of the child are all counted.
    Concurrent inserts are safe: ``count = count + 1`` runs under the parent's row lock, so
    no increment is lost (see the module warning for the contention this implies). A move
    updates the two parents in key order, so opposite moves do not deadlock each other.

    Raises:
        DenormalizeError: the counter is not an integer NOT NULL column with a server
            default, or the child has no (or several) foreign keys to the parent.
    """
    owner = "counter_cache"
    counter = _column(parent_column, owner, "parent_column")
    parent = counter.table
    child = resolve_table(child_table, DenormalizeError, owner)
    owner = f"counter_cache {parent.name}.{counter.name} <- count({child.name})"
    if type_name(counter.type) not in ("INTEGER", "BIGINT", "SMALLINT"):
        raise DenormalizeError(
            f"{owner}: {counter.name} is {type_name(counter.type)}; a counter must be an "
            "integer or bigint column."
        )
    if counter.nullable or counter.server_default is None:
        raise DenormalizeError(
            f"{owner}: {counter.name} must be NOT NULL with server_default='0', so rows "
            "inserted by any client start at zero; declare it as "
            "mapped_column(Integer, nullable=False, server_default='0')."
        )
    fk_col, key = _foreign_key(child, parent, via, owner)
    start = _prologue(owner, child, parent)
    q_fk, q_key, q_cnt = (body_ident(c.name) for c in (fk_col, key, counter))
    parent_sql = body_table(parent)
    body = f"""
BEGIN
  IF TG_OP = 'UPDATE' THEN
    IF NEW.{q_fk} IS NOT DISTINCT FROM OLD.{q_fk} THEN RETURN NULL; END IF;
  END IF;
{start}  IF TG_OP = 'UPDATE' AND NEW.{q_fk} IS NOT NULL AND OLD.{q_fk} IS NOT NULL
     AND OLD.{q_fk} < NEW.{q_fk} THEN
    -- a move: lock the two parents in key order, so two opposite moves cannot deadlock
    UPDATE {parent_sql} SET {q_cnt} = {q_cnt} - 1 WHERE {q_key} = OLD.{q_fk};
    UPDATE {parent_sql} SET {q_cnt} = {q_cnt} + 1 WHERE {q_key} = NEW.{q_fk};
    RETURN NULL;
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.{q_fk} IS NOT NULL THEN
    UPDATE {parent_sql} SET {q_cnt} = {q_cnt} + 1 WHERE {q_key} = NEW.{q_fk};
  END IF;
  IF TG_OP IN ('DELETE', 'UPDATE') AND OLD.{q_fk} IS NOT NULL THEN
    UPDATE {parent_sql} SET {q_cnt} = {q_cnt} - 1 WHERE {q_key} = OLD.{q_fk};
  END IF;
  RETURN NULL;
END"""  # noqa: S608
    reset_body = f"""
BEGIN
{start}  UPDATE {parent_sql} SET {q_cnt} = 0 WHERE {q_cnt} <> 0;
  RETURN NULL;
END"""  # noqa: S608
    default = (parent.name, counter.name)
    count_name = _name(name, default, "_count", owner)
    reset_name = _name(name, default, "_reset", owner)
    fn = _trigger_function(count_name, body, parent.schema)
    trg = Trigger(
        count_name, child, fn, timing="after",
        events=["insert", "delete", "update"], update_of=[fk_col.name],
    )
    reset_fn = _trigger_function(reset_name, reset_body, parent.schema)
    reset_trg = Trigger(
        reset_name, child, reset_fn, timing="after", events=["truncate"],
        for_each="statement",
    )
    actual = (
        select(func.count()).select_from(child).where(fk_col == key).scalar_subquery()
    )
    mismatch: ColumnElement[bool] = counter != actual
    drift = _drift_select(parent, mismatch, parent, child)
    backfill = parent.update().values({counter.name: actual}).where(mismatch)
    return Maintained((fn, trg, reset_fn, reset_trg), drift, backfill)
