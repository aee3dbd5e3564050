"""link / unlink / sync: one set-based statement each, idempotent, concurrency-safe."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

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
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstanceState, Mapper, Session

from pgpatterns.associations._link import Link, key_of, needs_flush, resolve, target_ids
from pgpatterns.errors import AssociationError, UnknownLinkTargetError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

__all__ = [
    "LinkResult",
    "link",
    "link_async",
    "link_stmt",
    "sync",
    "sync_async",
    "unlink",
    "unlink_async",
]

_MISSING, _LEFT_MISSING, _ADDED, _REMOVED, _UPDATED = range(5)


@dataclass(frozen=True)
class LinkResult:
    """What a write changed, as right-side keys.

    Examples:
        >>> sync(session, post, [python, sql])  # doctest: +SKIP
        LinkResult(added=(7,), removed=(3, 4), updated=())
    """

    added: tuple[Any, ...] = ()
    removed: tuple[Any, ...] = ()
    updated: tuple[Any, ...] = ()

    @property
    def changed(self) -> bool:
        """Whether any row was written."""
        return bool(self.added or self.removed or self.updated)


@dataclass
class _Call:
    """A validated write: the objects, the link, and (after flush) the statement."""

    mode: str
    link: Link
    left: Any
    rights: list[Any]
    attrs: dict[str, Any]

    @property
    def objects(self) -> list[Any]:
        return [self.left, *self.rights]

    def prepare(self) -> dict[str, Any]:
        """Keys checked and converted: the statement's parameters."""
        self.left_id = key_of(self.link.left_mapper, self.link.left_key, self.left,
                              "left side", self.link.label)
        return _params(self.left_id, target_ids(self.link, self.rights), self.attrs)

    @property
    def statement(self) -> Select[Any]:
        return _template(self.link, self.mode, tuple(self.attrs))

    def finish(self, session: Session, rows: Sequence[Any]) -> LinkResult:
        found: dict[int, list[Any]] = {k: [] for k in range(5)}
        for kind, value in rows:
            found[kind].append(value)
        if found[_LEFT_MISSING]:
            raise UnknownLinkTargetError(
                f"{self.link.label}: {self.link.left_mapper.class_.__name__} "
                f"{self.link.left_key.name}={self.left_id!r} does not exist; nothing was "
                "written. Create it first (or check the id).",
                (self.left_id,),
            )
        if found[_MISSING]:
            missing = tuple(sorted(found[_MISSING]))
            raise UnknownLinkTargetError(
                f"{self.link.label}: no {self.link.right_mapper.class_.__name__} with "
                f"{self.link.right_key.name} {', '.join(map(repr, missing))}; nothing was "
                "written. Create them first, or drop them from the list.",
                missing,
            )
        _expire(session, self, [*found[_ADDED], *found[_REMOVED], *found[_UPDATED]])
        return LinkResult(tuple(found[_ADDED]), tuple(found[_REMOVED]), tuple(found[_UPDATED]))

    def translate(self, exc: IntegrityError) -> AssociationError:
        detail = getattr(getattr(exc.orig, "diag", None), "message_detail", None) or str(exc)
        return UnknownLinkTargetError(
            f"{self.link.label}: a linked row was deleted concurrently ({detail}); nothing was "
            "written. Roll back and retry with existing ids."
        )


def _expire(session: Session, call: _Call, keys: Iterable[Any]) -> None:
    """Loaded collections are stale after a set-based write: expire them (no SQL).

    The left object and the changed right objects are found in the identity map when
    they were given as keys.
    """
    link = call.link
    targets = [(_loaded(session, link.left_mapper, link.left_key, call.left), link.left_attr)]
    if link.right_attr is not None:
        targets += [(_loaded(session, link.right_mapper, link.right_key, obj), link.right_attr)
                    for obj in [*call.rights, *keys]]
    for obj, attr in targets:
        if obj is not None:
            session.expire(obj, [attr])


def _loaded(session: Session, mapper: Mapper[Any], key: Any, value: Any) -> Any:
    state = sa_inspect(value, raiseerr=False)
    if isinstance(state, InstanceState):
        return value if value in session else None
    if list(mapper.primary_key) != [key]:
        return None
    return session.identity_map.get(mapper.identity_key_from_primary_key((value,)))


