"""A search written once for sync and asyncio: a generator of the statements it executes.

The search logic yields ``(statement, parameters)`` and receives each ``Result``; :func:`run`
and :func:`run_async` execute the steps on a ``Session``/``Connection`` or their asyncio
twins. Validation happens before the first ``yield``, so bad input fails before any SQL.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from typing import Any, TypeAlias, TypeVar

from sqlalchemy.engine import Result
from sqlalchemy.sql import Executable

from pgpatterns.vector.target import AsyncConn, SyncConn, check_session

__all__ = ["Steps", "run", "run_async"]

T = TypeVar("T")
Steps: TypeAlias = Generator[tuple[Executable, Mapping[str, Any]], Result[Any], T]


def run(session: SyncConn, steps: Steps[T]) -> T:
    """Execute ``steps`` on a ``Session`` or ``Connection``; return what they return."""
    try:
        statement, params = next(steps)  # validates the arguments: before any SQL
        check_session(session)
        while True:
            statement, params = steps.send(session.execute(statement, params))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


async def run_async(session: AsyncConn, steps: Steps[T]) -> T:
    """Execute ``steps`` on an ``AsyncSession`` or ``AsyncConnection``."""
    try:
        statement, params = next(steps)
        check_session(session, asyncio=True)
        while True:
            statement, params = steps.send(await session.execute(statement, params))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
