"""The public-API fuzz harness: a table of cases, hostile values, and the outcome contract.

A :class:`Case` names a public callable, how to build valid base arguments (from an
:class:`Env`: a connection and a session inside one transaction on the fuzz world) and
which arguments to replace. Each hypothesis example replaces one or two of them with a
hostile value (None, wrong types, NaN/inf, 2**63, empty and huge collections, strings with
``%``, quotes and NUL) or a value drawn from the parameter's type hint, calls the function
and checks the contract (issue 17):

* the outcome is a result or a :class:`pgpatterns.errors.PatternError`, never another
  exception and never a hang (a Python-level timer and ``statement_timeout``);
* a result that is a statement or a SQL expression runs (or compiles) without a raw
  database error: a builder must not hand back SQL that fails on its arguments;
* after a ``PatternError``, a function that took a session left the transaction usable and
  wrote nothing (row counts of the world's tables, partitions included, before/after).

Every example runs in a transaction that is rolled back, so the world stays as seeded.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import inspect
import math
import resource
import signal
import types
import typing
import uuid
from collections import abc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from types import FrameType
from typing import Any

from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, Index, func, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.schema import CreateIndex
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.schema import Constraint

from pgpatterns.ddl import SchemaObject
from pgpatterns.errors import PatternError

__all__ = ["HOSTILE", "Case", "Env", "run_case"]

DIALECT = postgresql.psycopg.dialect()  # type: ignore[no-untyped-call]
TIME_LIMIT = 2.0  # seconds per call: far above any honest call on the tiny world
MEMORY_LIMIT = 1 << 29  # bytes of extra address space per call


class _Opaque:
    def __repr__(self) -> str:
        return "<opaque object>"


HUGE_LIST = list(range(20_000))
HUGE_TEXT = "x%s'\"" * 20_000
#: Values no public function should choke on (a PatternError or a result, nothing else).
HOSTILE: list[Any] = [
    None, True, False, 0, -1, 2**31, 2**63 - 1, 2**63, -(2**63) - 1, 2**70,
    math.nan, math.inf, -math.inf, -0.0, 1e308, 2.5, Decimal("NaN"), Decimal("1e400"),
    "", " ", "%", "%s", "%(x)s", "%%", "'", '"', "\\", "\x00", "a\x00b",
    "x'); DROP TABLE fz_posts; --", "ünï©ødé ☃", "$1", ":name", HUGE_TEXT,
    b"", b"\x00\xff", bytearray(b"x"), _Opaque(), object, len,
    dt.datetime(2026, 1, 1), dt.date(1, 1, 1), dt.timedelta(days=-1), uuid.UUID(int=0),
    [], (), set(), {}, frozenset({1}), [None], [2**63], ["%s", "\x00"], [[1, [2]]],
    {"a": None}, {"%s": "\x00"}, {None: 1}, HUGE_LIST,
]

_TEXT = st.text(alphabet=st.sampled_from("%s'\"\\\x00 ;-aé☃$:()[]{}.,0"), max_size=12)
_ANY = st.one_of(
    st.sampled_from(HOSTILE),
    _TEXT,
    st.integers(),
    st.floats(),
    st.lists(st.one_of(st.integers(-(2**70), 2**70), _TEXT, st.none()), max_size=4),
    st.dictionaries(_TEXT, st.one_of(st.integers(), _TEXT, st.none()), max_size=3),
)


class Hang(BaseException):
    """A call ran longer than :data:`TIME_LIMIT` (BaseException: library code cannot eat it)."""


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`Hang` after ``seconds``, and MemoryError past :data:`MEMORY_LIMIT` more
    address space (a call building a list of 2**31 partitions must not take the machine)."""

    def stop(signum: int, frame: FrameType | None) -> None:
        raise Hang(f"no outcome after {seconds} s")

    previous = signal.signal(signal.SIGALRM, stop)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as statm:
        used = int(statm.read().split()[0]) * resource.getpagesize()
    cap = used + MEMORY_LIMIT
    if hard == resource.RLIM_INFINITY or cap < hard:
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    # keep firing every 0.2 s: a Hang raised inside a gc callback is swallowed by Python
    signal.setitimer(signal.ITIMER_REAL, seconds, 0.2)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@dataclasses.dataclass
