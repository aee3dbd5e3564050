"""What a many-to-many attribute means in tables: the private core shared by the family."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Column, Table, UniqueConstraint
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.ext.associationproxy import AssociationProxyInstance
from sqlalchemy.orm import InstanceState, Mapper, QueryableAttribute, RelationshipProperty
from sqlalchemy.orm.base import MANYTOONE, ONETOMANY

from pgpatterns._args import collection, key_value
from pgpatterns.errors import ArgumentError, AssociationError
from pgpatterns.rls.tenant import tenant_of

__all__ = [
    "Link", "key_of", "needs_flush", "plural", "resolve", "snake", "target_ids", "targets",
]

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def snake(name: str) -> str:
    """``UserGroup`` -> ``user_group``."""
    return _CAMEL.sub("_", name).lower()


def plural(word: str) -> str:
    """``membership`` -> ``memberships``, ``dependency`` -> ``dependencies``, ``box`` ->
    ``boxes`` (English rules for the default collection names, not a dictionary)."""
    if len(word) > 1 and word.endswith("y") and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    return word + "s"


@dataclass(frozen=True, eq=False)  # identity: a cache key; columns compare as SQL
class Link:
    """A many-to-many seen from one side: the link table and its two key columns.

    ``left`` is the side the attribute belongs to (``Post`` for ``Post.tags``).
    """

    label: str  # "Post.tags", for messages
    table: Table
    left_mapper: Mapper[Any]
    right_mapper: Mapper[Any]
    left_col: Column[Any]  # link column referencing the left table
    right_col: Column[Any]
    left_key: Column[Any]  # the referenced column of the left table (posts.id)
    right_key: Column[Any]
    left_attr: str  # attribute on the left class to expire after a write ("tags")
    right_attr: str | None  # the reverse attribute on the right class, when there is one
    key_attrs: tuple[str, ...] = ()  # own columns in the link's identity (several per pair)

    @property
    def attr_names(self) -> tuple[str, ...]:
        """The link's own columns (role, joined_at ...), keys and tenant column excluded."""
        keys = {self.left_col.name, self.right_col.name}
        scope = tenant_of(self.table)
        if scope is not None:  # filled in by its server default, never by a caller
            keys.add(scope.column.name)
        return tuple(c.name for c in self.table.columns if c.name not in keys)

    def left_entity_key(self, entity: Any) -> Any:
        """The attribute of ``entity`` (the left class or an alias of it) for ``left_key``."""
        prop = self.left_mapper.get_property_by_column(self.left_key)
        return getattr(entity, prop.key)


def _pair(prop: RelationshipProperty[Any], pairs: Any, table: Table) -> tuple[Column[Any], Any]:
    """(column in ``table``, the column it is synchronized with) of a one-column join."""
    found = [(b, a) if b.table is table else (a, b) for a, b in pairs]
    if len(found) != 1 or found[0][0].table is not table:
        raise AssociationError(
            f"{prop} joins on {len(found)} column pairs: pgpatterns.associations handles links "
            "whose sides have a one-column key. Give the related tables a single-column "
            "primary key (a surrogate id), or write the SQL for this link by hand."
        )
    return found[0][0], found[0][1]


def _from_secondary(prop: RelationshipProperty[Any], label: str) -> Link:
    table = prop.secondary
    if not isinstance(table, Table):
        raise AssociationError(
            f"{label} has secondary={table!r}, which is not a Table: link(), sync() and the "
            "query helpers write and read the link table. Use association_table(...)."
        )
    left_col, left_key = _pair(prop, prop.synchronize_pairs, table)
    right_col, right_key = _pair(prop, prop.secondary_synchronize_pairs or (), table)
    return Link(
        label, table, prop.parent, prop.mapper, left_col, right_col, left_key, right_key,
        prop.key, prop.back_populates or None,
    )


