"""PostGIS on GeoAlchemy2: spatial columns with one GiST index and index-usable queries.

Examples:
    >>> from pgpatterns.geo import point, point_column, nearest, within_distance
    >>> here = point(lon=2.3522, lat=48.8566)
    >>> stmt = within_distance(Store.location, here, 1_500)  # doctest: +SKIP
    >>> nearest(session, Store, Store.location, here, 5)  # doctest: +SKIP
    [(<Store Rivoli>, 212.4), ...]

* Columns (:mod:`pgpatterns.geo.columns`): :func:`point_column`, :func:`geometry_column`,
  :func:`spatial_type` and :func:`check_spatial_indexes` (GeoAlchemy2 issue #319).
* Inputs (:mod:`pgpatterns.geo.inputs`): :func:`point` (lon, lat), :func:`from_geojson`,
  :func:`from_shapely`, validated before any SQL is sent.
* Queries (:mod:`pgpatterns.geo.query`): :func:`within_distance`, :func:`nearest_stmt` /
  :func:`nearest` / :func:`nearest_async`, :func:`within`, :func:`intersecting`,
  :func:`bbox`.

Warning:
    Needs the ``postgis`` extension, version 3.0 or later (index support functions for
    ``ST_DWithin``/``ST_Intersects``/``ST_CoveredBy``); tested with PostGIS 3.3 on
    PostgreSQL 15. Use the column helpers' GiST index: the planner uses it only for
    ``ST_DWithin``, ``<->`` KNN ordering and the ``&&`` family, never for
    ``ST_Distance(a, b) < r`` or ``ORDER BY ST_Distance(...)``.
"""

from pgpatterns.geo.columns import (
    check_spatial_indexes,
    geometry_column,
    point_column,
    spatial_type,
)
from pgpatterns.geo.inputs import LONLAT_SRIDS, from_geojson, from_shapely, point
from pgpatterns.geo.query import (
    bbox,
    intersecting,
    nearest,
    nearest_async,
    nearest_stmt,
    within,
    within_distance,
)

__all__ = [
    "LONLAT_SRIDS",
    "bbox",
    "check_spatial_indexes",
    "from_geojson",
    "from_shapely",
    "geometry_column",
    "intersecting",
    "nearest",
    "nearest_async",
    "nearest_stmt",
    "point",
    "point_column",
    "spatial_type",
    "within",
    "within_distance",
]
