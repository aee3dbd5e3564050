"""Benchmark harness: scales, roles, and the record every case leaves in the report.

Every benchmark belongs to a question (its pytest-benchmark group, ``<suite>:<question>``)
and declares its role: ``pattern`` (what pgpatterns offers), ``baseline`` (the naive form
a user would otherwise write), ``alternative``, or ``limit`` (hand-written SQL / the best
possible). Use :func:`record` to set them.
"""

from __future__ import annotations

import platform
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import Engine, text

from benchmarks.harness import StatementCounter

ROLES = ("pattern", "baseline", "alternative", "limit")


@dataclass(frozen=True)
class Scale:
    name: str
    rows: int
    rounds: int
    seed: int = 20261126

    def pick(self, *, quick: int, default: int, large: int | None = None) -> int:
        """A suite's own size at this scale, e.g. ``scale.pick(quick=10**4, default=10**6)``."""
        sizes = {"quick": quick, "default": default, "large": large or default * 10}
        return sizes[self.name]


SCALES = {
    "quick": Scale("quick", rows=10_000, rounds=3),
    "default": Scale("default", rows=100_000, rounds=5),
    "large": Scale("large", rows=1_000_000, rounds=3),
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--scale", choices=sorted(SCALES), default="quick")


@pytest.fixture(scope="session")
def scale(request: pytest.FixtureRequest) -> Scale:
    return SCALES[request.config.getoption("scale")]


def record(
    benchmark: Any,
    *,
    question: str,
    case: str,
    role: str,
    rows: int,
    scale: Scale,
    plan: str = "",
    slower_by_at_least: float | None = None,
    pattern_within: float | None = None,
    **extra: Any,
) -> None:
    """Label a benchmark case for the report (call it before ``benchmark.pedantic``).

    Targets from the issues are declared on the case they compare the pattern with, and the
    report marks each as met or missed: ``slower_by_at_least=5`` (this case's median is at
    least 5x the pattern's) or ``pattern_within=1.2`` (the pattern's median is at most 1.2x
    this case's).
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, not {role!r}")
    if slower_by_at_least is not None:
        extra["target_slower_by_at_least"] = slower_by_at_least
    if pattern_within is not None:
        extra["target_pattern_within"] = pattern_within
    suite = question.split(":", 1)[0]
    benchmark.group = question
    benchmark.name = case
    benchmark.extra_info.update(
        suite=suite, question=question, case=case, role=role, rows=rows, scale=scale.name,
        plan=plan, **extra,
    )


@pytest.fixture(autouse=True)
def _count_round_trips(request: pytest.FixtureRequest) -> Iterator[None]:
    """Count the statements each case's timed function sends (see ``harness.py``)."""
    if "benchmark" not in request.fixturenames:
        yield
        return
    bench = request.getfixturevalue("benchmark")
    counter = StatementCounter()
    pedantic = bench.pedantic

    def counted_pedantic(target: Any, *args: Any, **kw: Any) -> Any:
        return pedantic(counter.wrap(target), *args, **kw)

    bench.pedantic = counted_pedantic
    counter.start()
    try:
        yield
    finally:
        counter.stop()
        if counter.calls:
            bench.extra_info["statements"] = round(counter.per_call(), 2)


_SERVER: dict[str, Any] = {}


@pytest.fixture(autouse=True)
def _remember_server(request: pytest.FixtureRequest) -> None:
    names = [n for n in ("pg_engine", "pg_module_engine") if n in request.fixturenames]
    if names and not _SERVER:
        engine: Engine = request.getfixturevalue(names[0])
        with engine.connect() as conn:
            _SERVER["postgresql"] = conn.execute(text("SHOW server_version")).scalar()
            _SERVER["extensions"] = dict(  # type: ignore[arg-type]
                conn.execute(text("SELECT extname, extversion FROM pg_extension")).all()
            )


def pytest_benchmark_update_machine_info(
    config: pytest.Config, machine_info: dict[str, Any]
) -> None:
    machine_info["pgpatterns"] = {
        "scale": config.getoption("scale"),
        "python": platform.python_version(),
        **_SERVER,
    }
