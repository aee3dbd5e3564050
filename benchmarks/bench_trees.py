"""trees: adjacency list + recursive CTE (pgpatterns.trees) versus the forms users write.

One generated forest (seeded; fan-out from 1 to hundreds, depth up to 20): 10^6 nodes at
default scale, 10^4 at quick, with an ``ltree`` path column (GiST-indexed) for the
materialized-path alternative. Questions:

* ``trees:subtree-orm``: a ~10^4-node subtree (10^3 at quick) as ORM objects:
  ``descendants()`` vs lazy ``children`` traversal (N+1) vs one query per level.
* ``trees:subtree-sql``: the same subtree as rows: ``descendants()`` executed in Core vs a
  hand-written recursive CTE through psycopg (the limit of this storage) vs ``ltree <@``.
* ``trees:ancestors``: the ancestors of the deepest node: CTE vs N+1 walk vs ltree.
* ``trees:load-subtree``: ``load_subtree`` vs ``selectinload(recursion_depth=...)``.
* ``trees:move``: re-parent the subtree: ``move()`` (one row, checked by the trigger) vs
  rewriting the ltree paths below it.
* ``trees:bulk-load``: the whole forest (parents first) loaded by COPY into a fresh
  table analysed empty, with the guard vs without it (the limit), and ``find_problems`` over
  it: both linear (issue #24: quadratic before).
"""

from __future__ import annotations

import random
import string
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import BigInteger, Engine, select, text, update
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, selectinload
from sqlalchemy.types import UserDefinedType

from benchmarks.conftest import Scale, record
from pgpatterns.bulk import copy_rows
from pgpatterns.ddl import create_all, drop_all
from pgpatterns.explain import explain, plan_summary
from pgpatterns.trees import (
    AdjacencyListMixin,
    ancestors,
    descendants,
    find_problems,
    load_subtree,
    move,
    tree_guard,
)

MAX_DEPTH = 20


class Ltree(UserDefinedType[str]):
    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "ltree"


class Base(DeclarativeBase):
    pass


class Node(AdjacencyListMixin, Base):
    __tablename__ = "bench_trees_nodes"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    name: Mapped[str]
    lpath: Mapped[str] = mapped_column(Ltree())  # 'path' is the name of the CTE's column


TABLE = Node.__table__
GUARD = tree_guard(Node)
_DIGITS = string.digits + string.ascii_lowercase


def _label(i: int) -> str:
    out = ""
    while True:
        i, r = divmod(i, 36)
        out = _DIGITS[r] + out
        if not i:
            return out


@dataclass
class Forest:
    size: int
    parent: list[int]  # parent[i] (0 = root); ids are 1..size, parents before children
    subtree: int  # root of the ~target-size subtree
    subtree_size: int
    subtree_depth: int  # levels below it
    deepest: int
    deepest_depth: int
    target_parent: int  # where trees:move puts the subtree (outside it)
    original_parent: int


