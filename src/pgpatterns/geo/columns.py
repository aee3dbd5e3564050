"""Spatial columns with exactly one GiST index, and a check that catches duplicate indexes.

Examples:
    >>> from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
    >>> from geoalchemy2 import WKBElement
    >>> from pgpatterns.geo import geometry_column, point_column
    >>> class Base(DeclarativeBase):
    ...     pass
    >>> class Store(Base):
    ...     __tablename__ = "stores"
    ...     id: Mapped[int] = mapped_column(primary_key=True)
    ...     location: Mapped[WKBElement] = point_column()  # geography(POINT,4326) + GiST
    >>> sorted(index.name for index in Store.__table__.indexes)
    ['idx_stores_location']

Geography or geometry? ``geography=True`` (the default) stores lon/lat on WGS 84 and measures
in **meters** on the spheroid: correct anywhere on Earth, no projection to choose, the safe
default for "near me" queries. ``geography=False`` stores planar coordinates in the SRID's
units: faster predicates (planar math) and the full PostGIS function set, but distances in
SRID 4326 are in *degrees* (a degree of longitude is 111 km at the equator and 0 km at the
poles), so measure in meters only with a projected SRID (a UTM zone, or a national grid) whose
units are meters. Web Mercator (3857) "meters" are stretched by 1/cos(latitude).
"""

from __future__ import annotations

from typing import Any

from geoalchemy2 import Geography, Geometry
from sqlalchemy import Column, Index, MetaData, Table
from sqlalchemy.orm import MappedColumn, mapped_column
from sqlalchemy.sql import visitors

from pgpatterns.errors import GeoError, GeoIndexError
from pgpatterns.geo._common import _flag
from pgpatterns.geo.inputs import check_srid

__all__ = ["check_spatial_indexes", "geometry_column", "point_column", "spatial_type"]

_GEOMETRY_TYPES = frozenset({
    "GEOMETRY", "POINT", "LINESTRING", "POLYGON", "MULTIPOINT", "MULTILINESTRING",
    "MULTIPOLYGON", "GEOMETRYCOLLECTION",
})


def spatial_type(
    geometry_type: str = "POINT",
    *,
    srid: int = 4326,
    geography: bool = True,
    spatial_index: bool = True,
) -> Geography | Geometry:
    """The GeoAlchemy2 type for a spatial column, for Core ``Table`` definitions.

    Examples:
        >>> from sqlalchemy import Column, MetaData, Table
        >>> zones = Table("zones", MetaData(), Column("area", spatial_type("POLYGON")))
        >>> zones.c.area.type
        Geography(geometry_type='POLYGON', srid=4326, ...)

    With ``spatial_index`` GeoAlchemy2 adds one GiST index named ``idx_<table>_<column>``
    when the column is attached to its table; do not declare a second ``Index`` on it
    (GeoAlchemy2 issue #319: both would be created). See the module docs for the choice
    between geography and geometry.

    Raises:
        GeoError: unknown ``geometry_type``.
        GeoSRIDError: ``srid`` is not a positive integer.
    """
    srid = check_srid(srid)
    if not isinstance(geometry_type, str):
        raise GeoError(
            f"geometry_type must be one of {', '.join(sorted(_GEOMETRY_TYPES))}, got "
            f"{geometry_type!r:.80}."
        )
    _flag(geography, "geography")
    _flag(spatial_index, "spatial_index")
    kind = geometry_type.upper()
    if kind not in _GEOMETRY_TYPES:
        raise GeoError(
            f"geometry_type must be one of {', '.join(sorted(_GEOMETRY_TYPES))}, got "
            f"{geometry_type!r}."
        )
    cls = Geography if geography else Geometry
    return cls(geometry_type=kind, srid=srid, spatial_index=spatial_index)


