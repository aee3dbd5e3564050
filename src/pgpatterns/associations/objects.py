"""Association objects: a mapped link class with its own columns, collections and proxies."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Column, MetaData
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.ext.associationproxy import association_proxy
from sqlalchemy.orm import backref, relationship

from pgpatterns.associations._link import plural, snake
from pgpatterns.associations.schema import association_table, check_free
from pgpatterns.errors import ArgumentError, AssociationError
from pgpatterns.rls.tenant import tenant_of

__all__ = ["WithAttrs", "association_object", "with_attrs"]


@dataclass(frozen=True)
class WithAttrs:
    """A target plus the link's attributes, for appending through an association proxy."""

    target: Any
    attrs: dict[str, Any] = field(default_factory=dict)


def with_attrs(target: Any, **attrs: Any) -> WithAttrs:
    """Append through a proxy with the link's attributes set.

    Examples:
        >>> group.users.append(with_attrs(alice, role="admin"))  # doctest: +SKIP
        >>> group.memberships[-1].role  # doctest: +SKIP
        'admin'
    """
    return WithAttrs(target, attrs)


def _creator(link_cls: type[Any], attr: str, columns: set[str]) -> Any:
    def create(value: Any) -> Any:
        if isinstance(value, WithAttrs):
            unknown = sorted(set(value.attrs) - columns)
            if unknown:
                raise AssociationError(
                    f"{link_cls.__name__} has no column {', '.join(unknown)}; its own columns "
                    f"are {', '.join(sorted(columns)) or '(none)'}."
                )
            return link_cls(**{attr: value.target}, **value.attrs)
        return link_cls(**{attr: value})

    return create