def generate(scale: Scale) -> tuple[Forest, list[tuple[Any, ...]]]:
    n = scale.pick(quick=10**4, default=10**6)
    target = scale.pick(quick=10**3, default=10**4)
    rng = random.Random(scale.seed)
    roots = max(1, n // 100_000)
    parent, depth, paths = [0] * (n + 1), [0] * (n + 1), [""] * (n + 1)
    for i in range(1, n + 1):
        if i <= roots:
            p = 0
        else:
            while True:
                # old nodes get wide fan-out, recent ones grow deep chains
                lo = 1 if rng.random() < 0.5 else max(1, i - 50)
                p = rng.randint(lo, i - 1)
                if depth[p] < MAX_DEPTH - 1:
                    break
            depth[i] = depth[p] + 1
        parent[i] = p
        paths[i] = f"{paths[p]}.{_label(i)}" if p else _label(i)
    size, height = [1] * (n + 1), [0] * (n + 1)
    for i in range(n, roots, -1):
        size[parent[i]] += size[i]
        height[parent[i]] = max(height[parent[i]], height[i] + 1)
    sub = min(range(1, n + 1), key=lambda i: (abs(size[i] - target), i))
    deepest = max(range(1, n + 1), key=lambda i: depth[i])
    inside = set()
    for i in range(sub, n + 1):  # descendants have larger ids
        if i == sub or parent[i] in inside:
            inside.add(i)
    outside = next(i for i in range(1, n + 1) if i not in inside and i != parent[sub])
    rows = [(i, parent[i] or None, f"node {i}", paths[i]) for i in range(1, n + 1)]
    forest = Forest(n, parent, sub, size[sub], height[sub], deepest, depth[deepest],
                    outside, parent[sub])
    return forest, rows


@pytest.fixture(scope="module")
def forest(pg_module_engine: Engine, scale: Scale) -> Iterator[Forest]:
    """The forest, loaded once per module and dropped after the last question."""
    pg_engine = pg_module_engine
    data, rows = generate(scale)
    with pg_engine.begin() as conn:
        Base.metadata.drop_all(conn)
        Base.metadata.create_all(conn)
        copy_rows(conn, TABLE, rows, columns=["id", "parent_id", "name", "lpath"])
        conn.execute(
            text("CREATE INDEX bench_trees_path ON bench_trees_nodes USING gist (lpath)")
        )
        create_all(conn, *GUARD)
    with pg_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE bench_trees_nodes"))
    yield data
    with pg_engine.begin() as conn:
        drop_all(conn, *GUARD)
        Base.metadata.drop_all(conn)


def _plan(engine: Engine, stmt: Any) -> str:
    with Session(engine) as session:
        return plan_summary(explain(session, stmt, analyze=True))


def _run(benchmark: Any, fn: Any, rounds: int, expected: int) -> None:
    result = benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=0)
    assert result == expected, f"returned {result} rows, expected {expected}"


# -- trees:subtree-orm ------------------------------------------------------------------
Q_ORM = "trees:subtree-orm"


def test_subtree_orm_descendants(benchmark: Any, pg_engine: Engine, forest: Forest,
                                 scale: Scale) -> None:
    stmt = descendants(Node, forest.subtree, order=None)
    record(benchmark, question=Q_ORM, case="descendants() -> ORM objects", role="pattern",
           rows=forest.subtree_size - 1, scale=scale, plan=_plan(pg_engine, stmt))

    def run() -> int:
        with Session(pg_engine) as session:
            return len(session.scalars(stmt).all())

    _run(benchmark, run, scale.rounds, forest.subtree_size - 1)


def test_subtree_orm_lazy_n_plus_1(benchmark: Any, pg_engine: Engine, forest: Forest,
                                   scale: Scale) -> None:
    record(benchmark, question=Q_ORM, case="ORM lazy children (N+1)", role="baseline",
           rows=forest.subtree_size - 1, scale=scale, plan="one SELECT per node",
           target_slower_by_at_least=50, rounds_note="rounds=1: one query per node")

    def run() -> int:
        with Session(pg_engine) as session:
            count, stack = 0, [session.get(Node, forest.subtree)]
            while stack:
                kids = stack.pop().children
                count += len(kids)
                stack.extend(kids)
            return count

    _run(benchmark, run, 1, forest.subtree_size - 1)


def test_subtree_orm_per_level(benchmark: Any, pg_engine: Engine, forest: Forest,
                               scale: Scale) -> None:
    record(benchmark, question=Q_ORM, case="one query per level (treebeard AL)",
           role="alternative", rows=forest.subtree_size - 1, scale=scale,
           plan="SELECT ... WHERE parent_id IN (previous level), per level")

    def run() -> int:
        with Session(pg_engine) as session:
            count, level = 0, [forest.subtree]
            while level:
                found = session.scalars(select(Node).where(Node.parent_id.in_(level))).all()
                count += len(found)
                level = [n.id for n in found]
            return count

    _run(benchmark, run, scale.rounds, forest.subtree_size - 1)