def _from_association(local: RelationshipProperty[Any], remote: Any, label: str) -> Link:
    """``Group.memberships`` (one-to-many to the link class) + ``Membership.user``."""
    table = local.mapper.local_table
    if not isinstance(table, Table) or local.direction is not ONETOMANY:
        raise AssociationError(
            f"{label} does not lead to an association class (a one-to-many relationship to a "
            "class mapped to the link table). Pass the relationship with secondary=, or the "
            "association proxy (Group.users)."
        )
    if remote is None:
        # the link class's many-to-one relationships other than the way back to `local`'s
        # side (which uses the link columns of `local`: a class linked to itself has two)
        back_cols = {b if b.table is table else a for a, b in local.synchronize_pairs}
        candidates = [
            p for p in local.mapper.relationships
            if p.direction is MANYTOONE and set(p.local_columns) != back_cols
        ]
        if len(candidates) != 1:
            raise AssociationError(
                f"{label}: cannot tell which relationship of {local.mapper.class_.__name__} "
                f"leads to the other side ({len(candidates)} candidates). Pass the association "
                "proxy instead (e.g. Group.users), which names it."
            )
        remote = candidates[0]
    if not isinstance(remote, RelationshipProperty) or remote.direction is not MANYTOONE:
        raise AssociationError(
            f"{label}: the proxied attribute {remote} is not a many-to-one relationship of the "
            "association class, so it does not name the other side of the link."
        )
    left_col, left_key = _pair(local, local.synchronize_pairs, table)
    right_col, right_key = _pair(remote, remote.synchronize_pairs, table)
    back = remote.back_populates or None
    return Link(
        label, table, local.parent, remote.mapper, left_col, right_col, left_key, right_key,
        local.key, back,
    )


def _check_unique(link: Link) -> Link:
    wanted = {link.left_col.name, link.right_col.name}
    keys = [{c.name for c in link.table.primary_key.columns}]
    keys += [{c.name for c in con.columns} for con in link.table.constraints
             if isinstance(con, UniqueConstraint)]
    keys += [{c.name for c in ix.columns} for ix in link.table.indexes if ix.unique]
    if wanted in keys:
        return link
    wider = sorted((k for k in keys if k > wanted), key=len)
    if wider:  # the link's identity includes attribute columns: several links per pair
        extra = [c for c in link.table.columns if c.name in wider[0] - wanted]
        nullable = [c.name for c in extra if c.nullable]
        if nullable:
            raise AssociationError(
                f"link table {link.table.name!r} of {link.label}: the key columns "
                f"{', '.join(nullable)} are nullable, and ON CONFLICT never matches NULLs, "
                "so duplicates would pass. Declare them NOT NULL."
            )
        return replace(link, key_attrs=tuple(c.name for c in extra))
    if wanted not in keys:
        raise AssociationError(
            f"link table {link.table.name!r} of {link.label} has no primary key or unique "
            f"constraint on ({', '.join(sorted(wanted))}): such a table collects duplicate "
            "rows (and the ORM then raises StaleDataError), and ON CONFLICT cannot target it. "
            "Declare the pair as the primary key (association_table() does)."
        )
    return link


# id(attribute) -> (attribute, Link): class attributes live as long as their class, and
# holding them here keeps their ids from being reused.
_RESOLVED: dict[int, tuple[object, Link]] = {}


def resolve(attr: object, owner: Any = None) -> Link:
    """The :class:`Link` behind ``Post.tags``, ``Group.memberships``, ``Group.users`` or
    an attribute name on ``owner`` (cached per attribute)."""
    if isinstance(attr, str):
        if owner is None or not hasattr(owner, attr):
            raise AssociationError(
                f"{owner!r} has no attribute {attr!r}: pass the relationship itself "
                "(Post.tags) or the name of one of its relationships."
            )
        attr = getattr(owner, attr)
    hit = _RESOLVED.get(id(attr))
    if hit is not None and hit[0] is attr:
        return hit[1]
    found = _resolve(attr)
    _RESOLVED[id(attr)] = (attr, found)
    return found


