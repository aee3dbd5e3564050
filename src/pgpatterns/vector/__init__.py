"""Vector search with pgvector: one spec for column, index and query; filtered, re-ranked and
hybrid search; recall and index-build measurement.

Examples:
    >>> from pgpatterns.vector import VectorSpec
    >>> spec = VectorSpec(384, metric="cosine", index="hnsw", m=16, ef_construction=64)
    >>> spec.opclass
    'vector_cosine_ops'

Declare a column with :meth:`VectorSpec.mapped_column` and its index with
:meth:`VectorSpec.index_on`; search with :func:`nearest` (:func:`nearest_async`), which orders
by the exact expression the index was built on, turns on iterative scans for filtered
searches, re-ranks quantized indexes, and applies its settings with ``set_config(..., true)``.
:func:`hybrid_search` fuses full-text and vector rankings (RRF). :func:`recall_at_k`,
:func:`tune_ef_search`, :func:`index_build_report` and :func:`check_vector_setup` measure.
The column types and distance operators are pgvector-python's (``pgvector.sqlalchemy``).

Warning:
    Needs the ``vector`` extension: 0.7 for halfvec/bit/sparsevec and ``binary_quantize``,
    0.8 for iterative scans, 0.8.2 recommended (parallel HNSW build fix).
"""

from __future__ import annotations

from pgpatterns.vector.hybrid import (
    HybridHit,
    hybrid_search,
    hybrid_search_async,
    hybrid_search_stmt,
)
from pgpatterns.vector.measure import (
    EfSearchPoint,
    EfSearchTuning,
    IndexBuildReport,
    VectorSetup,
    VectorSetupWarning,
    check_vector_setup,
    check_vector_setup_async,
    index_build_report,
    index_build_report_async,
    recall_at_k,
    recall_at_k_async,
    tune_ef_search,
    tune_ef_search_async,
)
from pgpatterns.vector.search import (
    Iterative,
    Neighbor,
    nearest,
    nearest_async,
    nearest_stmt,
    search_settings,
)
from pgpatterns.vector.spec import IndexMethod, Metric, Quantize, Storage, VectorSpec

__all__ = [
    "EfSearchPoint",
    "EfSearchTuning",
    "HybridHit",
    "IndexBuildReport",
    "IndexMethod",
    "Iterative",
    "Metric",
    "Neighbor",
    "Quantize",
    "Storage",
    "VectorSetup",
    "VectorSetupWarning",
    "VectorSpec",
    "check_vector_setup",
    "check_vector_setup_async",
    "hybrid_search",
    "hybrid_search_async",
    "hybrid_search_stmt",
    "index_build_report",
    "index_build_report_async",
    "nearest",
    "nearest_async",
    "nearest_stmt",
    "recall_at_k",
    "recall_at_k_async",
    "search_settings",
    "tune_ef_search",
    "tune_ef_search_async",
]
