"""Polymorphic association as an exclusive arc: one real foreign key per target type.

``comment.target`` may be a Post or a Photo. Instead of a ``(target_type, target_id)``
pair that no foreign key can check, the owner gets one nullable FK column per target type,
``CHECK (num_nonnulls(post_id, photo_id) = 1)`` and a partial index per FK: real referential
integrity, ``ON DELETE CASCADE``, and plain joins.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import CheckConstraint, Column, ForeignKey, Index, event, false, func, or_
from sqlalchemy.orm import Mapper, relationship, selectinload
from sqlalchemy.orm.strategy_options import _AbstractLoad
from sqlalchemy.sql.elements import ColumnElement

from pgpatterns.errors import PolymorphicError
from pgpatterns.polymorphic._common import check_identifier, constraint_name, render
from pgpatterns.polymorphic.targets import Targets, mapped_table

__all__ = ["ExclusiveArc", "exclusive_arc"]

_HELPER = "exclusive_arc"
_ONDELETE = frozenset({"CASCADE", "SET NULL", "RESTRICT", "NO ACTION", "SET DEFAULT"})


@dataclass(frozen=True)
class ExclusiveArc(Targets):
    """The columns, constraint and indexes of an exclusive arc; see :func:`exclusive_arc`."""

    columns: Mapping[str, Column[Any]]
    check: CheckConstraint
    indexes: tuple[Index, ...]

    def of(self, *targets: object) -> ColumnElement[bool]:
        """A WHERE clause for the owners of these targets (one ``IN`` per target type).

        Examples:
            >>> select(Comment).where(arc.of(post1, post2, photo7))  # doctest: +SKIP
        """
        by_key = self.ids_by_key(targets)
        clauses = [self.columns[key].in_(ids) for key, ids in by_key.items()]
        return or_(*clauses) if clauses else false()

    def eager(self) -> list[_AbstractLoad]:
        """Loader options: the targets of many owners in one statement per target type."""
        return [selectinload(getattr(self.owner, key)) for key in self.targets]

    def ddl(self) -> list[str]:
        """``ALTER TABLE ... ADD CONSTRAINT`` / ``CREATE INDEX`` text for a migration
        (the FK columns themselves are ``ADD COLUMN ... REFERENCES ...``)."""
        return render([self.check, *self.indexes])

    def get(self, obj: Any) -> Any:
        """The target of ``obj``: whichever relationship is set."""
        for key in self.targets:
            value = getattr(obj, key)
            if value is not None:
                return value
        return None

    def set(self, obj: Any, value: Any) -> None:
        """Point ``obj`` at ``value``: set its relationship, clear the others."""
        chosen = self.key_for(value) if value is not None else None
        for key, col in self.columns.items():
            if key != chosen:
                setattr(obj, key, None)
                setattr(obj, col.name, None)
        if chosen is not None:
            setattr(obj, chosen, value)

    def validate_flush(self, mapper: Mapper[Any], conn: Any, obj: Any) -> None:
        """Before INSERT/UPDATE: exactly one target is set (the CHECK's rule, in Python)."""
        chosen = [
            key for key, col in self.columns.items()
            if getattr(obj, key) is not None or getattr(obj, col.name) is not None
        ]
        if len(chosen) != 1:
            what = f"{' and '.join(chosen)} are" if chosen else "none is"
            raise PolymorphicError(
                f"{type(obj).__name__}.{self.name} must be exactly one of "
                f"{', '.join(self.targets)}, but {what} set; assign "
                f"{type(obj).__name__.lower()}.{self.name} = <target>."
            )


def _add(owner: type, name: str, value: Any) -> None:
    if name in owner.__dict__ or name in mapped_table(owner, _HELPER).c:
        raise PolymorphicError(
            f"{_HELPER}: {owner.__name__} already has {name!r}; rename the target key or "
            "the existing attribute."
        )
    setattr(owner, name, value)


def exclusive_arc(
    owner: type,
    targets: Mapping[str, type],
    *,
    name: str = "target",
    backref: str | None = None,
    ondelete: str = "CASCADE",
) -> ExclusiveArc:
    """Give ``owner`` a polymorphic ``name`` attribute over ``targets`` as an exclusive arc.

    Examples:
        >>> arc = exclusive_arc(Comment, {"post": Post, "photo": Photo}, backref="comments")
        ... # doctest: +SKIP
        >>> comment.target = photo                                 # sets photo_id  # doctest: +SKIP
        >>> session.scalars(select(Comment).options(*arc.eager()))  # doctest: +SKIP

    Adds to ``owner``: ``<key>_id`` (nullable FK, ``ON DELETE <ondelete>``) and ``<key>``
    (relationship) per target; ``ck_<table>_<name>_one`` (exactly one FK set); a partial
    index ``WHERE <key>_id IS NOT NULL`` per FK; and the ``name`` property, which reads
    whichever relationship is set and, when assigned, sets that one and clears the others.
    With ``backref``, each target class gets a collection of its owners (``passive_deletes``:
    deleting a target lets the database remove the owners without loading them).

    Call it right after declaring ``owner``, before ``create_all``.

    Warning:
        Each new target type is a new column: ``ALTER TABLE ... ADD COLUMN`` plus replacing
        the CHECK. For many or open-ended target types, use :func:`generic_association`.
    """
    spec = Targets.build(owner, targets, name, _HELPER)
    check_identifier(_HELPER, "backref", backref, optional=True)
    if not isinstance(ondelete, str) or ondelete.upper() not in _ONDELETE:
        raise PolymorphicError(
            f"{_HELPER}: ondelete={ondelete!r:.80} is not accepted: pass one of "
            f"{', '.join(sorted(_ONDELETE))}."
        )
    table = mapped_table(owner, _HELPER)
    columns: dict[str, Column[Any]] = {}
    for key, cls in spec.targets.items():
        pk = spec.primary_key(cls)
        col: Column[Any] = Column(f"{key}_id", pk.type, ForeignKey(pk, ondelete=ondelete),
                                  nullable=True)
        _add(owner, col.name, col)
        columns[key] = col
        _add(owner, key, relationship(cls, foreign_keys=[col], back_populates=backref))
        if backref:
            setattr(cls, backref, relationship(
                owner, foreign_keys=[col], back_populates=key,
                cascade="save-update, merge, delete", passive_deletes=True,
            ))
    check = CheckConstraint(
        func.num_nonnulls(*columns.values()) == 1,
        name=constraint_name(_HELPER, "ck", table.name, name, "one"),
    )
    table.append_constraint(check)
    indexes = tuple(
        Index(constraint_name(_HELPER, "ix", table.name, col.name), col,
              postgresql_where=col.is_not(None))
        for col in columns.values()
    )
    arc = ExclusiveArc(owner, name, spec.targets, columns, check, indexes)
    _add(owner, name, property(arc.get, arc.set))
    event.listen(owner, "before_insert", arc.validate_flush, propagate=True)
    event.listen(owner, "before_update", arc.validate_flush, propagate=True)
    return arc
