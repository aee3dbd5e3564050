"""The resolver: candidate order, extension fallback, errors, cleanup."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import psycopg
import pytest

from pgpatterns.errors import DatabaseUnavailableError, MissingExtensionError
from pgpatterns.testing import Resolver
from pgpatterns.testing.cluster import start_cluster
from pgpatterns.testing.servers import _local_bindir, candidate_names


def _postgres_pids_under(root: Path) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "postgres" in line and str(root) in line]


def test_explicit_url_is_the_only_candidate() -> None:
    assert candidate_names("postgresql://x@localhost/db") == ["url"]


def test_default_order_is_embedded_local_docker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGPATTERNS_SERVER", raising=False)
    assert candidate_names(None) == ["embedded", "local", "docker"]


def test_server_env_restricts_and_orders(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPATTERNS_SERVER", "local, embedded")
    assert candidate_names(None) == ["local", "embedded"]


def test_unknown_candidate_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPATTERNS_SERVER", "embeded")
    with pytest.raises(DatabaseUnavailableError, match=r"unknown candidates \['embeded'\]"):
        candidate_names(None)


def test_unreachable_url_is_one_clear_line() -> None:
    resolver = Resolver("postgresql://nobody@127.0.0.1:1/nothing")
    with pytest.raises(DatabaseUnavailableError) as info:
        resolver.server()
    message = str(info.value)
    assert "\n" not in message
    assert "cannot connect to url PostgreSQL at postgresql+psycopg://nobody@127.0.0.1:1" in message
    assert "Check that the server is running" in message


def test_non_postgres_url_is_rejected() -> None:
    with pytest.raises(DatabaseUnavailableError, match="is not PostgreSQL"):
        Resolver("mysql://x@localhost/db").server()


def test_explicit_url_is_used_and_cleaned_up(pg_database) -> None:  # type: ignore[no-untyped-def]
    url = pg_database.url.render_as_string(hide_password=False)
    resolver = Resolver(url)
    db = resolver.database()
    assert db.server.kind == "url"
    with psycopg.connect(db.server.conninfo(db.name)) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == (db.name,)
    resolver.close()
    with psycopg.connect(pg_database.server.conninfo()) as conn:
        left = conn.execute(
            "SELECT count(*) FROM pg_database WHERE datname LIKE %s", (db.name + "%",)
        ).fetchone()
        roles = conn.execute(
            "SELECT count(*) FROM pg_roles WHERE rolname = %s", (db.app_role,)
        ).fetchone()
    assert left == (0,)
    assert roles == (0,)


def test_missing_extension_moves_on_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPATTERNS_SERVER", "embedded,local")
    notes: list[str] = []
    resolver = Resolver(notify=notes.append)
    try:
        embedded = resolver.server()
        assert embedded.kind == "embedded"
        try:
            _local_bindir()
        except DatabaseUnavailableError:
            with pytest.raises(MissingExtensionError, match="lacks no_such_ext"):
                resolver.server(["no_such_ext"])
            return
        with pytest.raises(MissingExtensionError) as info:
            resolver.server(["no_such_ext"])
        assert "embedded PostgreSQL 18 lacks no_such_ext" in str(info.value)
        assert "local PostgreSQL" in str(info.value)
        if "postgis" in resolver.server(["plpgsql"]).available_extensions:
            pytest.fail("the embedded build is not expected to ship PostGIS")
    finally:
        resolver.close()


@pytest.mark.requires_extension("postgis")
def test_postgis_request_falls_through_to_a_server_with_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PGPATTERNS_SERVER", "embedded,local")
    notes: list[str] = []
    resolver = Resolver(notify=notes.append)
    try:
        server = resolver.server(["postgis"])
        assert server.kind == "local"
        assert notes == [f"pgpatterns: embedded PostgreSQL 18 lacks postgis; using "
                         f"{server.describe()}"]
        db = resolver.database(["postgis"])
        assert {"postgis", "vector", "btree_gist", "ltree"} <= db.extensions
    finally:
        resolver.close()


def test_local_binaries_run_a_throwaway_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        bindir = _local_bindir()
    except DatabaseUnavailableError as exc:
        if "local" in os.environ.get("PGPATTERNS_SERVER", "") or os.environ.get("CI"):
            raise
        pytest.skip(str(exc))
    cluster = start_cluster(bindir)
    root = cluster.root
    try:
        with psycopg.connect(
            host=str(root), port=cluster.port, user="postgres", dbname="postgres"
        ) as conn:
            assert conn.execute("SHOW fsync").fetchone() == ("off",)
            assert conn.execute("SHOW listen_addresses").fetchone() == ("",)
            user = conn.execute(
                "SELECT usename FROM pg_stat_activity WHERE backend_type = 'checkpointer'"
            ).fetchone()
        owner = subprocess.run(["ps", "-o", "user=", "-p", str(cluster.process.pid)],
                               capture_output=True, text=True).stdout.strip()
        assert owner == ("postgres" if os.geteuid() == 0 else os.environ.get("USER", owner))
        assert user is not None
    finally:
        cluster.stop()
    assert not root.exists()
    assert _postgres_pids_under(root) == []


def test_bad_binaries_leave_nothing_behind(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in ("postgres", "initdb"):
        script = bindir / name
        script.write_text("#!/bin/sh\necho 'initdb: error: simulated failure' >&2\nexit 1\n")
        script.chmod(0o755)
    before = set(Path("/tmp").glob("pgpatterns-*"))
    expected = r"initdb from .* failed: initdb: error: simulated"
    with pytest.raises(DatabaseUnavailableError, match=expected):
        start_cluster(bindir)
    assert set(Path("/tmp").glob("pgpatterns-*")) == before


_CHILD = textwrap.dedent(
    """
    import os, signal, sys, time
    from pgpatterns.testing import get_resolver
    server = get_resolver().server()
    print(server.admin_url.query["host"], flush=True)
    if sys.argv[1] == "interrupt":
        os.kill(os.getpid(), signal.SIGINT)
    elif sys.argv[1] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    else:
        raise RuntimeError("a failing test")
    time.sleep(5)
    """
)


@pytest.mark.parametrize("how", ["interrupt", "kill", "error"])
def test_no_server_survives_its_process(how: str) -> None:
    env = {**os.environ, "PGPATTERNS_SERVER": "embedded"}
    env.pop("PGPATTERNS_DATABASE_URL", None)
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, how], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode != 0
    root = Path(proc.stdout.strip().splitlines()[0])
    assert root.name.startswith("pgpatterns-")
    for _ in range(100):  # a killed parent's server gets SIGQUIT; give it a moment
        if not _postgres_pids_under(root):
            break
        subprocess.run(["sleep", "0.1"])
    assert _postgres_pids_under(root) == []
    if how != "kill":  # SIGKILL runs no cleanup code; the directory may remain
        assert not root.exists()
    else:
        subprocess.run(["rm", "-rf", str(root)])


def test_docker_without_an_engine_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from pgpatterns.testing.servers import start_candidate

    if shutil.which("dockerd") and subprocess.run(["docker", "info"], capture_output=True,
                                                  check=False).returncode == 0:
        pytest.skip("a Docker engine answers here; this test covers the no-engine branch")
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(DatabaseUnavailableError, match="no Docker engine answers"):
        start_candidate("docker")


def test_resolver_reuses_a_started_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPATTERNS_SERVER", "embedded")
    resolver = Resolver()
    try:
        first = resolver.server()
        assert resolver.server() is first
        one, two = resolver.database(), resolver.database()
        assert one.name != two.name
        assert one.server is two.server
    finally:
        resolver.close()
    assert _postgres_pids_under(Path(first.admin_url.query["host"])) == []
