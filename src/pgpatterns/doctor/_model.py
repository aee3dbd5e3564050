"""What a finding is, what lints exist, and the state every lint reads from."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, TextClause

__all__ = ["LINTS", "SEVERITIES", "Context", "Finding", "Lint", "lint"]

SEVERITIES = ("info", "warning", "error")
"""Severities, least to most severe."""


@dataclass(frozen=True)
class Lint:
    """One check: its id, default severity, a one-line title and the pattern that fixes it."""

    id: str
    severity: str
    title: str
    pattern: str
    run: Callable[[Context], Iterator[Finding]] = field(repr=False, compare=False)


LINTS: dict[str, Lint] = {}
"""Every lint :func:`~pgpatterns.doctor.doctor` knows, by id (in the order they run)."""


@dataclass(frozen=True)
class Finding:
    """One problem in the database.

    Examples:
        >>> f = Finding("no_primary_key", "warning", "app.events", "no primary key",
        ...             {"table": "app.events"}, "pgpatterns.columns", "ALTER TABLE ...")
        >>> f.fingerprint
        'no_primary_key:app.events'

    Attributes:
        id: The lint's id (a key of :data:`LINTS`).
        severity: ``"error"``, ``"warning"`` or ``"info"``.
        object: The object at fault, schema-qualified (``schema.table``,
            ``schema.table.constraint``, ``schema.index``, ``schema.function(args)``).
        message: What is wrong, why it matters and what to do.
        evidence: The catalog rows or statistics the finding was decided from.
        pattern: The pgpatterns API whose form does not have this problem.
        fix: DDL that fixes it (lines starting ``--`` where a choice is yours).
    """

    id: str
    severity: str
    object: str
    message: str
    evidence: dict[str, Any] = field(hash=False)
    pattern: str
    fix: str

    @property
    def fingerprint(self) -> str:
        """``id:object``: stable across runs; what a baseline file records."""
        return f"{self.id}:{self.object}"

    def as_dict(self) -> dict[str, Any]:
        """The JSON form (see docs/recipes/doctor.md)."""
        return {
            "id": self.id, "severity": self.severity, "object": self.object,
            "message": self.message, "evidence": self.evidence, "pattern": self.pattern,
            "fix": self.fix, "fingerprint": self.fingerprint,
        }

    def __str__(self) -> str:
        return f"{self.severity}: {self.id}: {self.object}: {self.message}"


@dataclass
class Context:
    """What lints share: the connection, the schemas in scope and cached catalog reads."""

    conn: Connection
    schemas: Sequence[str]
    plans: bool = False
    role: str | None = None
    cache: dict[str, Any] = field(default_factory=dict)

    def rows(self, key: str, stmt: TextClause, **params: Any) -> list[dict[str, Any]]:
        """Run a catalog query once per doctor run (``:schemas`` is bound for you)."""
        if key not in self.cache:
            result = self.conn.execute(stmt, {"schemas": list(self.schemas), **params})
            self.cache[key] = [dict(r) for r in result.mappings()]
        rows: list[dict[str, Any]] = self.cache[key]
        return rows

    def finding(self, lint_id: str, obj: str, message: str, evidence: dict[str, Any],
                fix: str, *, severity: str | None = None) -> Finding:
        spec = LINTS[lint_id]
        return Finding(lint_id, severity or spec.severity, obj, message, evidence,
                       spec.pattern, fix)


def lint(lint_id: str, severity: str, title: str, pattern: str
         ) -> Callable[[Callable[[Context], Iterator[Finding]]],
                       Callable[[Context], Iterator[Finding]]]:
    """Register a lint function under ``lint_id``."""

    def register(fn: Callable[[Context], Iterator[Finding]]
                 ) -> Callable[[Context], Iterator[Finding]]:
        assert severity in SEVERITIES and lint_id not in LINTS
        LINTS[lint_id] = Lint(lint_id, severity, title, pattern, fn)
        return fn

    return register


# In every catalog query: relations of the schemas in scope that no extension owns.
IN_SCOPE = (
    "n.nspname = ANY(CAST(:schemas AS text[])) AND NOT EXISTS (SELECT FROM pg_depend e"
    " WHERE e.classid = 'pg_class'::regclass AND e.objid = c.oid AND e.deptype = 'e')"
)
