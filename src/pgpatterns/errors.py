"""Exceptions raised by pgpatterns.

Every error a user can cause derives from :class:`PatternError` and says what was
wrong, why, and how to fix it. Each family module has its own subclass so callers
can catch one family at a time.
"""

from __future__ import annotations

__all__ = [
    "BulkLoadError",
    "DDLDependencyError",
    "DDLError",
    "DDLNameError",
    "DDLOptionError",
    "DatabaseUnavailableError",
    "ExplainError",
    "MissingExtensionError",
    "PatternError",
]


class PatternError(Exception):
    """Base class of every pgpatterns exception."""


class BulkLoadError(PatternError):
    """Rows given to :func:`pgpatterns.bulk.copy_rows` do not fit the target table."""


class DatabaseUnavailableError(PatternError):
    """No PostgreSQL server could be found or started for tests or benchmarks."""


class MissingExtensionError(DatabaseUnavailableError):
    """A server was found, but it lacks a PostgreSQL extension that is required."""


class DDLError(PatternError):
    """A schema object from :mod:`pgpatterns.ddl` is declared wrongly (missing dependency,
    name collision, invalid option); raised before any SQL is sent."""


class DDLDependencyError(DDLError):
    """A schema object depends on one that is not attached, or dependencies form a cycle."""


class DDLNameError(DDLError):
    """Two schema objects attached to the same MetaData declare the same database object."""


class DDLOptionError(DDLError):
    """A schema object was given an unknown option or an unsafe combination of options."""


class ExplainError(PatternError):
    """A plan could not be produced or read by :mod:`pgpatterns.explain`."""
