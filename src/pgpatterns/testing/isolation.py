"""An isolation test kit: generated cross-tenant reads, writes and references, as the app role.

Examples:
    >>> from pgpatterns.testing import assert_tenant_isolation
    >>> report = assert_tenant_isolation(Base.metadata, app_engine, tenants=(1, 2))
    ... # doctest: +SKIP
    >>> report.statements > 1000  # doctest: +SKIP
    True

Seed rows for at least two tenants, then call it in your own test suite with the engine your
application connects with (the non-owner role the policies name). It finds every
tenant-scoped table of the MetaData (``TenantScoped`` models, link tables, anything
:func:`pgpatterns.rls.secure_table` made) and every object attached to them (partitions,
views, materialized views), reads each tenant's own rows *as that tenant*, and then lets
hypothesis generate sequences of statements that one tenant runs against another's rows:

* reads of every relation (a row of another tenant, or a row whose tenant column is not
  the current tenant, is a leak), also with no tenant set;
* ``UPDATE``/``DELETE`` of the other tenant's rows by key (any row changed is a leak);
* moving an own row to the other tenant, and inserting a copy of an own row for it;
* pointing an own row's foreign key at the other tenant's row (links, trees, documents).

Every statement runs in a savepoint that is rolled back, so the data stays as seeded.
Relations whose rows carry no tenant column are listed in ``IsolationReport.unchecked``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, MetaData, Table, insert, select, update
from sqlalchemy import delete as delete_stmt
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.elements import ColumnElement

from pgpatterns.ddl import MaterializedView, Partition, View, attached
from pgpatterns.rls import tenant_context, tenant_of

__all__ = ["IsolationReport", "TenantIsolationLeak", "assert_tenant_isolation"]

Key = tuple[Any, ...]


class TenantIsolationLeak(AssertionError):
    """A statement run as one tenant read, changed or referenced another tenant's row."""


@dataclass
class IsolationReport:
    """What :func:`assert_tenant_isolation` ran: statement count, relations, unchecked ones."""

    statements: int = 0
    relations: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)


@dataclass(frozen=True, eq=False)
class _Relation:
    name: str
    table: Any  # a Table, or the table-like of a view/partition
    tenant: str | None  # the tenant column's name, when the rows carry it
    writable: Table | None  # a tenant-scoped table (or partition) to attack with writes


def _relations(metadata: MetaData) -> list[_Relation]:
    found: list[_Relation] = []
    for table in metadata.sorted_tables:
        info = tenant_of(table)
        if info is not None:
            found.append(_Relation(table.name, table, info.column.name, table))
    for obj in attached(metadata):
        if isinstance(obj, Partition) and tenant_of(obj.parent_table) is not None:
            info = tenant_of(obj.parent_table)
            assert info is not None
            found.append(_Relation(obj.name, obj.table, info.column.name, obj.table))
        elif isinstance(obj, (View, MaterializedView)):
            col = next((c for c in ("tenant_id",) if c in obj.table.c), None)
            found.append(_Relation(obj.name, obj.table, col, None))
    return found


def _key_columns(table: Table) -> list[Any]:
    return list(table.primary_key.columns) or list(table.columns)


def _where(table: Table, key: Key) -> ColumnElement[bool]:
    cols = _key_columns(table)
    clause: Any = cols[0] == key[0]
    for col, value in zip(cols[1:], key[1:], strict=True):
        clause = clause & (col == value)
    return clause  # type: ignore[no-any-return]


def _snapshot(conn: Connection, rel: _Relation) -> dict[Key, dict[str, Any]] | None:
    """``{key: row}`` of what the current context reads, or None when access is refused."""
    try:
        with conn.begin_nested():
            rows = conn.execute(select(rel.table)).mappings().all()
    except DBAPIError:
        return None  # e.g. permission denied on a materialized view: nothing leaks
    table = rel.writable if rel.writable is not None else rel.table
    names = [c.name for c in _key_columns(table)] if rel.writable is not None else list(
        rows[0].keys() if rows else [])
    return {tuple(r[n] for n in names): dict(r) for r in rows}


