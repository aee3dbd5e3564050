"""pgpatterns: PostgreSQL data-modeling patterns for SQLAlchemy 2.x.

Import the pattern you need from its family module, e.g.
``from pgpatterns.bulk import copy_rows``. Importing :mod:`pgpatterns` itself
is cheap and has no side effects.
"""

from pgpatterns.errors import PatternError

__version__ = "0.1.0.dev0"

__all__ = ["PatternError", "__version__"]
