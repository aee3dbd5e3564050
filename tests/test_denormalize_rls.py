"""pgpatterns.denormalize under row-level security (issue #16.6), as the non-owner app role.

``users`` is shared (every tenant may read and rename), ``forums`` is shared and read-only
for the app, ``posts`` is TenantScoped and holds a copy of its author's name and counts
into ``forums.post_count``. The owner (a superuser) creates the schema; the writes under test
run as the app role with ``tenant_context`` set.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from sqlalchemy import (
    BigInteger,
    Engine,
    ForeignKey,
    MetaData,
    Table,
    Text,
    func,
    insert,
    select,
    true,
    update,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from pgpatterns.ddl import attach
from pgpatterns.denormalize import Maintained, counter_cache, denormalized, drift_count
from pgpatterns.errors import DenormalizeError
from pgpatterns.rls import TenantScoped, enable_rls, policy, tenant_context
from pgpatterns.testing import Database
from pgpatterns.testing.plugin import PgSchema

FORUMS = (1, 2, 3, 4)


@dataclass
class Model:
    users: Table
    forums: Table
    posts: Table
    copy: Maintained
    count: Maintained


def _model(app_role: str) -> tuple[MetaData, Model]:
    class Base(DeclarativeBase):
        metadata = MetaData()

    class User(Base):
        __tablename__ = "users"
        id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
        name: Mapped[str] = mapped_column(Text)

    class Forum(Base):
        __tablename__ = "forums"
        id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
        post_count: Mapped[int] = mapped_column(server_default="0")

    class Post(TenantScoped, Base):
        __tablename__ = "posts"
        __tenant_roles__ = (app_role,)
        id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
        author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
        author_name: Mapped[str | None] = mapped_column(Text)
        forum_id: Mapped[int | None] = mapped_column(ForeignKey("forums.id"), index=True)

    users, forums, posts = User.__table__, Forum.__table__, Post.__table__
    assert isinstance(users, Table) and isinstance(forums, Table) and isinstance(posts, Table)
    rls = enable_rls(forums)  # shared, read-only for the application
    read_only = policy("forums_read", forums, to=[app_role], command="select", using=true())
    copy = denormalized(posts.c.author_name, users.c.name)
    count = counter_cache(forums.c.post_count, posts)
    attach(Base.metadata, rls, read_only, *copy, *count)
    return Base.metadata, Model(users, forums, posts, copy, count)


@pytest.fixture
def model(pg_schema: PgSchema, pg_database: Database) -> Model:
    md, made = _model(pg_database.app_role)
    with pg_schema.engine.begin() as conn:
        md.create_all(conn)
        conn.execute(insert(made.users), [{"id": i, "name": f"user {i}"} for i in (1, 2)])
        conn.execute(insert(made.forums), [{"id": i} for i in FORUMS])
    return made


def _as_tenant(app: Engine, tenant: int, *stmts: Any) -> None:
    with app.begin() as conn:
        tenant_context(conn, tenant)
        for stmt in stmts:
            conn.execute(stmt)


def test_functions_run_as_definer_with_a_pinned_path(model: Model) -> None:
    for fn in (model.copy.objects[0], model.copy.objects[2], model.count.objects[0]):
        sql = fn.sql()
        assert "SECURITY DEFINER SET search_path = pg_catalog, pg_temp" in sql
        assert sql.endswith("FROM PUBLIC")


def test_a_rename_by_one_tenant_reaches_every_tenants_copies(
    model: Model, pg_schema: PgSchema
) -> None:
    """#16.6: tenant 1 renames a shared user; tenant 2's copies follow."""
    app, owner = pg_schema.app_engine, pg_schema.engine
    posts = model.posts
    _as_tenant(app, 1, insert(posts).values(id=1, author_id=1, forum_id=1))
    _as_tenant(app, 2, insert(posts).values(id=2, author_id=1, forum_id=1),
               insert(posts).values(id=3, author_id=2, forum_id=2))
    _as_tenant(app, 1, update(model.users).where(model.users.c.id == 1).values(name="Ada"))
    with app.begin() as conn:
        tenant_context(conn, 2)
        mine = dict(conn.execute(select(posts.c.id, posts.c.author_name)).all())
        assert mine == {2: "Ada", 3: "user 2"}
        with pytest.raises(DenormalizeError, match="Run it as the tables' owner"):
            drift_count(conn, model.copy)  # would count only tenant 2's rows
    with owner.begin() as conn:
        names = dict(conn.execute(select(posts.c.id, posts.c.author_name)).all())
        assert names == {1: "Ada", 2: "Ada", 3: "user 2"}
        assert drift_count(conn, model.copy, model.count) == [0, 0]


