"""The doctor's reports: text for people, JSON and SARIF 2.1.0 for machines.

Examples:
    >>> from pgpatterns.doctor.report import to_json
    >>> to_json([], schemas=["public"])["summary"]
    {'error': 0, 'warning': 0, 'info': 0}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pgpatterns import __version__
from pgpatterns.doctor._model import LINTS, SEVERITIES, Finding

__all__ = ["JSON_VERSION", "SARIF_SCHEMA", "to_json", "to_sarif", "to_text"]

JSON_VERSION = 1
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_SARIF_LEVEL = {"error": "error", "warning": "warning", "info": "note"}


def _summary(findings: Sequence[Finding]) -> dict[str, int]:
    return {s: sum(f.severity == s for f in findings) for s in reversed(SEVERITIES)}


def to_json(findings: Sequence[Finding], *, schemas: Sequence[str],
            database: str | None = None) -> dict[str, Any]:
    """The ``--format json`` document (``version`` 1; see docs/recipes/doctor.md)."""
    return {
        "version": JSON_VERSION,
        "tool": "pgpatterns doctor",
        "tool_version": __version__,
        "database": database,
        "schemas": list(schemas),
        "summary": _summary(findings),
        "findings": [f.as_dict() for f in findings],
    }


def to_sarif(findings: Sequence[Finding], *, database: str | None = None) -> dict[str, Any]:
    """A SARIF 2.1.0 log with one run; database objects are logical locations."""
    rules = list(LINTS.values())
    index = {spec.id: i for i, spec in enumerate(rules)}
    results = []
    for f in findings:
        results.append({
            "ruleId": f.id,
            "ruleIndex": index[f.id],
            "level": _SARIF_LEVEL[f.severity],
            "message": {"text": f.message},
            "locations": [{"logicalLocations": [
                {"fullyQualifiedName": f.object, "kind": "object"}]}],
            "partialFingerprints": {"pgpatternsFingerprint/v1": f.fingerprint},
            "properties": {"evidence": f.evidence, "pattern": f.pattern, "fix": f.fix,
                           "severity": f.severity},
        })
    run: dict[str, Any] = {
        "tool": {"driver": {
            "name": "pgpatterns doctor",
            "version": __version__,
            "rules": [{
                "id": spec.id,
                "name": "".join(w.capitalize() for w in spec.id.split("_")),
                "shortDescription": {"text": spec.title},
                "help": {"text": f"Pattern: {spec.pattern}"},
                "defaultConfiguration": {"level": _SARIF_LEVEL[spec.severity]},
            } for spec in rules],
        }},
        "results": results,
    }
    if database:
        run["properties"] = {"database": database}
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}


def to_text(findings: Sequence[Finding], *, fixes: bool = True) -> str:
    """Plain text: one block per finding, then a summary line."""
    lines = []
    for f in findings:
        lines.append(f"{f.severity.upper():7} {f.id}  {f.object}")
        lines.append(f"        {f.message}")
        lines.append(f"        pattern: {f.pattern}")
        if fixes:
            lines.extend(f"        fix: {line}" if i == 0 else f"             {line}"
                         for i, line in enumerate(f.fix.splitlines()))
        lines.append("")
    counts = _summary(findings)
    lines.append(", ".join(f"{n} {s}" for s, n in counts.items()) if findings
                 else "no findings")
    return "\n".join(lines)
