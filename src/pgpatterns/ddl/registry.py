"""Attach schema objects to a ``MetaData``: created after its tables, dropped before them.

Examples:
    >>> from sqlalchemy import MetaData
    >>> from pgpatterns.ddl import Extension, attach, attached
    >>> metadata = MetaData()
    >>> attach(metadata, Extension("pg_trgm"))
    >>> [o.name for o in attached(metadata)]
    ['pg_trgm']
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, MetaData, event

from pgpatterns.ddl.base import SchemaObject
from pgpatterns.ddl.policy import Policy
from pgpatterns.ddl.rls import RowLevelSecurity
from pgpatterns.errors import DDLDependencyError, DDLNameError

__all__ = ["attach", "attached", "create_all", "diff", "drop_all", "ordered"]

_OBJECTS = "pgpatterns.ddl.objects"


def attached(metadata: MetaData) -> list[SchemaObject]:
    """The objects attached to ``metadata``, in creation (dependency) order."""
    return list(metadata.info.get(_OBJECTS, []))


def attach(metadata: MetaData, *objects: SchemaObject) -> None:
    """Register ``objects`` so ``metadata.create_all``/``drop_all`` create and drop them.

    Examples:
        >>> from sqlalchemy import MetaData
        >>> from pgpatterns.ddl import Function
        >>> attach(MetaData(), Function("f", returns="int", body="SELECT 1"),
        ...        Function("f", returns="int", body="SELECT 2"))
        Traceback (most recent call last):
        ...
        pgpatterns.errors.DDLNameError: function f is declared twice: ...

    Extensions are created before the tables, everything else after them in dependency
    order; drops run in reverse, before the tables are dropped. Validation (collisions,
    missing dependencies, cycles) happens here, before any SQL is sent.
    """
    known = attached(metadata)
    new = [o for o in objects if o not in known]
    combined = ordered([*known, *new])
    metadata.info[_OBJECTS] = combined
    if not metadata.info.get(_OBJECTS + ".listening"):
        event.listen(metadata, "before_create", _before_create)
        event.listen(metadata, "after_create", _after_create)
        event.listen(metadata, "before_drop", _before_drop)
        event.listen(metadata, "after_drop", _after_drop)
        metadata.info[_OBJECTS + ".listening"] = True


def ordered(objects: Iterable[SchemaObject]) -> list[SchemaObject]:
    """``objects`` sorted so each comes after what it depends on (stable otherwise).

    Raises:
        DDLNameError: two objects declare the same database object.
        DDLDependencyError: a dependency is missing from ``objects``, or there is a cycle.
    """
    items = list(dict.fromkeys(objects))
    seen: dict[Any, SchemaObject] = {}
    for obj in items:
        other = seen.setdefault(obj.identity, obj)
        if other is not obj:
            raise DDLNameError(
                f"{obj.describe()} is declared twice: two declarations would create the "
                "same database object and the second CREATE would fail; rename one or "
                "attach only one."
            )
    rls = {id(o.table): o for o in items if isinstance(o, RowLevelSecurity)}
    deps: dict[int, list[SchemaObject]] = {}
    for obj in items:
        found = obj.dependencies()
        if isinstance(obj, Policy) and id(obj.table) in rls:
            found.append(rls[id(obj.table)])
        for dep in found:
            if dep not in items:
                raise DDLDependencyError(
                    f"{obj.describe()} depends on {dep.describe()}, which is not attached: "
                    "it would be created in the wrong order or not at all; attach "
                    f"{dep.describe()} to the same MetaData (or pass it too)."
                )
        deps[id(obj)] = found
    result: list[SchemaObject] = []
    done: set[int] = set()
    visiting: list[SchemaObject] = []

    def visit(obj: SchemaObject) -> None:
        if id(obj) in done:
            return
        if obj in visiting:
            cycle = [*visiting[visiting.index(obj) :], obj]
            raise DDLDependencyError(
                "dependency cycle: "
                + " -> ".join(o.describe() for o in cycle)
                + "; no creation order exists; remove one of the depends_on links."
            )
        visiting.append(obj)
        for dep in deps[id(obj)]:
            visit(dep)
        visiting.pop()
        done.add(id(obj))
        result.append(obj)

    for obj in items:
        visit(obj)
    return result


def create_all(conn: Connection, *objects: SchemaObject, checkfirst: bool = False) -> None:
    """Create ``objects`` in dependency order (``checkfirst`` skips existing ones)."""
    for obj in ordered(objects):
        _create(conn, obj, checkfirst)


def drop_all(conn: Connection, *objects: SchemaObject, checkfirst: bool = False) -> None:
    """Drop ``objects`` in reverse dependency order, keeping ``keep_on_drop`` ones."""
    for obj in reversed(ordered(objects)):
        if not obj.keep_on_drop:
            _drop(conn, obj, checkfirst)


def diff(conn: Connection, target: MetaData | Iterable[SchemaObject]) -> list[str]:
    """Differences between declared objects and the database; ``[]`` means in sync.

    Every part of a definition that changes behaviour is compared (PostgreSQL normalises
    both sides: the declaration is created as a throw-away twin in a rolled-back
    savepoint). With a ``MetaData``, its tables' named indexes are compared in full
    (method, operator classes, ``WITH`` options, predicate) and policies, triggers, views
    and functions on its tables and in its schemas that it does not declare are reported.

    Examples:
        >>> diff(conn, metadata)  # doctest: +SKIP
        ['view v: options are [] in the database, declared ["security_invoker=true"]']
    """
    from pgpatterns.ddl.compare import compare

    return [line for finding in compare(conn, target) for line in finding.lines]


def _create(conn: Connection, obj: SchemaObject, checkfirst: bool) -> None:
    if checkfirst and obj.exists(conn):
        return
    for ddl in obj.create_ddl():
        conn.execute(ddl)


def _drop(conn: Connection, obj: SchemaObject, checkfirst: bool) -> None:
    if checkfirst and not obj.exists(conn):
        return
    for ddl in obj.drop_ddl():
        conn.execute(ddl)


def _phase(target: MetaData, phase: str) -> list[SchemaObject]:
    return [o for o in ordered(attached(target)) if o.phase == phase]


def _before_create(target: MetaData, connection: Connection, **kw: Any) -> None:
    for obj in _phase(target, "before"):
        _create(connection, obj, bool(kw.get("checkfirst")))


def _after_create(target: MetaData, connection: Connection, **kw: Any) -> None:
    for obj in _phase(target, "after"):
        _create(connection, obj, bool(kw.get("checkfirst")))


def _before_drop(target: MetaData, connection: Connection, **kw: Any) -> None:
    for obj in reversed(_phase(target, "after")):
        if not obj.keep_on_drop:
            _drop(connection, obj, bool(kw.get("checkfirst")))


def _after_drop(target: MetaData, connection: Connection, **kw: Any) -> None:
    for obj in reversed(_phase(target, "before")):
        if not obj.keep_on_drop:
            _drop(connection, obj, bool(kw.get("checkfirst")))