# -- trees:subtree-sql ------------------------------------------------------------------
Q_SQL = "trees:subtree-sql"
HAND_CTE = (
    "WITH RECURSIVE t AS ("
    " SELECT n.*, 0 AS depth, ARRAY[n.id] AS path_ids FROM bench_trees_nodes n WHERE n.id = %s"
    " UNION ALL SELECT n.*, t.depth + 1, t.path_ids || n.id FROM bench_trees_nodes n"
    " JOIN t ON n.parent_id = t.id WHERE n.id <> ALL (t.path_ids))"
    " SELECT * FROM t WHERE depth > 0"
)
MINIMAL_CTE = (
    "WITH RECURSIVE t AS (SELECT n.*, 0 AS depth FROM bench_trees_nodes n WHERE n.id = %s"
    " UNION ALL SELECT n.*, t.depth + 1 FROM bench_trees_nodes n JOIN t ON n.parent_id = t.id)"
    " SELECT * FROM t WHERE depth > 0"
)
LTREE = (
    "SELECT * FROM bench_trees_nodes WHERE lpath <@ (SELECT lpath FROM bench_trees_nodes"
    " WHERE id = %s) AND id <> %s"
)


def _psycopg(engine: Engine, sql: str, params: tuple[Any, ...]) -> int:
    with engine.connect() as conn:
        raw: Any = conn.connection.driver_connection
        with raw.cursor() as cur:
            cur.execute(sql, params)
            return len(cur.fetchall())


@pytest.mark.parametrize("order", [None, "depth_first"])
def test_subtree_sql_descendants(benchmark: Any, pg_engine: Engine, forest: Forest,
                                 scale: Scale, order: str | None) -> None:
    stmt = descendants(Node, forest.subtree, order=order)
    role = "pattern" if order is None else "alternative"
    record(benchmark, question=Q_SQL, case=f"descendants(order={order!r}) in Core", role=role,
           rows=forest.subtree_size - 1, scale=scale, plan=_plan(pg_engine, stmt))

    def run() -> int:
        with pg_engine.connect() as conn:
            return len(conn.execute(stmt).all())

    _run(benchmark, run, scale.rounds, forest.subtree_size - 1)


@pytest.mark.parametrize(
    ("case", "role", "sql", "extra"),
    [
        ("hand-written CTE, same columns (psycopg)", "limit", HAND_CTE,
         {"target_pattern_within": 1.2}),
        ("hand-written CTE without path or cycle guard", "alternative", MINIMAL_CTE, {}),
        ("ltree <@ with GiST (psycopg)", "alternative", LTREE, {}),
    ],
)
def test_subtree_sql_hand_written(benchmark: Any, pg_engine: Engine, forest: Forest,
                                  scale: Scale, case: str, role: str, sql: str,
                                  extra: dict[str, Any]) -> None:
    params = (forest.subtree,) * sql.count("%s")
    record(benchmark, question=Q_SQL, case=case, role=role, rows=forest.subtree_size - 1,
           scale=scale, plan=_plan(pg_engine, text(sql.replace("%s", ":p")).bindparams(
               p=forest.subtree)), **extra)
    _run(benchmark, lambda: _psycopg(pg_engine, sql, params), scale.rounds,
         forest.subtree_size - 1)


# -- trees:ancestors ---------------------------------------------------------------------
Q_UP = "trees:ancestors"


def test_ancestors_cte(benchmark: Any, pg_engine: Engine, forest: Forest, scale: Scale) -> None:
    stmt = ancestors(Node, forest.deepest)
    record(benchmark, question=Q_UP, case="ancestors() -> ORM objects", role="pattern",
           rows=forest.deepest_depth, scale=scale, plan=_plan(pg_engine, stmt))

    def run() -> int:
        with Session(pg_engine) as session:
            return len(session.scalars(stmt).all())

    _run(benchmark, run, scale.rounds, forest.deepest_depth)


