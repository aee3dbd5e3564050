"""Alembic autogenerate and ``alembic check`` for everything :mod:`pgpatterns.ddl` declares.

Examples:
    In ``env.py``, one line after ``target_metadata = Base.metadata``::

        from pgpatterns.alembic import setup; setup()

    Then ``alembic revision --autogenerate`` creates, replaces and drops extensions,
    functions, triggers, views, materialized views (with their indexes and grants), row-level
    security, policies, partitions and composite foreign keys, with downgrades, and
    ``alembic check`` fails while anything differs.

What is compared is what :func:`pgpatterns.ddl.diff` reports (one implementation,
:func:`pgpatterns.ddl.compare.compare`): every part of a definition that changes behaviour,
and policies, triggers, views and functions on the MetaData's tables and in its schemas that
it does not declare (they are dropped, with a downgrade that re-creates them; pass
``pgpatterns_undeclared="report"`` to ``context.configure`` to leave them in place when
another tool manages some of them). Replacing an
object first drops the declared objects that depend on it in ``pg_depend`` (a view on a view,
a trigger or policy on a function) and creates them again after it. Partitions are detached
and attached, never dropped to change a bound.

``ExcludeConstraint`` is rendered with its operator classes (``ops=``), which Alembic
drops (its issue #958).

Warning:
    Needs ``alembic`` (``pip install pgpatterns[alembic]``, Alembic 1.13 or later).
    The comparison creates throw-away twins of declarations in savepoints that are rolled
    back, so the migration user needs the rights to create them (the schema owner has them).
"""

from __future__ import annotations

from alembic.autogenerate import comparators

from pgpatterns.alembic import exclude
from pgpatterns.alembic.comparator import compare_schema_objects, operations_for
from pgpatterns.alembic.ops import CreateSchemaObjectOp, DropSchemaObjectOp, RawDDL, register

__all__ = [
    "CreateSchemaObjectOp",
    "DropSchemaObjectOp",
    "RawDDL",
    "compare_schema_objects",
    "operations_for",
    "setup",
]

_DONE: list[bool] = []


def setup() -> None:
    """Turn pgpatterns' autogenerate support on (call once in ``env.py``; idempotent).

    Examples:
        >>> from pgpatterns.alembic import setup
        >>> setup(); setup()  # registers the comparator and operations once
    """
    register()
    if _DONE:
        return
    exclude.register()
    try:
        from alembic.util import DispatchPriority
    except ImportError:  # Alembic < 1.18: registration order puts it after the tables
        comparators.dispatch_for("schema")(compare_schema_objects)
    else:
        comparators.dispatch_for("schema", priority=DispatchPriority.LAST)(compare_schema_objects)
    _DONE.append(True)
