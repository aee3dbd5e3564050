"""Concurrent moves at READ COMMITTED, REPEATABLE READ and SERIALIZABLE (issue #17).

Each thread owns a few nodes and moves only those (to any parent), retrying a transaction
that lost a race (``TreeConcurrentUpdateError``); so the final parent of every node is the
last move its thread committed: an exact model. The tree must also stay acyclic with every
node reachable from a root.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time

import pytest
from _tree_models import Category, tree_engine
from sqlalchemy import Engine, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from pgpatterns.errors import ConcurrentUpdateError, TreeConcurrentUpdateError, TreeCycleError
from pgpatterns.testing import Database
from pgpatterns.testing.plugin import PgSchema
from pgpatterns.trees import bulk_load, find_problems, move, move_async, tree_errors

__all__ = ["tree_engine"]

THREADS, PER_THREAD, MOVES = 8, 3, 6


def _acyclic(parents: dict[int, int | None]) -> None:
    for start in parents:  # every walk up ends at a root
        seen, node = set(), start
        while node is not None:
            assert node not in seen, f"cycle through {node}"
            seen.add(node)
            node = parents[node]


@pytest.mark.parametrize("level", ["READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE"])
def test_random_concurrent_moves_match_the_model(tree_engine: Engine, level: str) -> None:
    with Session(tree_engine) as s:
        bulk_load(s, Category, [{"name": f"n{i}"} for i in range(THREADS * PER_THREAD)])
        s.commit()
        ids = sorted(s.scalars(select(Category.id)))
    engine = tree_engine.execution_options(isolation_level=level)
    expected: dict[int, int | None] = dict.fromkeys(ids)
    retries: list[int] = []
    failures: list[BaseException] = []

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        mine = ids[seed * PER_THREAD:(seed + 1) * PER_THREAD]
        try:
            for _ in range(MOVES):
                node, parent = rng.choice(mine), rng.choice([*ids, None])
                for attempt in range(50):
                    try:
                        with Session(engine) as s, tree_errors(Category):
                            s.execute(text("SET LOCAL lock_timeout = '20s'"))
                            move(s, s.get(Category, node), parent)
                            s.commit()  # SERIALIZABLE may refuse here: typed by tree_errors
                        expected[node] = parent
                        break
                    except TreeCycleError:
                        break
                    except TreeConcurrentUpdateError as exc:
                        assert exc.retryable and isinstance(exc, ConcurrentUpdateError)
                        retries.append(attempt)
                        time.sleep(rng.random() * 0.02)
                else:
                    raise AssertionError("no progress after 50 attempts")
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(240)
    assert not any(t.is_alive() for t in threads)
    assert failures == []
    with Session(tree_engine) as s:
        parents = dict(s.execute(select(Category.id, Category.parent_id)).all())
        assert find_problems(s, Category) == []
    assert parents == expected
    _acyclic(parents)


def test_a_stale_snapshot_cannot_commit_a_cycle(tree_engine: Engine) -> None:
    """#17: T1 moves a under b (uncommitted); T2 at REPEATABLE READ, snapshot taken
    before T1 commits, moves b under a: it waits for the tree lock, then must fail."""
    with Session(tree_engine) as s:
        a, b = Category(name="a"), Category(name="b")
        s.add_all([a, b])
        s.commit()
        ids = a.id, b.id
    errors: list[BaseException] = []
    snapshot_taken = threading.Event()
    rr = tree_engine.execution_options(isolation_level="REPEATABLE READ")
    with tree_engine.connect() as t1:
        t1.execute(update(Category).where(Category.id == ids[0]).values(parent_id=ids[1]))

        def second() -> None:
            with Session(rr) as s2:
                s2.execute(text("SET LOCAL lock_timeout = '20s'"))
                node = s2.get(Category, ids[1])  # the snapshot: a is still a root
                snapshot_taken.set()
                try:
                    move(s2, node, ids[0])
                    s2.commit()
                except BaseException as exc:  # reported below
                    errors.append(exc)

        thread = threading.Thread(target=second)
        thread.start()
        assert snapshot_taken.wait(20)
        time.sleep(0.5)  # T2 now waits for the tree lock T1 holds
        t1.commit()
        thread.join(30)
    assert len(errors) == 1 and isinstance(errors[0], TreeConcurrentUpdateError), errors
    with Session(tree_engine) as s:
        parents = dict(s.execute(select(Category.id, Category.parent_id)).all())
        assert find_problems(s, Category) == []
    assert parents == {ids[0]: ids[1], ids[1]: None}


async def test_a_stale_snapshot_fails_the_same_way_async(
    tree_engine: Engine, pg_database: Database, pg_schema: PgSchema
) -> None:
    with Session(tree_engine) as s:
        a, b = Category(name="a"), Category(name="b")
        s.add_all([a, b])
        s.commit()
        ids = a.id, b.id
    engine = create_async_engine(
        pg_database.url, poolclass=NullPool, isolation_level="REPEATABLE READ",
        connect_args=pg_database.search_path_args(pg_schema.name),
    )
    try:
        with tree_engine.connect() as t1:
            t1.execute(update(Category).where(Category.id == ids[0]).values(parent_id=ids[1]))
            async with AsyncSession(engine) as s2:
                node = await s2.get(Category, ids[1])  # the snapshot: a is still a root
                task = asyncio.create_task(move_async(s2, node, ids[0]))
                await asyncio.sleep(0.5)  # the task now waits for the tree lock
                t1.commit()
                with pytest.raises(TreeConcurrentUpdateError):
                    await asyncio.wait_for(task, 30)
    finally:
        await engine.dispose()
    with Session(tree_engine) as s:
        assert find_problems(s, Category) == []
