"""pagination: page P of a feed by keyset (pgpatterns.pagination) vs OFFSET.

Data: N events (default 10**6, quick 10**5) with ``created_at`` shared by 3 rows each (ties
broken by ``id``), newest first, and the index ``index_for([created_at.desc(), id.desc()])``
declares (``(created_at, id)``, scanned backwards). Page size 20; the page read is page P
(default 1000, quick 100).

Question ``pagination:deep-page`` (issue #20: keyset at least 100x faster than OFFSET on
page 1,000 of 10**6 rows, and the same rows):

* pattern: ``keyset_page(conn, select(events), order_by=..., after=cursor, secret=...)``
  with the cursor page P - 1 returned (signature check and cursor decoding included);
* baseline: ``ORDER BY created_at DESC, id DESC LIMIT 20 OFFSET (P - 1) * 20`` on the same
  index (reads and discards every earlier row);
* limit: the keyset query written by hand (``WHERE (created_at, id) < (:c, :i) ...``);
* alternative: the same OFFSET query without that index (the index dropped inside the
  case's transaction and restored by its rollback): PostgreSQL sorts every row (top-N).

Both OFFSET cases carry the issue's target (``slower_by_at_least=100``), so the report shows
it against the indexed OFFSET (client round trip included) as well as the unindexed one.

Every case returns the same 20 rows (asserted).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import BigInteger, Column, DateTime, Engine, MetaData, Table, Text, select, text
from sqlalchemy.schema import DropIndex

from benchmarks.conftest import Scale, record
from pgpatterns.bulk import copy_rows
from pgpatterns.explain import explain, plan_summary
from pgpatterns.pagination import index_for, keyset, keyset_page, next_cursor

QUESTION = "pagination:deep-page"
SIZE = 20
SECRET = b"bench-pagination-secret-32-bytes"
START = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)

metadata = MetaData()
events = Table(
    "bench_pagination_events", metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("title", Text, nullable=False),
)
ORDER: list[Any] = [events.c.created_at.desc(), events.c.id.desc()]
INDEX = index_for(ORDER)
BASE = select(events)


@pytest.fixture(scope="module")
def _module() -> Iterator[dict[str, Any]]:
    state: dict[str, Any] = {}
    yield state
    if "engine" in state:
        metadata.drop_all(state["engine"])


@pytest.fixture
def loaded(pg_engine: Engine, scale: Scale, _module: dict[str, Any]) -> dict[str, Any]:
    """The table, loaded once; the page number, the cursor that leads to it, its rows."""
    if "n" not in _module:
        _module["engine"] = pg_engine
        n = scale.pick(quick=10**5, default=10**6)
        page = scale.pick(quick=100, default=1000)
        with pg_engine.begin() as conn:
            metadata.drop_all(conn)
            metadata.create_all(conn)
            copy_rows(conn, events, (
                (i, START + dt.timedelta(seconds=i // 3), f"event {i}") for i in range(n)))
        with pg_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE bench_pagination_events"))
        with pg_engine.connect() as conn:
            before = conn.execute(BASE.order_by(*ORDER).limit(SIZE)
                                  .offset((page - 2) * SIZE)).all()
            expected = conn.execute(BASE.order_by(*ORDER).limit(SIZE)
                                    .offset((page - 1) * SIZE)).all()
        cursor = next_cursor(before[-1], stmt=BASE, order_by=ORDER, secret=SECRET)
        _module.update(n=n, page=page, cursor=cursor, expected=expected,
                       last=(before[-1].created_at, before[-1].id))
    return _module


def _pattern(conn: Any, state: dict[str, Any]) -> list[Any]:
    return keyset_page(conn, BASE, order_by=ORDER, secret=SECRET, after=state["cursor"],
                       limit=SIZE).rows


def _offset_stmt(state: dict[str, Any]) -> Any:
    return BASE.order_by(*ORDER).limit(SIZE).offset((state["page"] - 1) * SIZE)


HAND = text(
    "SELECT id, created_at, title FROM bench_pagination_events"
    " WHERE (created_at, id) < (:c, :i) ORDER BY created_at DESC, id DESC LIMIT 20"
)


def _baseline(conn: Any, state: dict[str, Any]) -> list[Any]:
    return list(conn.execute(_offset_stmt(state)).all())


def _limit(conn: Any, state: dict[str, Any]) -> list[Any]:
    c, i = state["last"]
    return list(conn.execute(HAND, {"c": c, "i": i}).all())


CASES = {
    "keyset_page (pgpatterns.pagination)": ("pattern", _pattern),
    "OFFSET (same index)": ("baseline", _baseline),
    "hand-written keyset SQL": ("limit", _limit),
    "OFFSET without the index (sorts every row)": ("alternative", _baseline),
}


@pytest.mark.parametrize("case", list(CASES))
def test_deep_page(benchmark: Any, pg_engine: Engine, loaded: dict[str, Any], scale: Scale,
                   case: str) -> None:
    role, run = CASES[case]
    with pg_engine.connect() as conn:
        if role == "alternative":
            conn.execute(DropIndex(INDEX))  # rolled back below
        if role in ("baseline", "alternative"):
            stmt = _offset_stmt(loaded)
        elif role == "pattern":
            stmt = keyset(BASE, order_by=ORDER, secret=SECRET, after=loaded["cursor"],
                          limit=SIZE + 1)
        else:
            c, i = loaded["last"]
            stmt = HAND.bindparams(c=c, i=i)
        plan = explain(conn, stmt, analyze=True)
        record(benchmark, question=QUESTION, case=case, role=role, rows=loaded["n"],
               scale=scale, plan=plan_summary(plan), page=loaded["page"], page_size=SIZE,
               index=INDEX.name,
               **({"slower_by_at_least": 100} if "OFFSET" in case else {}))
        slow = role == "alternative"
        found = benchmark.pedantic(lambda: run(conn, loaded), rounds=scale.rounds * (1 if slow
                                   else 4), iterations=1 if slow else 5, warmup_rounds=1)
        conn.rollback()
    assert [tuple(r) for r in found] == [tuple(r) for r in loaded["expected"]]
    assert len(found) == SIZE
