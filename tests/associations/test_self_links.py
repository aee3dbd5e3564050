"""A class linked to itself (issue #24.1): followers (many_to_many) and package dependencies
(association_object), and refusals that leave the class untouched."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Column, Engine, MetaData, Text, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, configure_mappers, mapped_column

from pgpatterns.associations import (
    LinkResult,
    association_object,
    count_per,
    having_all,
    having_any,
    link,
    many_to_many,
    sync,
    unlink,
)
from pgpatterns.associations._link import plural
from pgpatterns.errors import AssociationError


class Base(DeclarativeBase):
    metadata = MetaData()


class Person(Base):
    __tablename__ = "sl_people"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)


class Package(Base):
    __tablename__ = "sl_packages"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(Text)


follows = many_to_many(Person, Person, attr="following", back="followers",
                       left_column="follower_id", right_column="followed_id", name="sl_follows")
Dependency = association_object(
    Base, Package, Package, name="Dependency", tablename="sl_dependencies",
    left_attr="package", right_attr="dependency",
    extra_columns=[Column("spec", Text, nullable=False, server_default="*")],
    proxies=("depends_on", "required_by"),
)
configure_mappers()  # old code: AmbiguousForeignKeysError


@pytest.fixture
def session(pg_engine: Engine, pg_session: Session) -> Session:
    Base.metadata.create_all(pg_engine, checkfirst=True)
    pg_session.add_all([Person(id=i) for i in range(1, 6)])
    pg_session.add_all([Package(id=i, name=f"p{i}") for i in range(1, 5)])
    pg_session.flush()
    return pg_session


def test_followers_graph(session: Session) -> None:
    alice, bob, carol = (session.get(Person, i) for i in (1, 2, 3))
    assert alice is not None and bob is not None and carol is not None
    assert link(session, alice, [bob, carol], via=Person.following) == LinkResult(added=(2, 3))
    assert link(session, bob, [carol], via=Person.following).added == (3,)
    assert [p.id for p in bob.followers] == [1]
    assert sorted(p.id for p in carol.followers) == [1, 2]
    assert sorted(p.id for p in alice.following) == [2, 3]
    rows = session.execute(select(follows.c.follower_id, follows.c.followed_id)).all()
    assert sorted(rows) == [(1, 2), (1, 3), (2, 3)]
    # the reverse direction writes the same table, the other way round
    assert link(session, 3, [4], via=Person.followers).added == (4,)  # 4 follows carol
    assert (4, 3) in session.execute(select(follows.c.follower_id, follows.c.followed_id))
    followed_by_alice = having_any(Person, Person.followers, [alice]).order_by(Person.id)
    assert [p.id for p in session.scalars(followed_by_alice)] == [2, 3]
    assert [p.id for p in session.scalars(having_all(Person, Person.followers, [1, 2]))] == [3]
    assert {p.id: n for p, n in session.execute(count_per(Person, Person.followers))} == {
        1: 0, 2: 1, 3: 3, 4: 0, 5: 0}
    assert sorted(sync(session, alice, [carol], via=Person.following).removed) == [2]
    assert unlink(session, 3, [1, 2], via=Person.followers).removed == (1, 2)
    with pytest.raises(AssociationError, match="pass via="):
        link(session, alice, [bob])  # two directions between Person and Person


def test_dependencies_with_attributes(session: Session) -> None:
    pkg, dep, other = (session.get(Package, i) for i in (1, 2, 3))
    assert pkg is not None and dep is not None and other is not None
    assert [r.key for r in Package.__mapper__.relationships] == [
        "dependencies_as_package", "dependencies_as_dependency"]
    assert link(session, pkg, [dep, other], via=Package.depends_on, spec=">=1").added == (2, 3)
    assert link(session, pkg, [dep], via=Package.depends_on, spec=">=2").updated == (2,)
    assert sorted((d.dependency.name, d.spec) for d in pkg.dependencies_as_package) == [
        ("p2", ">=2"), ("p3", ">=1")]
    assert [p.name for p in dep.required_by] == ["p1"]
    assert sync(session, pkg, [other], via=Package.dependencies_as_package).removed == (2,)
    assert [p.name for p in session.scalars(having_any(Package, Package.required_by, [1]))] == [
        "p3"]
    other.depends_on.append(dep)  # through the proxy, ORM insert
    session.flush()
    assert [d.spec for d in other.dependencies_as_package] == ["*"]


edges = st.lists(st.tuples(st.sampled_from(["link", "unlink", "sync"]),
                           st.integers(1, 5), st.lists(st.integers(1, 5), max_size=3),
                           st.booleans()), min_size=1, max_size=6)


@given(edges)
def test_random_edges_match_a_graph_model(session: Session, steps: list[Any]) -> None:
    savepoint = session.begin_nested()
    try:
        model: set[tuple[int, int]] = set()  # (follower, followed)
        for op, node, others, forward in steps:
            pairs = {(node, o) if forward else (o, node) for o in others}
            via = Person.following if forward else Person.followers
            {"link": link, "unlink": unlink, "sync": sync}[op](session, node, others, via=via)
            if op == "link":
                model |= pairs
            elif op == "unlink":
                model -= pairs
            else:
                mine = {p for p in model if (p[0] if forward else p[1]) == node}
                model = (model - mine) | pairs
            rows = session.execute(select(follows.c.follower_id, follows.c.followed_id))
            assert set(rows) == model  # type: ignore[arg-type]
    finally:
        savepoint.rollback()


def test_refusals_leave_the_class_untouched() -> None:
    class B(DeclarativeBase):
        metadata = MetaData()

    class Node(B):
        __tablename__ = "sl_nodes"
        id: Mapped[int] = mapped_column(primary_key=True)

    before = set(Node.__mapper__.attrs.keys())
    with pytest.raises(AssociationError, match="asked for twice"):
        many_to_many(Node, Node, attr="edges", back="edges", left_column="a_id",
                     right_column="b_id")
    with pytest.raises(AssociationError, match="left_column= and right_column="):
        many_to_many(Node, Node, attr="out", back="in_")
    with pytest.raises(AssociationError, match="a class linked to itself"):
        association_object(B, Node, Node, name="Edge")
    with pytest.raises(AssociationError, match="asked for twice"):
        association_object(B, Node, Node, name="Edge", left_attr="src", right_attr="dst",
                           links=("edges", "edges"))
    assert set(Node.__mapper__.attrs.keys()) == before
    assert not hasattr(Node, "edges") and list(B.metadata.tables) == ["sl_nodes"]
    assert "Edge" not in B.registry._class_registry
    edge = association_object(B, Node, Node, name="Edge", left_attr="src", right_attr="dst")
    configure_mappers()
    assert {"edges_as_src", "edges_as_dst"} <= set(Node.__mapper__.attrs.keys())
    assert [c.name for c in edge.__table__.primary_key] == ["src_id", "dst_id"]
    # on a configured mapper too
    many_to_many(Node, Node, attr="out", back="in_", left_column="from_id",
                 right_column="to_id", name="sl_node_links")
    configure_mappers()
    assert Node.out.property.back_populates == "in_"  # type: ignore[attr-defined]
    with pytest.raises(AssociationError, match="already has a class 'Edge'"):
        association_object(B, Node, Node, name="Edge", left_attr="a", right_attr="b")


def test_default_names_are_plural() -> None:
    assert [plural(w) for w in ("dependency", "membership", "key", "box", "match", "bus")] == [
        "dependencies", "memberships", "keys", "boxes", "matches", "buses"]
