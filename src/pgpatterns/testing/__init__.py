"""A real PostgreSQL to test and benchmark against.

Examples:
    >>> from pgpatterns.testing import get_resolver
    >>> db = get_resolver().database(require=["vector"])  # doctest: +SKIP
    >>> engine = sqlalchemy.create_engine(db.url)  # doctest: +SKIP

The pytest plugin (:mod:`pgpatterns.testing.plugin`, registered as a ``pytest11``
entry point) wraps this in fixtures. The library itself never imports this package.
"""

from pgpatterns.testing.isolation import (
    IsolationReport,
    TenantIsolationLeak,
    assert_tenant_isolation,
)
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
