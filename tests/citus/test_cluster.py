"""The Citus harness: a coordinator and two workers, the app role, a schema per test."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from pgpatterns.testing.citus import CitusSchema

pytestmark = pytest.mark.citus


def test_cluster_has_a_coordinator_and_two_workers(pg_citus: CitusSchema) -> None:
    with pg_citus.engine.connect() as conn:
        workers = conn.execute(
            text("SELECT count(*) FROM citus_get_active_worker_nodes()")
        ).scalar()
        roles = conn.execute(
            text("SELECT noderole, isactive FROM pg_dist_node ORDER BY groupid")
        ).all()
        version = conn.execute(text("SELECT extversion FROM pg_extension WHERE extname = 'citus'"))
        assert version.scalar() is not None
    assert workers == 2
    assert roles == [("primary", True)] * 3  # the coordinator (group 0) and two workers
    for worker in pg_citus.cluster.workers:
        assert worker.process.poll() is None
        assert worker.root.is_dir()


def test_app_role_is_not_superuser_and_reaches_workers(pg_citus: CitusSchema) -> None:
    with pg_citus.engine.begin() as conn:
        conn.execute(text(
            "CREATE TABLE t (tenant_id bigint, id bigint, PRIMARY KEY (tenant_id, id))"
        ))
        conn.execute(text("SELECT create_distributed_table('t', 'tenant_id')"))
        conn.execute(text("INSERT INTO t SELECT i % 7, i FROM generate_series(1, 100) i"))
    with pg_citus.app_engine.connect() as conn:
        flags = conn.execute(text(
            "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"
        )).one()
        assert flags == (False, False)
        # a fan-out query: the app role reads the shards on both workers
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 100
        placements = conn.execute(text(
            "SELECT count(DISTINCT nodeport) FROM pg_dist_shard_placement"
        )).scalar()
    assert placements == 2