def test_drift_as_the_app_role_is_refused_not_zero(model: Model, pg_schema: PgSchema) -> None:
    _as_tenant(pg_schema.app_engine, 2, insert(model.posts).values(id=2, author_id=1),
               insert(model.posts).values(id=5, author_id=1))
    with pg_schema.engine.begin() as conn:  # stale copies, in a tenant the reader is not
        conn.exec_driver_sql("ALTER TABLE posts DISABLE TRIGGER USER")
        conn.execute(update(model.posts).values(author_name="stale"))
        conn.exec_driver_sql("ALTER TABLE posts ENABLE TRIGGER USER")
    with pg_schema.app_engine.begin() as conn:
        tenant_context(conn, 1)
        assert conn.execute(model.copy.drift()).scalar() is None  # not a misleading 0
        with pytest.raises(DenormalizeError, match="row-level security applies"):
            drift_count(conn, model.copy)
    with pg_schema.engine.begin() as conn:
        assert drift_count(conn, model.copy) == [2]


def test_counter_counts_moves_into_read_only_parents(model: Model, pg_schema: PgSchema) -> None:
    app = pg_schema.app_engine
    posts = model.posts
    _as_tenant(app, 1, *(insert(posts).values(id=i, forum_id=1) for i in range(1, 4)))
    _as_tenant(app, 2, *(insert(posts).values(id=i, forum_id=2) for i in range(4, 6)))
    _as_tenant(app, 1, update(posts).where(posts.c.id == 1).values(forum_id=3))
    _as_tenant(app, 2, update(posts).where(posts.c.id == 4).values(forum_id=1))
    with pg_schema.engine.begin() as conn:
        counts = dict(conn.execute(select(model.forums.c.id, model.forums.c.post_count)).all())
        assert counts == {1: 3, 2: 1, 3: 1, 4: 0}
        assert drift_count(conn, model.count) == [0]


@pytest.mark.parametrize("isolation", ["READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE"])
def test_counter_moves_from_eight_threads_end_exact(
    model: Model, pg_schema: PgSchema, isolation: str
) -> None:
    """8 tenants move their posts between forums at once (one move per transaction): the
    counts end exact and no move deadlocks (the trigger locks both forums in key order).
    Above READ COMMITTED a move that meets a concurrent counter update fails with a
    serialization error (40001) and is retried, as the module docs say."""
    app = pg_schema.app_engine.execution_options(isolation_level=isolation)
    owner = pg_schema.engine
    posts, threads_n, per = model.posts, 8, 6
    placed: dict[int, int | None] = {}
    with owner.begin() as conn:
        rows = [
            {"tenant_id": t, "id": t * 100 + k, "forum_id": FORUMS[k % len(FORUMS)]}
            for t in range(1, threads_n + 1) for k in range(per)
        ]
        conn.execute(insert(posts), rows)
        placed.update({r["id"]: r["forum_id"] for r in rows})
    lock = threading.Lock()
    errors: list[BaseException] = []

    def mover(tenant: int) -> None:
        rng = random.Random(tenant)
        try:
            for _ in range(25 if isolation == "READ COMMITTED" else 10):
                post = tenant * 100 + rng.randrange(per)
                target = rng.choice([*FORUMS, None])
                for _attempt in range(50):
                    try:
                        with app.begin() as conn:
                            tenant_context(conn, tenant)
                            conn.execute(
                                update(posts).where(posts.c.id == post).values(forum_id=target)
                            )
                        break
                    except DBAPIError as exc:
                        if not isinstance(exc.orig, psycopg.errors.SerializationFailure):
                            raise
                else:
                    raise AssertionError("a move kept failing with serialization errors")
                with lock:
                    placed[post] = target
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=mover, args=(t,)) for t in range(1, threads_n + 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    deadlocks = [e for e in errors if isinstance(e, DBAPIError)
                 and isinstance(e.orig, psycopg.errors.DeadlockDetected)]
    assert not deadlocks
    assert not errors, errors
    expected = {f: sum(1 for v in placed.values() if v == f) for f in FORUMS}
    with owner.begin() as conn:
        counts = dict(conn.execute(select(model.forums.c.id, model.forums.c.post_count)).all())
        actual: dict[int, int] = dict(conn.execute(
            select(posts.c.forum_id, func.count()).where(posts.c.forum_id.is_not(None))
            .group_by(posts.c.forum_id)).all())
        assert drift_count(conn, model.count) == [0]
    assert counts == {f: expected[f] for f in FORUMS}
    assert {f: actual.get(f, 0) for f in FORUMS} == expected


async def test_drift_count_async_as_owner_and_as_app(
    model: Model, pg_schema: PgSchema, pg_database: Database
) -> None:
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
    from sqlalchemy.pool import NullPool

    from pgpatterns.denormalize import drift_count_async
    from pgpatterns.rls import tenant_context_async

    _as_tenant(pg_schema.app_engine, 1, insert(model.posts).values(id=1, author_id=1, forum_id=2))
    path = pg_database.search_path_args(pg_schema.name)
    for url, owner in ((pg_database.url, True), (pg_database.app_url, False)):
        engine = create_async_engine(url, poolclass=NullPool, connect_args=path)
        try:
            async with AsyncSession(engine) as session, session.begin():
                if owner:
                    assert await drift_count_async(session, model.copy, model.count) == [0, 0]
                else:
                    await tenant_context_async(session, 1)
                    with pytest.raises(DenormalizeError, match="row-level security applies"):
                        await drift_count_async(session, model.count)
        finally:
            await engine.dispose()
