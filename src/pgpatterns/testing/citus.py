"""A throwaway Citus cluster: one coordinator and two workers on unix sockets.

Examples:
    >>> from pgpatterns.testing.citus import start_citus  # doctest: +SKIP
    >>> cluster = start_citus()  # doctest: +SKIP
    >>> engine = sqlalchemy.create_engine(cluster.app_url)  # doctest: +SKIP
    >>> cluster.stop()  # doctest: +SKIP

Each node is its own ``initdb`` (see :mod:`pgpatterns.testing.cluster`: fsync off, a private
unix socket, run as ``postgres`` when we are root, killed with its parent) with
``shared_preload_libraries = 'citus'``; ``CREATE EXTENSION citus`` runs in each, then the
coordinator registers itself (``citus_set_coordinator_host``) and both workers
(``citus_add_node``). The cluster has one database (``postgres``) and one app role that is
neither superuser nor owner and has no BYPASSRLS (row-level security applies to it), like
the databases :class:`pgpatterns.testing.resolver.Resolver` hands out.

Citus is AGPL and not packaged by Debian: ``scripts/install-system-postgres.sh`` builds it
into the system PostgreSQL from the source archive ``PGPATTERNS_CITUS_SOURCE`` names.
"""

from __future__ import annotations

import atexit
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from pgpatterns.errors import DatabaseUnavailableError, MissingExtensionError
from pgpatterns.testing import cluster as _cluster
from pgpatterns.testing.resolver import grant_app_access, required_from_env

__all__ = [
    "APP_ROLE",
    "CitusCluster",
    "CitusSchema",
    "citus_bindir",
    "citus_missing",
    "citus_schema",
    "get_citus",
    "start_citus",
]

#: Settings added to every node's postgresql.conf (after the harness defaults).
CITUS_SETTINGS = {
    "shared_preload_libraries": "'citus'",
    # Unix sockets only: SSL has nothing to protect, and skipping it keeps start-up fast.
    "citus.node_conninfo": "'sslmode=disable'",
    "max_connections": "200",
    "max_prepared_transactions": "100",
    "citus.log_remote_commands": "off",
}

_BINDIR_ENV = "PGPATTERNS_CITUS_BINDIR"

#: The app role of every cluster (a fixed name: models name it in ``__tenant_roles__``).
APP_ROLE = "pgpatterns_citus_app"


def _bindir_candidates() -> Iterator[Path]:
    explicit = os.environ.get(_BINDIR_ENV)
    if explicit:  # only there: lets a user (or a test) pick, or rule out, an installation
        yield Path(explicit)
        return
    env = os.environ.get("PGPATTERNS_PG_BINDIR")
    if env:
        yield Path(env)
    debian = Path("/usr/lib/postgresql")
    if debian.is_dir():
        for major in sorted((p.name for p in debian.iterdir() if p.name.isdigit()), key=int):
            yield debian / major / "bin"


def citus_bindir() -> Path:
    """The ``bin`` directory of a PostgreSQL installation that has Citus.

    Raises:
        MissingExtensionError: no installation with ``citus.so`` was found (the message says
            where we looked and how to install it).
    """
    tried = []
    for bindir in _bindir_candidates():
        if (bindir / "postgres").is_file() and _cluster._has_library(bindir, "citus"):
            return bindir
        tried.append(str(bindir))
    where = ", ".join(tried) or f"${_BINDIR_ENV}, /usr/lib/postgresql/*/bin"
    raise MissingExtensionError(
        f"no PostgreSQL installation with the citus library (looked in {where}). Build it "
        "with PGPATTERNS_CITUS_SOURCE=/path/to/citus-X.Y.Z.tar.gz "
        f"scripts/install-system-postgres.sh, or point {_BINDIR_ENV} at an installation "
        "that has it."
    )


@dataclass
class CitusCluster:
    """A running coordinator + workers; :meth:`stop` ends all of them."""

    coordinator: _cluster.Cluster
    workers: list[_cluster.Cluster]
    app_role: str
    app_password: str = field(repr=False)
    started_in: float = 0.0

    @property
    def url(self) -> URL:
        """The coordinator's ``postgres`` database as the superuser (owner of what tests create)."""
        return self.coordinator.admin_url

    @property
    def app_url(self) -> URL:
        """The coordinator as the app role (no superuser, no owner, no BYPASSRLS)."""
        return self.url.set(username=self.app_role, password=self.app_password)

    def conninfo(self) -> str:
        return _conninfo(self.coordinator)

    def stop(self) -> None:
        for node in [self.coordinator, *self.workers]:
            node.stop()


def _conninfo(node: _cluster.Cluster) -> str:
    return psycopg.conninfo.make_conninfo(
        host=str(node.root), port=node.port, user="postgres", dbname="postgres"
    )


@dataclass
class _Prepared:
    root: Path
    usable: Path
    data: Path
    user: str | None


def _prepare_node(bindir: Path) -> _Prepared:
    """initdb with Citus' settings (shared_preload_libraries must be there at first start)."""
    user = _cluster._run_as()
    root = Path(tempfile.mkdtemp(prefix="pgpatterns-citus-"))
    try:
        root.chmod(0o755)
        usable = _cluster._usable_bindir(bindir, user, root)
        data = root / "data"
        data.mkdir(mode=0o700)
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(root, entry.pw_uid, entry.pw_gid)
            os.chown(data, entry.pw_uid, entry.pw_gid)
        _cluster._initdb(usable, data, user)
        with (data / "postgresql.conf").open("a") as conf:
            for name, value in CITUS_SETTINGS.items():
                conf.write(f"{name} = {value}\n")  # later lines win over _initdb's
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return _Prepared(root, usable, data, user)


