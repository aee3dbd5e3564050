"""Results on real PostgreSQL equal a Python evaluation over the same documents (hypothesis)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Column, Engine, Integer, MetaData, Table, Text, insert, select, text, values
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pgpatterns.arrays import (
    append_to_array,
    append_to_array_async,
    array_has,
    array_has_all,
    array_has_any,
    remove_from_array,
    remove_from_array_async,
)
from pgpatterns.errors import JsonbSchemaViolationError
from pgpatterns.jsonb import (
    as_int,
    as_numeric,
    as_text,
    jsonb_array_has,
    jsonb_eq,
    jsonb_has_all_keys,
    jsonb_has_any_key,
    jsonb_has_key,
    jsonb_in,
    jsonb_path_eq,
    jsonb_schema_check,
    schema_errors,
)

metadata = MetaData()
sem = Table(
    "jsonb_sem_docs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("doc", JSONB, nullable=False),
    Column("tags", ARRAY(Text)),
)

KEYS = st.sampled_from(["a", "b", "c"])
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(0, 3), st.sampled_from([0.5, 1.0, 2.0]),
    st.sampled_from(["x", "y", "1", 'q"\\é']),
)
JSON = st.recursive(
    SCALARS,
    lambda kids: st.one_of(st.lists(kids, max_size=3), st.dictionaries(KEYS, kids, max_size=3)),
    max_leaves=8,
)
DOCS = st.lists(st.dictionaries(KEYS, JSON, max_size=3), min_size=1, max_size=12)
PATHS = st.lists(KEYS, min_size=1, max_size=3).map(tuple)


def same(a: Any, b: Any) -> bool:
    """JSON scalar equality: numbers by value, booleans and null only equal themselves."""
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return isinstance(a, str) and isinstance(b, str) and a == b


def at(doc: Any, path: tuple[str, ...]) -> tuple[bool, Any]:
    for key in path:
        if not isinstance(doc, dict) or key not in doc:
            return False, None
        doc = doc[key]
    return True, doc


def py_eq(doc: Any, path: tuple[str, ...], value: Any) -> bool:
    found, target = at(doc, path)
    return found and not isinstance(target, (dict, list)) and same(target, value)


def py_array_has(doc: Any, path: tuple[str, ...], value: Any) -> bool:
    found, target = at(doc, path)
    return found and isinstance(target, list) and any(
        not isinstance(e, (dict, list)) and same(e, value) for e in target)


def py_path_eq(doc: Any, path: tuple[str, ...], value: Any) -> bool:
    """jsonpath lax mode: arrays are unwrapped one level at each key step and at the end."""
    items = [doc]
    for key in path:
        step = []
        for item in items:
            for obj in (item if isinstance(item, list) else [item]):
                if isinstance(obj, dict) and key in obj:
                    step.append(obj[key])
        items = step
    flat = [x for item in items for x in (item if isinstance(item, list) else [item])]
    return any(not isinstance(x, (dict, list)) and same(x, value) for x in flat)


@pytest.fixture
def session(pg_engine: Engine) -> Iterator[Session]:
    with pg_engine.connect() as conn:
        trans = conn.begin()
        metadata.create_all(conn)
        with Session(bind=conn, join_transaction_mode="create_savepoint") as session:
            yield session
        trans.rollback()


def load(session: Session, docs: list[Any]) -> None:
    session.execute(text("DELETE FROM jsonb_sem_docs"))
    session.execute(insert(sem), [{"id": i, "doc": d} for i, d in enumerate(docs)])


def ids(session: Session, where: Any) -> set[int]:
    return set(session.execute(select(sem.c.id).where(where)).scalars())


@given(docs=DOCS, path=PATHS, value=SCALARS, other=SCALARS)
def test_filters_match_python(session: Session, docs: list[Any], path: tuple[str, ...],
                              value: Any, other: Any) -> None:
    load(session, docs)
    expect = {i for i, d in enumerate(docs) if py_eq(d, path, value)}
    assert ids(session, jsonb_eq(sem.c.doc, path, value)) == expect
    either = {i for i, d in enumerate(docs) if py_eq(d, path, value) or py_eq(d, path, other)}
    assert ids(session, jsonb_in(sem.c.doc, path, [value, other])) == either
    assert ids(session, jsonb_array_has(sem.c.doc, path, value)) == {
        i for i, d in enumerate(docs) if py_array_has(d, path, value)}
    assert ids(session, jsonb_path_eq(sem.c.doc, path, value)) == {
        i for i, d in enumerate(docs) if py_path_eq(d, path, value)}
    key = path[0]
    assert ids(session, jsonb_has_key(sem.c.doc, key)) == {
        i for i, d in enumerate(docs) if key in d}
    keys = list(dict.fromkeys(path))
    assert ids(session, jsonb_has_any_key(sem.c.doc, keys)) == {
        i for i, d in enumerate(docs) if any(k in d for k in keys)}
    assert ids(session, jsonb_has_all_keys(sem.c.doc, keys)) == {
        i for i, d in enumerate(docs) if all(k in d for k in keys)}


NUMBERS = st.one_of(st.integers(-5, 5), st.decimals(-5, 5, places=2).map(float))


@given(values=st.lists(st.one_of(st.none(), NUMBERS), min_size=1, max_size=15),
       low=st.integers(-5, 5), width=st.integers(0, 6))
def test_typed_range_and_sort_match_python(session: Session, values: list[Any], low: int,
                                           width: int) -> None:
    load(session, [{"m": {"n": v}} if v is not None else {} for v in values])
    num = as_numeric(sem.c.doc, "m.n")
    got = session.execute(
        select(sem.c.id).where(num.between(low, low + width)).order_by(num, sem.c.id)
    ).scalars().all()
    want = sorted((Decimal(str(v)), i) for i, v in enumerate(values)
                  if v is not None and low <= v <= low + width)
    assert got == [i for _, i in want]
    ints = [i for i, v in enumerate(values) if isinstance(v, int)]
    as_ints = session.execute(select(sem.c.id, as_int(sem.c.doc, "m.n"))
                              .where(sem.c.id.in_(ints))).all()
    assert {i: n for i, n in as_ints} == {i: values[i] for i in ints}
    texts = dict(session.execute(select(sem.c.id, as_text(sem.c.doc, ("m", "n")))).all())
    assert texts == {i: None if v is None else json.dumps(v) for i, v in enumerate(values)}


# ---- JSON Schema CHECK versus the jsonschema package --------------------------------------
TYPES = st.sampled_from(["object", "array", "string", "number", "integer", "boolean", "null"])
LEAF_SCHEMA = st.fixed_dictionaries({}, optional={
    "type": st.one_of(TYPES, st.lists(TYPES, min_size=1, max_size=2, unique=True)),
    "enum": st.lists(JSON, min_size=1, max_size=3),
    "minimum": st.integers(-1, 3), "maximum": st.integers(0, 3),
    "exclusiveMinimum": st.sampled_from([0, 0.5]), "exclusiveMaximum": st.sampled_from([2, 2.5]),
    "minLength": st.integers(0, 2), "maxLength": st.integers(0, 2),
    "minItems": st.integers(0, 2), "maxItems": st.integers(0, 2),
    "items": st.fixed_dictionaries({"type": st.one_of(TYPES, st.lists(TYPES, min_size=1,
                                                                      max_size=2, unique=True))}),
    "const": SCALARS,
})
SCHEMAS = st.recursive(
    st.one_of(LEAF_SCHEMA, st.booleans()),
    lambda kids: st.fixed_dictionaries({}, optional={
        "type": st.just("object"),
        "required": st.lists(KEYS, max_size=2, unique=True),
        "properties": st.dictionaries(KEYS, kids, max_size=3),
        "additionalProperties": st.just(False),
    }),
    max_leaves=5,
)
INSTANCES = st.lists(JSON, min_size=1, max_size=10)


@given(schema=SCHEMAS, instances=INSTANCES)
def test_schema_check_accepts_exactly_what_jsonschema_accepts(
    session: Session, schema: Any, instances: list[Any]
) -> None:
    rows = values(Column("i", Integer), Column("doc", JSONB), name="v").data(
        list(enumerate(instances)))
    check = jsonb_schema_check(rows.c.doc, schema, name="c")
    got = dict(session.execute(select(rows.c.i, check.sqltext)).all())
    validator = jsonschema.Draft202012Validator(schema)
    for i, instance in enumerate(instances):
        # A CHECK passes on NULL as on TRUE.
        assert (got[i] is not False) == validator.is_valid(instance), (schema, instance)


EVENT_SCHEMA = {
    "type": "object",
    "required": ["kind", "at"],
    "additionalProperties": False,
    "properties": {
        "kind": {"enum": ["signup", "purchase"]},
        "at": {"type": "string", "minLength": 20},
        "amount": {"type": "number", "minimum": 0},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
    },
}


def test_schema_check_constraint_on_a_table(pg_schema: Any) -> None:
    meta = MetaData()
    events = Table("events", meta, Column("id", Integer, primary_key=True),
                   Column("payload", JSONB, nullable=False))
    check = jsonb_schema_check(events.c.payload, EVENT_SCHEMA)
    events.append_constraint(check)
    meta.create_all(pg_schema.engine)
    good = {"kind": "purchase", "at": "2026-01-01T00:00:00Z", "amount": 3, "tags": ["a"]}
    with Session(pg_schema.engine) as session:
        session.execute(insert(events), [{"id": 1, "payload": good}])
        for bad in ({**good, "amount": -1}, {**good, "extra": 1}, {"kind": "signup"},
                    {**good, "tags": ["a", 2]}, {**good, "kind": "refund"}):
            with (
                pytest.raises(JsonbSchemaViolationError, match="events_payload_schema") as info,
                schema_errors(check),
                session.begin_nested(),
            ):
                session.execute(insert(events), [{"id": 2, "payload": bad}])
            assert isinstance(info.value.__cause__, IntegrityError)
            assert not jsonschema.Draft202012Validator(EVENT_SCHEMA).is_valid(bad)
        with pytest.raises(IntegrityError), schema_errors("other"), session.begin_nested():
            session.execute(insert(events), [{"id": 3, "payload": {**good, "amount": -1}}])
        assert session.execute(select(events.c.id)).scalars().all() == [1]


# ---- arrays -------------------------------------------------------------------------------
TAGS = st.lists(st.sampled_from(["a", "b", "c", "d"]), max_size=4)


@given(rows=st.lists(TAGS, min_size=1, max_size=10), probe=TAGS)
def test_array_filters_match_python(session: Session, rows: list[list[str]],
                                    probe: list[str]) -> None:
    session.execute(text("DELETE FROM jsonb_sem_docs"))
    session.execute(insert(sem), [{"id": i, "doc": {}, "tags": t} for i, t in enumerate(rows)])
    assert ids(session, array_has_all(sem.c.tags, probe)) == {
        i for i, t in enumerate(rows) if set(probe) <= set(t)}
    assert ids(session, array_has_any(sem.c.tags, probe)) == {
        i for i, t in enumerate(rows) if set(probe) & set(t)}
    if probe:
        assert ids(session, array_has(sem.c.tags, probe[0])) == {
            i for i, t in enumerate(rows) if probe[0] in t}


def test_append_and_remove(session: Session) -> None:
    session.execute(insert(sem), [{"id": 1, "doc": {}, "tags": ["a"]},
                                  {"id": 2, "doc": {}, "tags": None}])
    assert append_to_array(session, sem.c.tags, "b", where=sem.c.id.in_([1, 2])) == 2
    assert append_to_array(session, sem.c.tags, "b", where=sem.c.id == 1) == 1
    assert append_to_array(session, sem.c.tags, "a", where=sem.c.id == 1, as_set=False) == 1
    rows = dict(session.execute(select(sem.c.id, sem.c.tags)).all())
    assert rows == {1: ["a", "b", "a"], 2: ["b"]}
    assert remove_from_array(session, sem.c.tags, "a", where=sem.c.id == 1) == 1
    assert session.execute(select(sem.c.tags).where(sem.c.id == 1)).scalar() == ["b"]


async def test_append_and_remove_async(pg_async_session: Any) -> None:
    conn = await pg_async_session.connection()
    await conn.run_sync(metadata.create_all)
    await pg_async_session.execute(insert(sem), [{"id": 1, "doc": {}, "tags": ["a"]}])
    assert await append_to_array_async(pg_async_session, sem.c.tags, "z", where=sem.c.id == 1)
    assert await append_to_array_async(pg_async_session, sem.c.tags, "z", where=sem.c.id == 1)
    assert await remove_from_array_async(pg_async_session, sem.c.tags, "a", where=sem.c.id == 1)
    tags = (await pg_async_session.execute(select(sem.c.tags))).scalar()
    assert tags == ["z"]


def test_timestamptz_function_is_immutable_and_strict(pg_session: Session) -> None:
    from pgpatterns.jsonb import as_timestamptz, jsonb_timestamptz_function

    for ddl in jsonb_timestamptz_function().create_ddl():
        pg_session.execute(ddl)
    pg_session.execute(text("SET LOCAL TimeZone = 'Asia/Tokyo'"))
    doc = values(Column("doc", JSONB), name="d").data([({"at": "2026-01-31T12:00:00Z"},)])
    got = pg_session.execute(select(as_timestamptz(doc.c.doc, "at"))).scalar()
    assert got == dt.datetime(2026, 1, 31, 12, tzinfo=dt.timezone.utc)
    volatile = pg_session.execute(text(
        "SELECT provolatile FROM pg_proc WHERE proname = 'pgpatterns_jsonb_timestamptz'")).scalar()
    assert volatile == "i"
    bad = values(Column("doc", JSONB), name="d").data([({"at": "2026-01-31 12:00"},)])
    with pytest.raises(Exception, match="explicit offset"), pg_session.begin_nested():
        pg_session.execute(select(as_timestamptz(bad.c.doc, "at")))
