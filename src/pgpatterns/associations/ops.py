"""link / unlink / sync: a lock and one set-based statement each, idempotent, serialized.

Examples:
    >>> sync(session, post, [python, sql])  # doctest: +SKIP
    LinkResult(added=(9,), removed=(3,), updated=())

What each action locks, and what a caller retries:

* ``link``, ``unlink`` and ``sync`` first take a transaction-level advisory lock on
  *(link table, owner)*, the owner being ``left`` (the post of ``Post.tags``), held until
  the transaction ends. Writes to one owner's links therefore run one after the other;
  other owners are not blocked, and neither are plain reads or updates of the owner row.
* READ COMMITTED: the write statement runs after the lock is granted, on a new snapshot
  that includes every earlier writer's commit, so the last call to commit wins exactly
  (two concurrent ``sync`` calls leave one of the two sets, never their union). Nothing to
  retry.
* REPEATABLE READ and SERIALIZABLE: the snapshot is the transaction's, possibly older than
  another writer's commit. So the statement also updates the owner row in place
  (``UPDATE posts SET id = id``, a no-op): always above READ COMMITTED, and at every level
  when a link changed (the owner table's UPDATE triggers fire then, and the role needs
  UPDATE on it). A transaction that lost the race, whatever level the winner ran at, fails
  in the action with :class:`~pgpatterns.errors.LinkConcurrentUpdateError`
  (``retryable = True``, the database's 40001/40P01 as ``__cause__``): roll back and run
  the whole transaction again.
* Serialization is per owner *and side*: ``sync(s, tag, posts, via=Tag.posts)`` locks the
  tag, not the posts, so racing it against ``sync(s, post, ..., via=Post.tags)`` at READ
  COMMITTED is not serialized (use SERIALIZABLE, or write one side only). ORM writes
  (``post.tags.append``) take no lock.

Every argument is checked before SQL: ``None`` where a collection is needed, a key that
does not fit the key column's type (``2**40`` for an ``integer`` id) or is of the wrong
type raise :class:`~pgpatterns.errors.ArgumentError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import InstanceState, Mapper, Session

from pgpatterns.associations._guard import concurrent_error, lock_stmt
from pgpatterns.associations._link import (
    Link,
    key_of,
    needs_flush,
    resolve,
    target_ids,
    targets,
)
from pgpatterns.associations._stmt import (
    ADDED,
    LEFT_MISSING,
    MISSING,
    REMOVED,
    UPDATED,
    check_attrs,
    link_stmt,
    params,
    template,
)
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
                              "left side", self.link.label, where=self.mode, name="left")
        ids = target_ids(self.link, self.rights, where=self.mode, name="rights")
        return params(self.left_id, ids, self.attrs)

    @property
    def lock(self) -> Select[Any]:
        return lock_stmt(self.link)

    @property
    def statement(self) -> Select[Any]:
        return template(self.link, self.mode, tuple(self.attrs))

    def finish(self, session: Session, rows: Sequence[Any]) -> LinkResult:
        found: dict[int, list[Any]] = {k: [] for k in range(5)}
        for kind, value in rows:
            found[kind].append(value)
        if found[LEFT_MISSING]:
            raise UnknownLinkTargetError(
                f"{self.link.label}: {self.link.left_mapper.class_.__name__} "
                f"{self.link.left_key.name}={self.left_id!r} does not exist; nothing was "
                "written. Create it first (or check the id).",
                (self.left_id,),
            )
        if found[MISSING]:
            missing = tuple(sorted(found[MISSING]))
            raise UnknownLinkTargetError(
                f"{self.link.label}: no {self.link.right_mapper.class_.__name__} with "
                f"{self.link.right_key.name} {', '.join(map(repr, missing))}; nothing was "
                "written. Create them first, or drop them from the list.",
                missing,
            )
        _expire(session, self, [*found[ADDED], *found[REMOVED], *found[UPDATED]])
        return LinkResult(tuple(found[ADDED]), tuple(found[REMOVED]), tuple(found[UPDATED]))

    def translate(self, exc: DBAPIError) -> AssociationError | None:
        """A typed error for the database errors these writes expect, else None."""
        concurrent = concurrent_error(exc, self.link, self.mode)
        if concurrent is not None:
            return concurrent
        if not isinstance(exc, IntegrityError) or getattr(exc.orig, "sqlstate", None) != "23503":
            return None
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
    rights = targets(mode, "rights", rights, "targets (objects or ids)")
    link = _find(left, rights, via, mode)
    check_attrs(mode, link, attrs)
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
    tables = {(id(c.table), c.left_col.name) for c in found}  # a self-link has two directions
    if len(tables) != 1:
        raise AssociationError(
            f"{mode}(): {left_mapper.class_.__name__} has {len(tables)} many-to-many links to "
            f"{right_mapper.class_.__name__}; pass via= to say which one."
        )
    return found[0]


def _run(session: Session, call: _Call) -> LinkResult:
    if needs_flush(call.objects) or (session.autoflush and (session.new or session.dirty)):
        session.flush()
    params = call.prepare()
    try:
        session.execute(call.lock, {"left_id": call.left_id})
        rows = session.execute(call.statement, params).all()
    except DBAPIError as exc:
        typed = call.translate(exc)
        if typed is None:
            raise
        raise typed from exc
    return call.finish(session, rows)


async def _run_async(session: AsyncSession, call: _Call) -> LinkResult:
    if needs_flush(call.objects) or (session.autoflush and (session.new or session.dirty)):
        await session.flush()
    params = call.prepare()
    try:
        await session.execute(call.lock, {"left_id": call.left_id})
        rows = (await session.execute(call.statement, params)).all()
    except DBAPIError as exc:
        typed = call.translate(exc)
        if typed is None:
            raise
        raise typed from exc
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

    The owner's lock (see the module docstring), then one ``INSERT ... SELECT ... ON
    CONFLICT (left, right) DO NOTHING`` (``DO UPDATE ... WHERE`` a value differs, when
    attributes are given), which also checks that every id exists. Concurrent calls for the
    same owner run one after the other and never raise under READ COMMITTED.

    Args:
        session: A Session (:func:`link_async` for AsyncSession).
        left: An object of the relationship's class, or its key when ``via`` is given.
        rights: Objects or keys of the other side; duplicates are ignored.
        via: ``Post.tags`` (secondary), ``Group.memberships`` or ``Group.users`` (proxy).
            Optional when objects are passed and only one link joins their classes.
        **attrs: Values for the link's own columns (``role="admin"``); required for the
            columns in the link's identity (``key_columns=``), which pick the link to insert
            or update.

    Returns:
        :class:`LinkResult` with ``added`` and ``updated`` keys.

    Raises:
        ArgumentError: ``rights`` is None, a string or a single object; a key does not fit
            its column's type (before SQL).
        AssociationError: Wrong class, unknown attribute, unresolvable ``via`` (before SQL).
        UnknownLinkTargetError: Ids that do not exist (``.missing``); nothing was written
            and the transaction is still usable.
        LinkConcurrentUpdateError: REPEATABLE READ/SERIALIZABLE only: another transaction
            wrote this owner's links after this one's snapshot. Retry the transaction.
    """
    return _run(session, _prepare("link", left, rights, via, attrs))


