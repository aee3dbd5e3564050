"""``pgpatterns serve`` as a user runs it: a subprocess, stopped by SIGINT or SIGTERM."""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from pgpatterns.cli import main

STARTUP = 120.0  # generous: the first start prepares the cached cluster; timing is not tested


def _ignore_sigint() -> None:  # what a shell does to a job it starts in the background
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _serve(*args: str, background: bool = False) -> tuple[subprocess.Popen[str], dict[str, str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pgpatterns", "serve", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_ignore_sigint if background else None,
    )
    out: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [out.put(line) for line in proc.stdout or ()],
                     daemon=True).start()
    lines: dict[str, str] = {}
    deadline = time.monotonic() + STARTUP
    while "Ctrl-C to stop." not in lines:
        try:
            line = out.get(timeout=max(0.01, deadline - time.monotonic())).rstrip("\n")
        except queue.Empty:
            line = None
        if line is None or time.monotonic() > deadline:
            proc.kill()
            err = proc.stderr.read() if proc.stderr else ""
            pytest.fail(f"serve did not print its URLs: {lines} {err}")
        key, _, value = line.partition(" ")
        lines[line if line.startswith("Ctrl-C") else key] = value.strip()
    return proc, lines


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in _state(pid)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:
        return "zombie"


def _stop(proc: subprocess.Popen[str], sig: signal.Signals, pid: int) -> None:
    proc.send_signal(sig)
    try:
        code = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        pytest.fail(f"serve ignored {sig.name}")
    assert code == 0
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid), "postgres still running after serve exited"


def _query(url: str, sql: str) -> object:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            result = conn.execute(text(sql))
            return result.scalar() if result.returns_rows else None
    finally:
        engine.dispose()


# Plain SIGINT (Ctrl-C) is covered by the --data test's second stop.
@pytest.mark.parametrize(("sig", "background"), [
    (signal.SIGTERM, False), (signal.SIGINT, True),
], ids=["SIGTERM", "SIGINT-background-job"])
def test_serve_prints_urls_that_answer_and_stops_cleanly(sig: signal.Signals,
                                                          background: bool) -> None:
    proc, lines = _serve(background=background)
    pid = int(lines["pid"].split()[0])
    socket_dir = Path(lines["socket"].split("host=")[1].split("&")[0].replace("%2F", "/"))
    try:
        assert _query(lines["url"], "SELECT current_setting('server_version_num')::int") >= 180000
        assert _query(lines["app_url"], "SELECT current_user") == "pgpatterns_app"
        # the app role is subject to row-level security: no superuser, no BYPASSRLS
        assert _query(lines["app_url"], "SELECT rolsuper OR rolbypassrls FROM pg_roles"
                                        " WHERE rolname = current_user") is False
        assert _query(lines["url"], "SELECT count(*) FROM pg_extension"
                                    " WHERE extname = 'vector'") == 1
    finally:
        _stop(proc, sig, pid)
    assert not socket_dir.exists(), "the throwaway cluster's files were left behind"


@pytest.fixture
def reachable_dir() -> Iterator[Path]:
    """A directory the server's user can reach (as root it runs as ``postgres``)."""
    path = Path(tempfile.mkdtemp(prefix="pgpatterns-serve-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_serve_data_dir_keeps_the_cluster(reachable_dir: Path) -> None:
    data = reachable_dir / "pg"
    proc, lines = _serve("--data", str(data))
    try:
        _query(lines["url"], "CREATE TABLE kept (id int PRIMARY KEY)")
        _query(lines["url"], "INSERT INTO kept VALUES (42)")
    finally:
        _stop(proc, signal.SIGTERM, int(lines["pid"].split()[0]))
    assert (data / "PG_VERSION").is_file()
    proc, lines = _serve("--data", str(data))
    try:
        assert _query(lines["url"], "SELECT id FROM kept") == 42
        assert _query(lines["app_url"], "SELECT current_user") == "pgpatterns_app"
    finally:
        _stop(proc, signal.SIGINT, int(lines["pid"].split()[0]))


def test_serve_refuses_a_directory_that_is_not_a_cluster(
    reachable_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (reachable_dir / "notes.txt").write_text("mine")
    assert main(["serve", "--data", str(reachable_dir)]) == 2
    assert "neither empty nor a PostgreSQL data directory" in capsys.readouterr().err
    assert (reachable_dir / "notes.txt").read_text() == "mine"
    assert main(["serve", "--port", "70000"]) == 2
    assert "--port 70000" in capsys.readouterr().err
