"""What ``link``/``unlink``/``sync`` lock before they write, and how a lost race is reported.

Examples:
    >>> print(lock_stmt(resolve(Post.tags)))  # doctest: +SKIP
    SELECT pg_advisory_xact_lock(:param_1, hashtext(CAST(:left_id AS TEXT)))

Each write (``link``, ``unlink``, ``sync``) first takes a transaction-level advisory lock on
*(link table, owner key)* (the owner is the ``left`` argument: the post of ``Post.tags``).
At READ COMMITTED the write statement that follows takes a new snapshot after the lock is
granted, so it sees every write of the calls that held the lock before it: writes to one
owner's links run one after the other, and the one that commits last wins exactly.

At REPEATABLE READ and SERIALIZABLE the snapshot is the transaction's, taken at its first
statement, so waiting for the lock cannot make it newer. So the write statement also updates
the owner row in place (``UPDATE posts SET id = id WHERE id = :left``, a HOT no-op): always
above READ COMMITTED, and at every level when it changed a link. A transaction whose
snapshot predates another's change of the same owner's links then conflicts with it like two
updates of the row, whatever level the other ran at, and fails with SQLSTATE 40001, raised as
:class:`~pgpatterns.errors.LinkConcurrentUpdateError` (retryable: roll back, run the whole
transaction again).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    Integer,
    Select,
    Text,
    bindparam,
    cast,
    exists,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError

from pgpatterns.associations._link import Link
from pgpatterns.errors import LinkConcurrentUpdateError

__all__ = ["RETRYABLE", "concurrent_error", "lock_space", "lock_stmt", "touch"]

RETRYABLE = frozenset({"40001", "40P01"})  # serialization_failure, deadlock_detected


def lock_space(link: Link) -> int:
    """The first advisory-lock key of a link table: a stable 32-bit hash of its name."""
    name = f"pgpatterns.associations:{link.table.schema or ''}.{link.table.name}"
    value = zlib.crc32(name.encode())
    return value - 2**32 if value >= 2**31 else value


# id(link) -> (link, statement)
_LOCKS: dict[int, tuple[Link, Select[Any]]] = {}


def lock_stmt(link: Link) -> Select[Any]:
    """``SELECT pg_advisory_xact_lock(<table key>, hashtext(:left_id::text))``.

    The lock is held until the transaction ends. Two owners whose keys hash alike share a
    lock (they wait for each other, nothing worse); the key space is the two-``int4`` one,
    shared with any other user of ``pg_advisory_xact_lock(int, int)`` in the database.
    """
    hit = _LOCKS.get(id(link))
    if hit is not None and hit[0] is link:
        return hit[1]
    owner = func.hashtext(cast(bindparam("left_id", type_=link.left_col.type), Text))
    stmt = select(func.pg_advisory_xact_lock(literal(lock_space(link), Integer), owner))
    _LOCKS[id(link)] = (link, stmt)
    return stmt


def touch(link: Link, left: Any, changes: Sequence[Any]) -> Any:
    """The CTE ``UPDATE owner SET key = key WHERE key = :left AND (<above READ COMMITTED> OR
    <a row changed>)``; ``changes`` are the statement's RETURNING CTEs.

    A call that changed links leaves this trace at every level, and a call above READ
    COMMITTED always tries to write it: a transaction whose snapshot predates another's
    change then fails on the row (40001) instead of writing on a stale view. Columns with a
    client-side ``onupdate`` are set to themselves, so the no-op stays one (server-side
    UPDATE triggers of the owner table do fire).
    """
    owner, key = link.left_key.table, link.left_key
    same = {c: c for c in owner.columns if c is key or c.onupdate is not None}
    above_rc = func.current_setting("transaction_isolation") != "read committed"
    changed = [exists(select(literal(1)).select_from(cte)) for cte in changes]
    return (update(owner).values(same).where(key == left, or_(above_rc, *changed))
            .returning(key).cte("touched"))


def concurrent_error(exc: DBAPIError, link: Link, mode: str) -> LinkConcurrentUpdateError | None:
    """The typed, retryable error for a serialization failure or deadlock, else None."""
    code = getattr(exc.orig, "sqlstate", None)
    if code not in RETRYABLE:
        return None
    what = "deadlock" if code == "40P01" else "serialization failure"
    return LinkConcurrentUpdateError(
        f"{link.label}: {mode}() lost a race with another transaction writing the same "
        f"links ({what}, SQLSTATE {code}); nothing of this transaction can be kept. Roll "
        "back and run the whole transaction again (it is retryable)."
    )