def test_ancestors_n_plus_1(benchmark: Any, pg_engine: Engine, forest: Forest,
                            scale: Scale) -> None:
    record(benchmark, question=Q_UP, case="ORM lazy parent walk (N+1)", role="baseline",
           rows=forest.deepest_depth, scale=scale, plan="one SELECT per level")

    def run() -> int:
        with Session(pg_engine) as session:
            count, node = 0, session.get(Node, forest.deepest)
            while node is not None and (node := node.parent) is not None:
                count += 1
            return count

    _run(benchmark, run, scale.rounds, forest.deepest_depth)


def test_ancestors_ltree(benchmark: Any, pg_engine: Engine, forest: Forest,
                         scale: Scale) -> None:
    sql = ("SELECT * FROM bench_trees_nodes WHERE lpath @> (SELECT lpath FROM bench_trees_nodes"
           " WHERE id = :p) AND id <> :p")
    stmt = select(Node).from_statement(text(sql).bindparams(p=forest.deepest))
    record(benchmark, question=Q_UP, case="ltree @> with GiST -> ORM objects",
           role="alternative", rows=forest.deepest_depth, scale=scale,
           plan=_plan(pg_engine, text(sql).bindparams(p=forest.deepest)))

    def run() -> int:
        with Session(pg_engine) as session:
            return len(session.scalars(stmt).all())

    _run(benchmark, run, scale.rounds, forest.deepest_depth)


# -- trees:load-subtree ------------------------------------------------------------------
Q_LOAD = "trees:load-subtree"


def _count_tree(root: Any) -> int:
    count, stack = 0, [root]
    while stack:
        kids = stack.pop().children
        count += len(kids)
        stack.extend(kids)
    return count


def test_load_subtree(benchmark: Any, pg_engine: Engine, forest: Forest, scale: Scale) -> None:
    record(benchmark, question=Q_LOAD, case="load_subtree() (1 statement)", role="pattern",
           rows=forest.subtree_size, scale=scale,
           plan=_plan(pg_engine, descendants(Node, forest.subtree, include_self=True)))
    def run() -> int:
        with Session(pg_engine) as session:
            return _count_tree(load_subtree(session, Node, forest.subtree)) + 1

    _run(benchmark, run, scale.rounds, forest.subtree_size)


def test_selectinload_recursion(benchmark: Any, pg_engine: Engine, forest: Forest,
                                scale: Scale) -> None:
    depth = forest.subtree_depth + 1
    record(benchmark, question=Q_LOAD, case=f"selectinload(recursion_depth={depth})",
           role="baseline", rows=forest.subtree_size, scale=scale,
           plan="SELECT root; then one SELECT ... IN (...) per level")
    option = selectinload(Node.children, recursion_depth=depth)

    def run() -> int:
        with Session(pg_engine) as session:
            root = session.scalars(
                select(Node).where(Node.id == forest.subtree).options(option)
            ).one()
            return _count_tree(root) + 1

    _run(benchmark, run, scale.rounds, forest.subtree_size)


# -- trees:move --------------------------------------------------------------------------
Q_MOVE = "trees:move"


def _restore_parent(engine: Engine, forest: Forest) -> None:
    with engine.begin() as conn:
        conn.execute(update(Node).where(Node.id == forest.subtree)
                     .values(parent_id=forest.original_parent))


def test_move_adjacency(benchmark: Any, pg_engine: Engine, forest: Forest,
                        scale: Scale) -> None:
    record(benchmark, question=Q_MOVE, case="move() (check + 1 row + trigger)",
           role="pattern", rows=forest.subtree_size, scale=scale,
           plan="ancestor walk of the new parent; UPDATE 1 row")

    def run() -> int:
        with Session(pg_engine) as session:
            move(session, session.get(Node, forest.subtree), forest.target_parent)
            session.commit()
            return int(session.scalar(select(Node.parent_id).where(Node.id == forest.subtree))
                       == forest.target_parent)

    result = benchmark.pedantic(run, setup=lambda: _restore_parent(pg_engine, forest),
                                rounds=scale.rounds, iterations=1, warmup_rounds=0)
    assert result == 1
    _restore_parent(pg_engine, forest)


