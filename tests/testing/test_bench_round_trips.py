"""The benchmark harness counts round trips exactly as SQLAlchemy's statement events see them."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, insert, select, text

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo's benchmarks package
from benchmarks.harness import StatementCounter, at_latency
from benchmarks.report import _both_ways, _latency_cells


def test_counts_match_sqlalchemy_statement_events(pg_engine: Engine) -> None:
    seen: list[str] = []

    def listen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    counter = StatementCounter()
    counter.start()
    event.listen(pg_engine, "before_cursor_execute", listen)
    try:
        with pg_engine.begin() as conn:
            conn.execute(text("CREATE TEMP TABLE rt (x int)"))  # not counted: not wrapped
            seen.clear()

            def work() -> None:
                conn.execute(insert(text_table()), [{"x": i} for i in range(3)])
                conn.execute(select(text("1")))
                conn.execute(text("SELECT count(*) FROM rt")).scalar()

            counted = counter.wrap(work)
            counted()
            counted()
    finally:
        event.remove(pg_engine, "before_cursor_execute", listen)
        counter.stop()
    assert counter.calls == 2
    assert counter.statements == len(seen) and counter.per_call() == len(seen) / 2
    assert counter.per_call() >= 3


def text_table() -> Any:
    from sqlalchemy import Column, Integer, MetaData, Table

    return Table("rt", MetaData(), Column("x", Integer))


def test_report_adds_latency_per_statement_and_judges_both_ways() -> None:
    pattern = {"median_ms": 2.0, "extra": {"statements": 1}}
    n_plus_one = {"median_ms": 10.0, "extra": {"statements": 50}}
    assert at_latency(10.0, 50, 0.5) == 35.0
    assert _latency_cells(n_plus_one, pattern).split(" | ")[:2] == ["35.00", "14.00x"]
    assert [round(m / p, 2) for _, m, p in _both_ways(n_plus_one, pattern)] == [5.0, 14.0]