def _resolve(attr: object) -> Link:
    label = str(attr)
    if isinstance(attr, AssociationProxyInstance):
        local = getattr(attr.local_attr, "property", None)
        remote = getattr(attr.remote_attr, "property", None)
        if isinstance(local, RelationshipProperty):
            return _check_unique(_from_association(local, remote, label))
    elif isinstance(attr, QueryableAttribute) and isinstance(attr.property, RelationshipProperty):
        prop = attr.property
        if prop.secondary is not None:
            return _check_unique(_from_secondary(prop, label))
        return _check_unique(_from_association(prop, None, label))
    raise AssociationError(
        f"{label} is not a many-to-many attribute: pass a relationship with secondary= "
        "(Post.tags), a relationship to an association class (Group.memberships) or an "
        "association proxy (Group.users)."
    )


def _state(value: object) -> InstanceState[Any] | None:
    try:
        state = sa_inspect(value, raiseerr=False)
    except Exception:  # some objects' inspection raises: they are plain values
        return None
    return state if isinstance(state, InstanceState) else None


def key_of(mapper: Mapper[Any], key: Column[Any], value: object, role: str, label: str,
           *, where: str = "link", name: str = "left") -> Any:
    """The key value of one side: an instance of the mapped class, or the key itself.

    A plain key is checked against ``key``'s type before any SQL (``2**40`` for an int4
    key, ``"abc"`` for an integer key, ``None``): :class:`~pgpatterns.errors.ArgumentError`
    naming ``where(): name=...``.
    """
    state = _state(value)
    if state is not None:
        if not state.mapper.isa(mapper):
            raise AssociationError(
                f"{label} links {mapper.class_.__name__} objects, got a "
                f"{state.mapper.class_.__name__} as {role}. Pass {mapper.class_.__name__} "
                f"objects or their {key.name} values."
            )
        prop = mapper.get_property_by_column(key)
        found = state.dict.get(prop.key) if not state.expired else getattr(value, prop.key)
        if found is None:
            found = getattr(value, prop.key)
        if found is None:
            raise AssociationError(
                f"{role} {value!r} has no {key.name} yet: it is not saved. Add it to the "
                "session and flush (link()/sync() flush pending objects they are given)."
            )
        return found
    checked = key_value(where, name, value, key.type)
    try:
        python_type = key.type.python_type
    except NotImplementedError:
        return checked
    if not isinstance(checked, python_type) or isinstance(checked, bool) is not (
            python_type is bool):
        raise ArgumentError(
            f"{where}(): {name}={value!r} is a {type(value).__name__}, but {key} is "
            f"{python_type.__name__} ({label}). Pass {mapper.class_.__name__} objects or "
            f"their {key.name} values.",
            argument=name, given=value,
        )
    return checked


def targets(where: str, name: str, values: object, noun: str) -> list[Any]:
    """``list(values)``: ``None``, a string or a single mapped object is refused."""
    if isinstance(values, (str, bytes)) or _state(values) is not None:
        raise ArgumentError(
            f"{where}(): {name}={values!r} is a single value, not a collection of {noun}. "
            "Wrap one in a list.",
            argument=name, given=values,
        )
    return collection(where, name, values)


def target_ids(link: Link, values: object, *, where: str = "link",
               name: str = "rights") -> list[Any]:
    """Right-side keys of ``values``, deduplicated, in order."""
    noun = f"{link.right_mapper.class_.__name__} objects or ids"
    ids = [key_of(link.right_mapper, link.right_key, v, "target", link.label, where=where,
                  name=f"{name}[{i}]")
           for i, v in enumerate(targets(where, name, values, noun))]
    return list(dict.fromkeys(ids))


def needs_flush(values: Iterable[object]) -> bool:
    """Whether one of the objects is pending (no key until flushed)."""
    return any((s := _state(v)) is not None and s.pending for v in values)