class Env:
    """One example's transaction: a connection, a session bound to it, and the world."""

    conn: Connection
    session: Session
    world: Any
    engine: Engine


Base = Callable[[Env], dict[str, Any]]


@dataclasses.dataclass(frozen=True)
class Case:
    """One public callable under fuzz.

    Attributes:
        name: The test id (``family.function`` or with a suffix).
        func: The callable (a function or a class).
        base: Valid arguments by parameter name (``*args`` as a tuple under its name).
        fuzz: The parameters to replace with hostile values.
        writes: It takes a session/connection: check the transaction and row counts after a
            PatternError.
        consume: What to do with a result (default: run statements, compile SQL).
        aio: ``func`` is a coroutine function: run it on an AsyncSession.
    """

    name: str
    func: Callable[..., Any]
    base: Base
    fuzz: tuple[str, ...]
    writes: bool = False
    consume: Callable[[Any, Env], Any] | None = None
    aio: bool = False


def consume(result: Any, env: Env, depth: int = 0) -> None:
    """Use a result the way a caller would: run a statement, compile SQL and DDL."""
    if depth > 2:
        return
    if isinstance(result, Executable) and not isinstance(result, SchemaObject) and hasattr(
        result, "compile"
    ) and not _is_ddl(result):
        env.conn.execute(result).fetchmany(50)  # type: ignore[call-overload]
    elif isinstance(result, ColumnElement):
        str(result.compile(dialect=DIALECT))
    elif isinstance(result, Index):
        str(CreateIndex(result).compile(dialect=DIALECT))
    elif isinstance(result, SchemaObject):
        result.sql(DIALECT)
    elif isinstance(result, Constraint):
        sqltext = getattr(result, "sqltext", None)
        if isinstance(sqltext, ClauseElement):
            str(sqltext.compile(dialect=DIALECT))
    elif isinstance(result, (list, tuple)):
        for item in list(result)[:20]:
            consume(item, env, depth + 1)


def _is_ddl(element: Any) -> bool:
    from sqlalchemy.sql.ddl import ExecutableDDLElement

    return isinstance(element, ExecutableDDLElement)


def _simple(hint: Any) -> bool:
    """A hint hypothesis can build values for without constructing library objects."""
    if hint in (int, float, str, bool, bytes, type(None)):
        return True
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        return True
    if origin not in _CONTAINERS or not args:
        return False
    return all(_simple(a) for a in args if a is not Ellipsis)


_CONTAINERS = {
    typing.Union, types.UnionType, list, tuple, set, frozenset, dict, abc.Sequence,
    abc.Iterable, abc.Collection, abc.Mapping,
}


def _hints(func: Callable[..., Any]) -> dict[str, Any]:
    target = func.__init__ if inspect.isclass(func) else func
    try:
        return typing.get_type_hints(target)
    except Exception:  # forward references to TYPE_CHECKING-only names
        return {}


def strategy_for(func: Callable[..., Any], name: str) -> st.SearchStrategy[Any]:
    """Hostile values, plus values of the parameter's type hint when it is a simple one."""
    hint = _hints(func).get(name)
    if hint is not None and _simple(hint):
        try:
            return st.one_of(_ANY, st.from_type(hint))
        except Exception:
            return _ANY
    return _ANY


def _call_args(
    func: Callable[..., Any], values: dict[str, Any]
) -> tuple[list[Any], dict[str, Any]]:
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    params = inspect.signature(func).parameters
    for name, param in params.items():
        if name not in values:
            continue
        value = values[name]
        if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            args.append(value)
        elif param.kind is param.VAR_POSITIONAL:
            args.extend(value if isinstance(value, (list, tuple)) else [value])
        elif param.kind is param.VAR_KEYWORD:
            kwargs.update(value)
        else:
            kwargs[name] = value
    unknown = set(values) - set(params)
    assert not unknown, f"base arguments {unknown} are not parameters"
    return args, kwargs