REWRITE = text(
    "UPDATE bench_trees_nodes SET lpath = CAST(:new_parent AS ltree)"
    " || subpath(lpath, nlevel(CAST(:old AS ltree)) - 1) WHERE lpath <@ CAST(:old AS ltree)"
)


def test_move_ltree(benchmark: Any, pg_engine: Engine, forest: Forest, scale: Scale) -> None:
    record(benchmark, question=Q_MOVE, case="ltree: rewrite every path below",
           role="alternative", rows=forest.subtree_size, scale=scale,
           plan="UPDATE ... SET path = new || subpath(path, ...) WHERE path <@ old (GiST)")
    with pg_engine.connect() as conn:
        def path_of(key: int) -> str:
            return str(conn.execute(select(Node.lpath).where(Node.id == key)).scalar_one())

        original, home = path_of(forest.subtree), path_of(forest.original_parent)
        target = path_of(forest.target_parent)
    moved = f"{target}.{original.rsplit('.', 1)[-1]}"

    def reset() -> None:
        with pg_engine.begin() as conn:
            conn.execute(REWRITE, {"new_parent": home, "old": moved})

    def run() -> int:
        with pg_engine.begin() as conn:
            return int(conn.execute(REWRITE, {"new_parent": target, "old": original}).rowcount)

    result = benchmark.pedantic(run, setup=reset, rounds=scale.rounds, iterations=1,
                                warmup_rounds=0)
    assert result == forest.subtree_size
    reset()
    with pg_engine.connect() as conn:
        assert conn.execute(select(Node.lpath).where(Node.id == forest.subtree)).scalar() \
            == original


# -- trees:bulk-load --------------------------------------------------------------------
Q_BULK = "trees:bulk-load"


class Loaded(AdjacencyListMixin, Base):
    __tablename__ = "bench_trees_loaded"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    name: Mapped[str]


LOAD_GUARD = tree_guard(Loaded)


@pytest.mark.parametrize("guarded", [True, False], ids=["guard", "no-guard"])
def test_bulk_load(benchmark: Any, pg_engine: Engine, forest: Forest, scale: Scale,
                   guarded: bool) -> None:
    rows = [(i, forest.parent[i] or None, f"node {i}") for i in range(1, forest.size + 1)]
    record(benchmark, question=Q_BULK,
           case="COPY with tree_guard()" if guarded else "COPY, no trigger",
           role="pattern" if guarded else "limit", rows=len(rows), scale=scale,
           plan="per row: children probe (parent_id index); moves none")

    def reset() -> None:
        with pg_engine.begin() as conn:
            Loaded.__table__.drop(conn, checkfirst=True)  # and its trigger
            for ddl in LOAD_GUARD[0].drop_ddl():
                conn.execute(ddl)
            Loaded.__table__.create(conn)
            if guarded:
                create_all(conn, *LOAD_GUARD)
            conn.execute(text("ANALYZE bench_trees_loaded"))  # statistics: empty

    def run() -> int:
        with pg_engine.begin() as conn:
            return copy_rows(conn, Loaded.__table__, rows, columns=["id", "parent_id", "name"])

    result = benchmark.pedantic(run, setup=reset, rounds=scale.rounds, iterations=1,
                                warmup_rounds=0)
    assert result == len(rows)
    with Session(pg_engine) as session:
        if guarded:
            assert find_problems(session, Loaded) == []
    with pg_engine.begin() as conn:
        Loaded.__table__.drop(conn)
        for ddl in LOAD_GUARD[0].drop_ddl():
            conn.execute(ddl)


def test_find_problems(benchmark: Any, pg_engine: Engine, forest: Forest, scale: Scale) -> None:
    record(benchmark, question=Q_BULK, case="find_problems() over the forest",
           role="alternative", rows=forest.size, scale=scale,
           plan="walk down from roots + anti-join; walk up only unreached nodes")

    def run() -> int:
        with Session(pg_engine) as session:
            return len(find_problems(session, Node))

    _run(benchmark, run, scale.rounds, 0)