def association_object(
    base: type[Any],
    left: type[Any],
    right: type[Any],
    *,
    name: str,
    extra_columns: Iterable[Column[Any]] = (),
    tablename: str | None = None,
    left_attr: str | None = None,
    right_attr: str | None = None,
    links: tuple[str, str] | None = None,
    proxies: tuple[str | None, str | None] = (None, None),
    ondelete: str = "CASCADE",
    key_columns: Iterable[str] = (),
    tenant: bool | None = None,
) -> type[Any]:
    """A mapped link class with its own columns, both relationships and association proxies.

    Examples:
        >>> Membership = association_object(  # doctest: +SKIP
        ...     Base, User, Group, name="Membership",
        ...     extra_columns=[Column("role", Text, nullable=False, server_default="member")],
        ...     proxies=("groups", "users"))
        >>> group.users.append(with_attrs(alice, role="admin"))  # doctest: +SKIP
        >>> [(m.user.name, m.role) for m in group.memberships]  # doctest: +SKIP
        [('alice', 'admin')]
        >>> Dependency = association_object(  # a class linked to itself  # doctest: +SKIP
        ...     Base, Package, Package, name="Dependency", left_attr="package",
        ...     right_attr="dependency", proxies=("depends_on", "required_by"))

    Creates the class ``name`` on ``base`` mapped to :func:`association_table` (composite
    primary key, reverse index, cascading foreign keys), with many-to-one relationships
    ``left_attr``/``right_attr`` (default: the snake_case class names, ``user``/``group``),
    and on the sides the collections ``links`` (default: the plural of ``name``,
    ``("memberships", "memberships")``) with ``cascade="all, delete-orphan"`` and
    ``passive_deletes=True``, and the association proxies ``proxies`` (``user.groups``,
    ``group.users``). A proxy appends a plain object (``group.users.append(bob)``) or
    :func:`with_attrs` for the columns.

    ``right`` may be ``left`` itself (dependencies, followers): pass ``left_attr`` and
    ``right_attr`` (they name the link columns, ``package_id`` and ``dependency_id``); the
    default collections are then ``<plural>_as_<left_attr>`` (the links where the object is
    on the left: ``package.dependencies_as_package``) and ``<plural>_as_<right_attr>``.
    Every relationship names its foreign key, so nothing is ambiguous.

    ``tenant``: as :func:`association_table` (the link is tenant-scoped when a side is).
    ``key_columns`` (names of ``extra_columns``) make those columns part of a link's
    identity (see :func:`association_table`): ``link(s, pkg, [dep], via=Package.depends_on,
    min_version="1.0", max_version="2.0")`` and the same with another range are two links.

    Warning:
        Appending a pair that exists already through the ORM inserts it again and fails at
        flush with a duplicate key: for idempotent adds use :func:`pgpatterns.associations.link`.

    Raises:
        AssociationError: An attribute name is taken or asked for twice on one class, both
            sides would get the same name, or :func:`association_table` refused; raised
            before anything is changed (classes, MetaData and ``base``'s registry).
    """
    for what, given in (("name", name), ("left_attr", left_attr), ("right_attr", right_attr)):
        if given is not None and (not isinstance(given, str) or not given.isidentifier()):
            raise ArgumentError(
                f"association_object(): {what}={given!r} is not accepted: pass a Python "
                "identifier (str).", argument=what, given=given)
    for what, pair in (("links", links), ("proxies", proxies)):
        if pair is not None and (not isinstance(pair, tuple) or len(pair) != 2):
            raise ArgumentError(
                f"association_object(): {what}={pair!r} is not accepted: pass a tuple of two "
                "names (left side's, right side's).", argument=what, given=pair)
    if not isinstance(getattr(base, "metadata", None), MetaData):
        raise ArgumentError(
            f"association_object(): base={base!r} is not accepted: pass your declarative "
            "base class.", argument="base", given=base)
    check_free([(left, None), (right, None)])
    left_attr = left_attr or snake(left.__name__)
    right_attr = right_attr or snake(right.__name__)
    if left_attr == right_attr:
        raise AssociationError(
            f"both sides of {name} would be named {left_attr!r}"
            f"{' (a class linked to itself)' if left is right else ''}. Pass left_attr= and "
            "right_attr=, e.g. 'package' and 'dependency'; nothing was changed."
        )
    many = plural(snake(name))
    if links is None:
        links = ((f"{many}_as_{left_attr}", f"{many}_as_{right_attr}") if left is right
                 else (many, many))
    left_links, right_links = links
    check_free([(left, left_links), (right, right_links), (left, proxies[0]),
                (right, proxies[1])])
    if name in getattr(getattr(base, "registry", None), "_class_registry", {}):
        raise AssociationError(
            f"{base.__name__}'s registry already has a class {name!r}. Pass another name=; "
            "nothing was changed."
        )
    self_ref = left is right
    table = association_table(left, right, name=tablename, extra_columns=extra_columns,
                              ondelete=ondelete,
                              left_column=f"{left_attr}_id" if self_ref else None,
                              right_column=f"{right_attr}_id" if self_ref else None,
                              metadata=base.metadata, key_columns=key_columns,
                              tenant=tenant)
    lcol, rcol = table.primary_key.columns.values()[:2]
    link_cls = type(name, (base,), {"__table__": table, "__module__": left.__module__})
    # Each side's collection creates the link's many-to-one with backref=: no relationship
    # refers to one not yet added, so this works on classes whose mappers are configured.
    lazy: Any = "selectin"  # reading a proxy loads the other side in one query, not one per link
    passive = ondelete.upper() == "CASCADE"
    cascade = "all, delete-orphan"
    for side, links_key, attr, column in ((left, left_links, left_attr, lcol),
                                          (right, right_links, right_attr, rcol)):
        sa_inspect(side).add_property(links_key, relationship(
            link_cls, foreign_keys=[column], cascade=cascade, passive_deletes=passive,
            backref=backref(attr, lazy=lazy)))
    scope = tenant_of(table)
    columns = {c.name for c in table.columns} - {c.name for c in table.primary_key} - (
        set() if scope is None else {scope.column.name})
    if proxies[0] is not None:
        setattr(left, proxies[0], association_proxy(
            left_links, right_attr, creator=_creator(link_cls, right_attr, columns)))
    if proxies[1] is not None:
        setattr(right, proxies[1], association_proxy(
            right_links, left_attr, creator=_creator(link_cls, left_attr, columns)))
    return link_cls
