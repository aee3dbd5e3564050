"""Turn declared partition specs into ``ddl.Partition`` objects, checking bounds first.

Examples:
    >>> from sqlalchemy import Column, Integer, MetaData, Table
    >>> from pgpatterns.partitioning import partition_by, range_partition
    >>> t = Table("m", MetaData(), Column("n", Integer))
    >>> partition_by(t, "range", "n", partitions=[range_partition(0, 10),
    ...                                          range_partition(5, 20)])
    Traceback (most recent call last):
    ...
    pgpatterns.errors.PartitionBoundsError: m: range partitions m_p0 [0, 10) and m_p5 ...
"""

from __future__ import annotations

import itertools
import re
from typing import TYPE_CHECKING, Any

from pgpatterns.ddl import MAXVALUE, MINVALUE, Partition
from pgpatterns.errors import PartitionBoundsError

if TYPE_CHECKING:
    from pgpatterns.partitioning.declare import PartitionScheme, Spec

__all__ = ["bound_key", "build_partitions", "show"]


def show(value: Any) -> str:
    """A bound for messages: ISO for dates, repr-free for the rest."""
    if value is MINVALUE or value is MAXVALUE:
        return repr(value)
    iso = getattr(value, "isoformat", None)
    return str(iso()) if callable(iso) else str(value)


def bound_key(value: Any, low_end: bool) -> tuple[int, Any]:
    """A sort key where MINVALUE < every value < MAXVALUE."""
    if value is MINVALUE:
        return (-1, 0)
    if value is MAXVALUE:
        return (1, 0)
    return (0, value)


def _slug(value: Any) -> str:
    text = re.sub(r"[^0-9A-Za-z]+", "_", show(value)).strip("_").lower()
    return text or "x"


def build_partitions(
    scheme: PartitionScheme, specs: list[Spec], *, allow_gaps: bool
) -> list[Partition]:
    """Validate ``specs`` against ``scheme`` and make the ``ddl.Partition`` objects."""
    from pgpatterns.partitioning.declare import (
        DefaultSpec,
        HashSpec,
        ListSpec,
        RangeSpec,
        coerce,
    )

    table, method = scheme.table, scheme.method
    owner = table.name
    wanted = {"range": RangeSpec, "list": ListSpec, "hash": HashSpec}[method]
    made: list[tuple[Any, Partition]] = []
    defaults = [s for s in specs if isinstance(s, DefaultSpec)]
    if len(defaults) > 1:
        raise PartitionBoundsError(f"{owner}: declare at most one default_partition().")
    if defaults and method == "hash":
        raise PartitionBoundsError(
            f"{owner}: a hash-partitioned table cannot have a default partition (every row "
            "hashes to some remainder); remove default_partition()."
        )
    for spec in specs:
        if isinstance(spec, DefaultSpec):
            continue
        if not isinstance(spec, wanted):
            raise PartitionBoundsError(
                f"{owner}: {type(spec).__name__} given for a {method}-partitioned table; "
                f"use {'range_partition' if method == 'range' else method + '_partition(s)'}."
            )
    if method == "range":
        if any(isinstance(s, RangeSpec) for s in specs) and len(scheme.key) != 1:
            raise PartitionBoundsError(
                f"{owner}: range_partition() takes single values, but the key has "
                f"{len(scheme.key) or 'an expression'} columns; declare those partitions "
                "with pgpatterns.ddl.Partition(range_=...) instead."
            )
        ranges = []
        for spec in specs:
            if isinstance(spec, RangeSpec):
                column = scheme.key_column
                low = coerce(column, spec.low, scheme.timezone)
                high = coerce(column, spec.high, scheme.timezone)
                ranges.append((low, high, spec.name))
        made += _ranges(scheme, ranges, allow_gaps)
    elif method == "list":
        seen: dict[Any, str] = {}
        for spec in specs:
            if not isinstance(spec, ListSpec):
                continue
            if not spec.values:
                raise PartitionBoundsError(f"{owner}: list_partition() needs at least one value.")
            name = spec.name or scheme.partition_name(_slug(spec.values[0]))
            for value in spec.values:
                if value in seen:
                    raise PartitionBoundsError(
                        f"{owner}: value {value!r} is in list partitions {seen[value]} and "
                        f"{name}; a row can go to one partition only, keep it in one."
                    )
                seen[value] = name
            made.append((None, Partition(name, table, list_=list(spec.values))))
    else:
        made += _hashes(scheme, [s for s in specs if isinstance(s, HashSpec)])
    for spec in defaults:
        name = spec.name or scheme.partition_name("default")
        made.append((None, Partition(name, table, default=True)))
    names = [p.name for _, p in made]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise PartitionBoundsError(
            f"{owner}: partition names {dupes} are used twice; pass distinct name= values."
        )
    return [p for _, p in made]


