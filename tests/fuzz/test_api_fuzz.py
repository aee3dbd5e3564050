"""Public-API fuzz test (issue 17): every case of the table in ``fuzz_cases`` gets hostile
arguments and must answer with a result or a PatternError (see ``fuzz_harness``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fuzz_cases import CASES, XFAIL
from fuzz_harness import Case, run_case
from fuzz_world import World, create_world, drop_world
from hypothesis import settings
from sqlalchemy import Engine

pytestmark = pytest.mark.requires_extension("vector")

#: Examples per case: an eighth of the profile's (ci: 5, dev: 12), at least 5: ~115 cases
#: must fit the suite's budget; explore more with HYPOTHESIS_PROFILE=dev.
EXAMPLES = max(5, (settings.default or settings()).max_examples // 8)


@pytest.fixture(scope="module")
def world(pg_module_engine: Engine) -> Iterator[World]:
    made = create_world(pg_module_engine)
    yield made
    drop_world(pg_module_engine)


def _params() -> list[object]:
    unknown = set(XFAIL) - {c.name for c in CASES}
    assert not unknown, f"XFAIL names unknown cases: {unknown}"
    return [
        pytest.param(case, id=case.name, marks=pytest.mark.xfail(
            strict=True, reason=f"issue 17: {XFAIL[case.name]}")) if case.name in XFAIL
        else pytest.param(case, id=case.name)
        for case in CASES
    ]


@pytest.mark.parametrize("case", _params())
def test_public_api_answers_hostile_arguments_with_a_result_or_a_pattern_error(
    case: Case, world: World, pg_module_engine: Engine
) -> None:
    run_case(case, pg_module_engine, world, EXAMPLES)
