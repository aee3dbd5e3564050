"""The pytest fixtures: rollback, an app role under RLS, REQUIRE turning skips into failures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from pgpatterns.testing.plugin import PgSchema


def test_session_work_is_rolled_back(pg_session: Session, pg_engine: Engine) -> None:
    pg_session.execute(text("CREATE TABLE rollback_probe (id int)"))
    pg_session.commit()  # a savepoint: the outer transaction still rolls it all back
    assert pg_session.execute(text("SELECT count(*) FROM rollback_probe")).scalar() == 0
    with pg_engine.connect() as other:
        found = other.execute(text("SELECT to_regclass('rollback_probe')")).scalar()
    assert found is None


async def test_async_session_is_rolled_back(pg_async_session: AsyncSession) -> None:
    await pg_async_session.execute(text("CREATE TABLE async_probe (id int)"))
    await pg_async_session.commit()
    result = await pg_async_session.execute(text("SELECT count(*) FROM async_probe"))
    assert result.scalar() == 0


def test_extensions_are_created(pg_engine: Engine) -> None:
    with pg_engine.connect() as conn:
        names = set(conn.execute(text("SELECT extname FROM pg_extension")).scalars())
    assert {"vector", "btree_gist", "ltree", "pg_trgm"} <= names


def test_schema_fixture_isolates_ddl(pg_schema: PgSchema) -> None:
    with pg_schema.engine.begin() as conn:
        conn.execute(text("CREATE TABLE things (id int)"))
        where = conn.execute(
            text("SELECT table_schema FROM information_schema.tables WHERE table_name='things'")
        ).scalar()
        vector = conn.execute(text("SELECT '[1,2]'::vector")).scalar()
    assert where == pg_schema.name
    assert vector is not None


def test_app_role_cannot_bypass_rls(pg_schema: PgSchema) -> None:
    with pg_schema.engine.begin() as conn:
        conn.execute(text("CREATE TABLE notes (owner text, body text)"))
        conn.execute(text("INSERT INTO notes VALUES ('alice', 'a'), ('bob', 'b')"))
        conn.execute(text("ALTER TABLE notes ENABLE ROW LEVEL SECURITY"))
        conn.execute(text("CREATE POLICY only_alice ON notes USING (owner = 'alice')"))
        conn.execute(text("GRANT SELECT ON notes TO PUBLIC"))
        as_owner = conn.execute(text("SELECT count(*) FROM notes")).scalar()
    with pg_schema.app_engine.connect() as conn:
        flags = conn.execute(
            text("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
        ).one()
        visible = conn.execute(text("SELECT owner FROM notes")).scalars().all()
        with pytest.raises(ProgrammingError, match="must be owner"):
            conn.execute(text("ALTER TABLE notes DISABLE ROW LEVEL SECURITY"))
    assert as_owner == 2  # the owner bypasses its own policies: why tests need the app role
    assert tuple(flags) == (False, False)
    assert visible == ["alice"]


def test_app_engine_is_not_the_owner(pg_app_engine: Engine, pg_engine: Engine) -> None:
    with pg_engine.connect() as conn:
        owner = conn.execute(text("SELECT current_user")).scalar()
    with pg_app_engine.connect() as conn:
        app = conn.execute(text("SELECT current_user")).scalar()
    assert app != owner


_INNER = """
import pytest

@pytest.mark.requires_extension("no_such_extension")
def test_needs_it(pg_engine):
    pass
"""


def test_missing_extension_skips_locally(pytester: pytest.Pytester,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGPATTERNS_REQUIRE", raising=False)
    pytester.makepyfile(_INNER)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*lacks no_such_extension*"])


def test_require_env_turns_the_skip_into_a_failure(pytester: pytest.Pytester,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPATTERNS_REQUIRE", "vector,no_such_extension")
    pytester.makepyfile(_INNER)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*PGPATTERNS_REQUIRE lists no_such_extension*"])


@pytest.fixture(scope="module")
def _module_table(pg_module_engine: Engine) -> Iterator[Engine]:
    with pg_module_engine.begin() as conn:
        conn.execute(text("CREATE TABLE module_probe (id int)"))
        conn.execute(text("INSERT INTO module_probe VALUES (1), (2)"))
    yield pg_module_engine
    with pg_module_engine.begin() as conn:
        conn.execute(text("DROP TABLE module_probe"))


def test_module_engine_is_the_tests_engine(_module_table: Engine, pg_engine: Engine) -> None:
    assert _module_table is pg_engine
    with pg_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM module_probe")).scalar() == 2


_INNER_MODULE = """
import pytest

pytestmark = pytest.mark.requires_extension("no_such_extension")


@pytest.fixture(scope="module")
def loaded(pg_module_engine):
    return pg_module_engine


def test_uses_it(loaded):
    pass
"""


def test_module_engine_honours_module_markers(pytester: pytest.Pytester,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGPATTERNS_REQUIRE", raising=False)
    pytester.makepyfile(_INNER_MODULE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*lacks no_such_extension*"])
