"""Run the benchmark suites, then write RESULTS.md and results/summary.json.

Usage: ``python -m benchmarks [--scale quick|default|large] [--suite NAME ...] [--label NAME]
[pytest args]``

Each suite (``benchmarks/bench_<suite>.py``) runs in its own pytest process and leaves
``results/raw/<scale>/<suite>.json``; the report merges every suite's latest run, so one
suite can be re-run without re-running the others. A suite that fails is reported at the
end and makes the command fail, after the other suites have run. ``--label mine`` files the
run under ``results/raw/<scale>-mine/`` and reports it as its own section (a run on your own
data, say), leaving the standard run's results alone.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import report

HERE = Path(__file__).parent


def suites() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))


def run_suite(suite: str, scale: str, extra: list[str], label: str | None = None) -> int:
    raw = HERE / "results" / "raw" / (f"{scale}-{label}" if label else scale) / f"{suite}.json"
    raw.parent.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "pytest", str(HERE / f"bench_{suite}.py"),
        "-o", "python_files=bench_*.py", "-o", "testpaths=benchmarks",
        "-q", f"--scale={scale}", "--benchmark-only", "--benchmark-disable-gc",
        f"--benchmark-json={raw}", "--benchmark-columns=median,min,max,rounds",
        "--benchmark-sort=name", *extra,
    ]
    return subprocess.run(command, cwd=HERE.parent, check=False).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--scale", choices=("quick", "default", "large"), default="default")
    parser.add_argument("--suite", action="append", choices=suites(),
                        help="run only this suite (repeatable); default: all")
    parser.add_argument("--label", help="report this run apart, as scale '<scale>-<label>' "
                        "(e.g. a run on your own data: PGPATTERNS_VECTOR_NPY=... --label mine)")
    args, extra = parser.parse_known_args(argv)
    chosen = args.suite or suites()
    failed = []
    started = time.monotonic()
    for n, suite in enumerate(chosen, 1):
        elapsed = time.monotonic() - started
        print(f"\n=== [{n}/{len(chosen)}] benchmarks: {suite} at {args.scale} scale "
              f"({elapsed / 60:.1f} min so far)", flush=True)
        if run_suite(suite, args.scale, extra, args.label) != 0:
            failed.append(suite)
    report.main([])
    print(f"=== benchmarks done in {(time.monotonic() - started) / 60:.1f} min", flush=True)
    if failed:
        print(f"=== failed suites: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
