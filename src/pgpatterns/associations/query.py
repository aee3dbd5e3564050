"""Query builders over a link: composable ``Select`` objects, one index-friendly shape each."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from sqlalchemy import (
    Select,
    UniqueConstraint,
    and_,
    any_,
    bindparam,
    exists,
    false,
    func,
    select,
)
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.selectable import SelectBase

from pgpatterns._args import key_value, whole_number
from pgpatterns.associations._link import Link, resolve, target_ids, targets
from pgpatterns.errors import ArgumentError, AssociationError

__all__ = ["count_per", "having_all", "having_any", "having_none", "top_related"]


def _link(model: Any, rel: Any) -> Link:
    insp = sa_inspect(model, raiseerr=False)
    mapper = getattr(insp, "mapper", None)
    if mapper is None:
        raise AssociationError(
            f"{model!r} is not a mapped class or alias: pass the class to select (Post)."
        )
    link = resolve(rel, mapper.class_)
    if not mapper.isa(link.left_mapper):
        raise AssociationError(
            f"{link.label} belongs to {link.left_mapper.class_.__name__}, not "
            f"{mapper.class_.__name__}: pass the relationship of the class you select."
        )
    return link


def _values(link: Link, values: Iterable[Any], by: Any, where: str) -> tuple[list[Any], Any]:
    """(distinct values, the column of the target they are compared with), checked against
    the key's (or ``by``'s) type before any SQL."""
    if by is None:
        return target_ids(link, values, where=where, name="values"), None
    column = getattr(by, "expression", by)
    table = getattr(column, "table", None)
    if table is not link.right_key.table:
        raise AssociationError(
            f"by={by!r} is not a column of {link.right_mapper.class_.__name__}: by= names the "
            "column of the linked class the values are compared with (by=Tag.name)."
        )
    given = targets(where, "values", values, f"{column.name} values")
    checked = [key_value(where, f"values[{i}]", v, column.type) for i, v in enumerate(given)]
    return list(dict.fromkeys(checked)), column


def _array(name: str, values: list[Any], column: Any) -> Any:
    # unique: two helpers composed in one statement must not share (and overwrite) a value
    return bindparam(name, values, type_=ARRAY(column.type), unique=True)


def _rows_matching(link: Link, values: list[Any], by: Any) -> Select[Any]:
    """Link rows whose target is one of ``values`` (``SELECT left, right FROM link ...``)."""
    if by is None:
        return select(link.left_col).where(link.right_col == any_(_array("ids", values,
                                                                           link.right_col)))
    return (
        select(link.left_col)
        .join(link.right_key.table, link.right_key == link.right_col)
        .where(by == any_(_array("values", values, by)))
    )


def having_any(model: Any, rel: Any, values: Iterable[Any], *, by: Any = None) -> Select[Any]:
    """``model`` rows linked to at least one of ``values``.

    Examples:
        >>> session.scalars(having_any(Post, Post.tags, [python, sql])).all()  # doctest: +SKIP
        [<Post 1>, <Post 4>]
        >>> having_any(Post, Post.tags, ["python"], by=Tag.name)  # doctest: +SKIP

    One value: a plain join to the link table (each pair is unique, so no duplicates), which
    lets the planner read the reverse index ``(right, left)`` in ``left`` order:
    ``.order_by(Post.id.desc()).limit(20)`` reads 20 index entries, whether the tag has
    three posts or a million. Several values: ``key IN (SELECT left FROM link WHERE right =
    ANY(:ids))``, a semi-join. ``values`` are objects or keys of the other side, or values of
    the column ``by``. No values: no rows.
    """
    link = _link(model, rel)
    vals, column = _values(link, values, by, "having_any")
    stmt = select(model)
    if not vals:
        return stmt.where(false())
    if len(vals) == 1 and (column is None or _is_unique(column)) and not link.key_attrs:
        return _join_all(stmt, model, link, vals, column)
    return stmt.where(link.left_entity_key(model).in_(_rows_matching(link, vals, column)))


def having_all(model: Any, rel: Any, values: Iterable[Any], *, by: Any = None,
               method: Literal["join", "group"] = "join") -> Select[Any]:
    """``model`` rows linked to every one of ``values`` (relational division).

    Examples:
        >>> stmt = having_all(Post, Post.tags, [python, sql, postgres])  # doctest: +SKIP
        >>> session.scalars(stmt.order_by(Post.id.desc()).limit(20)).all()  # doctest: +SKIP
        [<Post 4>]

    ``method="join"`` (default) joins ``model`` to one alias of the link table per value,
    each on the primary key: ``JOIN link l0 ON l0.left = key AND l0.right = :a JOIN link l1
    ON l1.left = l0.left AND l1.right = :b ...``. Pairs are unique, so a row appears once.
    The planner sees each value's frequency in the link column's statistics and starts from
    the rarest (a rare value makes the query a handful of index probes), or merge-joins the
    reverse-index ranges of common values in key order, stopping at a ``LIMIT``.
    ``method="group"``, the textbook ``GROUP BY left HAVING count(*) = n``, reads every link
    row of every value; the ``m2m`` benchmark shows it losing. No values: every row.

    Warning:
        The planner knows how common a value is only when it sees the key itself: pass ids
        (or objects) for the best plans on skewed data. With ``by=Tag.name`` each name is
        looked up in a scalar subquery, and every tag is assumed to be of average frequency.
        A ``by`` column that is not unique falls back to ``method="group"``.

        The same holds for a cached *generic* plan: psycopg prepares a statement after 5
        executions on a connection (``prepare_threshold``), and PostgreSQL may then reuse one
        plan built for a tag of average frequency. On skewed tags that plan merge-joins the
        common tags' whole link ranges when one tag is rare (0.9 ms became 9 ms in the ``m2m``
        benchmark data). Set ``plan_cache_mode = force_custom_plan`` (role, database or
        ``connect_args={"options": "-c plan_cache_mode=force_custom_plan"}``) or
        ``connect_args={"prepare_threshold": None}`` where such queries run.

        Each value adds a join for the planner: with three values, planning (~0.3-0.5 ms)
        costs more than running the query on a page of 20, so a one-table ``text[]`` + GIN
        query answers small pages of common tags about 1.3x faster (see the ``m2m`` benchmark).
    """
    if method not in ("join", "group"):
        raise ArgumentError(
            f"having_all(): method={method!r} is not accepted: pass 'join' (default) or "
            "'group'.", argument="method", given=method)
    link = _link(model, rel)
    vals, column = _values(link, values, by, "having_all")
    stmt = select(model)
    if not vals:
        return stmt
    if method == "group" or (column is not None and not _is_unique(column)) or link.key_attrs:
        # (several links per pair when the identity has key columns: count targets)
        rows = _rows_matching(link, vals, column)
        counted = (func.count(func.distinct(column)) if column is not None
                   else _count(link, star=True))
        sub = rows.group_by(link.left_col).having(counted == len(vals))
        return stmt.where(link.left_entity_key(model).in_(sub))
    return _join_all(stmt, model, link, vals, column)


def _join_all(stmt: Select[Any], model: Any, link: Link, vals: list[Any],
              column: Any) -> Select[Any]:
    """``stmt`` joined to one link alias per value (the intersection)."""
    lname, rname = link.left_col.name, link.right_col.name
    key = link.left_entity_key(model)
    previous = None
    for n, value in enumerate(vals):
        alias = link.table.alias(f"{link.table.name}_{n}")
        match = alias.c[rname] == _target(link, column, value, n)
        on = alias.c[lname] == (key if previous is None else previous.c[lname])
        stmt = stmt.join(alias, and_(on, match))
        previous = alias
    return stmt


def _target(link: Link, column: Any, value: Any, n: int) -> Any:
    """The right key for one value: a bound key, or a lookup by the ``by`` column."""
    if column is None:
        return bindparam(f"v{n}", value, type_=link.right_col.type, unique=True)
    target = link.right_key.table.alias(f"{link.right_key.table.name}_{n}")
    lookup = select(target.c[link.right_key.name]).where(
        target.c[column.name] == bindparam(f"v{n}", value, type_=column.type, unique=True))
    return lookup.scalar_subquery()  # by is unique here: one key per value


def _is_unique(column: Any) -> bool:
    table = column.table
    if (column.primary_key and len(table.primary_key.columns) == 1) or column.unique:
        return True
    sets = [{c.name for c in con.columns} for con in table.constraints
            if isinstance(con, UniqueConstraint)]
    sets += [{c.name for c in ix.columns} for ix in table.indexes if ix.unique]
    return {column.name} in sets


def having_none(model: Any, rel: Any, values: Iterable[Any] | None = None, *,
                by: Any = None) -> Select[Any]:
    """``model`` rows linked to none of ``values`` (to nothing at all when ``values`` is None).

    Examples:
        >>> session.scalars(having_none(Post, Post.tags, [spam])).all()  # doctest: +SKIP
        [<Post 1>, <Post 2>]
        >>> session.scalars(having_none(Post, Post.tags)).all()  # untagged  # doctest: +SKIP
        [<Post 2>]

    ``NOT EXISTS (SELECT FROM link WHERE left = key AND right = ANY(:ids))``: an anti-join
    probing the primary key ``(left, right)``.
    """
    link = _link(model, rel)
    key = link.left_entity_key(model)
    if values is None:
        return select(model).where(~exists().where(link.left_col == key))
    vals, column = _values(link, values, by, "having_none")
    if not vals:
        return select(model)
    rows = _rows_matching(link, vals, column).where(link.left_col == key)
    return select(model).where(~exists(rows))


def _count(link: Link, *, star: bool = False) -> Any:
    """Linked rows counted once each (a link with key columns may repeat a pair)."""
    if link.key_attrs:
        return func.count(func.distinct(link.right_col))
    return func.count() if star else func.count(link.right_col)


def count_per(model: Any, rel: Any) -> Select[Any]:
    """``(model, count)`` for every row of ``model``, zero included.

    Examples:
        >>> session.execute(count_per(Tag, Tag.posts).order_by(Tag.name)).all()  # doctest: +SKIP
        [(<Tag python>, 2), (<Tag spam>, 0)]

    ``LEFT JOIN link ... GROUP BY key``; add ``.where()`` on ``model`` to count a few rows
    (the join then reads the primary key or reverse index for those only).
    """
    link = _link(model, rel)
    key = link.left_entity_key(model)
    count = _count(link).label("count")
    return select(model, count).outerjoin(link.table, link.left_col == key).group_by(key)


def top_related(model: Any, rel: Any, *, limit: int = 10,
                among: Iterable[Any] | SelectBase | None = None) -> Select[Any]:
    """The ``limit`` rows of ``model`` with the most links, as ``(model, count)``.

    Examples:
        >>> session.execute(top_related(Tag, Tag.posts, limit=3)).all()  # doctest: +SKIP
        [(<Tag python>, 812), (<Tag sql>, 640), (<Tag rust>, 97)]
        >>> top_related(Tag, Tag.posts, among=having_any(Post, Post.tags, [python])
        ...             .with_only_columns(Post.id))  # co-occurring tags  # doctest: +SKIP

    Counts in the link table alone (an index-only scan of the reverse index), keeps the top
    ``limit`` keys, and only then joins ``model`` for those: never the whole join grouped.
    ``among`` restricts the counted links to those whose other side is in it (keys, objects
    or a one-column ``Select`` of keys), e.g. the tags used together with a given tag.
    """
    whole_number("top_related", "limit", limit, minimum=1)
    link = _link(model, rel)
    key = link.left_entity_key(model)
    count = _count(link, star=True).label("count")
    counts = select(link.left_col.label("key"), count).group_by(link.left_col)
    if isinstance(among, SelectBase):
        counts = counts.where(link.right_col.in_(among))
    elif among is not None:
        ids = target_ids(link, among, where="top_related", name="among")
        counts = counts.where(link.right_col == any_(_array("among", ids, link.right_col)))
    top = counts.order_by(count.desc(), link.left_col).limit(limit).subquery("top")
    return (
        select(model, top.c.count)
        .join(top, top.c.key == key)
        .order_by(top.c.count.desc(), key)
    )
