"""tenant: what tenant keys by construction cost on the write path.

Data: F folders per tenant for 10 tenants (default 1000, quick 100). Each round inserts D
documents (default 20000, quick 2000) that reference a random folder of the same tenant, as
the application role inside ``tenant_context`` (one multi-row ``INSERT`` per 1000 rows), then
the documents are removed outside the timing.

Questions ``tenant:move-folders`` and ``tenant:rename-shared-author``: the cost of running the
tree guard and the trigger-kept copy as ``SECURITY DEFINER`` (correct under RLS: the guard
sees every tenant's rows, the copy updates every tenant's documents) against the invoker-
rights form before it (blind under RLS; the tree guard now refuses to run that way, so moves
have no such case) and no trigger at all. 100 leaf moves and back in a
tree of F folders per tenant; 5 renames and back of a shared author whose name is copied
into ~1% of D2 documents (default 200000, quick 20000).

Question ``tenant:insert-referencing-rows``:

* pattern: ``TenantScoped`` models as pgpatterns declares them now: ``UNIQUE (tenant_id,
  id)`` on folders and the composite key ``(tenant_id, folder_id) -> folders (tenant_id,
  id)`` beside the plain one (the database refuses a cross-tenant reference);
* alternative: the same tables with the plain foreign key only (the form before: a row can
  point at another tenant's folder);
* limit: the plain foreign key, no row-level security, written by the owner.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import (
    BigInteger,
    Engine,
    ForeignKey,
    MetaData,
    Table,
    insert,
    text,
    update,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from benchmarks.conftest import Scale, record
from pgpatterns.bulk import copy_rows
from pgpatterns.ddl import CompositeForeignKey, attached
from pgpatterns.explain import explain, plan_summary
from pgpatterns.rls import TenantScoped, tenant_context

TENANTS = 10
QUESTION = "tenant:insert-referencing-rows"


def _tables(prefix: str, role: str, *, composite: bool) -> tuple[MetaData, Table, Table]:
    class Base(DeclarativeBase):
        metadata = MetaData()

    class Folder(TenantScoped, Base):
        __tablename__ = f"{prefix}_folders"
        __tenant_roles__ = (role,)
        id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)

    class Doc(TenantScoped, Base):
        __tablename__ = f"{prefix}_docs"
        __tenant_roles__ = (role,)
        id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
        folder_id: Mapped[int] = mapped_column(ForeignKey(f"{prefix}_folders.id"))

    if not composite:  # the form before this release: the plain key only
        objects = attached(Base.metadata)
        keep = [o for o in objects if not isinstance(o, CompositeForeignKey)]
        Base.metadata.info["pgpatterns.ddl.objects"] = keep
    folders, docs = Folder.__table__, Doc.__table__
    assert isinstance(folders, Table) and isinstance(docs, Table)
    return Base.metadata, folders, docs


CASES = [
    ("composite tenant key + RLS (pattern)", "pattern", "bench_tk_c", True, True),
    ("plain foreign key + RLS (before)", "alternative", "bench_tk_p", False, True),
    ("plain foreign key, no RLS (owner)", "limit", "bench_tk_p", False, False),
]


_LOADED: dict[str, Any] = {}


@pytest.fixture(scope="module")
def _cleanup(pg_module_engine: Engine) -> Iterator[None]:
    yield
    with pg_module_engine.begin() as conn:
        for metadata, _, _ in _LOADED.pop("tables", {}).values():
            metadata.drop_all(conn)
    _LOADED.clear()


@pytest.fixture
def data(scale: Scale, pg_engine: Engine, pg_database: Any, _cleanup: None) -> dict[str, Any]:
    """Loaded by the first case (the policies name the app role, known per test)."""
    if not _LOADED:
        _LOADED.update(_load(scale, pg_engine, pg_database.app_role))
    return _LOADED


def _load(scale: Scale, engine: Engine, role: str) -> dict[str, Any]:
    per_tenant = scale.pick(quick=100, default=1000)
    docs = scale.pick(quick=2000, default=20000)
    made = {}
    with engine.begin() as conn:
        for prefix, composite in (("bench_tk_c", True), ("bench_tk_p", False)):
            metadata, folders, doc_table = _tables(prefix, role, composite=composite)
            metadata.drop_all(conn)
            metadata.create_all(conn)
            copy_rows(conn, folders, ((t, t * 10**6 + i) for t in range(1, TENANTS + 1)
                                      for i in range(per_tenant)), columns=["tenant_id", "id"])
            conn.execute(text(f"ANALYZE {folders.name}"))
            made[prefix] = (metadata, folders, doc_table)
    rng = random.Random(scale.seed)
    tenant = 3
    rows = [{"id": i, "folder_id": tenant * 10**6 + rng.randrange(per_tenant)}
            for i in range(1, docs + 1)]
    return {"tables": made, "rows": rows, "tenant": tenant}


@pytest.mark.parametrize("case", CASES, ids=[c[1] for c in CASES])
def test_insert_referencing_rows(benchmark: Any, pg_engine: Engine, pg_app_engine: Engine,
                                 scale: Scale, data: dict[str, Any], case: Any) -> None:
    label, role, prefix, _, rls = case
    _, _, docs = data["tables"][prefix]
    engine = pg_app_engine if rls else pg_engine
    rows = data["rows"] if rls else [{**r, "tenant_id": data["tenant"]} for r in data["rows"]]
    batches = [rows[i:i + 1000] for i in range(0, len(rows), 1000)]

    def reset() -> None:
        with pg_engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {docs.name}"))

    def run() -> None:
        with engine.begin() as conn:
            if rls:
                tenant_context(conn, data["tenant"])
            for batch in batches:
                conn.execute(insert(docs), batch)

    reset()
    with engine.connect() as conn, conn.begin():
        if rls:
            tenant_context(conn, data["tenant"])
        plan = plan_summary(explain(conn, insert(docs).values(batches[0][:10]), analyze=True))
    record(benchmark, question=QUESTION, case=label, role=role, rows=len(rows), scale=scale,
           plan=plan)
    benchmark.pedantic(run, setup=reset, rounds=scale.rounds, iterations=1, warmup_rounds=1)
    with pg_engine.connect() as conn:
        assert conn.scalar(text(f"SELECT count(*) FROM {docs.name}")) == len(rows)


# -- SECURITY DEFINER triggers: moves (tree guard) and renames (trigger-kept copies) ---------
MOVE = "tenant:move-folders"
RENAME = "tenant:rename-shared-author"
_TRIG: dict[str, Any] = {}


@pytest.fixture(scope="module")
def _trig_cleanup(pg_module_engine: Engine) -> Iterator[None]:
    yield
    if _TRIG:
        with pg_module_engine.begin() as conn:
            _TRIG["metadata"].drop_all(conn)
        _TRIG.clear()


@pytest.fixture
def trig(scale: Scale, pg_engine: Engine, pg_database: Any, _trig_cleanup: None) -> dict[str, Any]:
    if not _TRIG:
        _TRIG.update(_load_trig(scale, pg_engine, pg_database.app_role))
    return _TRIG


def _load_trig(scale: Scale, engine: Engine, role: str) -> dict[str, Any]:
    from sqlalchemy import Text
    from sqlalchemy.orm import DeclarativeBase

    from pgpatterns.ddl import attach
    from pgpatterns.denormalize import denormalized
    from pgpatterns.trees import AdjacencyListMixin, TreeOptions, tree_guard

    class Base(DeclarativeBase):
        metadata = MetaData()

    class Folder(TenantScoped, AdjacencyListMixin, Base):
        __tablename__ = "bench_tk_tree"
        __tenant_roles__ = (role,)
        __tree__ = TreeOptions(scope="tenant_id")
        id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)

    class Author(Base):
        __tablename__ = "bench_tk_authors"
        id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
        name: Mapped[str] = mapped_column(Text)

    class Doc(TenantScoped, Base):
        __tablename__ = "bench_tk_docs2"
        __tenant_roles__ = (role,)
        id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
        author_id: Mapped[int] = mapped_column(ForeignKey("bench_tk_authors.id"), index=True)
        author_name: Mapped[str] = mapped_column(Text)

    guard = tree_guard(Folder)
    copy = denormalized(Doc.author_name, Author.name, via=Doc.author_id, name="bench_tk_an")
    attach(Base.metadata, *guard, *copy)
    per_tenant = scale.pick(quick=500, default=5000)
    docs = scale.pick(quick=20_000, default=200_000)
    rng = random.Random(scale.seed)
    with engine.begin() as conn:
        Base.metadata.drop_all(conn)
        Base.metadata.create_all(conn)
        rows = []
        for t in range(1, TENANTS + 1):
            base = t * 10**6
            rows += [(t, base + i, None if i == 0 else base + rng.randrange(i))
                     for i in range(per_tenant)]
        copy_rows(conn, Folder.__table__, rows, columns=["tenant_id", "id", "parent_id"])
        copy_rows(conn, Author.__table__, ((a, f"author {a}") for a in range(1, 101)))
        copy_rows(conn, Doc.__table__, (
            (1 + i % TENANTS, i, a, f"author {a}")
            for i, a in ((i, rng.randrange(1, 101)) for i in range(1, docs + 1))),
            columns=["tenant_id", "id", "author_id", "author_name"])
        conn.execute(text("ANALYZE bench_tk_tree, bench_tk_authors, bench_tk_docs2"))
        parents = {r[1]: r[2] for r in rows}
        children = {p for p in parents.values() if p is not None}
        tenant = 3
        leaves = [k for k in parents if k // 10**6 == tenant and k not in children]
        targets = [k for k in parents if k // 10**6 == tenant and k in children]
    moves = [(leaf, parents[leaf], rng.choice(targets)) for leaf in rng.sample(leaves, 100)]
    return {"metadata": Base.metadata, "tree": Folder.__table__, "authors": Author.__table__,
            "guard": guard[0].name, "copy": [o.name for o in copy.objects
                                             if o.kind == "function"],
            "moves": moves, "tenant": tenant, "docs": docs}


def _function_rights(engine: Engine, names: list[str], definer: bool) -> None:
    with engine.begin() as conn:
        for name in names:
            sig = conn.scalar(text("SELECT to_regproc(:n)::regprocedure::text"), {"n": name})
            rights = "SECURITY DEFINER" if definer else "SECURITY INVOKER"
            conn.execute(text(f"ALTER FUNCTION {sig} {rights}"))


TRIGGER_CASES = [
    ("SECURITY DEFINER trigger (pattern)", "pattern", True, True),
    ("invoker-rights trigger (before: blind under RLS)", "alternative", False, True),
    ("no trigger (limit)", "limit", False, False),
]


# The guard refuses to run with invoker rights under RLS (it would be blind), so moves
# compare the definer-rights guard with no guard only.
MOVE_CASES = [c for c in TRIGGER_CASES if c[1] != "alternative"]


@pytest.mark.parametrize("case", MOVE_CASES, ids=[c[1] for c in MOVE_CASES])
def test_move_folders(benchmark: Any, pg_engine: Engine, pg_app_engine: Engine, scale: Scale,
                      trig: dict[str, Any], case: Any) -> None:
    label, role, definer, enabled = case
    tree = trig["tree"]
    _function_rights(pg_engine, [trig["guard"]], definer)
    with pg_engine.begin() as conn:
        action = "ENABLE" if enabled else "DISABLE"
        conn.execute(text(f"ALTER TABLE {tree.name} {action} TRIGGER {trig['guard']}"))

    def run() -> None:  # 100 moves of a leaf, then back: the tree ends as it began
        with pg_app_engine.begin() as conn:
            tenant_context(conn, trig["tenant"])
            for leaf, old, new in trig["moves"]:
                for parent in (new, old):
                    conn.execute(update(tree).where(tree.c.id == leaf).values(parent_id=parent))

    record(benchmark, question=MOVE, case=label, role=role, rows=200, scale=scale,
           plan="200 single-row UPDATEs of parent_id as the app role")
    benchmark.pedantic(run, rounds=scale.rounds, iterations=1, warmup_rounds=1)
    with pg_engine.begin() as conn:
        conn.execute(text(f"ALTER TABLE {tree.name} ENABLE TRIGGER {trig['guard']}"))
    _function_rights(pg_engine, [trig["guard"]], True)


@pytest.mark.parametrize("case", TRIGGER_CASES, ids=[c[1] for c in TRIGGER_CASES])
def test_rename_shared_author(benchmark: Any, pg_engine: Engine, pg_app_engine: Engine,
                              scale: Scale, trig: dict[str, Any], case: Any) -> None:
    label, role, definer, enabled = case
    authors = trig["authors"]
    push = [n for n in trig["copy"] if n.endswith("_push")]
    _function_rights(pg_engine, push, definer)
    with pg_engine.begin() as conn:
        action = "ENABLE" if enabled else "DISABLE"
        conn.execute(text(f"ALTER TABLE {authors.name} {action} TRIGGER {push[0]}"))

    def run() -> None:  # rename 5 authors and back, each on ~1% of the documents
        with pg_app_engine.begin() as conn:
            tenant_context(conn, trig["tenant"])
            for a in range(1, 6):
                for name in (f"renamed {a}", f"author {a}"):
                    conn.execute(update(authors).where(authors.c.id == a).values(name=name))

    record(benchmark, question=RENAME, case=label, role=role, rows=trig["docs"], scale=scale,
           plan="10 author renames, each rewriting its documents' copies (all tenants: "
                "definer; the invoker's tenant only: invoker)")
    benchmark.pedantic(run, rounds=scale.rounds, iterations=1, warmup_rounds=1)
    with pg_engine.begin() as conn:
        conn.execute(text(f"ALTER TABLE {authors.name} ENABLE TRIGGER {push[0]}"))
    _function_rights(pg_engine, push, True)
