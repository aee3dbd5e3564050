"""The one set-based statement behind link / unlink / sync (private: see :mod:`.ops`)."""

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

from pgpatterns.associations._guard import touch
from pgpatterns.associations._link import Link
from pgpatterns.errors import AssociationError

__all__ = ["ADDED", "LEFT_MISSING", "MISSING", "REMOVED", "UPDATED", "params", "template"]

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
    if mode == "unlink":
        gone = delete(table).where(lcol == left, rcol == any_(rights)).returning(rcol)
        gone_cte = gone.cte("removed")
        return select(literal(REMOVED).label("kind"), gone_cte.c[rcol.name].label("id")).add_cte(
            touch(link, left))
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
    values = [left, inp.c.id,
              *(bindparam(f"attr_{k}", type_=table.c[k].type) for k in attr_names)]
    ins = pg_insert(table).from_select(names, select(*values).where(ok).order_by(inp.c.id))
    returning = [rcol, literal(True).label("inserted")]
    if attr_names:
        set_ = {k: ins.excluded[k] for k in attr_names}
        changed = or_(*(table.c[k].is_distinct_from(ins.excluded[k]) for k in attr_names))
        ins = ins.on_conflict_do_update(index_elements=[lcol, rcol], set_=set_, where=changed)
        # xmax = 0 on a row version this statement inserted, non-zero on one it updated:
        # PostgreSQL 15 has no RETURNING old/new, and this is its documented-by-usage idiom.
        returning[1] = (literal_column("xmax") == literal(0)).label("inserted")
    else:
        ins = ins.on_conflict_do_nothing(index_elements=[lcol, rcol])
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
        removed = (
            delete(table)
            .where(lcol == left, ~(rcol == any_(rights)), ok)
            .returning(rcol)
            .cte("removed")
        )
        parts.append(select(literal(REMOVED), removed.c[rcol.name]))
    elif mode != "link":
        raise AssociationError(f"mode must be 'link', 'unlink' or 'sync', not {mode!r}.")
    return select(union_all(*parts).subquery()).add_cte(touch(link, left))
