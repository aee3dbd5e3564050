"""Turn pytest-benchmark JSON into ``RESULTS.md``, ``results/summary.json`` and PNG plots.

Usage: ``python -m benchmarks.report [raw.json ...]`` (default: every ``results/raw/*.json``).

``summary.json`` is read by other tools; its shape is stable: a list of objects with the
keys ``suite, question, case, role, scale, median_ms, min_ms, max_ms, rows, extra``.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchmarks.harness import LATENCIES_MS, at_latency

HERE = Path(__file__).parent
RESULTS = HERE / "results"
SCALE_ORDER = ("large", "default", "quick")
_KNOWN = {"suite", "question", "case", "role", "scale", "rows"}


def summarize(raw: dict[str, Any]) -> list[dict[str, Any]]:
    """One summary row per benchmark case, in the stable shape."""
    rows = []
    for bench in raw["benchmarks"]:
        info = bench.get("extra_info", {})
        stats = bench["stats"]
        rows.append(
            {
                "suite": info["suite"],
                "question": info["question"],
                "case": info["case"],
                "role": info["role"],
                "scale": info["scale"],
                "median_ms": round(stats["median"] * 1000, 3),
                "min_ms": round(stats["min"] * 1000, 3),
                "max_ms": round(stats["max"] * 1000, 3),
                "rows": info.get("rows"),
                "extra": {k: v for k, v in info.items() if k not in _KNOWN},
            }
        )
    return rows


def _ratio(row: dict[str, Any], pattern: dict[str, Any] | None) -> str:
    if pattern is None or not pattern["median_ms"]:
        return "-"
    return f"{row['median_ms'] / pattern['median_ms']:.2f}x"


def _target(row: dict[str, Any], pattern: dict[str, Any] | None) -> str:
    """The case's declared target, and whether this run met it (targets are set for the
    default scale: at quick scale they are shown, not judged)."""
    extra = row["extra"]
    if row["scale"].split("-")[0] == "quick" and any(k.startswith("target_") for k in extra):
        return "(target judged at default scale)"
    if pattern is None or not pattern["median_ms"] or not row["median_ms"]:
        return ""
    flags = {k.removesuffix("_target_met"): v for k, v in extra.items()
             if k.endswith("_target_met")}
    if flags:  # targets that are not about time (index size, recall): judged by the suite
        return "; ".join(f"{'met' if ok else 'MISSED'}: {name}" for name, ok in flags.items())
    if "target_slower_by_at_least" in extra:
        want = extra["target_slower_by_at_least"]
        judged = [(label, ms / base) for label, ms, base in _both_ways(row, pattern)]
        return "; ".join(f"{'met' if got >= want else 'MISSED'}{label}: at least {want:g}x "
                         f"slower ({got:.1f}x)" for label, got in judged)
    if "target_pattern_within" in extra:
        want = extra["target_pattern_within"]
        judged = [(label, base / ms) for label, ms, base in _both_ways(row, pattern)]
        return "; ".join(f"{'met' if got <= want else 'MISSED'}{label}: pattern within "
                         f"{want:g}x ({got:.2f}x)" for label, got in judged)
    return ""


def _both_ways(
    row: dict[str, Any], pattern: dict[str, Any]
) -> list[tuple[str, float, float]]:
    """``(label, case ms, pattern ms)`` as measured and, when both counted their statements,
    at 0.5 ms per round trip: ratio targets are judged both ways, labelled."""
    judged = [("", row["median_ms"], pattern["median_ms"])]
    mine, theirs = row["extra"].get("statements"), pattern["extra"].get("statements")
    if mine is not None and theirs is not None:
        latency = LATENCIES_MS[0]
        judged.append((f" @{latency:g} ms RTT", at_latency(row["median_ms"], mine, latency),
                       at_latency(pattern["median_ms"], theirs, latency)))
    return judged


def _latency_cells(row: dict[str, Any], pattern: dict[str, Any] | None) -> str:
    """``ms @0.5 | x pattern @0.5 | ms @1 | x pattern @1``: the case with each round trip
    costing that much more (a network instead of the local socket)."""
    stmts = row["extra"].get("statements")
    if stmts is None:
        return " | ".join([""] * (2 * len(LATENCIES_MS)))
    cells = []
    for latency in LATENCIES_MS:
        ms = at_latency(row["median_ms"], stmts, latency)
        base = None if pattern is None else pattern["extra"].get("statements")
        ratio = "-" if base is None or pattern is None else (
            f"{ms / at_latency(pattern['median_ms'], base, latency):.2f}x")
        cells += [f"{ms:.2f}", ratio]
    return " | ".join(cells)


def _questions(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        grouped[row["question"]].append(row)
    return dict(sorted(grouped.items()))


def _plot(question: str, scale: str, cases: list[dict[str, Any]]) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    name = f"{question.replace(':', '-')}-{scale}.png"
    colors = {"pattern": "#2b8a3e", "baseline": "#c92a2a", "alternative": "#868e96",
              "limit": "#1c7ed6"}
    curve = [c for c in cases if "recall_at_10" in c["extra"]]
    if len(curve) >= 3:  # a recall/latency trade-off: a curve says more than bars
        fig, ax = plt.subplots(figsize=(7, 4))
        for c in curve:
            ax.scatter(c["median_ms"], c["extra"]["recall_at_10"],
                       color=colors.get(c["role"], "#868e96"))
            ax.annotate(c["case"], (c["median_ms"], c["extra"]["recall_at_10"]), fontsize=7)
        ax.set_xscale("log")
        ax.set_xlabel("median ms (log)")
        ax.set_ylabel("recall@10")
    else:
        fig, ax = plt.subplots(figsize=(7, 0.6 + 0.5 * len(cases)))
        labels = [f"{c['case']} ({c['role']})" for c in cases]
        ax.barh(labels, [c["median_ms"] for c in cases],
                color=[colors.get(c["role"], "#868e96") for c in cases])
        ax.set_xlabel("median ms (lower is better)")
        ax.invert_yaxis()
    ax.set_title(f"{question} — {scale}")
    fig.tight_layout()
    fig.savefig(RESULTS / name, dpi=90)
    plt.close(fig)
    return name


def render(runs: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]]) -> str:
    """The Markdown report: one section per scale, one table per question."""
    lines = [
        "# Benchmark results",
        "",
        "Generated by `make bench` (`python -m benchmarks.report`); do not edit by hand.",
        "Ratios are each case's median divided by the pattern's median "
        "(above 1x means slower than the pattern). `statements` is the number of SQL "
        "statements (round trips) one timed call sends; the `@0.5 ms RTT` / `@1 ms RTT` "
        "columns add that many round trips of network latency to the median (the runs use a "
        "local unix socket), and their ratios compare with the pattern at the same latency.",
    ]
    def order(scale: str) -> tuple[int, str]:  # default, then default-<label>, then quick
        base = scale.split("-")[0]
        return (SCALE_ORDER.index(base) if base in SCALE_ORDER else 9, scale)

    for scale in sorted(runs, key=order):
        raw, rows = runs[scale]
        machine = raw.get("machine_info", {})
        pg = machine.get("pgpatterns", {})
        exts = ", ".join(f"{k} {v}" for k, v in sorted(pg.get("extensions", {}).items()))
        lines += [
            "",
            f"## Scale `{scale}`",
            "",
            f"- run: {raw.get('datetime', '?')}",
            f"- machine: {machine.get('cpu', {}).get('brand_raw', machine.get('processor', '?'))}"
            f", {machine.get('system', '?')} {machine.get('release', '')}",
            f"- Python {machine.get('python_version', '?')}; extensions of the last suite's "
            f"server: {exts or '?'}",
        ]
        for question, cases in _questions(rows).items():
            pattern = next((c for c in cases if c["role"] == "pattern"), None)
            servers = sorted({str(c["extra"].get("server", "")) for c in cases} - {""})
            lines += [
                "",
                f"### `{question}`",
                "",
                *([f"Server: {', '.join(servers)}.", ""] if servers else []),
                "| case | role | median ms | min ms | max ms | rows | x pattern | target | "
                "statements | ms @0.5 ms RTT | x pattern @0.5 | ms @1 ms RTT | x pattern @1 "
                "| plan |",
                "|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---|",
            ]
            for c in cases:
                plan = str(c["extra"].get("plan", "")).replace("|", "\\|")
                lines.append(
                    f"| {c['case']} | {c['role']} | {c['median_ms']:.2f} | {c['min_ms']:.2f} | "
                    f"{c['max_ms']:.2f} | {c['rows'] if c['rows'] is not None else ''} | "
                    f"{_ratio(c, pattern)} | {_target(c, pattern)} | "
                    f"{c['extra'].get('statements', '')} | {_latency_cells(c, pattern)} | {plan} |"
                )
            image = _plot(question, scale, cases) if len(cases) >= 2 else None
            if image:
                lines += ["", f"![{question} at {scale} scale](results/{image})"]
    return "\n".join(lines) + "\n"


def _merge(paths: list[Path], scale: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One scale's suites, each from its own run: the newest run's machine info on top,
    and each suite's server recorded on its rows. ``scale`` names the run in the report:
    ``default``, or ``default-<label>`` for a labelled run (``--label``)."""
    raws = [json.loads(p.read_text()) for p in sorted(paths, key=lambda p: p.stat().st_mtime)]
    rows = []
    for raw in raws:
        server = raw.get("machine_info", {}).get("pgpatterns", {}).get("postgresql")
        for row in summarize(raw):
            row["scale"] = scale
            if server:
                row["extra"].setdefault("server", f"PostgreSQL {server}")
            rows.append(row)
    return raws[-1], rows


def main(argv: list[str] | None = None) -> int:
    """Report every suite's latest run: ``results/raw/<scale>/<suite>.json``."""
    raw_dir = RESULTS / "raw"
    by_scale: dict[str, list[Path]] = defaultdict(list)
    for path in sorted(raw_dir.glob("*/*.json")) if raw_dir.is_dir() else []:
        by_scale[path.parent.name].append(path)
    for extra in argv if argv is not None else sys.argv[1:]:
        path = Path(extra)
        by_scale[json.loads(path.read_text())["benchmarks"][0]["extra_info"]["scale"]].append(path)
    runs = {scale: _merge(paths, scale) for scale, paths in by_scale.items()}
    runs = {scale: run for scale, run in runs.items() if run[1]}
    if not runs:
        print("no benchmark results found; run `make bench` first", file=sys.stderr)
        return 1
    RESULTS.mkdir(exist_ok=True)
    summary = [row for _, rows in runs.values() for row in rows]
    (RESULTS / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (HERE / "RESULTS.md").write_text(render(runs))
    print(f"wrote {HERE / 'RESULTS.md'} and {RESULTS / 'summary.json'} ({len(summary)} cases)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