def assert_tenant_isolation(
    metadata: MetaData,
    app_engine: Engine,
    *,
    tenants: Sequence[Any] = (1, 2),
    max_examples: int = 100,
    statements_per_example: int = 20,
    context: Callable[[Connection, Any], None] = tenant_context,
) -> IsolationReport:
    """Fail with :class:`TenantIsolationLeak` on any cross-tenant read, write or reference.

    Examples:
        >>> assert_tenant_isolation(metadata, app_engine).statements  # doctest: +SKIP
        2140

    Args:
        metadata: The application's MetaData (tables, attached views and partitions).
        app_engine: An engine connecting as the application role (not the owner, not a
            superuser: they bypass row-level security).
        tenants: At least two tenant ids that have rows in every tenant-scoped table.
        max_examples: hypothesis examples (each one transaction of statements).
        statements_per_example: The longest statement sequence in one example.
        context: How a transaction is made to act for a tenant (default
            :func:`pgpatterns.rls.tenant_context`; on Citus,
            :func:`pgpatterns.citus.tenant_context`, whose setting reaches the workers).
    """
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    if len(tenants) < 2:
        raise ValueError("assert_tenant_isolation(): pass at least two tenants.")
    relations = _relations(metadata)
    report = IsolationReport(relations=[r.name for r in relations])
    report.unchecked = [r.name for r in relations if r.tenant is None]
    with app_engine.connect() as conn:
        own = _own_rows(conn, relations, tenants, report, context)
        _check_without_context(conn, relations, report)
    ops = _operations(relations, tenants, own)

    @settings(max_examples=max_examples, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(list(tenants)),
           st.lists(st.sampled_from(ops), min_size=max(1, statements_per_example // 2),
                    max_size=statements_per_example))
    def attack(attacker: Any, sequence: list[tuple[Any, ...]]) -> None:
        with app_engine.connect() as conn, conn.begin():
            context(conn, attacker)
            for op in sequence:
                _run(conn, op, attacker, own, report)

    if ops:
        attack()
    return report


def _own_rows(
    conn: Connection, relations: list[_Relation], tenants: Sequence[Any],
    report: IsolationReport, context: Callable[[Connection, Any], None],
) -> dict[tuple[str, Any], dict[Key, dict[str, Any]]]:
    own: dict[tuple[str, Any], dict[Key, dict[str, Any]]] = {}
    for tenant in tenants:
        with conn.begin():
            context(conn, tenant)
            for rel in relations:
                rows = _snapshot(conn, rel) or {}
                report.statements += 1
                _only(rel, rows, tenant, f"as tenant {tenant!r}")
                own[rel.name, tenant] = rows
    for rel in relations:
        if rel.writable is None:
            continue
        for i, a in enumerate(tenants):
            for b in tenants[i + 1:]:
                shared = own[rel.name, a].keys() & own[rel.name, b].keys()
                if shared:
                    raise TenantIsolationLeak(
                        f"{rel.name}: tenants {a!r} and {b!r} both read the rows "
                        f"{sorted(shared)[:5]}."
                    )
    return own


def _only(rel: _Relation, rows: dict[Key, dict[str, Any]], tenant: Any, how: str) -> None:
    if rel.tenant is None:
        return
    other = [k for k, r in rows.items() if r[rel.tenant] != tenant]
    if other:
        raise TenantIsolationLeak(
            f"{rel.name}: {how}, read {len(other)} row(s) of other tenants, e.g. {other[:3]}."
        )


def _check_without_context(
    conn: Connection, relations: list[_Relation], report: IsolationReport
) -> None:
    with conn.begin():
        for rel in relations:
            rows = _snapshot(conn, rel) or {}
            report.statements += 1
            if rows and rel.tenant is not None:
                raise TenantIsolationLeak(
                    f"{rel.name}: with no tenant set, read {len(rows)} row(s); a request "
                    "without a tenant must see nothing."
                )


def _operations(
    relations: list[_Relation], tenants: Sequence[Any],
    own: dict[tuple[str, Any], dict[Key, dict[str, Any]]],
) -> list[tuple[Any, ...]]:
    ops: list[tuple[Any, ...]] = [("read", rel) for rel in relations]
    for rel in relations:
        table = rel.writable
        if table is None:
            continue
        for victim in tenants:
            for key in list(own[rel.name, victim])[:20]:
                ops += [("update", rel, victim, key), ("delete", rel, victim, key),
                        ("steal", rel, victim, key), ("plant", rel, victim, key)]
        for fk in table.foreign_keys:
            target = next((r for r in relations if r.writable is fk.column.table), None)
            if target is None or fk.parent.name == rel.tenant:
                continue
            for victim in tenants:
                for row in list(own[target.name, victim].values())[:10]:
                    ops.append(("reference", rel, fk.parent.name, victim, row[fk.column.name]))
    return ops


def _run(
    conn: Connection, op: tuple[Any, ...], attacker: Any,
    own: dict[tuple[str, Any], dict[Key, dict[str, Any]]], report: IsolationReport,
) -> None:
    kind, rel = op[0], op[1]
    report.statements += 1
    if kind == "read":
        rows = _snapshot(conn, rel) or {}
        _only(rel, rows, attacker, f"as tenant {attacker!r}")
        if rel.writable is not None:
            _no_foreign_keys(rel, rows, attacker, own)
        return
    table: Table = rel.writable
    stmt: Any
    if kind == "reference":
        _, _, column, victim, target_key = op
        if victim == attacker:
            return
        mine = list(own[rel.name, attacker])
        if not mine:
            return
        stmt = update(table).where(_where(table, mine[0])).values({column: target_key})
        what = f"pointed {rel.name}.{column} of its row {mine[0]} at tenant {victim!r}'s key"
    else:
        _, _, victim, key = op
        row = own[rel.name, victim][key]
        if kind in ("update", "delete") and victim == attacker:
            return
        if kind == "update":
            first = _key_columns(table)[0]
            stmt = update(table).where(_where(table, key)).values({first.name: first})
            what = f"updated tenant {victim!r}'s row {key}"
        elif kind == "delete":
            stmt = delete_stmt(table).where(_where(table, key))
            what = f"deleted tenant {victim!r}'s row {key}"
        elif kind == "steal":
            if victim != attacker:
                return  # moving *its own* row to another tenant
            others = [t for t in _own_tenants(own, rel) if t != attacker]
            stmt = update(table).where(_where(table, key)).values({rel.tenant: others[0]})
            what = f"moved its row {key} to tenant {others[0]!r}"
        else:  # plant: a copy of one of its rows, for another tenant
            if victim != attacker:
                return
            others = [t for t in _own_tenants(own, rel) if t != attacker]
            stmt = insert(table).values({**row, **_fresh_key(table, row), rel.tenant: others[0]})
            what = f"inserted a row for tenant {others[0]!r}"
    try:
        with conn.begin_nested() as sp:
            changed = conn.execute(stmt).rowcount
            sp.rollback()
    except DBAPIError:
        return  # refused: what isolation wants
    if changed:
        raise TenantIsolationLeak(f"{rel.name}: tenant {attacker!r} {what} ({changed} row(s)).")


def _fresh_key(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    """A new value for a one-column integer key, so a copy is refused by policy, not by key."""
    keys = _key_columns(table)
    if len(keys) == 1 and keys[0].type.python_type is int:
        return {keys[0].name: row[keys[0].name] + 1_000_003}
    return {}


def _own_tenants(own: dict[tuple[str, Any], Any], rel: _Relation) -> list[Any]:
    return [t for (name, t) in own if name == rel.name]


def _no_foreign_keys(
    rel: _Relation, rows: dict[Key, dict[str, Any]], attacker: Any,
    own: dict[tuple[str, Any], dict[Key, dict[str, Any]]],
) -> None:
    """No row the attacker reads points at a row another tenant owns."""
    table = rel.writable
    assert table is not None
    for fk in table.foreign_keys:
        targets = {(name, t): r for (name, t), r in own.items() if t != attacker}
        for (name, t), theirs in targets.items():
            if fk.column.table.name != name:
                continue
            values = {r[fk.column.name] for r in theirs.values()}
            mine = {r[fk.column.name] for r in own.get((name, attacker), {}).values()}
            bad = [k for k, r in rows.items() if r[fk.parent.name] in values - mine]
            if bad:
                raise TenantIsolationLeak(
                    f"{rel.name}: tenant {attacker!r}'s rows {bad[:3]} reference tenant "
                    f"{t!r}'s {name} through {fk.parent.name}."
                )