def _launch(bindir: Path, prep: _Prepared) -> _cluster.Cluster:
    # In the main thread: PR_SET_PDEATHSIG fires when the *thread* that forked the server
    # exits, so a server started from a pool thread would be shut down with that thread.
    port = _cluster._free_port()
    with (prep.root / "postgres.log").open("wb") as out:
        process = subprocess.Popen(
            [str(prep.usable / "postgres"), "-D", str(prep.data), "-p", str(port),
             "-k", str(prep.root)],
            user=prep.user,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_cluster._die_with_parent,
        )
    return _cluster.Cluster(bindir=bindir, root=prep.root, port=port, process=process)


def _ready(node: _cluster.Cluster) -> _cluster.Cluster:
    _cluster._wait_ready(node, node.root / "postgres.log")
    with psycopg.connect(_conninfo(node), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS citus")
    return node


def _gather(futures: list[Any], cleanup: Any) -> list[Any]:
    """Every future's result; on any failure, ``cleanup`` the successes and raise."""
    done, errors = [], []
    for fut in futures:
        try:
            done.append(fut.result())
        except Exception as exc:  # collect, so every success is cleaned up
            errors.append(exc)
    if errors:
        for item in done:
            cleanup(item)
        raise DatabaseUnavailableError(f"a Citus node failed to start: {errors[0]}")
    return done


def start_citus(bindir: Path | None = None, *, workers: int = 2) -> CitusCluster:
    """Start a coordinator and ``workers`` workers with Citus and register the workers.

    Raises:
        MissingExtensionError: no PostgreSQL installation has Citus.
        DatabaseUnavailableError: a node failed to start; nothing is left running.
    """
    t0 = time.monotonic()
    bindir = bindir or citus_bindir()
    nodes: list[_cluster.Cluster] = []
    try:
        with ThreadPoolExecutor(max_workers=workers + 1) as pool:
            prepared = _gather([pool.submit(_prepare_node, bindir) for _ in range(workers + 1)],
                               cleanup=lambda p: shutil.rmtree(p.root, ignore_errors=True))
            for prep in prepared:
                try:
                    nodes.append(_launch(bindir, prep))
                except BaseException:
                    for rest_prep in prepared[len(nodes):]:
                        shutil.rmtree(rest_prep.root, ignore_errors=True)
                    raise
            _gather([pool.submit(_ready, node) for node in nodes], cleanup=lambda n: None)
        coordinator, *rest = nodes
        role, password = APP_ROLE, secrets.token_urlsafe(16)
        with psycopg.connect(_conninfo(coordinator), autocommit=True) as conn:
            conn.execute(
                "SELECT citus_set_coordinator_host(%s, %s)",
                [str(coordinator.root), coordinator.port],
            )
            for node in rest:
                conn.execute("SELECT citus_add_node(%s, %s)", [str(node.root), node.port])
            # Citus propagates CREATE ROLE and GRANTs to the workers it knows.
            conn.execute(
                sql.SQL(
                    "CREATE ROLE {} LOGIN PASSWORD {} NOSUPERUSER NOBYPASSRLS NOCREATEDB "
                    "NOCREATEROLE"
                ).format(sql.Identifier(role), sql.Literal(password))
            )
            grant_app_access(conn, role, "public")
    except BaseException:
        for node in nodes:
            node.stop()
        raise
    return CitusCluster(
        coordinator=coordinator,
        workers=rest,
        app_role=role,
        app_password=password,
        started_in=time.monotonic() - t0,
    )


_running: CitusCluster | None = None


def citus_missing() -> str | None:
    """Why no Citus cluster is started here (``None``: it is).

    Citus runs on the system PostgreSQL, so the cluster starts only when asked for it:
    ``PGPATTERNS_REQUIRE`` lists ``citus`` or ``PGPATTERNS_SERVER`` names ``local`` (CI's
    second step sets both); the default embedded run skips Citus tests.
    """
    servers = {s.strip() for s in os.environ.get("PGPATTERNS_SERVER", "").split(",")}
    if "citus" not in required_from_env() and "local" not in servers:
        return (
            "Citus tests run on the system PostgreSQL only when asked: set "
            "PGPATTERNS_SERVER=local or PGPATTERNS_REQUIRE=citus"
        )
    try:
        citus_bindir()
    except MissingExtensionError as exc:
        return str(exc)
    return None


def get_citus() -> CitusCluster:
    """The process-wide Citus cluster, started on first use and stopped at exit."""
    global _running
    if _running is None:
        _running = start_citus()
        atexit.register(_running.stop)
    return _running


@dataclass
class CitusSchema:
    """A fresh schema on the cluster: ``engine`` (superuser) and ``app_engine`` (app role)
    have it first on their search_path."""

    name: str
    engine: Engine
    app_engine: Engine
    cluster: CitusCluster


@contextmanager
def citus_schema(cluster: CitusCluster) -> Iterator[CitusSchema]:
    """Create a schema (Citus creates it on the workers too), yield engines, drop it."""
    name = f"c_{secrets.token_hex(4)}"
    with psycopg.connect(cluster.conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
        grant_app_access(conn, cluster.app_role, name)
    options = {"options": f"-c search_path={name},public"}
    engine = create_engine(cluster.url, poolclass=NullPool, connect_args=options)
    app = create_engine(cluster.app_url, poolclass=NullPool, connect_args=options)
    try:
        yield CitusSchema(name, engine, app, cluster)
    finally:
        engine.dispose()
        app.dispose()
        with psycopg.connect(cluster.conninfo(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
