"""Harness pieces the suites and the report share: statement (round-trip) counting.

Every case's timed function is wrapped (by the autouse fixture in ``conftest.py``) so that the
SQL statements SQLAlchemy sends while it runs are counted. A statement is a round trip to
the server; the benchmarks talk to PostgreSQL over a local unix socket, where a round trip
costs ~0.1-0.2 ms, while applications usually reach their database over a network (0.3-1 ms).
The report therefore shows, beside the measured time, the time the same work would take at
0.5 ms and 1 ms of extra latency per round trip: ``median + statements x latency``.

Counted: every ``cursor.execute``/``executemany`` SQLAlchemy performs (its
``before_cursor_execute`` event), on every engine. Not counted: ``COPY`` through the driver
(one round trip per batch, which :func:`pgpatterns.bulk.copy_rows` keeps few).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, event

__all__ = ["LATENCIES_MS", "StatementCounter", "at_latency"]

LATENCIES_MS = (0.5, 1.0)
"""The per-round-trip latencies the report adds to each measured median."""


class StatementCounter:
    """Counts statements sent through SQLAlchemy while :meth:`wrap`-ped functions run.

    Examples:
        >>> counter = StatementCounter()
        >>> counted = counter.wrap(lambda: None)
        >>> counted(); counter.per_call()
        0.0
    """

    def __init__(self) -> None:
        self.statements = 0
        self.calls = 0
        self._active = threading.local()
        self._listening = False

    def _on_execute(self, *args: Any, **kw: Any) -> None:
        if getattr(self._active, "on", False):
            self.statements += 1

    def start(self) -> None:
        """Listen to every Engine's ``before_cursor_execute`` (until :meth:`stop`)."""
        if not self._listening:
            event.listen(Engine, "before_cursor_execute", self._on_execute)
            self._listening = True

    def stop(self) -> None:
        if self._listening:
            event.remove(Engine, "before_cursor_execute", self._on_execute)
            self._listening = False

    def wrap(self, target: Callable[..., Any]) -> Callable[..., Any]:
        """``target`` counting the statements it sends (in this thread)."""

        def counted(*args: Any, **kw: Any) -> Any:
            self._active.on = True
            try:
                return target(*args, **kw)
            finally:
                self._active.on = False
                self.calls += 1

        return counted

    def per_call(self) -> float:
        """Statements per call of the wrapped functions (warm-up calls included)."""
        return self.statements / self.calls if self.calls else 0.0


def at_latency(median_ms: float, statements: float, latency_ms: float) -> float:
    """The median plus ``statements`` round trips of ``latency_ms`` each."""
    return median_ms + statements * latency_ms