def geometry_column(
    geometry_type: str = "GEOMETRY",
    *,
    srid: int = 4326,
    geography: bool = True,
    nullable: bool = False,
    spatial_index: bool = True,
    **kwargs: Any,
) -> MappedColumn[Any]:
    """A declarative spatial column (``mapped_column``) with exactly one GiST index.

    Examples:
        >>> area: Mapped[WKBElement] = geometry_column("POLYGON")  # doctest: +SKIP

    Args:
        geometry_type: ``POINT``, ``POLYGON``, ``MULTIPOLYGON``, ... or ``GEOMETRY`` (any).
        srid: The spatial reference (default 4326, WGS 84 lon/lat).
        geography: ``geography`` (meters on the spheroid) rather than ``geometry``
            (planar, in the SRID's units). See the module docs.
        nullable: Allow NULL (default: NOT NULL).
        spatial_index: Let GeoAlchemy2 create the GiST index (``idx_<table>_<column>``).
        **kwargs: Passed to ``mapped_column`` (``comment``, ``deferred``, ...).

    Raises:
        GeoError, GeoSRIDError: see :func:`spatial_type`.
    """
    kind = spatial_type(geometry_type, srid=srid, geography=geography, spatial_index=spatial_index)
    return mapped_column(kind, nullable=nullable, **kwargs)


def point_column(
    *,
    srid: int = 4326,
    geography: bool = True,
    nullable: bool = False,
    spatial_index: bool = True,
    **kwargs: Any,
) -> MappedColumn[Any]:
    """A declarative ``POINT`` column with exactly one GiST index.

    Examples:
        >>> location: Mapped[WKBElement] = point_column()  # doctest: +SKIP

    Same arguments as :func:`geometry_column`; ``geography(POINT,4326)`` by default.
    """
    return geometry_column(
        "POINT",
        srid=srid,
        geography=geography,
        nullable=nullable,
        spatial_index=spatial_index,
        **kwargs,
    )


def _mentions(index: Index, column: Column[Any]) -> bool:
    return any(
        element is column
        for expression in index.expressions
        if not isinstance(expression, str)
        for element in visitors.iterate(expression)
    )


def check_spatial_indexes(target: MetaData | Table | type[Any], *, require: bool = True) -> None:
    """Check that every spatial column has exactly one spatial (GiST/SP-GiST/BRIN) index.

    Examples:
        >>> check_spatial_indexes(Base.metadata)  # doctest: +SKIP

    Run it before ``create_all`` (e.g. in a test): GeoAlchemy2 already indexes a column
    declared with ``spatial_index=True``, and an extra ``Index(..., postgresql_using="gist")``
    on it creates a second, identical index (GeoAlchemy2 issue #319) that costs every write.

    Args:
        target: A ``MetaData``, a ``Table``, or a mapped class.
        require: Also reject spatial columns without any spatial index.

    Raises:
        GeoIndexError: a column has two or more spatial indexes (or none, with ``require``).
    """
    if isinstance(target, MetaData):
        tables = list(target.tables.values())
    elif isinstance(target, Table):
        tables = [target]
    elif isinstance(getattr(target, "__table__", None), Table):
        tables = [target.__table__]
    else:
        raise GeoError(f"expected a MetaData, Table or mapped class, got {target!r}.")
    for table in tables:
        for column in table.columns:
            if not isinstance(column.type, (Geometry, Geography)):
                continue
            found = sorted(
                str(index.name)
                for index in table.indexes
                if index.dialect_options["postgresql"]["using"] in ("gist", "spgist", "brin")
                and _mentions(index, column)
            )
            where = f"{table.fullname}.{column.name}"
            if len(found) > 1:
                raise GeoIndexError(
                    f"{where} has {len(found)} spatial indexes ({', '.join(found)}): each one "
                    "is maintained on every write and the planner uses one. GeoAlchemy2 "
                    "creates one when spatial_index=True; drop your own Index, or declare "
                    "the column with spatial_index=False and keep yours."
                )
            if require and not found:
                raise GeoIndexError(
                    f"{where} has no spatial index: ST_DWithin, KNN (<->) and bounding-box "
                    "queries will scan the whole table. Declare it with spatial_index=True "
                    "(the default of point_column/geometry_column)."
                )
