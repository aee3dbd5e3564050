"""The fuzz harness itself: each contract it checks catches a function that breaks it."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fuzz_harness import Case, Env, run_case
from fuzz_world import FzTag, World, create_world, drop_world
from sqlalchemy import Engine, select, text

from pgpatterns.errors import ArgumentError

pytestmark = pytest.mark.requires_extension("vector")


@pytest.fixture(scope="module")
def world(pg_module_engine: Engine) -> Iterator[World]:
    made = create_world(pg_module_engine)
    yield made
    drop_world(pg_module_engine)


def checked(session: Any, key: object) -> int:
    if not isinstance(key, int) or isinstance(key, bool) or not 0 < key < 2**31:
        raise ArgumentError(f"key={key!r:.40} is not accepted.", argument="key", given=key)
    return key


def unchecked(session: Any, key: object) -> Any:
    return session.execute(select(FzTag.id).where(FzTag.id == key)).all()


def writes_then_refuses(session: Any, key: object) -> None:
    session.execute(FzTag.__table__.insert().values(id=99, name="partial"))
    checked(session, key)


def aborts_then_refuses(session: Any, key: object) -> None:
    with contextlib.suppress(Exception):
        session.execute(text("SELECT 1/0"))
    checked(session, key)


def hangs(session: Any, key: object) -> None:
    if key != 1:
        time.sleep(60)


def returns_bad_sql(session: Any, key: object) -> Any:
    return select(FzTag.id).where(FzTag.id == text(":k").bindparams(k=str(key)))


def base(env: Env) -> dict[str, Any]:
    return {"session": env.session, "key": 1}


def test_a_checked_function_passes(world: World, pg_module_engine: Engine) -> None:
    run_case(Case("ok", checked, base, ("key",), writes=True), pg_module_engine, world, 5)


@pytest.mark.parametrize(("func", "message"), [
    (unchecked, "not a PatternError"),
    (writes_then_refuses, "after writing"),
    (aborts_then_refuses, "left the transaction aborted"),
    (hangs, "hung"),
    (returns_bad_sql, "not a PatternError"),
])
def test_each_broken_contract_is_caught(
    world: World, pg_module_engine: Engine, func: Any, message: str
) -> None:
    case = Case(func.__name__, func, base, ("key",), writes=True)
    with pytest.raises(BaseException) as info:
        run_case(case, pg_module_engine, world, 5)
    assert message in _messages(info.value)


def _messages(exc: BaseException) -> str:
    """The messages of an exception and (hypothesis reports several bugs as a group) its parts."""
    return str(exc) + "\n".join(_messages(e) for e in getattr(exc, "exceptions", ()))
