"""Issue 17: vector search arguments are checked before any SQL is sent (real PostgreSQL).

``nearest(k=2**63)`` and ``exact_below=2**63 - 1`` used to reach PostgreSQL (DataError:
bigint out of range), ``where="id = 1"`` raised SQLAlchemy's own ArgumentError, and
``max_distance=-1`` returned ``[]`` whatever the data.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Column, Connection, Integer, MetaData, Table, event, text

from pgpatterns.errors import ArgumentError, VectorArgumentError, VectorQueryError
from pgpatterns.testing.plugin import PgSchema
from pgpatterns.vector import VectorSpec, hybrid_search, nearest, nearest_async, nearest_stmt

pytestmark = pytest.mark.requires_extension("vector")

COSINE = VectorSpec(4, metric="cosine")
INNER = VectorSpec(4, metric="inner_product", index=None)
ROWS = 40
metadata = MetaData()
items = Table("vec_args_items", metadata, Column("id", Integer, primary_key=True),
              Column("cat", Integer, nullable=False), COSINE.column("v"))
inner = Table("vec_args_inner", metadata, Column("id", Integer, primary_key=True),
              INNER.column("v"))
COSINE.index_on(items.c.v)
RNG = np.random.default_rng(17)
VECTORS = RNG.normal(size=(ROWS, 4)).astype(np.float32)
Q = [0.5, -0.25, 1.0, 0.125]


@pytest.fixture
def conn(pg_schema: PgSchema) -> Iterator[Connection]:
    with pg_schema.engine.connect() as c:
        metadata.create_all(c)
        c.execute(items.insert(), [{"id": i, "cat": i % 4, "v": VECTORS[i]} for i in range(ROWS)])
        c.execute(inner.insert(), [{"id": i, "v": VECTORS[i]} for i in range(ROWS)])
        c.commit()
        yield c


class _Sent:
    """Counts the statements sent on ``conn`` while active."""

    def __init__(self, conn: Connection) -> None:
        self.engine = conn.engine
        self.statements: list[str] = []

    def _remember(self, conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        self.statements.append(statement)

    def __enter__(self) -> list[str]:
        event.listen(self.engine, "before_cursor_execute", self._remember)
        return self.statements

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._remember)


@pytest.mark.parametrize("kwargs", [
    {"k": 2**63},
    {"k": 2**70},
    {"k": 3, "where": "id = 1"},
    {"k": 3, "where": ["id = 1"]},
    {"k": 3, "where": text("id = 1")},
    {"k": 3, "where": items.c.id},  # not boolean: "argument of WHERE must be type boolean"
    {"k": 3, "max_distance": -1},
    {"k": 3, "max_distance": 2**1100},  # beyond float: was an OverflowError
    {"k": 3, "where": items.c.cat == 1, "exact_below": 2**63},
    {"k": 3, "where": items.c.cat == 1, "max_scan_tuples": 2**31},
    {"k": 3, "iterative": ["relaxed"]},
    {"k": 3, "exact": "yes"},
])
def test_bad_arguments_fail_typed_before_any_sql(conn: Connection, kwargs: dict[str, Any]) -> None:
    k = kwargs.pop("k")
    with _Sent(conn) as sent, pytest.raises(VectorArgumentError) as info:
        nearest(conn, items, items.c.v, Q, k, **kwargs)
    assert sent == []
    assert isinstance(info.value, ArgumentError) and isinstance(info.value, VectorQueryError)
    assert info.value.argument in {"k", *kwargs}
    assert conn.execute(text("SELECT count(*) FROM vec_args_items")).scalar_one() == ROWS


async def test_bad_k_async_fails_typed(pg_async_session: Any) -> None:
    with pytest.raises(VectorArgumentError, match="k must be a positive int"):
        await nearest_async(pg_async_session, items, items.c.v, Q, 2**63)


def test_largest_k_and_exact_below_run(conn: Connection) -> None:
    everything = nearest(conn, items, items.c.v, Q, 2**63 - 1, exact=True)
    assert len(everything) == ROWS
    few = items.c.cat == 1
    exact = nearest(conn, items, items.c.v, Q, 5, where=few, exact=True)
    with _Sent(conn) as sent:
        hits = nearest(conn, items, items.c.v, Q, 5, where=few, exact_below=2**63 - 1)
    assert "count(*)" in sent[0] and "MATERIALIZED" not in sent[-1]  # searched exactly
    assert [h.item.id for h in hits] == [h.item.id for h in exact]
    assert len(nearest(conn, items, items.c.v, Q, 2**63 - 1, where=few)) == ROWS // 4
    conn.rollback()


def test_negative_max_distance_is_refused_except_for_inner_product(conn: Connection) -> None:
    with pytest.raises(VectorArgumentError, match="cosine distances are >= 0"):
        nearest_stmt(items, items.c.v, Q, 3, max_distance=-1)
    # <#> is the negated inner product: a negative bound is how "at least this similar" reads
    best = nearest(conn, inner, inner.c.v, Q, ROWS, exact=True)
    bound = best[2].distance
    assert bound < 0
    hits = nearest(conn, inner, inner.c.v, Q, ROWS, max_distance=bound)
    assert [h.item.id for h in hits] == [h.item.id for h in best[:3]]
    conn.rollback()


def test_boolean_attribute_and_lists_are_accepted_as_filters(conn: Connection) -> None:
    hits = nearest(conn, items, items.c.v, Q, 3, where=[items.c.cat == 2, items.c.id > 5])
    assert hits and all(h.item.cat == 2 and h.item.id > 5 for h in hits)
    conn.rollback()


@pytest.mark.parametrize(("kwargs", "argument"), [
    ({"text_query": "a\x00b"}, "text_query"),
    ({"text_query": 5}, "text_query"),
    ({"language": "eng\x00lish"}, "language"),
    ({"language": None}, "language"),
    ({"rrf_k": 2**63}, "rrf_k"),
    ({"where": "cat = 1"}, "where"),
])
def test_hybrid_search_bad_arguments(
    conn: Connection, kwargs: dict[str, Any], argument: str
) -> None:
    call: dict[str, Any] = {"text_query": "words", "document": items.c.id, **kwargs}
    text_query = call.pop("text_query")
    with _Sent(conn) as sent, pytest.raises(VectorArgumentError) as info:
        hybrid_search(conn, items, items.c.v, Q, text_query, **call)
    assert sent == [] and info.value.argument == argument
