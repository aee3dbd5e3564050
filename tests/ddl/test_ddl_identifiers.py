"""Hostile identifiers (quotes, spaces, case, semicolons) survive and cannot inject SQL."""

from __future__ import annotations

import string

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Column, Integer, MetaData, Table, select, text

from pgpatterns.ddl import Function, Policy, View, create_all, drop_all
from pgpatterns.testing.plugin import PgSchema

names = st.text(alphabet=st.sampled_from(string.printable[:95] + "éß"), min_size=1, max_size=30)
# comments end at a newline; everything else in the body is kept verbatim by PostgreSQL
comment = st.text(alphabet=st.sampled_from(string.printable[:95] + "$é"), min_size=0, max_size=40)


def _table(conn: object, name: str) -> Table:
    md = MetaData()
    t = Table(name, md, Column("id", Integer), Column("owner", Integer))
    md.create_all(conn)  # type: ignore[arg-type]
    return t


@given(name=names)
def test_view_function_policy_names(pg_schema: PgSchema, name: str) -> None:
    with pg_schema.engine.connect() as conn:
        t = _table(conn, "target " + name)
        view = View(name, select(t.c.id).where(t.c.owner == 1))
        fn = Function(name, args=[(name, Integer())], returns="integer", body="SELECT 1")
        policy = Policy(name, t, using=t.c.owner == 1)
        objects = (view, fn, policy)
        create_all(conn, *objects)
        rel = (
            conn.execute(
                text(
                    "SELECT relname FROM pg_class WHERE relnamespace = to_regnamespace(:s)"
                    " AND relkind = 'v'"
                ),
                {"s": pg_schema.name},
            )
            .scalars()
            .all()
        )
        proc = conn.execute(
            text(
                "SELECT proname, proargnames FROM pg_proc WHERE pronamespace = to_regnamespace(:s)"
            ),
            {"s": pg_schema.name},
        ).all()
        pol = conn.execute(text("SELECT polname FROM pg_policy")).scalars().all()
        assert rel == [name]
        assert proc == [(name, [name])]
        assert pol == [name]
        assert conn.execute(select(view.table.c.id)).all() == []
        assert all(obj.exists(conn) for obj in objects)
        drop_all(conn, *objects)
        assert not any(obj.exists(conn) for obj in objects)
        conn.rollback()


@given(note=comment)
def test_function_body_is_kept_verbatim(pg_schema: PgSchema, note: str) -> None:
    body = f"SELECT 1 -- {note}"
    fn = Function("f", returns="integer", body=body)
    with pg_schema.engine.connect() as conn:
        create_all(conn, fn)
        assert (
            conn.execute(
                text(
                    "SELECT prosrc FROM pg_proc WHERE proname = 'f' AND "
                    "pronamespace = to_regnamespace(:s)"
                ),
                {"s": pg_schema.name},
            ).scalar_one()
            == body
        )
        assert fn.reflect_diff(conn) == []
        conn.rollback()
