"""Compile-only: the SQL each kind renders, and option validation before any SQL."""

from __future__ import annotations

import pytest
from sqlalchemy import Column, DateTime, Index, Integer, MetaData, Table, Text, func, select, text

from pgpatterns.ddl import (
    MAXVALUE,
    MINVALUE,
    Extension,
    Function,
    MaterializedView,
    Partition,
    Policy,
    RowLevelSecurity,
    Trigger,
    View,
    dollar_quote,
    new,
    old,
)
from pgpatterns.errors import DDLError, DDLOptionError

md = MetaData()
items = Table(
    "items",
    md,
    Column("id", Integer, primary_key=True),
    Column("owner", Text),
    Column("price", Integer),
    Column("updated_at", DateTime),
    schema="shop",
)
events = Table(
    "events",
    md,
    Column("id", Integer),
    Column("created_at", DateTime),
    postgresql_partition_by="RANGE (created_at)",
)
touch = Function(
    "touch",
    schema="shop",
    returns="trigger",
    language="plpgsql",
    body="BEGIN NEW.updated_at := now(); RETURN NEW; END",
)


def flat(sql: str) -> str:
    return " ".join(sql.split())


def test_extension() -> None:
    assert Extension("pg_trgm").sql() == "CREATE EXTENSION IF NOT EXISTS pg_trgm"
    assert Extension("uuid-ossp", schema="ext").sql() == (
        'CREATE EXTENSION IF NOT EXISTS "uuid-ossp" WITH SCHEMA ext'
    )
    assert Extension("pg_trgm").sql(drop=True) == "DROP EXTENSION IF EXISTS pg_trgm"
    assert Extension("pg_trgm").keep_on_drop


def test_function() -> None:
    f = Function(
        "Add It",
        schema="app",
        args=[("a", Integer()), ("b", "integer")],
        returns=Integer,
        body="SELECT a + b",
        volatility="IMMUTABLE",
        security_definer=True,
        search_path=["pg_catalog", "app"],
    )
    assert f.sql() == (
        'CREATE FUNCTION app."Add It"(a INTEGER, b integer) RETURNS INTEGER LANGUAGE sql '
        "IMMUTABLE SECURITY DEFINER SET search_path = pg_catalog, app AS $fn$SELECT a + b$fn$"
    )
    assert f.sql(drop=True) == 'DROP FUNCTION IF EXISTS app."Add It"(INTEGER, integer)'


def test_dollar_quote_never_closes_early() -> None:
    assert dollar_quote("x") == "$fn$x$fn$"
    assert dollar_quote("a $fn$ b") == "$fn1$a $fn$ b$fn1$"
    assert dollar_quote("fn$") == "$fn$fn$$fn$"  # the opening tag's "$" is not reused
    assert dollar_quote("$fn") == "$fn1$$fn$fn1$"  # "$fn$fn$fn$" would close after ""


def test_trigger() -> None:
    trig = Trigger(
        "touch_items",
        items,
        touch,
        events=["update"],
        update_of=["price"],
        when=new("price").is_distinct_from(old("price")),
    )
    assert trig.sql() == (
        "CREATE TRIGGER touch_items BEFORE UPDATE OF price ON shop.items FOR EACH ROW "
        'WHEN ("new".price IS DISTINCT FROM "old".price) EXECUTE FUNCTION shop.touch()'
    )
    assert trig.sql(drop=True) == "DROP TRIGGER IF EXISTS touch_items ON shop.items"
    stmt = Trigger(
        "s", items, touch, timing="after", events=["insert", "delete"], for_each="statement"
    )
    assert "AFTER INSERT OR DELETE ON shop.items FOR EACH STATEMENT" in stmt.sql()


def test_view_uses_literals_and_options() -> None:
    v = View(
        "expensive",
        select(items.c.id, items.c.price).where(items.c.price > 100),
        schema="shop",
        security_barrier=True,
        check_option="LOCAL",
    )
    assert flat(v.sql()) == (
        "CREATE VIEW shop.expensive WITH (check_option = local, security_barrier = true, "
        "security_invoker = true) AS SELECT shop.items.id, shop.items.price FROM shop.items "
        "WHERE shop.items.price > 100"
    )
    assert v.sql(drop=True) == "DROP VIEW IF EXISTS shop.expensive"
    plain = View("all_items", select(items.c.id), security_invoker=False)
    assert flat(plain.sql()) == "CREATE VIEW all_items AS SELECT shop.items.id FROM shop.items"
    assert flat(str(select(v.table.c.price))) == "SELECT shop.expensive.price FROM shop.expensive"