def _counts(env: Env) -> tuple[int, ...]:
    return tuple(env.conn.execute(select(*env.world.count_columns)).one())


def _describe(values: dict[str, Any], fuzzed: list[str]) -> str:
    return ", ".join(f"{n}={values[n]!r:.120}" for n in fuzzed)


def run_case(case: Case, engine: Engine, world: Any, examples: int) -> None:
    """Run ``case`` under hypothesis against the world on ``engine``."""
    strategies = {name: strategy_for(case.func, name) for name in case.fuzz}
    params = inspect.signature(case.func).parameters
    var_positional = {n for n, p in params.items() if p.kind is p.VAR_POSITIONAL}
    for name, param in params.items():  # **kwargs: hostile values under plausible keys
        if name in strategies and param.kind is param.VAR_KEYWORD:
            strategies[name] = st.dictionaries(
                st.sampled_from(["x", "role", "a%s", "na\x00me"]), _ANY, max_size=2)

    @settings(
        max_examples=examples,
        deadline=None,
        # no shrinking: each step is a database round trip, and the hostile values are
        # already small; the failing call is printed as drawn
        phases=(Phase.explicit, Phase.reuse, Phase.generate),
        suppress_health_check=[
            HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example,
            HealthCheck.function_scoped_fixture,
        ],
    )
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        fuzzed = data.draw(
            st.lists(st.sampled_from(case.fuzz), min_size=1, max_size=min(2, len(case.fuzz)),
                     unique=True), label="fuzzed")
        replacements = {}
        for name in fuzzed:
            value = data.draw(strategies[name], label=name)
            if name in var_positional:
                value = data.draw(st.sampled_from([(value,), [value, value], value]),
                                  label=f"*{name}")
            replacements[name] = value
        with engine.connect() as conn:
            trans = conn.begin()
            conn.execute(select(func.set_config("statement_timeout", "5000", True)))
            session = Session(bind=conn, join_transaction_mode="create_savepoint")
            env = Env(conn, session, world, engine)
            try:
                values = {**case.base(env), **replacements}
                note(f"{case.name}: {_describe(values, fuzzed)}")
                _check(case, env, values, fuzzed)
            finally:
                session.close()
                trans.rollback()

    run()


def _check(case: Case, env: Env, values: dict[str, Any], fuzzed: list[str]) -> None:
    args, kwargs = _call_args(case.func, values)
    before = _counts(env) if case.writes else ()
    where = f"{case.name}({_describe(values, fuzzed)})"
    try:
        with time_limit(TIME_LIMIT):
            if case.aio:
                result = asyncio.run(_run_async(case, env, args, kwargs))
            else:
                result = case.func(*args, **kwargs)
                (case.consume or consume)(result, env)
    except PatternError as exc:
        if case.writes:
            try:
                after = _counts(env)
            except DBAPIError as broken:
                raise AssertionError(
                    f"{where} raised {type(exc).__name__} but left the transaction aborted "
                    f"({type(broken.orig).__name__}): the caller's earlier work is lost"
                ) from exc
            assert after == before, (
                f"{where} raised {type(exc).__name__} after writing: counts {before} -> {after}"
            )
        return
    except Hang as exc:
        raise AssertionError(f"{where} hung: {exc}") from None
    except Exception as exc:
        raise AssertionError(
            f"{where} raised {type(exc).__module__}.{type(exc).__name__}, not a PatternError: "
            f"{str(exc)[:300]}"
        ) from exc


async def _run_async(case: Case, env: Env, args: list[Any], kwargs: dict[str, Any]) -> Any:
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
    from sqlalchemy.pool import NullPool

    engine = create_async_engine(env.engine.url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            trans = await conn.begin()
            session = AsyncSession(bind=conn, join_transaction_mode="create_savepoint")
            try:
                # the async twin gets an AsyncSession in place of the sync one
                swapped = [session if a is env.session or a is env.conn else a for a in args]
                return await case.func(*swapped, **kwargs)
            finally:
                await session.close()
                await trans.rollback()
    finally:
        await engine.dispose()