def _prepare(mode: str, left: Any, rights: Iterable[Any] | None, via: Any,
             attrs: Mapping[str, Any]) -> _Call:
    rights = [] if rights is None else rights
    if isinstance(rights, (str, bytes)) or not isinstance(rights, Iterable):
        raise AssociationError(
            f"{mode}() takes a collection of targets, got {rights!r}. Wrap one in a list."
        )
    rights = list(rights)
    link = _find(left, rights, via, mode)
    unknown = sorted(set(attrs) - set(link.attr_names))
    if unknown:
        raise AssociationError(
            f"{mode}(): {', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not "
            f"column(s) of link table {link.table.name!r}; its own columns are "
            f"{', '.join(link.attr_names) or '(none: it only holds the pair)'}. Add the "
            "column to the link table or drop the keyword."
        )
    if mode == "unlink" and attrs:
        raise AssociationError("unlink() takes no attributes: it deletes the pairs.")
    call = _Call(mode, link, left, rights, dict(attrs))
    # Validate keys now (no SQL yet), except of pending objects, which get theirs at flush.
    if not needs_flush(call.objects):
        call.prepare()
    return call


def _find(left: Any, rights: list[Any], via: Any, mode: str) -> Link:
    if via is not None:
        return resolve(via)
    from sqlalchemy import inspect as sa_inspect

    left_mapper = getattr(sa_inspect(left, raiseerr=False), "mapper", None)
    right_state = sa_inspect(rights[0], raiseerr=False) if rights else None
    right_mapper = getattr(right_state, "mapper", None)
    if left_mapper is None or right_mapper is None:
        raise AssociationError(
            f"{mode}() cannot tell which relationship to write from ids alone: pass "
            "via=Post.tags (the relationship, association class collection or proxy)."
        )
    found = []
    for prop in left_mapper.relationships:
        try:
            candidate = resolve(getattr(left_mapper.class_, prop.key))
        except AssociationError:
            continue
        if right_mapper.isa(candidate.right_mapper):
            found.append(candidate)
    tables = {id(c.table) for c in found}
    if len(tables) != 1:
        raise AssociationError(
            f"{mode}(): {left_mapper.class_.__name__} has {len(tables)} many-to-many links to "
            f"{right_mapper.class_.__name__}; pass via= to say which one."
        )
    return found[0]


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
    attrs = dict(attrs or {})
    return _template(link, mode, tuple(attrs)).params(_params(left_id, ids, attrs))


def _params(left_id: Any, ids: Sequence[Any], attrs: Mapping[str, Any]) -> dict[str, Any]:
    return {"left_id": left_id, "right_ids": list(ids),
            **{f"attr_{k}": v for k, v in attrs.items()}}


# (id(link), mode, attribute names) -> (link, statement): building the statement costs more
# than running it, and one statement object per shape also hits SQLAlchemy's compiled cache.
_TEMPLATES: dict[tuple[int, str, tuple[str, ...]], tuple[Link, Select[Any]]] = {}


