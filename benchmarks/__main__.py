"""Run the benchmark suites, then write RESULTS.md and results/summary.json.

Usage: ``python -m benchmarks [--scale quick|default|large] [--suite NAME] [pytest args...]``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

from benchmarks import report

HERE = Path(__file__).parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--scale", choices=("quick", "default", "large"), default="default")
    parser.add_argument("--suite", help="run only benchmarks/bench_<suite>.py")
    args, extra = parser.parse_known_args(argv)
    raw = HERE / "results" / "raw" / f"{args.scale}.json"
    raw.parent.mkdir(parents=True, exist_ok=True)
    target = HERE / f"bench_{args.suite}.py" if args.suite else HERE
    code = pytest.main(
        [
            str(target),
            "-o", "python_files=bench_*.py",
            "-o", "testpaths=benchmarks",
            "-p", "no:randomly",
            "-v",
            f"--scale={args.scale}",
            "--benchmark-only",
            "--benchmark-disable-gc",
            f"--benchmark-json={raw}",
            "--benchmark-columns=median,min,max,rounds",
            "--benchmark-sort=name",
            *extra,
        ]
    )
    if code != 0:
        return int(code)
    report.main([str(raw)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
