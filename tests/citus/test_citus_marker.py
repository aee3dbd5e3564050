"""The citus marker: a failure (not a skip) when PGPATTERNS_REQUIRE lists citus and Citus is
missing (``PGPATTERNS_CITUS_BINDIR`` rules out the installed one)."""

from __future__ import annotations

import pytest

_INNER = """
import pytest

@pytest.mark.citus
def test_needs_citus(pg_citus):
    pass
"""


@pytest.mark.parametrize(
    ("env", "outcome", "line"),
    [
        ({"PGPATTERNS_REQUIRE": "citus", "PGPATTERNS_CITUS_BINDIR": "/nonexistent/bin"},
         "failed", "*PGPATTERNS_REQUIRE lists citus*"),
    ],
    ids=["required-and-missing"],  # the skips are seen in every default run
)
def test_marker_skips_or_fails(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                               env: dict[str, str], outcome: str, line: str) -> None:
    for name in ("PGPATTERNS_REQUIRE", "PGPATTERNS_SERVER", "PGPATTERNS_CITUS_BINDIR"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    pytester.makepyfile(_INNER)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rs")
    if outcome == "failed":
        result.assert_outcomes(errors=1)
    else:
        result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines([line])
