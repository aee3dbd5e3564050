"""The one set-based statement behind link / unlink / sync (see :mod:`.ops`), and its
checks of the link's own columns."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import (
    Select,
    and_,
    any_,
    bindparam,
    case,
    cast,
    delete,
    exists,
    func,
    literal,
    literal_column,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert

from pgpatterns._args import key_value, key_values
from pgpatterns.associations._guard import touch
from pgpatterns.associations._link import Link, resolve
from pgpatterns.errors import ArgumentError, AssociationError

__all__ = [
    "ADDED", "LEFT_MISSING", "MISSING", "REMOVED", "UPDATED", "check_attrs", "link_stmt",
    "params", "template",
]

MISSING, LEFT_MISSING, ADDED, REMOVED, UPDATED = range(5)


def params(left_id: Any, ids: Sequence[Any], attrs: Mapping[str, Any]) -> dict[str, Any]:
    return {"left_id": left_id, "right_ids": list(ids),
            **{f"attr_{k}": v for k, v in attrs.items()}}


# (id(link), mode, attribute names) -> (link, statement): building the statement costs more
# than running it, and one statement object per shape also hits SQLAlchemy's compiled cache.
_TEMPLATES: dict[tuple[int, str, tuple[str, ...]], tuple[Link, Select[Any]]] = {}


def template(link: Link, mode: str, attr_names: tuple[str, ...]) -> Select[Any]:
    key = (id(link), mode, attr_names)
    hit = _TEMPLATES.get(key)
    if hit is not None and hit[0] is link:
        return hit[1]
    stmt = _build(link, mode, attr_names)
    _TEMPLATES[key] = (link, stmt)
    return stmt


def _build(link: Link, mode: str, attr_names: tuple[str, ...]) -> Select[Any]:
    table, lcol, rcol = link.table, link.left_col, link.right_col
    left = bindparam("left_id", type_=lcol.type)
    rights = bindparam("right_ids", type_=ARRAY(rcol.type))
    def value(name: str) -> Any:
        return bindparam(f"attr_{name}", type_=table.c[name].type)

    if mode == "unlink":  # attributes here are key columns selecting which links go
        chosen = [table.c[k] == value(k) for k in attr_names]
        gone = delete(table).where(lcol == left, rcol == any_(rights), *chosen).returning(rcol)
        gone_cte = gone.cte("removed")
        return select(literal(REMOVED).label("kind"), gone_cte.c[rcol.name].label("id")).add_cte(
            touch(link, left, [gone_cte]))
    inp = select(func.unnest(rights, type_=rcol.type).label("id")).cte("input")
    missing = (
        select(inp.c.id)
        .where(~exists().where(link.right_key == inp.c.id))
        .cte("missing")
    )
    left_exists = exists().where(link.left_key == left)
    left_gone = ~left_exists
    ok = and_(~exists(select(missing.c.id)), left_exists)
    names = [lcol.name, rcol.name, *attr_names]
    values = [left, inp.c.id, *(value(k) for k in attr_names)]
    ins = pg_insert(table).from_select(names, select(*values).where(ok).order_by(inp.c.id))
    returning = [rcol, literal(True).label("inserted")]
    identity = [lcol, rcol, *(table.c[k] for k in link.key_attrs)]
    updated = [k for k in attr_names if k not in link.key_attrs]
    if updated:
        set_ = {k: ins.excluded[k] for k in updated}
        changed = or_(*(table.c[k].is_distinct_from(ins.excluded[k]) for k in updated))
        ins = ins.on_conflict_do_update(index_elements=identity, set_=set_, where=changed)
        # xmax = 0 on a row version this statement inserted, non-zero on one it updated:
        # PostgreSQL 15 has no RETURNING old/new, and this is its documented-by-usage idiom.
        returning[1] = (literal_column("xmax") == literal(0)).label("inserted")
    else:
        ins = ins.on_conflict_do_nothing(index_elements=identity)
    ins_cte = ins.returning(*returning).cte("inserted")
    parts = [
        select(literal(MISSING).label("kind"), missing.c.id),
        select(literal(LEFT_MISSING), cast(null(), rcol.type)).where(left_gone),
        select(
            case((ins_cte.c.inserted, literal(ADDED)), else_=literal(UPDATED)),
            ins_cte.c[rcol.name],
        ),
    ]
    if mode == "sync":
        wanted = and_(rcol == any_(rights), *(table.c[k] == value(k) for k in link.key_attrs))
        removed = (
            delete(table)
            .where(lcol == left, ~wanted, ok)
            .returning(rcol)
            .cte("removed")
        )
        parts.append(select(literal(REMOVED), removed.c[rcol.name]))
    elif mode != "link":
        raise AssociationError(f"mode must be 'link', 'unlink' or 'sync', not {mode!r}.")
    changes = [ins_cte, removed] if mode == "sync" else [ins_cte]
    return select(union_all(*parts).subquery()).add_cte(touch(link, left, changes))


def check_attrs(where: str, link: Link, attrs: Mapping[str, Any]) -> None:
    unknown = sorted(map(str, set(attrs) - set(link.attr_names)))
    if unknown:
        raise AssociationError(
            f"{where}(): {', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not "
            f"column(s) of link table {link.table.name!r}; its own columns are "
            f"{', '.join(link.attr_names) or '(none: it only holds the pair)'}. Add the "
            "column to the link table or drop the keyword."
        )
    if where == "unlink":
        extra = sorted(set(attrs) - set(link.key_attrs))
        if extra:
            raise AssociationError(
                f"unlink() takes no attributes ({', '.join(extra)}): it deletes the pairs"
                + (f"; only the key columns {', '.join(link.key_attrs)} select which links"
                   if link.key_attrs else "") + "."
            )
        return
    missing = [k for k in link.key_attrs if k not in attrs]
    if missing:
        raise AssociationError(
            f"{where}(): the links of {link.table.name!r} are identified by the pair and "
            f"{', '.join(link.key_attrs)}; pass {', '.join(f'{k}=...' for k in missing)}."
        )


def link_stmt(link: Link | Any, left_id: Any, ids: Sequence[Any], *, mode: str = "link",
              attrs: Mapping[str, Any] | None = None) -> Select[Any]:
    """The one statement behind :func:`link` (``mode="link"``), :func:`unlink` and
    :func:`sync`, with its values bound; rows are ``(kind, right key)``.

    Examples:
        >>> print(link_stmt(Post.tags, 1, [2, 3]))  # doctest: +SKIP
        WITH input AS (SELECT unnest(...)) ... INSERT INTO posts_tags ... ON CONFLICT DO NOTHING

    Every existence check, insert and delete happens in one statement (one snapshot): ids
    that do not exist are returned as rows and nothing is written, so the transaction stays
    usable. Inserted rows are sorted so concurrent calls lock keys in the same order.
    """
    link = link if isinstance(link, Link) else resolve(link)
    if not isinstance(mode, str) or mode not in ("link", "unlink", "sync"):
        raise ArgumentError(
            f"link_stmt(): mode={mode!r} is not accepted: pass 'link', 'unlink' or 'sync'.",
            argument="mode", given=mode)
    if attrs is not None and not isinstance(attrs, Mapping):
        raise ArgumentError(
            f"link_stmt(): attrs={attrs!r} is not accepted: pass a dict of the link's "
            "column names and values.", argument="attrs", given=attrs)
    attrs = dict(attrs or {})
    check_attrs("unlink" if mode == "unlink" else "link_stmt", link, attrs)
    left_id = key_value("link_stmt", "left_id", left_id, link.left_key.type)
    ids = key_values("link_stmt", "ids", ids, link.right_key.type)
    return template(link, mode, tuple(attrs)).params(params(left_id, ids, attrs))
