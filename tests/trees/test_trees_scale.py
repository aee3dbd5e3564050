"""Plan shapes that keep tree maintenance linear (issue #24, items 4-5), checked without timing.

* The guard's per-row checks read the parent index even when the table was empty when
  they were first planned (a bulk load into a fresh table).
* ``find_problems`` finds the nodes no root reaches with an anti-join, not with a
  ``NOT (ANY (id = SubPlan))`` rescanned per row.
"""

from __future__ import annotations

from typing import Any

from _tree_models import Category, Folder, tree_engine
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from pgpatterns.bulk import copy_rows
from pgpatterns.explain import explain, nodes
from pgpatterns.trees import TreeProblem, bulk_load, find_problems
from pgpatterns.trees.problems import _statements

__all__ = ["tree_engine"]

N = 3000


def _nested(n: int, fanout: int = 4) -> list[dict[str, Any]]:
    made = [{"name": "n0", "tenant_id": 1, "children": []}]
    for i in range(1, n):
        node: dict[str, Any] = {"name": f"n{i}", "children": []}
        made[(i - 1) // fanout]["children"].append(node)
        made.append(node)
    return [made[0]]


def _scans(session: Session, table: str) -> tuple[int, int]:
    row = session.execute(text(
        "SELECT seq_scan, idx_scan FROM pg_stat_xact_user_tables WHERE relname = :t"
    ), {"t": table}).one()
    return int(row[0]), int(row[1])


def test_guard_checks_read_the_index_while_a_fresh_table_grows(tree_engine: Engine) -> None:
    with tree_engine.begin() as conn:  # statistics say "empty", as autovacuum leaves them
        conn.execute(text("ANALYZE tree_folders"))
    with Session(tree_engine) as s:  # one transaction: its own scan counters
        assert bulk_load(s, Folder, _nested(N)) == N
        seq, idx = _scans(s, "tree_folders")
        # one seq scan per row was the quadratic load of #24.4; a handful are statements'
        assert seq < 10, (seq, idx)
        assert idx >= 2 * N  # per row: the children probe and the parent's row (+ the FK)
        s.rollback()


def test_find_problems_is_an_anti_join(tree_engine: Engine) -> None:
    rows = [(i, None if i == 1 else 1 + (i - 2) // 3, f"c{i}") for i in range(1, N + 1)]
    with tree_engine.begin() as conn:
        copy_rows(conn, Category.__table__, rows, columns=["id", "parent_id", "name"])
        conn.execute(text("ANALYZE tree_categories"))
    with Session(tree_engine) as s:
        for stmt in _statements(Category):
            plan = explain(s, stmt, settings={"work_mem": "64kB"})  # a small hash budget
            for node in nodes(plan):
                condition = " ".join(str(node.get(k, "")) for k in ("Filter", "Join Filter"))
                assert "NOT (ANY" not in condition, condition  # the unhashed NOT IN
        cycles = explain(s, _statements(Category)[0], settings={"work_mem": "64kB"})
        assert any(n.get("Join Type") == "Anti" for n in nodes(cycles)), str(cycles)
        assert find_problems(s, Category) == []
        s.execute(text("ALTER TABLE tree_categories DISABLE TRIGGER ALL"))
        s.execute(text("UPDATE tree_categories SET parent_id = 7 WHERE id = 2"))  # 2 > 7 > 2
        problems = find_problems(s, Category)
        assert [p for p in problems if p.key in (2, 7)] == [
            TreeProblem("cycle", 2, 7), TreeProblem("cycle", 7, 2)
        ]
        s.rollback()
