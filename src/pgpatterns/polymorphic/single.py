"""Single-table inheritance with the integrity of a normalized schema.

In STI every subtype's columns live on the base table, so they must be nullable and the
database forgets that a ``video`` needs a ``duration``. :func:`single_table_integrity`
gives that knowledge back as CHECK constraints generated from the mapping.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import CheckConstraint, Column, Index, Table, and_, event, inspect, or_
from sqlalchemy.orm import Mapper

from pgpatterns.errors import PolymorphicError
from pgpatterns.polymorphic._common import (
    base_mapper,
    constraint_name,
    discriminator,
    has_constraint,
    identities,
    render,
)

__all__ = ["SingleTableIntegrity", "single_table_integrity"]

_HELPER = "single_table_integrity"


@dataclass(frozen=True)
class SingleTableIntegrity:
    """What :func:`single_table_integrity` added to the base table.

    ``constraints`` and ``indexes`` are already part of the table (``create_all`` creates
    them); :meth:`ddl` renders them for a migration.
    """

    table: Table
    discriminator: Column[Any]
    identities: tuple[str, ...]
    constraints: tuple[CheckConstraint, ...]
    indexes: tuple[Index, ...]

    def ddl(self, subtype: type | None = None) -> list[str]:
        """``ALTER TABLE ... ADD CONSTRAINT`` / ``CREATE INDEX`` statements.

        With ``subtype``, only what belongs to it (what adding that subtype to an existing
        table needs, together with replacing the discriminator check: see the recipe).
        """
        items: list[Any] = [*self.constraints, *self.indexes]
        if subtype is not None:
            ident = _mapper(subtype).polymorphic_identity
            items = [i for i in items if (i.info or {}).get("pgpatterns_subtype") == ident]
        return render(items)


def _mapper(cls: type) -> Mapper[Any]:
    mapper: Mapper[Any] = inspect(cls)
    return mapper


def _own_columns(sub: Mapper[Any], table: Table) -> list[Column[Any]]:
    parent = sub.inherits
    assert parent is not None
    inherited = set(parent.columns.values())
    return [c for c in sub.columns.values() if isinstance(c, Column) and c.table is table
            and c not in inherited]


def _checks(
    sub: Mapper[Any], table: Table, disc: Column[Any], forbid: bool
) -> list[CheckConstraint]:
    mine = identities(sub, _HELPER)
    ident = str(sub.polymorphic_identity)
    checks = []
    own = _own_columns(sub, table)
    required = [c for c in own if not c.nullable]
    for col in required:
        col.nullable = True  # other subtypes store NULL here; the CHECK keeps the rule
        col.info["pgpatterns_sti_required"] = mine
    if required:
        checks.append(CheckConstraint(
            or_(disc.not_in(mine), and_(*(c.is_not(None) for c in required))),
            name=constraint_name(_HELPER, "ck", table.name, ident, "required"),
            info={"pgpatterns_subtype": ident},
        ))
    if forbid and own:
        defaulted = [c.name for c in own if c.default is not None or c.server_default is not None]
        if defaulted:
            raise PolymorphicError(
                f"{_HELPER}: {sub.class_.__name__} columns {defaulted} have defaults, so "
                "rows of other subtypes would get a value there too; remove the defaults "
                "or pass forbid_other_columns=False."
            )
        checks.append(CheckConstraint(
            or_(disc.in_(mine), and_(*(c.is_(None) for c in own))),
            name=constraint_name(_HELPER, "ck", table.name, ident, "only"),
            info={"pgpatterns_subtype": ident},
        ))
    return checks


def _partial_indexes(
    mapper: Mapper[Any], table: Table, disc: Column[Any], spec: Mapping[type, Sequence[str]]
) -> list[Index]:
    out = []
    for cls, names in spec.items():
        sub = _mapper(cls)
        if sub.base_mapper is not mapper or sub.polymorphic_identity is None:
            raise PolymorphicError(
                f"{_HELPER}: partial_indexes names {cls.__name__}, which is not a subtype "
                f"of {mapper.class_.__name__} with a polymorphic_identity."
            )
        missing = [n for n in names if n not in table.c]
        if missing or not names:
            raise PolymorphicError(
                f"{_HELPER}: partial index for {cls.__name__}: columns {missing or names} "
                f"are not columns of {table.name}; name at least one existing column."
            )
        ident = str(sub.polymorphic_identity)
        out.append(Index(
            constraint_name(_HELPER, "ix", table.name, ident, *names),
            *(table.c[n] for n in names),
            postgresql_where=disc.in_(identities(sub, _HELPER)),
            info={"pgpatterns_subtype": ident},
        ))
    return out


def single_table_integrity(
    base: type,
    *,
    forbid_other_columns: bool = True,
    partial_indexes: Mapping[type, Sequence[str]] | None = None,
    validate_on_flush: bool = True,
) -> SingleTableIntegrity:
    """Give an STI hierarchy its database-enforced rules back.

    Examples:
        >>> class Item(Base):  # doctest: +SKIP
        ...     __tablename__ = "items"
        ...     id: Mapped[int] = mapped_column(primary_key=True)
        ...     type: Mapped[str]
        ...     __mapper_args__ = {"polymorphic_on": "type", "polymorphic_identity": "item"}
        >>> class Video(Item):  # doctest: +SKIP
        ...     duration: Mapped[int]          # required for videos: not Optional
        ...     __mapper_args__ = {"polymorphic_identity": "video"}
        >>> single_table_integrity(Item, partial_indexes={Video: ["duration"]})  # doctest: +SKIP

    Call it once, after every subtype is declared and before ``create_all``. It adds:

    - ``ck_<table>_<discriminator>_known``: the discriminator is one of the identities;
    - ``ck_<table>_<identity>_required``: a subtype's non-Optional columns are NOT NULL for
      its rows (the columns themselves become nullable, as STI needs);
    - ``ck_<table>_<identity>_only`` (``forbid_other_columns``): other subtypes leave the
      subtype's columns NULL;
    - ``ix_<table>_<identity>_<cols>``: partial indexes ``WHERE <disc> IN (<identities>)``.

    With ``validate_on_flush`` the same rules are checked in Python before an INSERT or
    UPDATE is sent, raising :class:`~pgpatterns.errors.PolymorphicError`.

    Warning:
        Adding a subtype later changes ``ck_<table>_<disc>_known`` (drop and re-add it with
        the new list) and adds the new subtype's checks: ``ddl(NewSubtype)``. A query only
        uses a partial index when it filters on the subtype, as ``select(Video)`` does.
    """
    mapper = base_mapper(base, _HELPER)
    disc = discriminator(mapper, _HELPER)
    table = disc.table
    subs = [m for m in mapper.self_and_descendants if m is not mapper]
    joined = [m.class_.__name__ for m in subs if not m.single]
    if joined:
        raise PolymorphicError(
            f"{_HELPER}: {joined} have tables of their own (joined inheritance); use "
            "joined_table_integrity for them."
        )
    known = identities(mapper, _HELPER)
    name = constraint_name(_HELPER, "ck", table.name, disc.name, "known")
    if has_constraint(table, name):
        raise PolymorphicError(
            f"{_HELPER}: {table.name} already has {name}; call it once per hierarchy."
        )
    checks = [CheckConstraint(disc.in_(known), name=name)]
    for sub in subs:
        if sub.polymorphic_identity is not None:
            checks += _checks(sub, table, disc, forbid_other_columns)
    indexes = _partial_indexes(mapper, table, disc, partial_indexes or {})
    for check in checks:
        table.append_constraint(check)
    if validate_on_flush:
        _listen(mapper, known)
    return SingleTableIntegrity(table, disc, known, tuple(checks), tuple(indexes))


def _listen(mapper: Mapper[Any], known: tuple[str, ...]) -> None:
    """Check the generated rules in Python before the INSERT/UPDATE is sent."""
    disc_key = mapper.get_property_by_column(mapper.polymorphic_on).key  # type: ignore[arg-type]

    def validate(sub: Mapper[Any], connection: Any, target: Any) -> None:
        value = getattr(target, disc_key)
        if value not in known:
            raise PolymorphicError(
                f"{type(target).__name__}.{disc_key} = {value!r} is not a declared identity "
                f"({', '.join(known)}); let the mapper set it, or declare the subtype."
            )
        for col in sub.columns.values():
            owners = col.info.get("pgpatterns_sti_required") if isinstance(col, Column) else None
            key = sub.get_property_by_column(col).key
            if owners and value in owners and getattr(target, key) is None:
                raise PolymorphicError(
                    f"{type(target).__name__}.{col.key} is required for {value!r} rows "
                    "(its annotation is not Optional); set it before flushing."
                )

    event.listen(mapper, "before_insert", validate, propagate=True)
    event.listen(mapper, "before_update", validate, propagate=True)