def unlink(session: Session, left: Any, rights: Iterable[Any], *, via: Any = None,
           **keys: Any) -> LinkResult:
    """Remove the pairs ``(left, right)``; absent pairs are ignored.

    Examples:
        >>> unlink(session, post, [python])  # doctest: +SKIP
        LinkResult(added=(), removed=(7,), updated=())

    The owner's lock, then one ``DELETE ... WHERE left = :id AND right = ANY(:ids)
    RETURNING right``. Arguments and errors as :func:`link` (``[]`` removes nothing; ``None``
    is an error). ``keys``: for a link whose identity has key columns
    (``association_object(..., key_columns=...)``), only the links with these values go;
    without them every link of each pair does.
    """
    return _run(session, _prepare("unlink", left, rights, via, keys))


def sync(session: Session, left: Any, rights: Iterable[Any], *, via: Any = None,
         **attrs: Any) -> LinkResult:
    """Make ``left``'s linked set exactly ``rights``, writing only the difference.

    Examples:
        >>> sync(session, post, [python, postgres])  # doctest: +SKIP
        LinkResult(added=(11,), removed=(9,), updated=())

    The owner's lock, then one statement: an ``INSERT ... ON CONFLICT DO NOTHING`` of the
    new pairs and a ``DELETE`` of the pairs not listed, as data-modifying CTEs sharing one
    snapshot. Pairs that stay are not touched (unless ``attrs`` change their values). An
    empty list unlinks everything; ``None`` is an error (never read as "empty"). Concurrent
    syncs of one owner: the last to commit wins exactly (READ COMMITTED), or the losers
    raise :class:`~pgpatterns.errors.LinkConcurrentUpdateError` (REPEATABLE READ and
    SERIALIZABLE). Arguments and errors as :func:`link`. For a link whose identity has
    key columns, the left side's links become exactly ``rights`` x the given key values
    (others, including other key values of a listed pair, are removed).
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
                       via: Any = None, **keys: Any) -> LinkResult:
    """:func:`unlink` for an ``AsyncSession``.

    Examples:
        >>> await unlink_async(session, post, [python])  # doctest: +SKIP
        LinkResult(added=(), removed=(7,), updated=())
    """
    return await _run_async(session, _prepare("unlink", left, rights, via, keys))


async def sync_async(session: AsyncSession, left: Any, rights: Iterable[Any], *,
                     via: Any = None, **attrs: Any) -> LinkResult:
    """:func:`sync` for an ``AsyncSession``.

    Examples:
        >>> await sync_async(session, post, [python, sql])  # doctest: +SKIP
        LinkResult(added=(9,), removed=(), updated=())
    """
    return await _run_async(session, _prepare("sync", left, rights, via, attrs))
