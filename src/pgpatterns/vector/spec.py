"""VectorSpec: one declaration for a vector column, its index and its distance expression."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, get_args

import numpy as np
from pgvector import Bit, SparseVector
from pgvector.sqlalchemy import BIT, HALFVEC, SPARSEVEC, VECTOR
from sqlalchemy import Column, Index, bindparam, cast, func
from sqlalchemy.orm import MappedColumn, mapped_column
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeEngine

from pgpatterns.errors import VectorArgumentError, VectorQueryError, VectorSpecError

__all__ = ["IndexMethod", "Metric", "Quantize", "Storage", "VectorSpec"]

Metric: TypeAlias = Literal["cosine", "l2", "inner_product", "l1", "hamming", "jaccard"]
Storage: TypeAlias = Literal["vector", "halfvec", "bit", "sparsevec"]
IndexMethod: TypeAlias = Literal["hnsw", "ivfflat"]
Quantize: TypeAlias = Literal["halfvec", "binary"]

INFO_KEY = "pgpatterns.vector"
"""``Column.info`` key under which :meth:`VectorSpec.column` records its spec."""

_FLOAT_METRICS = ("l2", "inner_product", "cosine", "l1")
_METRICS: dict[str, tuple[str, ...]] = {
    "vector": _FLOAT_METRICS,
    "halfvec": _FLOAT_METRICS,
    "sparsevec": _FLOAT_METRICS,
    "bit": ("hamming", "jaccard"),
}
# Operator classes pgvector ships, per access method (pgvector 0.7+: halfvec, bit, sparsevec, l1).
_IVFFLAT_OPS = {("vector", m) for m in ("l2", "inner_product", "cosine")} | {
    ("halfvec", m) for m in ("l2", "inner_product", "cosine")
} | {("bit", "hamming")}
_OPS_SUFFIX = {
    "l2": "l2_ops", "inner_product": "ip_ops", "cosine": "cosine_ops", "l1": "l1_ops",
    "hamming": "hamming_ops", "jaccard": "jaccard_ops",
}
# pgvector-python's comparator method for each metric.
COMPARATOR = {
    "l2": "l2_distance", "inner_product": "max_inner_product", "cosine": "cosine_distance",
    "l1": "l1_distance", "hamming": "hamming_distance", "jaccard": "jaccard_distance",
}
_TYPE_MAX_DIM = {"vector": 16_000, "halfvec": 16_000, "bit": 83_886_080, "sparsevec": 1_000_000_000}
_INDEX_MAX_DIM = {"vector": 2_000, "halfvec": 4_000, "bit": 64_000}
_HALF_MAX = 65504.0
_FLOAT4_MAX = float(np.finfo(np.float32).max)


def _sql_type(storage: str, dim: int) -> TypeEngine[Any]:
    types: dict[str, Any] = {
        "vector": VECTOR, "halfvec": HALFVEC, "bit": BIT, "sparsevec": SPARSEVEC,
    }
    return types[storage](dim)  # type: ignore[no-any-return]


def _choice(name: str, value: object, allowed: Sequence[object]) -> None:
    if value not in allowed:
        raise VectorSpecError(
            f"VectorSpec {name}={value!r} is not one pgvector supports: use one of "
            f"{', '.join(repr(a) for a in allowed)}."
        )


@dataclass(frozen=True)
class VectorSpec:
    """The one declaration a vector column, its index and every query share.

    Examples:
        >>> spec = VectorSpec(384, metric="cosine")
        >>> spec.opclass, spec.index_with
        ('vector_cosine_ops', {'m': 16, 'ef_construction': 64})
        >>> VectorSpec(3072, quantize="halfvec").opclass  # 3072 dims: index as halfvec
        'halfvec_cosine_ops'

    Declare the column with :meth:`mapped_column` (or :meth:`column`) and its index with
    :meth:`index_on`; :func:`pgpatterns.vector.nearest` finds the spec on the column and orders
    by :meth:`distance`, the exact expression the index was built on — so the two cannot
    drift apart (an expression index on ``embedding::halfvec(n)`` is only used by a query
    that repeats that expression).

    Warning:
        Needs pgvector 0.7 (halfvec, bit, sparsevec, l1) and 0.8 for iterative scans (what
        makes filtered searches return ``k`` rows). NULL vectors are not indexed, nor are
        zero vectors under cosine: such rows are never returned by an index scan.

    Attributes:
        dim: Dimensions of the column (bits for ``storage="bit"``).
        metric: Distance the index orders by; ``hamming``/``jaccard`` need ``storage="bit"``.
        storage: Column type: ``vector`` (float4), ``halfvec`` (float2), ``bit``, ``sparsevec``.
        index: ``"hnsw"`` (default), ``"ivfflat"`` or ``None`` (exact search only).
        m: HNSW connections per node (2..100, default 16).
        ef_construction: HNSW build candidate list (4..1000, >= 2*m, default 64).
        lists: IVFFlat lists (1..32768, default 100; rows/1000 is a good start).
        quantize: Index a compressed copy: ``"halfvec"`` (half the size, up to 4000 dims) or
            ``"binary"`` (``binary_quantize``, hamming index, results re-ranked with
            ``metric`` on the full vectors).
    """

    dim: int
    metric: Metric = "cosine"
    storage: Storage = "vector"
    index: IndexMethod | None = "hnsw"
    m: int = 16
    ef_construction: int = 64
    lists: int = 100
    quantize: Quantize | None = None

    def __post_init__(self) -> None:
        _choice("storage", self.storage, get_args(Storage))
        _choice("metric", self.metric, get_args(Metric))
        _choice("index", self.index, (*get_args(IndexMethod), None))
        _choice("quantize", self.quantize, (*get_args(Quantize), None))
        for name in ("dim", "m", "ef_construction", "lists"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise VectorSpecError(f"VectorSpec {name} must be an int, got {value!r}.")
        if not 1 <= self.dim <= _TYPE_MAX_DIM[self.storage]:
            raise VectorSpecError(
                f"VectorSpec dim={self.dim} is out of range for {self.storage}: pgvector "
                f"allows 1..{_TYPE_MAX_DIM[self.storage]} dimensions. Fix dim."
            )
        if self.metric not in _METRICS[self.storage]:
            bits = self.metric in ("hamming", "jaccard")
            hint = "storage='bit'" if bits else "storage='vector' (or halfvec, sparsevec)"
            raise VectorSpecError(
                f"metric {self.metric!r} does not apply to storage {self.storage!r}: "
                f"{self.storage} supports {', '.join(_METRICS[self.storage])}. Use {hint} "
                "or another metric."
            )
        self._check_quantize()
        self._check_index()

    def _check_quantize(self) -> None:
        if self.quantize is None:
            return
        if self.index is None:
            raise VectorSpecError(
                f"quantize={self.quantize!r} without an index does nothing: quantization "
                "only shapes the index. Set index='hnsw' or drop quantize."
            )
        allowed = ("vector",) if self.quantize == "halfvec" else ("vector", "halfvec")
        if self.storage not in allowed:
            raise VectorSpecError(
                f"quantize={self.quantize!r} needs storage {' or '.join(allowed)}, got "
                f"{self.storage!r}: pgvector quantizes float vectors only."
            )

    def _check_index(self) -> None:
        if self.index is None:
            return
        indexed, metric = self.index_storage, self.index_metric
        limit = _INDEX_MAX_DIM.get(indexed)
        if limit is not None and self.dim > limit:
            hint = (
                " Use quantize='halfvec' (up to 4000) or quantize='binary'."
                if indexed == "vector" else " Reduce dim or use quantize='binary'."
            )
            raise VectorSpecError(
                f"{self.index} cannot index {indexed} with {self.dim} dimensions: pgvector "
                f"indexes at most {limit}.{hint}"
            )
        if self.index == "ivfflat" and (indexed, metric) not in _IVFFLAT_OPS:
            raise VectorSpecError(
                f"ivfflat has no operator class for {indexed} with {metric!r} (it supports "
                "l2/inner_product/cosine on vector and halfvec, hamming on bit). Use "
                "index='hnsw'."
            )
        if self.index == "hnsw":
            if not 2 <= self.m <= 100:
                raise VectorSpecError(f"hnsw m={self.m} is out of range: use 2..100 (16).")
            if not 4 <= self.ef_construction <= 1000 or self.ef_construction < 2 * self.m:
                raise VectorSpecError(
                    f"hnsw ef_construction={self.ef_construction} is invalid with m={self.m}:"
                    " pgvector needs 4..1000 and at least 2*m. Use e.g. 64 or 4*m."
                )
        elif not 1 <= self.lists <= 32_768:
            raise VectorSpecError(f"ivfflat lists={self.lists} is out of range: use 1..32768.")

    # --- declaration -----------------------------------------------------------------

    @property
    def column_type(self) -> TypeEngine[Any]:
        """pgvector-python's SQLAlchemy type for the column, e.g. ``VECTOR(384)``."""
        return _sql_type(self.storage, self.dim)

    @property
    def index_storage(self) -> Storage:
        """The type the index stores: ``storage``, or the quantized type."""
        if self.quantize == "binary":
            return "bit"
        return "halfvec" if self.quantize == "halfvec" else self.storage

    @property
    def index_metric(self) -> Metric:
        """The metric the index orders by (``hamming`` for binary quantization)."""
        return "hamming" if self.quantize == "binary" else self.metric

    @property
    def opclass(self) -> str:
        """The operator class of the index, e.g. ``halfvec_cosine_ops``."""
        return f"{self.index_storage}_{_OPS_SUFFIX[self.index_metric]}"

    @property
    def index_with(self) -> dict[str, int]:
        """The index's ``WITH (...)`` storage parameters."""
        if self.index == "hnsw":
            return {"m": self.m, "ef_construction": self.ef_construction}
        return {"lists": self.lists} if self.index == "ivfflat" else {}

    def column(self, name: str, **kw: Any) -> Column[Any]:
        """A Core ``Column`` of this type that remembers the spec (``Column.info``).

        Examples:
            >>> VectorSpec(3).column("embedding").type
            VECTOR(dim=3)
        """
        info = {**kw.pop("info", {}), INFO_KEY: self}
        return Column(name, self.column_type, info=info, **kw)

    def mapped_column(self, *args: Any, **kw: Any) -> MappedColumn[Any]:
        """A declarative ``mapped_column()`` of this type that remembers the spec.

        Examples:
            >>> col = VectorSpec(3).mapped_column(nullable=False)
            >>> col.column.info["pgpatterns.vector"]
            VectorSpec(dim=3, metric='cosine', storage='vector', index='hnsw', m=16, ef_construction=64, lists=100, quantize=None)
        """  # noqa: E501
        info = {**kw.pop("info", {}), INFO_KEY: self}
        if args and isinstance(args[0], str):  # mapped_column("db_name", type, ...)
            return mapped_column(args[0], self.column_type, *args[1:], info=info, **kw)
        return mapped_column(self.column_type, *args, info=info, **kw)

    def index_expression(self, column: ColumnElement[Any]) -> ColumnElement[Any]:
        """What the index is built on: the column, or its quantized cast."""
        if self.quantize == "halfvec":
            return cast(column, HALFVEC(self.dim))
        if self.quantize == "binary":
            return cast(func.binary_quantize(column), BIT(self.dim))
        return column

    def index_on(self, column: Any, *, name: str | None = None) -> Index:
        """The ``Index`` for ``column``, with operator class and ``WITH`` parameters.

        Examples:
            >>> from sqlalchemy import MetaData, Table, Integer, Column
            >>> from sqlalchemy.dialects import postgresql
            >>> from sqlalchemy.schema import CreateIndex
            >>> spec = VectorSpec(3, quantize="halfvec")
            >>> t = Table("docs", MetaData(), Column("id", Integer), spec.column("embedding"))
            >>> print(CreateIndex(spec.index_on(t.c.embedding)).compile(dialect=postgresql.dialect()))
            CREATE INDEX docs_embedding_hnsw_halfvec_idx ON docs USING hnsw (CAST(embedding AS HALFVEC(3)) halfvec_cosine_ops) WITH (m = 16, ef_construction = 64)

        Args:
            column: The ``Column`` or mapped attribute (``Doc.embedding``); the index joins
                its table's ``MetaData``. Call it after the class body for declarative models.
            name: Index name; default ``<table>_<column>_<method>[_<quantize>]_idx``.

        Raises:
            VectorSpecError: the spec has ``index=None``, or ``column`` is not a table column.
        """  # noqa: E501
        if self.index is None:
            raise VectorSpecError(
                "this VectorSpec has index=None, so there is no index to declare: set "
                "index='hnsw' (or 'ivfflat')."
            )
        col = getattr(column, "expression", column)
        table = getattr(col, "table", None)
        if not isinstance(col, Column) or table is None:
            raise VectorSpecError(
                f"VectorSpec.index_on() needs a table column (Doc.embedding or table.c.embedding),"
                f" got {column!r}. Declare the index after the model class."
            )
        if name is None:
            suffix = f"_{self.quantize}" if self.quantize else ""
            name = f"{table.name}_{col.name}_{self.index}{suffix}_idx"
        expr = self.index_expression(col)
        # postgresql_ops is keyed by column name, or by the label of an expression: a wrong
        # key silently drops the operator class (pgvector-python #65), so build both here.
        key = col.name if expr is col else f"{col.name}_{self.quantize}"
        element = expr if expr is col else expr.label(key)
        return Index(
            name, element, postgresql_using=self.index, postgresql_with=self.index_with,
            postgresql_ops={key: self.opclass}, info={INFO_KEY: self},
        )

    # --- queries -----------------------------------------------------------------------

    def query_param(self, value: Any, *, name: str = "query_vector") -> ColumnElement[Any]:
        """A validated bind parameter for a query vector (see :meth:`check_query`)."""
        return bindparam(name, self.check_query(value), type_=self.column_type)

    def distance(self, column: ColumnElement[Any], query: ColumnElement[Any]) -> ColumnElement[Any]:
        """The distance the index orders by: ``ORDER BY`` this, ascending, with ``LIMIT``.

        Examples:
            >>> from sqlalchemy import column
            >>> from sqlalchemy.dialects import postgresql
            >>> spec = VectorSpec(3, quantize="binary", metric="l2")
            >>> q = spec.query_param([1, -2, 3])
            >>> print(spec.distance(column("embedding"), q).compile(dialect=postgresql.dialect()))
            CAST(binary_quantize(embedding) AS BIT(3)) <~> binary_quantize(CAST(%(query_vector)s AS VECTOR(3)))
        """  # noqa: E501
        if self.quantize == "halfvec":
            query = cast(query, HALFVEC(self.dim))
        elif self.quantize == "binary":
            query = func.binary_quantize(cast(query, _sql_type(self.storage, self.dim)))
        expr = self.index_expression(column)
        return getattr(expr.comparator, COMPARATOR[self.index_metric])(query)  # type: ignore[no-any-return]

    def exact_distance(
        self, column: ColumnElement[Any], query: ColumnElement[Any]
    ) -> ColumnElement[Any]:
        """The full-precision distance under ``metric`` (what re-ranking and results use)."""
        return getattr(column.comparator, COMPARATOR[self.metric])(query)  # type: ignore[no-any-return]

    def check_query(self, value: Any) -> Any:
        """Validate a query vector and return it in the form the column type binds.

        Examples:
            >>> VectorSpec(2).check_query([0, 0])
            Traceback (most recent call last):
            ...
            pgpatterns.errors.VectorQueryError: the query vector is all zeros: its cosine distance to every row is undefined (NaN) and zero vectors are not indexed. Skip the search or use metric='l2'/'inner_product'.

        Raises:
            VectorQueryError: wrong dimension, NaN/inf or out-of-range values, a zero vector
                under cosine (or jaccard), or a value of the wrong kind.
        """  # noqa: E501
        if self.storage == "bit":
            return self._check_bits(value)
        if self.storage == "sparsevec":
            return self._check_sparse(value)
        return self._check_dense(value)

    def _check_dim(self, got: int) -> None:
        if got != self.dim:
            raise VectorQueryError(
                f"the query vector has {got} dimensions but the column has {self.dim}: a "
                "different embedding model or a truncated vector? Embed the query with the "
                "model that produced the column."
            )

    def _check_dense(self, value: Any) -> Any:
        if isinstance(value, (str, bytes, dict)) or value is None:
            raise VectorQueryError(
                f"the query vector must be a sequence of numbers or a numpy array, got "
                f"{type(value).__name__}."
            )
        if hasattr(value, "to_numpy"):
            value = value.to_numpy()
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise VectorQueryError(f"the query vector is not numeric: {exc}.") from exc
        if arr.ndim != 1:
            raise VectorQueryError(
                f"the query vector must be one-dimensional, got shape {arr.shape}: search "
                "one vector per call."
            )
        self._check_dim(arr.shape[0])
        self._check_finite(arr)
        return arr.astype(np.float32)

    def _check_finite(self, arr: Any) -> None:
        if not np.isfinite(arr).all():
            raise VectorQueryError(
                "the query vector contains NaN or infinity: distances would be undefined. "
                "Check the embedding model's output."
            )
        limit = _HALF_MAX if self.index_storage == "halfvec" or self.storage == "halfvec" else (
            _FLOAT4_MAX
        )
        if arr.size and float(np.abs(arr).max()) > limit:
            raise VectorQueryError(
                f"the query vector has a value beyond ±{limit:g}, which overflows "
                f"{'halfvec' if limit == _HALF_MAX else 'float4'}. Normalize the vector."
            )
        if self.metric == "cosine" and not arr.any():
            raise VectorQueryError(
                "the query vector is all zeros: its cosine distance to every row is "
                "undefined (NaN) and zero vectors are not indexed. Skip the search or use "
                "metric='l2'/'inner_product'."
            )

    def _check_sparse(self, value: Any) -> Any:
        if not isinstance(value, SparseVector):
            value = SparseVector(self._check_dense(value))
        self._check_dim(value.dimensions())
        self._check_finite(np.asarray(value.values(), dtype=np.float64))
        return value

    def _check_bits(self, value: Any) -> str:
        if isinstance(value, Bit):
            text = value.to_text()
        elif isinstance(value, str):
            text = value
        elif isinstance(value, (bytes, dict)) or value is None:
            raise VectorQueryError(
                f"a bit query must be a str of 0/1, a pgvector Bit or a sequence of bools, "
                f"got {type(value).__name__}."
            )
        else:
            text = "".join("1" if bool(v) else "0" for v in value)
        if set(text) - {"0", "1"}:
            raise VectorQueryError(f"a bit query may only hold 0 and 1, got {text[:40]!r}.")
        self._check_dim(len(text))
        if self.metric == "jaccard" and "1" not in text:
            raise VectorQueryError(
                "the query bits are all zero: the jaccard distance is undefined. Skip the "
                "search or use metric='hamming'."
            )
        return text


def finite_float(name: str, value: object) -> float:
    """A finite float option (e.g. ``max_distance``) or a :class:`VectorArgumentError`."""
    number = math.nan
    if not isinstance(value, bool) and isinstance(value, (int, float)):
        with contextlib.suppress(OverflowError):  # an int beyond float's range stays NaN
            number = float(value)
    if not math.isfinite(number):
        raise VectorArgumentError(
            f"{name} must be a finite number, got {value!r:.80}.", argument=name, given=value)
    return number
