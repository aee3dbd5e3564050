"""Exceptions raised by pgpatterns.

Every error a user can cause derives from :class:`PatternError` and says what was
wrong, why, and how to fix it. Each family module has its own subclass so callers
can catch one family at a time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

__all__ = [
    "ArgumentError",
    "ArrayError",
    "AssociationError",
    "BulkLoadError",
    "CheckViolationError",
    "CitusDistributionError",
    "ColumnError",
    "ConcurrentUpdateError",
    "ConstraintError",
    "CursorError",
    "DDLDependencyError",
    "DDLError",
    "DDLNameError",
    "DDLNameLengthError",
    "DDLOptionError",
    "DatabaseUnavailableError",
    "DefaultPartitionConflictError",
    "DenormalizeError",
    "ExplainError",
    "ForeignKeyViolationError",
    "GeoCoordinateError",
    "GeoError",
    "GeoIndexError",
    "GeoSRIDError",
    "IndexDefinitionError",
    "IndexUsageError",
    "IntegrityViolationError",
    "JsonbError",
    "JsonbOperatorClassError",
    "JsonbPathError",
    "JsonbSchemaError",
    "JsonbSchemaViolationError",
    "LinkConcurrentUpdateError",
    "MissingExtensionError",
    "NotNullViolationError",
    "OverlapError",
    "PaginationError",
    "PartitionBoundsError",
    "PartitionConcurrentUpdateError",
    "PartitionError",
    "PartitionKeyError",
    "PartitionRetentionError",
    "PartmanError",
    "PatternError",
    "PolymorphicError",
    "PolymorphicIntegrityError",
    "RLSContextError",
    "RLSError",
    "RLSExpressionError",
    "RLSPolicyError",
    "RLSViewError",
    "ReadOnlyViewError",
    "RowSecurityError",
    "TenantIsolationError",
    "TreeConcurrentUpdateError",
    "TreeCycleError",
    "TreeError",
    "TreeHasChildrenError",
    "TreeNodeNotFoundError",
    "TreeOptionError",
    "TreeScopeError",
    "UniqueViolationError",
    "UnknownLinkTargetError",
    "VectorArgumentError",
    "VectorError",
    "VectorQueryError",
    "VectorSpecError",
    "ViewError",
    "ViewRLSError",
    "ViewRefreshError",
    "ViewReplaceError",
    "ViewScheduleError",
]


class PatternError(Exception):
    """Base class of every pgpatterns exception."""


class ArgumentError(PatternError, TypeError, ValueError):
    """A public function got an argument of the wrong type or out of range (``None`` where a
    collection is needed, ``2**70`` for a bigint key, text for an integer id); raised before
    any SQL is sent. ``argument`` names the parameter, ``given`` is the value."""

    def __init__(self, message: str, *, argument: str = "", given: object = None) -> None:
        super().__init__(message)
        self.argument = argument
        self.given = given


class ConcurrentUpdateError(PatternError):
    """A read-then-write action lost a race with another transaction at REPEATABLE READ or
    SERIALIZABLE (SQLSTATE 40001/40P01); retry the whole transaction. The original database
    error is ``__cause__``."""

    retryable = True


class BulkLoadError(PatternError):
    """Rows given to :func:`pgpatterns.bulk.copy_rows` do not fit the target table."""


class DatabaseUnavailableError(PatternError):
    """No PostgreSQL server could be found or started for tests or benchmarks."""


class MissingExtensionError(DatabaseUnavailableError):
    """A server was found, but it lacks a PostgreSQL extension that is required."""


class DDLError(PatternError):
    """A schema object from :mod:`pgpatterns.ddl` is declared wrongly (missing dependency,
    name collision, invalid option); raised before any SQL is sent."""


class DDLDependencyError(DDLError):
    """A schema object depends on one that is not attached, or dependencies form a cycle."""


class DDLNameError(DDLError):
    """Two schema objects attached to the same MetaData declare the same database object."""


class DDLNameLengthError(DDLNameError):
    """A name pgpatterns would create is longer than PostgreSQL's 63 bytes, so PostgreSQL
    would truncate it (and two names could become one); shorten it or pass ``name=``."""


class DDLOptionError(DDLError):
    """A schema object was given an unknown option or an unsafe combination of options."""


class ExplainError(PatternError):
    """A plan could not be produced or read by :mod:`pgpatterns.explain`."""


class GeoError(PatternError):
    """A :mod:`pgpatterns.geo` helper got an argument it cannot use (negative distance,
    ``k <= 0``, a column that is not spatial, a distance in meters on a degree column)."""


class GeoCoordinateError(GeoError):
    """A coordinate or shape is invalid: out of range, swapped (lat, lon), NaN, or not valid."""


class GeoSRIDError(GeoError):
    """A query geometry's SRID differs from the column's, or is missing."""


class GeoIndexError(GeoError):
    """A spatial column is declared with no spatial index or with more than one."""


class RLSError(PatternError):
    """Row-level security (:mod:`pgpatterns.rls`) is declared or used wrongly."""


class RLSExpressionError(RLSError):
    """A policy expression builder got an expression it cannot make fast or safe."""


class RLSPolicyError(RLSError):
    """A policy is declared wrongly: no roles, a role that does not exist, RLS not enabled."""


class RLSContextError(RLSError):
    """Request context (tenant/user settings) set outside a transaction or with a bad value."""


class TenantIsolationError(RLSError):
    """A declaration would let one tenant read, write or reference another tenant's rows (a
    link table, foreign key, partition, view or copy outside the tenant policy)."""


class RLSViewError(RLSError):
    """A view over row-level-secured tables would bypass their policies."""


class AssociationError(PatternError):
    """A many-to-many from :mod:`pgpatterns.associations` is declared or used wrongly."""


class LinkConcurrentUpdateError(AssociationError, ConcurrentUpdateError):
    """``sync``/``link``/``unlink`` lost a race at REPEATABLE READ or SERIALIZABLE; retry the
    transaction."""


class UnknownLinkTargetError(AssociationError):
    """``link()``/``sync()`` named ids that do not exist; ``missing`` lists them."""

    def __init__(self, message: str, missing: tuple[object, ...] = ()) -> None:
        super().__init__(message)
        self.missing = missing


class TreeError(PatternError):
    """A tree from :mod:`pgpatterns.trees` was used wrongly (raised before anything is written)."""


class TreeOptionError(TreeError):
    """A tree model or query builder was given an invalid option (``max_depth < 0``, ...)."""


class TreeNodeNotFoundError(TreeError):
    """A node id given to a tree action does not exist (in the given scope)."""


class TreeHasChildrenError(TreeError):
    """A node with children cannot be deleted: its model is ``on_delete="restrict"``."""


class TreeCycleError(TreeError):
    """A move or insert would make a node its own ancestor (checked in Python and by trigger)."""


class TreeConcurrentUpdateError(TreeError, ConcurrentUpdateError):
    """A move lost a race with a concurrent move at REPEATABLE READ or SERIALIZABLE (its
    snapshot predates the other move's commit); retry the transaction."""


class TreeScopeError(TreeError):
    """A node would get a parent from another scope (e.g. another tenant's tree)."""


class JsonbError(PatternError):
    """A :mod:`pgpatterns.jsonb` helper was given a path, value or option it cannot serve."""


class JsonbPathError(JsonbError):
    """A JSON path is malformed, or is not declared in a :class:`JsonbDocument`'s fields."""


class JsonbOperatorClassError(JsonbError):
    """The GIN operator class declared for a JSONB column cannot serve the requested operator."""


class JsonbSchemaError(JsonbError):
    """A JSON Schema uses keywords outside the subset :func:`jsonb_schema_check` compiles."""


class JsonbSchemaViolationError(JsonbError):
    """A document was rejected by a JSON-schema CHECK constraint (the original is __cause__)."""


class ArrayError(PatternError):
    """A :mod:`pgpatterns.arrays` helper was given a column or value it cannot serve."""


class IndexUsageError(PatternError):
    """A statement filters a table with a predicate that none of its indexes can serve."""


class VectorError(PatternError):
    """A :mod:`pgpatterns.vector` helper was declared or called wrongly."""


class VectorSpecError(VectorError):
    """A :class:`~pgpatterns.vector.VectorSpec` combines a metric, storage, index or
    quantization that pgvector cannot index or query (raised at declaration time)."""


class VectorQueryError(VectorError):
    """A vector search got bad input: wrong dimension, NaN/inf, a zero vector under cosine,
    ``k <= 0``, ``ef_search < k``; raised before any SQL is sent."""


class PolymorphicError(PatternError):
    """A :mod:`pgpatterns.polymorphic` hierarchy or association is declared or used wrongly
    (missing identity, unknown discriminator, unregistered target type, two targets)."""


class PolymorphicIntegrityError(PolymorphicError):
    """The database rejected a polymorphic row (a generated CHECK or guard trigger); the
    original database error is ``__cause__``."""


class ColumnError(PatternError):
    """A :mod:`pgpatterns.columns` type or mixin got a value or option it would lose data on
    (a float or a fifth decimal place for :class:`~pgpatterns.columns.Money`, ...)."""


class ConstraintError(PatternError):
    """A :mod:`pgpatterns.constraints` factory was given columns or options it cannot use."""


class OverlapError(ConstraintError):
    """A row was rejected by a :func:`~pgpatterns.constraints.no_overlap` EXCLUDE constraint
    (SQLSTATE 23P01); ``constraint``, ``key`` and ``conflicting`` name the rows involved."""

    def __init__(
        self, message: str, *, constraint: str | None = None, key: str = "",
        conflicting: str = "",
    ) -> None:
        super().__init__(message)
        self.constraint = constraint
        self.key = key
        self.conflicting = conflicting


class IndexDefinitionError(PatternError):
    """A :mod:`pgpatterns.indexes` factory was given a column, operator class or option that
    PostgreSQL would reject or silently ignore."""


class DenormalizeError(PatternError):
    """A :mod:`pgpatterns.denormalize` copy or counter is declared wrongly (type mismatch,
    a foreign key that does not lead to the source, a counter without a default)."""


class ViewError(PatternError):
    """A view or materialized view from :mod:`pgpatterns.views` is declared or used wrongly."""


class ReadOnlyViewError(ViewError):
    """An ORM object mapped onto a view was added, changed or deleted; views are read-only."""


class ViewRefreshError(ViewError):
    """A refresh cannot run as asked (``CONCURRENTLY`` without a unique index on plain
    columns, a materialized view that does not exist)."""


class ViewReplaceError(ViewError):
    """A materialized view cannot be replaced safely (dependent views, an index that cannot
    be carried over); raised before anything is created or dropped."""


class ViewScheduleError(ViewError):
    """A refresh cannot be scheduled: pg_cron is missing or elsewhere, or a bad schedule."""


class PartitionError(PatternError):
    """A partitioned table from :mod:`pgpatterns.partitioning` is declared or maintained wrongly."""


class PartitionKeyError(PartitionError):
    """The partition key does not fit the table: a primary key or unique constraint without
    it, an expression key with unique constraints, an unknown column."""


class PartitionBoundsError(PartitionError):
    """Declared partitions overlap, leave gaps, or have bounds/intervals that do not fit."""


class PartitionRetentionError(PartitionError):
    """Retention would detach or drop a partition that still receives writes (or a bad keep)."""


class DefaultPartitionConflictError(PartitionError):
    """Rows in the default partition fall into a range that a new partition would cover."""


class PartmanError(PartitionError):
    """pg_partman is missing, too old, or cannot take over maintenance of a table."""


class ViewRLSError(RLSViewError, ViewError):
    """A view or materialized view from :mod:`pgpatterns.views` would show rows of a
    row-level-secured table with its owner's rights (every reader would see every tenant);
    raised at declaration. Catchable as :class:`RLSViewError` or :class:`ViewError`."""


class VectorArgumentError(VectorQueryError, ArgumentError):
    """A vector search argument of the wrong type or out of range (``k=2**63``, a raw SQL
    string as ``where``, a negative ``max_distance``); catchable as :class:`VectorQueryError`
    or :class:`ArgumentError`. Raised before any SQL is sent."""


class PartitionConcurrentUpdateError(PartitionError, ConcurrentUpdateError):
    """Partition maintenance lost a race it cannot resolve from its snapshot (REPEATABLE
    READ or SERIALIZABLE: a concurrent run created an overlapping partition under another
    name); retry the transaction. The original database error is ``__cause__``."""


class CitusDistributionError(DDLError):
    """A schema cannot be distributed by Citus as declared (a primary key, unique constraint
    or foreign key of a tenant-distributed table without the tenant column, a reference table
    pointing at a distributed one, a policy form Citus refuses); raised by
    :func:`pgpatterns.citus.distribute` before any SQL is sent."""


class IntegrityViolationError(PatternError):
    """The database refused a write by a constraint (SQLSTATE class 23), translated by
    :func:`translate`; ``sqlstate``, ``constraint``, ``table``, ``schema`` come from the
    error's diagnostics. The original database error is ``__cause__``."""

    def __init__(
        self, message: str, *, sqlstate: str | None = None, constraint: str | None = None,
        table: str | None = None, schema: str | None = None,
        columns: tuple[str, ...] = (), values: str | None = None,
    ) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
        self.constraint = constraint
        self.table = table
        self.schema = schema
        self.columns = columns
        self.values = values


class UniqueViolationError(IntegrityViolationError):
    """A duplicate key (SQLSTATE 23505): ``columns`` and ``values`` (as PostgreSQL reports
    them, ``values`` is None when the role may not see them) name the existing key."""


class ForeignKeyViolationError(IntegrityViolationError):
    """A missing reference (SQLSTATE 23503): ``still_referenced`` is False when the row
    points at a key ``other_table`` lacks, True when a deleted/changed key is still
    referenced from ``other_table``."""

    still_referenced = False
    other_table: str | None = None


class CheckViolationError(IntegrityViolationError):
    """A CHECK constraint refused a row (SQLSTATE 23514); ``rule`` names the pgpatterns
    rule when the constraint has a name pgpatterns generates (``positive``, ``one_of``...)."""

    rule: str | None = None


class NotNullViolationError(IntegrityViolationError):
    """A NULL in a NOT NULL column (SQLSTATE 23502); ``columns`` holds that column."""


class RowSecurityError(RLSError):
    """A row-level security policy refused a written row (SQLSTATE 42501, "new row violates
    row-level security policy"): usually a row for another tenant than the context's.
    ``table`` names the table; the original database error is ``__cause__``."""

    def __init__(self, message: str, *, table: str | None = None) -> None:
        super().__init__(message)
        self.table = table


def translate() -> AbstractContextManager[None]:
    """Turn database refusals inside the block into typed errors (see :mod:`pgpatterns.translate`).

    Examples:
        >>> with translate():  # doctest: +SKIP
        ...     session.flush()  # or: await session.flush()

    Kept out of ``__all__``, which lists the exception classes only.
    """
    from pgpatterns.translate import translate as _translate

    return _translate()


class PaginationError(PatternError):
    """A keyset pagination request that cannot page correctly (an order that is not total,
    a nullable sort column, a statement that already has ORDER BY/LIMIT, a weak secret);
    raised by :mod:`pgpatterns.pagination` before any SQL is sent."""


class CursorError(PaginationError):
    """A pagination cursor that was altered, signed with another secret, or issued for
    another ordering; raised before any SQL is sent. Answer it like a bad request (HTTP 400)
    and let the client start again from the first page."""
