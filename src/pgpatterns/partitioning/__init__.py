"""Declarative partitioning: declared and validated in Python, maintained safely.

Examples:
    >>> from sqlalchemy import BigInteger, Column, DateTime, MetaData, PrimaryKeyConstraint, Table
    >>> from pgpatterns.partitioning import partition_by
    >>> events = Table("events", MetaData(), Column("id", BigInteger),
    ...                Column("at", DateTime(timezone=True)), PrimaryKeyConstraint("id", "at"))
    >>> scheme = partition_by(events, "range", "at", interval="1 month")
    >>> scheme.partition_by
    'RANGE (at)'

* Declare: :func:`partition_by` with :func:`range_partition`, :func:`list_partition`,
  :func:`hash_partitions`, :func:`default_partition` (``pgpatterns.ddl.Partition`` objects,
  created by ``metadata.create_all``); primary keys and unique constraints are checked to
  include the key, bounds to neither overlap nor leave gaps.
* Maintain: :func:`ensure_partitions` (create ahead, fill gaps, idempotent, safe to run
  concurrently), :func:`retain` (detach, CONCURRENTLY where possible, then drop),
  :func:`check_default_partition`; ``_async`` twins. Or :func:`use_pg_partman`.

Warning:
    Partition pruning needs the key in the WHERE clause as a plain comparison
    (``at >= :a AND at < :b``): ``date_trunc('month', at) = ...`` scans every partition.
    Primary keys and unique constraints must contain the key. Indexes and row triggers on
    the parent reach every partition (PostgreSQL 13+); ``DETACH ... CONCURRENTLY`` needs 14+.
"""

from __future__ import annotations

from pgpatterns.partitioning.catalog import ExistingPartition, existing_partitions
from pgpatterns.partitioning.declare import (
    SCHEME_INFO,
    DefaultSpec,
    HashSpec,
    ListSpec,
    PartitionScheme,
    RangeSpec,
    default_partition,
    hash_partitions,
    list_partition,
    partition_by,
    partition_scheme,
    range_partition,
)
from pgpatterns.partitioning.maintain import (
    BlockedRange,
    check_default_partition,
    check_default_partition_async,
    ensure_partitions,
    ensure_partitions_async,
    retain,
    retain_async,
)
from pgpatterns.partitioning.partman import (
    PartmanConfig,
    run_pg_partman_maintenance,
    use_pg_partman,
    use_pg_partman_async,
)

__all__ = [
    "SCHEME_INFO",
    "BlockedRange",
    "DefaultSpec",
    "ExistingPartition",
    "HashSpec",
    "ListSpec",
    "PartitionScheme",
    "PartmanConfig",
    "RangeSpec",
    "check_default_partition",
    "check_default_partition_async",
    "default_partition",
    "ensure_partitions",
    "ensure_partitions_async",
    "existing_partitions",
    "hash_partitions",
    "list_partition",
    "partition_by",
    "partition_scheme",
    "range_partition",
    "retain",
    "retain_async",
    "run_pg_partman_maintenance",
    "use_pg_partman",
    "use_pg_partman_async",
]