def test_materialized_view_with_indexes() -> None:
    q = select(items.c.owner, func.count().label("n")).group_by(items.c.owner)
    mv = MaterializedView(
        "per_owner", q, with_data=False, indexes=[("per_owner_o", ["owner"], True)]
    )
    mv2 = MaterializedView("per_owner2", q)
    mv2_index = Index("per_owner2_n", mv2.table.c.n)
    mv3 = MaterializedView("per_owner3", q, indexes=[mv2_index])
    assert mv.sql().split(";\n") == [
        "CREATE MATERIALIZED VIEW per_owner AS SELECT shop.items.owner, count(*) AS n \n"
        "FROM shop.items GROUP BY shop.items.owner WITH NO DATA",
        "CREATE UNIQUE INDEX per_owner_o ON per_owner (owner)",
    ]
    assert len(mv.create_ddl()) == 2
    assert mv.sql(drop=True) == "DROP MATERIALIZED VIEW IF EXISTS per_owner"
    assert mv3.sql().endswith("CREATE INDEX per_owner2_n ON per_owner2 (n)")


def test_rls_and_policy() -> None:
    assert RowLevelSecurity(items).sql() == (
        "ALTER TABLE shop.items ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY"
    )
    assert RowLevelSecurity(items, force=False).sql() == (
        "ALTER TABLE shop.items ENABLE ROW LEVEL SECURITY"
    )
    assert RowLevelSecurity(items).sql(drop=True) == (
        "ALTER TABLE shop.items DISABLE ROW LEVEL SECURITY, NO FORCE ROW LEVEL SECURITY"
    )
    p = Policy(
        "own rows",
        items,
        command="update",
        to=["app_user", "Admin"],
        using=items.c.owner == func.current_setting("app.user"),
        with_check=items.c.price >= 0,
        permissive=False,
    )
    assert p.sql() == (
        'CREATE POLICY "own rows" ON shop.items AS RESTRICTIVE FOR UPDATE TO app_user, "Admin" '
        "USING (shop.items.owner = current_setting('app.user')) "
        "WITH CHECK (shop.items.price >= 0)"
    )
    assert p.sql(drop=True) == 'DROP POLICY IF EXISTS "own rows" ON shop.items'
    assert Policy("all", items, using=text("true")).sql().endswith("FOR ALL TO public USING (true)")


def test_partition_bounds() -> None:
    r = Partition("events_2026", events, range_=("2026-01-01", "2027-01-01"))
    assert r.sql() == (
        "CREATE TABLE events_2026 PARTITION OF events "
        "FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')"
    )
    assert (
        "FROM (MINVALUE) TO (MAXVALUE)"
        in Partition("all", events, range_=(MINVALUE, MAXVALUE)).sql()
    )
    assert Partition("l", events, list_=["a", "b'c"]).sql().endswith("FOR VALUES IN ('a', 'b''c')")
    assert (
        Partition("h", events, hash_=(4, 1))
        .sql()
        .endswith("FOR VALUES WITH (MODULUS 4, REMAINDER 1)")
    )
    assert Partition("d", events, default=True).sql().endswith("PARTITION OF events DEFAULT")
    assert Partition("d", events, default=True).sql(drop=True) == "DROP TABLE IF EXISTS d"


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: Function("f", returns="int", body="SELECT 1", volatility="sometimes"),
            "volatility='sometimes'",
        ),
        (lambda: Function("f", returns="int", body="SELECT 1", language="python"), "language"),
        (
            lambda: Function("f", returns="int", body="SELECT 1", security_definer=True),
            "search_path",
        ),
        (lambda: Function("f", returns="int; DROP TABLE x", body="SELECT 1"), "plain type"),
        (lambda: Function("f", returns="int", body="  "), "body is empty"),
        (lambda: Function("f", returns="void SECURITY DEFINER", body="x"), "plain type"),
        (lambda: Function("f", args=[("a", "int, b int")], body="x"), "plain type"),
        (lambda: Trigger("t", items, touch, timing="whenever"), "timing"),
        (lambda: Trigger("t", items, touch, events=["select"]), "events"),
        (
            lambda: Trigger("t", items, touch, for_each="statement", when=new("price") > 1),
            "for_each='row'",
        ),
        (lambda: Trigger("t", items, touch, events=["insert"], update_of=["price"]), "update_of"),
        (lambda: Trigger("t", items, Function("f", returns="int", body="SELECT 1")), "trigger"),
        (lambda: Policy("p", items, command="select", with_check=items.c.price > 0), "with_check"),
        (lambda: Policy("p", items, command="insert", using=items.c.price > 0), "using"),
        (lambda: Policy("p", items, command="merge"), "command"),
        (lambda: View("v", select(items.c.id), check_option="always"), "check_option"),
        (lambda: View("v", items), "select()"),  # type: ignore[arg-type]
        (lambda: Partition("p", events, range_=(1, 2), list_=[1]), "exactly one"),
        (lambda: Partition("p", events), "exactly one"),
        (
            lambda: MaterializedView("m", select(items.c.id), indexes=[("i", ["nope"], False)]),
            "nope",
        ),
        (lambda: View("", select(items.c.id)), "name"),
    ],
)
def test_invalid_options_raise(build: object, message: str) -> None:
    with pytest.raises(DDLOptionError, match=None) as info:
        build()  # type: ignore[operator]
    assert message in str(info.value)
    assert isinstance(info.value, DDLError)
    assert "; " in str(info.value) or "." in str(info.value)  # what + how to fix