def _template(link: Link, mode: str, attr_names: tuple[str, ...]) -> Select[Any]:
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
        return select(literal(_REMOVED).label("kind"), gone_cte.c[rcol.name].label("id"))
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
        select(literal(_MISSING).label("kind"), missing.c.id),
        select(literal(_LEFT_MISSING), cast(null(), rcol.type)).where(left_gone),
        select(
            case((ins_cte.c.inserted, literal(_ADDED)), else_=literal(_UPDATED)),
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
        parts.append(select(literal(_REMOVED), removed.c[rcol.name]))
    elif mode != "link":
        raise AssociationError(f"mode must be 'link', 'unlink' or 'sync', not {mode!r}.")
    return select(union_all(*parts).subquery())


def _run(session: Session, call: _Call) -> LinkResult:
    if needs_flush(call.objects) or (session.autoflush and (session.new or session.dirty)):
        session.flush()
    params = call.prepare()
    try:
        rows = session.execute(call.statement, params).all()
    except IntegrityError as exc:
        if getattr(exc.orig, "sqlstate", None) == "23503":
            raise call.translate(exc) from exc
        raise
    return call.finish(session, rows)


async def _run_async(session: AsyncSession, call: _Call) -> LinkResult:
    if needs_flush(call.objects) or (session.autoflush and (session.new or session.dirty)):
        await session.flush()
    params = call.prepare()
    try:
        rows = (await session.execute(call.statement, params)).all()
    except IntegrityError as exc:
        if getattr(exc.orig, "sqlstate", None) == "23503":
            raise call.translate(exc) from exc
        raise
    return call.finish(session.sync_session, rows)


def link(session: Session, left: Any, rights: Iterable[Any], *, via: Any = None,
         **attrs: Any) -> LinkResult:
    """Link ``left`` to each of ``rights``; pairs that exist stay (their attributes updated).

    Examples:
        >>> link(session, post, [python, sql])  # doctest: +SKIP
        LinkResult(added=(7, 9), removed=(), updated=())
        >>> link(session, post, [python, sql]).changed  # doctest: +SKIP
        False
        >>> link(session, 12, [3], via=Group.users, role="admin")  # doctest: +SKIP
        LinkResult(added=(), removed=(), updated=(3,))

    One ``INSERT ... SELECT ... ON CONFLICT (left, right) DO NOTHING`` (``DO UPDATE ...
    WHERE`` a value differs, when attributes are given), which also checks that every id
    exists. Concurrent calls for the same pair never raise (under READ COMMITTED): one
    inserts, the other finds the row.

    Args:
        session: A Session (:func:`link_async` for AsyncSession).
        left: An object of the relationship's class, or its key when ``via`` is given.
        rights: Objects or keys of the other side; duplicates are ignored.
        via: ``Post.tags`` (secondary), ``Group.memberships`` or ``Group.users`` (proxy).
            Optional when objects are passed and only one link joins their classes.
        **attrs: Values for the link's own columns (``role="admin"``).

    Returns:
        :class:`LinkResult` with ``added`` and ``updated`` keys.

    Raises:
        AssociationError: Wrong class, unknown attribute, unresolvable ``via`` (before SQL).
        UnknownLinkTargetError: Ids that do not exist (``.missing``); nothing was written
            and the transaction is still usable.

    Warning:
        Under REPEATABLE READ/SERIALIZABLE a concurrent insert of the same pair raises a
        serialization failure, as any write there does: retry the transaction.
    """
    return _run(session, _prepare("link", left, rights, via, attrs))


def unlink(session: Session, left: Any, rights: Iterable[Any], *, via: Any = None) -> LinkResult:
    """Remove the pairs ``(left, right)``; absent pairs are ignored.

    Examples:
        >>> unlink(session, post, [python])  # doctest: +SKIP
        LinkResult(added=(), removed=(7,), updated=())

    One ``DELETE ... WHERE left = :id AND right = ANY(:ids) RETURNING right``.
    """
    return _run(session, _prepare("unlink", left, rights, via, {}))


def sync(session: Session, left: Any, rights: Iterable[Any], *, via: Any = None,
         **attrs: Any) -> LinkResult:
    """Make ``left``'s linked set exactly ``rights``, writing only the difference.

    Examples:
        >>> sync(session, post, [python, postgres])  # doctest: +SKIP
        LinkResult(added=(11,), removed=(9,), updated=())

    One statement: an ``INSERT ... ON CONFLICT DO NOTHING`` of the new pairs and a
    ``DELETE`` of the pairs not listed, as data-modifying CTEs sharing one snapshot. Pairs
    that stay are not touched (unless ``attrs`` change their values). An empty ``rights``
    unlinks everything. Arguments and errors as :func:`link`.
    """
    return _run(session, _prepare("sync", left, rights, via, attrs))


async def link_async(session: AsyncSession, left: Any, rights: Iterable[Any], *,
                     via: Any = None, **attrs: Any) -> LinkResult:
    """:func:`link` for an ``AsyncSession``.

    Examples:
        >>> await link_async(session, post, [python])  # doctest: +SKIP
        LinkResult(added=(7,), removed=(), updated=())
    """
    return await _run_async(session, _prepare("link", left, rights, via, attrs))


async def unlink_async(session: AsyncSession, left: Any, rights: Iterable[Any], *,
                       via: Any = None) -> LinkResult:
    """:func:`unlink` for an ``AsyncSession``.

    Examples:
        >>> await unlink_async(session, post, [python])  # doctest: +SKIP
        LinkResult(added=(), removed=(7,), updated=())
    """
    return await _run_async(session, _prepare("unlink", left, rights, via, {}))


async def sync_async(session: AsyncSession, left: Any, rights: Iterable[Any], *,
                     via: Any = None, **attrs: Any) -> LinkResult:
    """:func:`sync` for an ``AsyncSession``.

    Examples:
        >>> await sync_async(session, post, [python, sql])  # doctest: +SKIP
        LinkResult(added=(9,), removed=(), updated=())
    """
    return await _run_async(session, _prepare("sync", left, rights, via, attrs))
