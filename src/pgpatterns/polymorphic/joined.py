"""Class-table (joined) inheritance with database-enforced integrity, and bounded loading."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Column, ForeignKey, MetaData, Select, Table, literal, select
from sqlalchemy.orm import Mapper, selectin_polymorphic, with_polymorphic

from pgpatterns.ddl import Function, SchemaObject, Trigger, attach, new, old
from pgpatterns.errors import PolymorphicError
from pgpatterns.polymorphic._common import (
    base_mapper,
    constraint_name,
    discriminator,
    identities,
    raise_sql,
    row_value,
    sql_text,
)

__all__ = ["JoinedTableIntegrity", "joined_table_integrity", "polymorphic_select"]

_HELPER = "joined_table_integrity"


@dataclass(frozen=True)
class JoinedTableIntegrity:
    """The guard functions and triggers :func:`joined_table_integrity` attached."""

    base_table: Table
    objects: tuple[SchemaObject, ...]

    def ddl(self) -> list[str]:
        """The CREATE statements, for a migration."""
        return [obj.sql() for obj in self.objects]


def _parent_fk(sub: Mapper[Any]) -> ForeignKey:
    parent = sub.inherits
    assert parent is not None
    table: Any = sub.local_table
    parent_table: Any = parent.local_table
    for fk in table.foreign_keys:
        if fk.parent.primary_key and fk.column.table is parent_table:
            assert isinstance(fk, ForeignKey)
            return fk
    raise PolymorphicError(
        f"{_HELPER}: the primary key of {table.name} is not a foreign key to "
        f"{parent_table.name}; declare it as "
        f"mapped_column(ForeignKey('{parent_table.name}.id'), primary_key=True)."
    )


def _guard(sub: Mapper[Any], base: Table, disc: Column[Any], key: Column[Any]) -> list[Any]:
    table = sub.local_table
    assert isinstance(table, Table)
    fk = _parent_fk(sub)
    if (fk.ondelete or "").upper() != "CASCADE":
        # deleting the base row removes its subtype row (the constraint is what is rendered)
        fk.ondelete = "CASCADE"
        if fk.constraint is not None:
            fk.constraint.ondelete = "CASCADE"
    name = constraint_name(_HELPER, table.name, "pgp_guard")
    allowed = identities(sub, _HELPER)
    found = (
        select(literal(1)).select_from(base)
        .where(key == row_value("NEW", fk.parent.name), disc.in_(allowed))
        .with_for_update(read=True, key_share=True)
    )
    body = "\n".join([
        "BEGIN",
        "  " + sql_text(found).replace("SELECT", "PERFORM", 1) + ";",
        "  IF NOT FOUND THEN",
        "    " + raise_sql(
            f"{table.name} row has no {base.name} row whose {disc.name} is one of "
            f"{', '.join(allowed)}", name),
        "  END IF;",
        "  RETURN NEW;",
        "END",
    ])
    fn = Function(name, returns="trigger", language="plpgsql", body=body, schema=table.schema)
    trigger = Trigger(name, table, fn, events=("insert", "update"), update_of=())
    return [fn, trigger]


def _fixed_type(base: Table, disc: Column[Any]) -> list[Any]:
    name = constraint_name(_HELPER, base.name, "pgp_fixed_type")
    body = "\n".join([
        "BEGIN",
        "  " + raise_sql(
            f"the {disc.name} of a {base.name} row cannot change: delete the row and insert "
            "it as the new subtype", name),
        "END",
    ])
    fn = Function(name, returns="trigger", language="plpgsql", body=body, schema=base.schema)
    trigger = Trigger(
        name, base, fn, events=("update",), update_of=(disc.name,),
        when=new(disc.name).is_distinct_from(old(disc.name)),
    )
    return [fn, trigger]


def joined_table_integrity(
    base: type, *, metadata: MetaData | None = None
) -> JoinedTableIntegrity:
    """Guard a joined-inheritance hierarchy inside PostgreSQL.

    Examples:
        >>> joined_table_integrity(Content)  # doctest: +SKIP
        >>> Base.metadata.create_all(engine)  # creates the guards after the tables

    For every subtype table: its primary key must be a foreign key to the parent table
    (its ``ON DELETE`` is set to ``CASCADE``), and a trigger rejects a subtype row whose base
    row is missing or has another discriminator (so a base row can never have rows in two
    sibling subtype tables). A trigger on the base table rejects changing the discriminator.
    The objects go through :mod:`pgpatterns.ddl`, attached to the base table's MetaData.

    Warning:
        The guard takes ``FOR KEY SHARE`` on the base row, as a foreign key does. A base row
        *without* its subtype row cannot be prevented by a row trigger; insert both in one
        transaction (the ORM does).
    """
    mapper = base_mapper(base, _HELPER)
    disc = discriminator(mapper, _HELPER)
    table = mapper.local_table
    assert isinstance(table, Table)
    identities(mapper, _HELPER)  # every class has an identity
    keys = list(table.primary_key.columns)
    if len(keys) != 1:
        raise PolymorphicError(f"{_HELPER}: {table.name} needs a single-column primary key.")
    subs = [m for m in mapper.self_and_descendants if m is not mapper]
    single = [m.class_.__name__ for m in subs if m.single]
    if single or not subs:
        raise PolymorphicError(
            f"{_HELPER}: {single or 'no subtypes'}: every subtype needs its own table "
            "(__tablename__); for single-table inheritance use single_table_integrity."
        )
    objects: list[SchemaObject] = []
    for sub in subs:
        objects += _guard(sub, table, disc, keys[0])
    objects += _fixed_type(table, disc)
    attach(metadata if metadata is not None else table.metadata, *objects)
    return JoinedTableIntegrity(table, tuple(objects))


def polymorphic_select(
    base: type, *, loading: Literal["joined", "selectin"] = "joined"
) -> Select[Any]:
    """``SELECT`` of a mixed list of subtypes with their columns, in a bounded number of
    statements: ``"joined"`` (one statement, LEFT OUTER JOIN of every subtype table) or
    ``"selectin"`` (one statement for the base rows plus one per subtype present).

    Examples:
        >>> stmt = polymorphic_select(Content).order_by(Content.id.desc()).limit(50)
        ... # doctest: +SKIP
    """
    mapper = base_mapper(base, "polymorphic_select")
    subs = [m.class_ for m in mapper.self_and_descendants if m is not mapper]
    if loading == "joined":
        return select(with_polymorphic(base, subs))
    if loading == "selectin":
        return select(base).options(selectin_polymorphic(base, subs))
    raise PolymorphicError(
        f"polymorphic_select: loading={loading!r}; use 'joined' or 'selectin'."
    )
