"""Keyset pagination: ``WHERE (a, b) > (:a, :b) ORDER BY a, b LIMIT n`` with signed cursors.

Examples:
    >>> from sqlalchemy import BigInteger, Column, DateTime, MetaData, Table, select
    >>> posts = Table("posts", MetaData(), Column("id", BigInteger, primary_key=True),
    ...               Column("created_at", DateTime, nullable=False))
    >>> order = [posts.c.created_at.desc(), posts.c.id.desc()]
    >>> print(keyset(select(posts), order_by=order, limit=20))  # doctest: +NORMALIZE_WHITESPACE
    SELECT posts.id, posts.created_at FROM posts
    ORDER BY posts.created_at DESC, posts.id DESC LIMIT __[POSTCOMPILE_param_1]
    >>> index_for(order).name
    'posts_created_at_id_keyset_idx'

Page ``n`` costs what page 1 costs (an index range scan of ``limit + 1`` rows), where
``OFFSET`` reads and throws away every row before the page. The cursor is the last row's
sort-key values as JSON (type-tagged datetimes, dates, decimals, UUIDs, bytes), bound to the
ordering it came from and signed with HMAC-SHA256 under a secret you pass: a client can hold
it but not forge, edit or reuse it with another ordering (:class:`CursorError`, before SQL).

Rules (checked before any SQL is sent, :class:`PaginationError`):

* ``order_by`` lists table columns (``col``, ``col.asc()``, ``col.desc()``, ORM attributes)
  whose set includes a primary key or unique constraint of their table: a total order, so no
  row is skipped or repeated between pages. Put the unique column last (``..., id``).
* Sort columns are ``NOT NULL``. Nullable columns are refused (a NULL sorts outside every
  comparison); sort by ``func.coalesce`` in a view, or declare the column NOT NULL.
* The statement has no ORDER BY, LIMIT or OFFSET of its own, and selects the sort columns
  (directly, or through a selected ORM entity) so the next cursor can be read from a row.

When every key has one direction the condition is a row comparison ``(a, b) > (:a, :b)``,
which a B-tree index on ``(a, b)`` (or its reverse) serves as one range; with mixed
directions it is ``a >= :a AND (a > :a OR (a = :a AND b < :b))`` and needs an index with
those directions: :func:`index_for` declares the index that serves an ordering.

Warning:
    Rows inserted or updated behind the cursor while a client pages are not shown on later
    pages (that is the point: no duplicates, no skips of rows that stay put). The LIMIT is
    rendered inline (``literal_execute``) so PostgreSQL's generic plan keeps the index.
"""

from pgpatterns.pagination.pages import (
    Page,
    index_for,
    keyset,
    keyset_page,
    keyset_page_async,
    next_cursor,
)

__all__ = ["Page", "index_for", "keyset", "keyset_page", "keyset_page_async", "next_cursor"]
