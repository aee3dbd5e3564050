"""What both polymorphic-association strategies share: the registered target types."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Table, inspect

from pgpatterns.errors import PolymorphicError
from pgpatterns.polymorphic._common import check_identifier

__all__ = ["Targets", "mapped_table"]


def mapped_table(cls: type, helper: str) -> Table:
    try:
        table: Any = inspect(cls).local_table
    except Exception as exc:
        raise PolymorphicError(f"{helper}: {cls!r} is not a mapped class.") from exc
    if not isinstance(table, Table):
        raise PolymorphicError(f"{helper}: {cls.__name__} is not mapped to a table.")
    return table


@dataclass(frozen=True)
class Targets:
    """An owner class, the name of its polymorphic attribute, and the target classes."""

    owner: type
    name: str
    targets: Mapping[str, type]

    @classmethod
    def build(cls, owner: type, targets: Mapping[str, type], name: str, helper: str) -> Targets:
        mapped_table(owner, helper)
        check_identifier(helper, "name", name)
        if not isinstance(targets, Mapping):
            raise PolymorphicError(
                f"{helper}: targets={targets!r:.80} is not accepted: pass a mapping of "
                "{'key': TargetClass}."
            )
        if not targets:
            raise PolymorphicError(f"{helper}: give at least one target type.")
        for key, target in targets.items():
            if not isinstance(key, str) or not key.isidentifier():
                raise PolymorphicError(f"{helper}: target key {key!r} must be an identifier.")
            mapped_table(target, helper)
        if len(set(targets.values())) != len(targets):
            raise PolymorphicError(f"{helper}: a target class is registered twice.")
        return Targets(owner, name, dict(targets))

    @staticmethod
    def primary_key(target: type) -> Column[Any]:
        keys = list(mapped_table(target, "polymorphic association").primary_key.columns)
        if len(keys) != 1:
            raise PolymorphicError(
                f"{target.__name__} needs a single-column primary key to be a target."
            )
        return keys[0]

    def key_for(self, obj: object) -> str:
        """The target key of ``obj``'s class (subclasses of a target count as that target)."""
        for key, target in self.targets.items():
            if isinstance(obj, target):
                return key
        raise PolymorphicError(
            f"{self.owner.__name__}.{self.name} cannot point at a {type(obj).__name__}: "
            f"registered targets are {', '.join(t.__name__ for t in self.targets.values())}."
        )

    def ids_by_key(self, objects: Iterable[object]) -> dict[str, list[Any]]:
        """Primary keys of ``objects`` grouped by target key."""
        out: dict[str, list[Any]] = {}
        for obj in objects:
            key = self.key_for(obj)
            ident = getattr(obj, self.primary_key(type(obj)).key)
            if ident is None:
                raise PolymorphicError(
                    f"{type(obj).__name__} has no primary key yet; flush the session first."
                )
            out.setdefault(key, []).append(ident)
        return out
