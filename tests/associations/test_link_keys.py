"""Links whose identity includes attribute columns (issue #24.2): a dependency with several
version ranges is several links of one pair."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import (
    Column,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, registry, relationship

from pgpatterns.associations import (
    LinkResult,
    association_object,
    association_table,
    count_per,
    having_all,
    having_any,
    link,
    link_stmt,
    many_to_many,
    sync,
    top_related,
    unlink,
)
from pgpatterns.errors import AssociationError


class Base(DeclarativeBase):
    metadata = MetaData()


class Pkg(Base):
    __tablename__ = "lk_packages"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)


Requirement = association_object(
    Base, Pkg, Pkg, name="Requirement", tablename="lk_requirements",
    left_attr="package", right_attr="requirement",
    extra_columns=[Column("lower", Text, nullable=False), Column("upper", Text, nullable=False),
                   Column("note", Text)],
    key_columns=("lower", "upper"),
    proxies=("requires", "required_by"),
)
req = Requirement.__table__


@pytest.fixture
def session(pg_engine: Engine, pg_session: Session) -> Session:
    Base.metadata.create_all(pg_engine, checkfirst=True)
    pg_session.add_all([Pkg(id=i) for i in range(1, 5)])
    pg_session.flush()
    return pg_session


def rows(session: Session, left: int = 1) -> set[tuple[int, str, str]]:
    stmt = select(req.c.requirement_id, req.c.lower, req.c.upper).where(
        req.c.package_id == left)
    return {(r, lo, up) for r, lo, up in session.execute(stmt)}


def test_the_identity_is_the_pair_and_the_key_columns(session: Session) -> None:
    assert [c.name for c in req.primary_key] == ["package_id", "requirement_id", "lower",
                                                 "upper"]
    via = Pkg.requires
    assert link(session, 1, [2], via=via, lower="1", upper="2") == LinkResult(added=(2,))
    assert link(session, 1, [2], via=via, lower="1", upper="2") == LinkResult()
    assert link(session, 1, [2], via=via, lower="1", upper="2", note="lts").updated == (2,)
    assert link(session, 1, [2, 3], via=via, lower="2", upper="3").added == (2, 3)
    assert rows(session) == {(2, "1", "2"), (2, "2", "3"), (3, "2", "3")}
    with pytest.raises(AssociationError, match=r"pass upper=\.\.\."):
        link(session, 1, [2], via=via, lower="1")
    with pytest.raises(AssociationError, match="takes no attributes"):
        unlink(session, 1, [2], via=via, note="x")
    with pytest.raises(AssociationError, match="lower"):
        link_stmt(via, 1, [2], mode="sync")
    # the query helpers count and return each package once
    assert [p.id for p in session.scalars(having_any(Pkg, via, [2]))] == [1]
    assert [p.id for p in session.scalars(having_all(Pkg, via, [2, 3]))] == [1]
    assert {p.id: n for p, n in session.execute(count_per(Pkg, via))} == {1: 2, 2: 0, 3: 0,
                                                                           4: 0}
    assert [(p.id, n) for p, n in session.execute(top_related(Pkg, Pkg.required_by,
                                                              limit=1))] == [(2, 1)]
    assert unlink(session, 1, [2], via=via, lower="1", upper="2") == LinkResult(removed=(2,))
    assert rows(session) == {(2, "2", "3"), (3, "2", "3")}
    result = sync(session, 1, [3, 4], via=via, lower="0", upper="9")
    assert sorted(result.added) == [3, 4] and sorted(result.removed) == [2, 3]
    assert rows(session) == {(3, "0", "9"), (4, "0", "9")}
    assert sorted(unlink(session, 1, [3, 4], via=via).removed) == [3, 4]  # every range
    pkg = session.get(Pkg, 1)
    assert pkg is not None and pkg.requires == []


steps = st.lists(st.one_of(
    st.tuples(st.just("link"), st.lists(st.integers(2, 4), max_size=2),
              st.sampled_from([("1", "2"), ("2", "3")])),
    st.tuples(st.just("unlink"), st.lists(st.integers(2, 4), max_size=2),
              st.sampled_from([None, ("1", "2"), ("2", "3")])),
    st.tuples(st.just("sync"), st.lists(st.integers(2, 4), max_size=2),
              st.sampled_from([("1", "2"), ("2", "3")])),
), min_size=1, max_size=6)


@given(steps)
def test_random_writes_match_a_model(session: Session, plan: list[Any]) -> None:
    savepoint = session.begin_nested()
    try:
        model: set[tuple[int, str, str]] = set()
        for op, targets, key in plan:
            attrs = {} if key is None else {"lower": key[0], "upper": key[1]}
            {"link": link, "unlink": unlink, "sync": sync}[op](
                session, 1, targets, via=Pkg.requires, **attrs)
            wanted = {(t, *key) for t in targets} if key else set()
            if op == "link":
                model |= wanted
            elif op == "sync":
                model = wanted
            else:
                model = {m for m in model if m[0] not in targets
                         or (key is not None and m[1:] != key)}
            assert rows(session) == model
    finally:
        savepoint.rollback()


def test_key_columns_are_checked() -> None:
    class B(DeclarativeBase):
        metadata = MetaData()

    class A(B):
        __tablename__ = "lk_a"
        id: Mapped[int] = mapped_column(primary_key=True)

    class C(B):
        __tablename__ = "lk_c"
        id: Mapped[int] = mapped_column(primary_key=True)

    with pytest.raises(AssociationError, match="must name extra columns"):
        association_table(A, C, key_columns=["scope"])
    with pytest.raises(AssociationError, match="association_object"):
        many_to_many(A, C, attr="cs", extra_columns=[Column("scope", Text, nullable=False)],
                     key_columns=["scope"])
    assert not hasattr(A, "cs")
    md = MetaData()
    nodes = Table("x", md, Column("id", Integer, primary_key=True))
    loose = Table("x_x", md, Column("a", Integer, ForeignKey("x.id"), nullable=False),
                  Column("b", Integer, ForeignKey("x.id"), nullable=False),
                  Column("k", Text, nullable=True), UniqueConstraint("a", "b", "k"))
    reg = registry(metadata=md)

    class X:
        pass

    reg.map_imperatively(X, nodes, properties={"xs": relationship(
        X, secondary=loose, primaryjoin=nodes.c.id == loose.c.a,
        secondaryjoin=nodes.c.id == loose.c.b)})
    with pytest.raises(AssociationError, match="key columns k are nullable"):
        link_stmt(X.xs, 1, [2])  # type: ignore[attr-defined]
