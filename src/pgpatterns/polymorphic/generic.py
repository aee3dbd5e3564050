"""Polymorphic association as a ``(target_type, target_id)`` pair, made safe by triggers.

For many or open-ended target types. The pair has no foreign key, so pgpatterns adds what
one would give: a CHECK on the known types, a trigger that rejects a pair naming a missing
row (taking ``FOR KEY SHARE`` on it, as a foreign key does), a trigger on every target
table that deletes the owners of a deleted target, and batched loading.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Column,
    Index,
    MetaData,
    Select,
    Text,
    and_,
    delete,
    false,
    literal,
    or_,
    select,
)
from sqlalchemy.orm import Session, object_session
from sqlalchemy.sql.elements import ColumnElement

from pgpatterns.ddl import Function, SchemaObject, Trigger, attach
from pgpatterns.errors import PolymorphicError
from pgpatterns.polymorphic._common import (
    check_identifier,
    constraint_name,
    raise_sql,
    render,
    row_value,
    sql_text,
)
from pgpatterns.polymorphic.targets import Targets, mapped_table

__all__ = ["GenericAssociation", "generic_association"]

_HELPER = "generic_association"
_CACHE = "_pgpatterns_target"


@dataclass(frozen=True)
class GenericAssociation(Targets):
    """The pair columns and guards of a type/id association; see :func:`generic_association`."""

    type_column: Column[Any]
    id_column: Column[Any]
    check: CheckConstraint
    index: Index
    objects: tuple[SchemaObject, ...]

    def of(self, *targets: object) -> ColumnElement[bool]:
        """A WHERE clause for the owners of these targets."""
        clauses = [
            and_(self.type_column == key, self.id_column.in_(ids))
            for key, ids in self.ids_by_key(targets).items()
        ]
        return or_(*clauses) if clauses else false()

    def statements(self, owners: Iterable[Any]) -> dict[str, Select[Any]]:
        """One SELECT per target type for the targets of ``owners`` (batched loading)."""
        wanted: dict[str, set[Any]] = {}
        for owner in owners:
            key = getattr(owner, self.type_column.key)
            if key is not None:
                wanted.setdefault(key, set()).add(getattr(owner, self.id_column.key))
        return {
            key: select(self.targets[key]).where(
                self.primary_key(self.targets[key]).in_(sorted(ids))
            )
            for key, ids in wanted.items()
        }

    def assign(self, owners: Iterable[Any], loaded: Mapping[str, Iterable[Any]]) -> None:
        """Cache loaded targets on their owners, so ``owner.<name>`` issues no query."""
        index = {
            (key, getattr(obj, self.primary_key(type(obj)).key)): obj
            for key, objs in loaded.items() for obj in objs
        }
        for owner in owners:
            pair = (getattr(owner, self.type_column.key), getattr(owner, self.id_column.key))
            owner.__dict__[_CACHE] = index.get(pair)

    def load(self, session: Session, owners: Iterable[Any]) -> None:
        """Load the targets of ``owners``: one statement per target type, not per owner."""
        owners = list(owners)
        loaded = {k: session.scalars(s).all() for k, s in self.statements(owners).items()}
        self.assign(owners, loaded)

    async def load_async(self, session: Any, owners: Iterable[Any]) -> None:
        """:meth:`load` for an ``AsyncSession``."""
        owners = list(owners)
        loaded = {k: (await session.scalars(s)).all() for k, s in self.statements(owners).items()}
        self.assign(owners, loaded)

    def get(self, obj: Any) -> Any:
        if _CACHE in obj.__dict__:
            return obj.__dict__[_CACHE]
        key = getattr(obj, self.type_column.key)
        if key is None:
            return None
        session = object_session(obj)
        if session is None:
            raise PolymorphicError(
                f"{type(obj).__name__}.{self.name} is not loaded and the object has no "
                "session; load it with association.load(session, owners) first."
            )
        target = session.get(self.targets[key], getattr(obj, self.id_column.key))
        obj.__dict__[_CACHE] = target
        return target

    def set(self, obj: Any, value: Any) -> None:
        if value is None:
            raise PolymorphicError(f"{type(obj).__name__}.{self.name} cannot be None.")
        key = self.key_for(value)
        ident = self.ids_by_key([value])[key][0]
        setattr(obj, self.type_column.key, key)
        setattr(obj, self.id_column.key, ident)
        obj.__dict__[_CACHE] = value

    def ddl(self) -> list[str]:
        """The CHECK, index, functions and triggers, for a migration."""
        return render([self.check, self.index]) + [obj.sql() for obj in self.objects]


def _exists_guard(
    spec: Targets, table: Any, type_col: Column[Any], id_col: Column[Any]
) -> list[Any]:
    name = constraint_name(_HELPER, table.name, "pgp_target")
    lines = ["BEGIN"]
    for key, cls in spec.targets.items():
        pk = spec.primary_key(cls)
        found = (
            select(literal(1)).select_from(pk.table).where(pk == row_value("NEW", id_col.name))
            .with_for_update(read=True, key_share=True)
        )
        is_key = sql_text(row_value("NEW", type_col.name) == literal(key))
        lines += [
            f"  IF {is_key} THEN",
            "    " + sql_text(found).replace("SELECT", "PERFORM", 1) + ";",
            "    IF NOT FOUND THEN",
            "      " + raise_sql(f"{table.name} points at a missing {key}", name,
                                  "foreign_key_violation"),
            "    END IF;",
            "  END IF;",
        ]
    lines += ["  RETURN NEW;", "END"]
    fn = Function(name, returns="trigger", language="plpgsql", body="\n".join(lines),
                  schema=table.schema)
    return [fn, Trigger(name, table, fn, events=("insert", "update"),
                        update_of=(type_col.name, id_col.name))]


def _cascade(spec: Targets, table: Any, type_col: Column[Any], id_col: Column[Any]) -> list[Any]:
    out: list[Any] = []
    for key, cls in spec.targets.items():
        pk = spec.primary_key(cls)
        name = constraint_name(_HELPER, pk.table.name, "pgp", table.name, "cascade")
        gone = delete(table).where(type_col == key, id_col == row_value("OLD", pk.name))
        body = f"BEGIN\n  {sql_text(gone)};\n  RETURN OLD;\nEND"
        fn = Function(name, returns="trigger", language="plpgsql", body=body,
                      schema=pk.table.schema)
        out += [fn, Trigger(name, pk.table, fn, timing="after", events=("delete",))]
    return out


def generic_association(
    owner: type,
    targets: Mapping[str, type],
    *,
    name: str = "target",
    type_column: str = "target_type",
    id_column: str = "target_id",
    metadata: MetaData | None = None,
) -> GenericAssociation:
    """Give ``owner`` a ``(type_column, id_column)`` pair over ``targets``, guarded in SQL.

    Examples:
        >>> assoc = generic_association(Comment, {"post": Post, "photo": Photo})
        ... # doctest: +SKIP
        >>> comment.target = post              # sets target_type/target_id  # doctest: +SKIP
        >>> assoc.load(session, comments)      # one SELECT per target type  # doctest: +SKIP

    Adds the two columns (NOT NULL), ``ck_<table>_<type_column>_known``, an index on the
    pair, a trigger rejecting pairs that name a missing row, and per target table a trigger
    deleting the owners of a deleted row (functions and triggers through
    :mod:`pgpatterns.ddl`, attached to the owner's MetaData).

    Warning:
        Targets must be flushed (have a primary key) before being assigned. Reading
        ``owner.<name>`` without :meth:`GenericAssociation.load` costs one query per owner.
        All target primary keys must have the same type.
    """
    spec = Targets.build(owner, targets, name, _HELPER)
    check_identifier(_HELPER, "type_column", type_column)
    check_identifier(_HELPER, "id_column", id_column)
    table = mapped_table(owner, _HELPER)
    pk_types = {str(spec.primary_key(cls).type) for cls in spec.targets.values()}
    if len(pk_types) != 1:
        raise PolymorphicError(
            f"{_HELPER}: target primary keys have different types ({sorted(pk_types)}); "
            "one id column cannot hold them all: use exclusive_arc instead."
        )
    pk_type = spec.primary_key(next(iter(spec.targets.values()))).type
    type_col: Column[Any] = Column(type_column, Text, nullable=False)
    id_col: Column[Any] = Column(id_column, pk_type, nullable=False)
    for col in (type_col, id_col):
        if col.name in table.c or col.name in owner.__dict__:
            raise PolymorphicError(f"{_HELPER}: {owner.__name__} already has {col.name!r}.")
        setattr(owner, col.name, col)
    check = CheckConstraint(
        type_col.in_(list(spec.targets)),
        name=constraint_name(_HELPER, "ck", table.name, type_column, "known"),
    )
    table.append_constraint(check)
    index = Index(constraint_name(_HELPER, "ix", table.name, type_column, id_column),
                  type_col, id_col)
    objects = _exists_guard(spec, table, type_col, id_col) + _cascade(spec, table, type_col, id_col)
    attach(metadata if metadata is not None else table.metadata, *objects)
    assoc = GenericAssociation(owner, name, spec.targets, type_col, id_col, check, index,
                               tuple(objects))
    setattr(owner, name, property(assoc.get, assoc.set))
    return assoc