def _ranges(
    scheme: PartitionScheme, ranges: list[tuple[Any, Any, str | None]], allow_gaps: bool
) -> list[tuple[Any, Partition]]:
    owner = scheme.table.name
    named = []
    for low, high, name in ranges:
        label = "min" if low is MINVALUE else (
            scheme.interval.label(low) if scheme.interval else _slug(low)
        )
        part = name or scheme.partition_name(f"p{label}")
        try:
            ordered = bound_key(low, True) < bound_key(high, False)
        except TypeError as exc:
            raise PartitionBoundsError(
                f"{owner}: bounds {show(low)} and {show(high)} of {part} cannot be compared; "
                "give both as the same type (and both time-zone aware for timestamptz)."
            ) from exc
        if not ordered:
            raise PartitionBoundsError(
                f"{owner}: range partition {part} goes from {show(low)} to {show(high)}; the "
                "lower bound (included) must be below the upper bound (excluded)."
            )
        named.append((low, high, part))
    try:
        named.sort(key=lambda r: bound_key(r[0], True))
    except TypeError as exc:
        raise PartitionBoundsError(
            f"{owner}: range bounds mix types that cannot be compared; use one type."
        ) from exc
    for (low1, high1, n1), (low2, high2, n2) in itertools.pairwise(named):
        if bound_key(high1, False) > bound_key(low2, True):
            raise PartitionBoundsError(
                f"{owner}: range partitions {n1} [{show(low1)}, {show(high1)}) and {n2} "
                f"[{show(low2)}, {show(high2)}) overlap; a row may belong to one partition "
                f"only. Make {n2} start at {show(high1)} or later."
            )
        if bound_key(high1, False) < bound_key(low2, True) and not allow_gaps:
            raise PartitionBoundsError(
                f"{owner}: no partition covers [{show(high1)}, {show(low2)}) between {n1} and "
                f"{n2}; rows there would fail to insert (or land in the default partition). "
                f"Add range_partition({show(high1)!r}, {show(low2)!r}) or pass allow_gaps=True."
            )
    return [
        (low, Partition(name, scheme.table, range_=(low, high))) for low, high, name in named
    ]


def _hashes(scheme: PartitionScheme, specs: list[Any]) -> list[tuple[Any, Partition]]:
    owner = scheme.table.name
    out: list[tuple[Any, Partition]] = []
    seen: set[tuple[int, int]] = set()
    for spec in specs:
        if not 0 <= spec.remainder < spec.modulus:
            raise PartitionBoundsError(
                f"{owner}: hash remainder {spec.remainder} is not in [0, {spec.modulus}); "
                "use hash_partitions(n)."
            )
        if (spec.modulus, spec.remainder) in seen:
            raise PartitionBoundsError(
                f"{owner}: hash partition (modulus {spec.modulus}, remainder {spec.remainder}) "
                "is declared twice; use hash_partitions(n) once."
            )
        seen.add((spec.modulus, spec.remainder))
        name = spec.name or scheme.partition_name(f"h{spec.remainder}")
        part = Partition(name, scheme.table, hash_=(spec.modulus, spec.remainder))
        out.append((None, part))
    moduli = {m for m, _ in seen}
    if len(moduli) == 1:
        (modulus,) = moduli
        missing = sorted(set(range(modulus)) - {r for _, r in seen})
        if missing:
            raise PartitionBoundsError(
                f"{owner}: hash partitions with modulus {modulus} lack remainders {missing}; "
                f"rows hashing there would fail to insert. Use hash_partitions({modulus})."
            )
    return out
