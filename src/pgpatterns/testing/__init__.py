"""A real PostgreSQL to test and benchmark against.

Examples:
    >>> from pgpatterns.testing import get_resolver
    >>> db = get_resolver().database(require=["vector"])  # doctest: +SKIP
    >>> engine = sqlalchemy.create_engine(db.url)  # doctest: +SKIP

The pytest plugin (:mod:`pgpatterns.testing.plugin`, registered as a ``pytest11``
entry point) wraps this in fixtures. The library itself never imports this package.
"""

from typing import Any

from pgpatterns.testing.resolver import (
    DEFAULT_EXTENSIONS,
    Database,
    Resolver,
    get_resolver,
    required_from_env,
)
from pgpatterns.testing.servers import Server

__all__ = [
    "DEFAULT_EXTENSIONS",
    "Database",
    "IsolationReport",
    "Resolver",
    "Server",
    "TenantIsolationLeak",
    "assert_tenant_isolation",
    "get_resolver",
    "required_from_env",
]


_LAZY = {"IsolationReport", "TenantIsolationLeak", "assert_tenant_isolation"}


def __getattr__(name: str) -> Any:
    """The isolation kit is imported on first use (it pulls in the rls and ddl families,
    which ``pgpatterns serve`` and the resolver do not need)."""
    if name in _LAZY:
        from pgpatterns.testing import isolation

        return getattr(isolation, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
