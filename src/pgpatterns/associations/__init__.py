"""Many-to-many: link tables with safe defaults, association objects, set-based writes.

Examples:
    >>> from pgpatterns.associations import association_table, having_all, sync
    >>> posts_tags = many_to_many(Post, Tag, attr="tags", back="posts")  # doctest: +SKIP
    >>> sync(session, post, [python, sql])  # doctest: +SKIP
    LinkResult(added=(7, 9), removed=(3,), updated=())
    >>> session.scalars(having_all(Post, Post.tags, [python, sql])).all()  # doctest: +SKIP
    [<Post 1>]

Schema (:mod:`.schema`): :func:`association_table` (composite primary key, reverse index,
``ON DELETE CASCADE``), :func:`many_to_many` (the table plus ``relationship(secondary=...,
passive_deletes=True)`` on both classes) and :func:`association_object` (a mapped link class
with its own columns, collections and association proxies; :func:`with_attrs` appends
through a proxy with attributes).

Writes (:mod:`.ops`): :func:`link`, :func:`unlink`, :func:`sync` and their ``_async``
twins: a per-owner advisory lock and one statement each, idempotent, returning
:class:`LinkResult`. Concurrent writes to one owner's links are serialized: at READ COMMITTED
the last to commit wins exactly; at REPEATABLE READ and SERIALIZABLE the losers raise
:class:`~pgpatterns.errors.LinkConcurrentUpdateError` (retry the transaction). See
:mod:`.ops` for what each action locks.

Queries (:mod:`.query`): :func:`having_any`, :func:`having_all`, :func:`having_none`,
:func:`count_per`, :func:`top_related`, composable ``Select`` objects.

Warning:
    Needs PostgreSQL 9.5+ (``ON CONFLICT``); tested on 15 and 18. A link table must have a
    primary key (or unique constraint) on the pair, and each side a one-column key.
"""

from __future__ import annotations

from pgpatterns.associations.objects import WithAttrs, association_object, with_attrs
from pgpatterns.associations.ops import (
    LinkResult,
    link,
    link_async,
    link_stmt,
    sync,
    sync_async,
    unlink,
    unlink_async,
)
from pgpatterns.associations.query import (
    count_per,
    having_all,
    having_any,
    having_none,
    top_related,
)
from pgpatterns.associations.schema import association_table, many_to_many

__all__ = [
    "LinkResult",
    "WithAttrs",
    "association_object",
    "association_table",
    "count_per",
    "having_all",
    "having_any",
    "having_none",
    "link",
    "link_async",
    "link_stmt",
    "many_to_many",
    "sync",
    "sync_async",
    "top_related",
    "unlink",
    "unlink_async",
    "with_attrs",
]
