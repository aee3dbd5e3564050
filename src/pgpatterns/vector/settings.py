"""Search settings: validated, applied transaction-locally with ``set_config``."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Literal, TypeAlias

from sqlalchemy import Select, func, select
from sqlalchemy import true as sql_true

from pgpatterns.errors import VectorArgumentError, VectorQueryError
from pgpatterns.vector.spec import VectorSpec

__all__ = [
    "BIGINT_MAX", "INT_MAX", "Iterative", "check_flag", "check_k", "effective_iterative",
    "pool_size", "search_settings", "settings_stmt",
]

Iterative: TypeAlias = Literal["auto", "strict", "relaxed", "off"]

_MAX_EF_SEARCH = 1000
BIGINT_MAX = 2**63 - 1
INT_MAX = 2**31 - 1


def check_k(name: str, value: object, hi: int = BIGINT_MAX) -> int:
    """``value`` if it is an ``int`` (not a ``bool``) from 1 to ``hi`` (``LIMIT``'s bigint).

    Raises:
        VectorArgumentError: anything else, before any SQL is sent.
    """
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= hi:
        raise VectorArgumentError(
            f"{name} must be a positive int (1 to {hi}), got {value!r:.80}: PostgreSQL's "
            "LIMIT and settings take bounded integers. Pass an int in that range.",
            argument=name, given=value,
        )
    return value


def check_flag(name: str, value: object) -> bool:
    """``value`` if it is a ``bool`` (``exact=`` and friends), else :class:`VectorArgumentError`."""
    if not isinstance(value, bool):
        raise VectorArgumentError(
            f"{name}={value!r:.80} is not accepted: pass True or False.",
            argument=name, given=value,
        )
    return value


def effective_iterative(spec: VectorSpec, iterative: Iterative, filtered: bool) -> str:
    """``off``/``strict``/``relaxed`` after resolving ``auto`` and checking the index."""
    if not isinstance(iterative, str) or iterative not in ("auto", "strict", "relaxed", "off"):
        raise VectorArgumentError(
            f"iterative={iterative!r:.80}: use 'auto', 'strict', 'relaxed' or 'off'.",
            argument="iterative", given=iterative,
        )
    if spec.index is None:
        return "off"
    if iterative == "auto":
        return "relaxed" if filtered else "off"
    if iterative == "strict" and spec.index == "ivfflat":
        raise VectorQueryError(
            "iterative='strict' needs an hnsw index: ivfflat scans only support relaxed "
            "order. Use iterative='relaxed' (results are re-sorted) or 'auto'."
        )
    return iterative


def pool_size(spec: VectorSpec, k: int, candidates: int | None) -> int:
    """How many rows the index returns before re-ranking (``k`` when nothing is re-ranked)."""
    if candidates is not None:
        check_k("candidates", candidates)
        if spec.quantize is None:
            raise VectorQueryError(
                "candidates= is the re-ranking pool of a quantized spec, but this spec has "
                "quantize=None: its distances are already exact. Drop candidates."
            )
        if candidates < k:
            raise VectorQueryError(f"candidates={candidates} is smaller than k={k}: use >= k.")
        return candidates
    if spec.quantize is None:
        return k
    # One bit per dimension ranks far more coarsely than halfvec: a much wider pool. The
    # vector benchmark (10^5 vectors, 384 dims, recall@10 after re-ranking, pools 40 / 80 /
    # 160 / 320): all-MiniLM-L6-v2 embeddings of real texts 0.87 / 0.94 / 0.97 / 0.98, the
    # benchmark's mixture 0.66 / 0.87 / 0.96 / 0.98; halfvec at 40 was 0.96 and 0.93.
    factor, floor = (16, 160) if spec.quantize == "binary" else (4, 40)
    return max(min(factor * k, _MAX_EF_SEARCH), floor, k)  # an HNSW scan returns <= 1000


def search_settings(
    spec: VectorSpec,
    k: int,
    *,
    filtered: bool = False,
    ef_search: int | None = None,
    probes: int | None = None,
    iterative: Iterative = "auto",
    max_scan_tuples: int | None = None,
    exact: bool = False,
    candidates: int | None = None,
) -> dict[str, str]:
    """The transaction-local settings :func:`nearest` applies, validated.

    Examples:
        >>> search_settings(VectorSpec(3), 10, filtered=True, ef_search=80)
        {'plan_cache_mode': 'force_custom_plan', 'hnsw.iterative_scan': 'relaxed_order', 'hnsw.ef_search': '80'}

    Empty for an unfiltered, untuned search (no round trip). With a filter,
    ``plan_cache_mode`` is forced to custom plans: after five executions psycopg prepares a
    statement, and a generic plan (estimated without the filter's values) may abandon the
    vector index. See :func:`nearest` for the arguments.
    """  # noqa: E501
    check_k("k", k)
    check_flag("exact", exact)
    pool = pool_size(spec, k, candidates)
    mode = effective_iterative(spec, iterative, filtered)
    settings: dict[str, str] = {}
    if filtered:
        # A generic plan is estimated without the filter's values: it may pick the wrong
        # index (or none) once psycopg has prepared the statement. Plan each call instead.
        settings["plan_cache_mode"] = "force_custom_plan"
    # Unfiltered and untuned, nothing is set: one round trip, and LIMIT k is a literal, so
    # even a generic plan keeps the index.
    explicit = filtered or iterative != "auto"
    if exact or spec.index is None:
        for name, value in (("ef_search", ef_search), ("probes", probes)):
            if value is not None:
                raise VectorQueryError(f"{name} tunes an index scan; drop it with exact=True.")
        return settings
    if spec.index == "hnsw":
        if probes is not None:
            raise VectorQueryError("probes is an ivfflat setting; this spec's index is hnsw.")
        if explicit:
            settings["hnsw.iterative_scan"] = {"off": "off"}.get(mode, f"{mode}_order")
        if ef_search is not None:
            check_k("ef_search", ef_search)
            if ef_search < pool or ef_search > _MAX_EF_SEARCH:
                what = f"k={k}" if pool == k else f"the re-ranking pool ({pool})"
                raise VectorQueryError(
                    f"ef_search={ef_search} must be between {what} and {_MAX_EF_SEARCH}: an "
                    "HNSW scan returns at most ef_search rows (without iterative scans), so "
                    f"fewer than {pool} would come back. Raise ef_search."
                )
            settings["hnsw.ef_search"] = str(ef_search)
        elif pool > 40:
            settings["hnsw.ef_search"] = str(min(pool, _MAX_EF_SEARCH))
        if max_scan_tuples is not None:
            settings["hnsw.max_scan_tuples"] = str(
                check_k("max_scan_tuples", max_scan_tuples, INT_MAX))
    else:
        if ef_search is not None or max_scan_tuples is not None:
            raise VectorQueryError(
                "ef_search and max_scan_tuples are hnsw settings; this spec's index is "
                "ivfflat: use probes= (and iterative=) instead."
            )
        if explicit:
            settings["ivfflat.iterative_scan"] = "relaxed_order" if mode != "off" else "off"
        if probes is not None:
            if check_k("probes", probes, INT_MAX) > spec.lists:
                raise VectorQueryError(
                    f"probes={probes} exceeds lists={spec.lists}: at most every list is probed."
                )
            settings["ivfflat.probes"] = str(probes)
    return settings


def settings_stmt(settings: Mapping[str, str]) -> Select[Any] | None:
    """``SELECT set_config(name, value, true), ...`` for ``settings`` (None when empty).

    Names and values are bind parameters; ``is_local => true`` reverts them when the
    transaction ends. Statements are cached by their settings: one object per combination
    keeps SQLAlchemy's cache key memoized, so a repeated search does not rebuild it.
    """
    if not settings:
        return None
    return _settings_select(tuple(settings.items()))


@lru_cache(maxsize=256)
def _settings_select(items: tuple[tuple[str, str], ...]) -> Select[Any]:
    return select(*(func.set_config(name, value, sql_true()) for name, value in items))
