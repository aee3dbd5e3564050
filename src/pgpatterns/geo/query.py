"""Index-usable spatial queries: radius, k nearest, containment, intersection, viewport.

Examples:
    >>> from pgpatterns.geo import nearest, point, within_distance
    >>> here = point(lon=2.3522, lat=48.8566)
    >>> stmt = within_distance(Store.location, here, 1_500)  # doctest: +SKIP
    >>> rows = nearest(session, Store, Store.location, here, 5)  # doctest: +SKIP
    >>> [(store.name, round(meters)) for store, meters in rows]  # doctest: +SKIP
    [('Rivoli', 212), ...]

The query builders return ``Select`` objects, ``select(<entity of col>).where(...)``; pass
``stmt=`` to add the predicate to a select of your own (for instance the result of another
builder). The query geometry is bound as a parameter of the column's type (EWKB), so its SRID
must be the column's: build it with :func:`~pgpatterns.geo.point`,
:func:`~pgpatterns.geo.from_geojson` or :func:`~pgpatterns.geo.from_shapely`, or pass a
spatial SQL expression (another table's column, a scalar subquery).

Warning:
    Only these forms reach the GiST index: ``ST_DWithin`` (never ``ST_Distance(a, b) < r``,
    which computes every distance), ``ORDER BY col <-> point LIMIT k`` (never ``ORDER BY
    ST_Distance(...)``), ``&&`` and the exact predicates ``ST_Intersects``/``ST_CoveredBy``.
    GeoAlchemy2's ``.intersects()``/``.contains()`` are the *bounding-box* operators ``&&``
    and ``~`` (GeoAlchemy2 issue #183): fast but approximate; :func:`within` and
    :func:`intersecting` pair them with the exact predicate. Requires PostGIS >= 3.0
    (index support functions); tested with PostGIS 3.3 on PostgreSQL 15.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from geoalchemy2 import functions as gf
from sqlalchemy import Connection, FromClause, Select, and_, cast, func, inspect, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Mapper, Session
from sqlalchemy.orm.util import AliasedInsp
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import Label

from pgpatterns.errors import GeoCoordinateError, GeoError
from pgpatterns.geo._common import (
    _GEOGRAPHY,
    _GEOMETRY,
    _filters,
    _finite,
    _flag,
    _metric,
    _operand,
    _overlaps,
    _select,
    _spatial,
)
from pgpatterns.geo.inputs import LONLAT_SRIDS, check_lonlat

__all__ = [
    "bbox",
    "intersecting",
    "nearest",
    "nearest_async",
    "nearest_stmt",
    "within",
    "within_distance",
]

# Distances on the WGS 84 spheroid differ from those on PostGIS's mean-radius sphere (which
# the geography <-> operator and the index use) by -0.56% .. +0.45%: candidates for the k
# nearest by spheroid lie within 1.0102x the k-th sphere distance; 1.02 leaves a margin.
_SPHEROID_MARGIN = 1.02
_BIGINT_MAX = 2**63 - 1


def within_distance(
    col: Any,
    point: Any,
    meters: float,
    *,
    spheroid: bool = True,
    stmt: Select[Any] | None = None,
) -> Select[Any]:
    """Rows whose ``col`` lies within ``meters`` of ``point``: ``ST_DWithin``, index-usable.

    Examples:
        >>> stmt = within_distance(Store.location, point(2.35, 48.85), 1_000)  # doctest: +SKIP
        >>> stmt = stmt.where(Store.open_now).order_by(Store.name)  # doctest: +SKIP

    Args:
        col: The spatial column (``Model.attr`` or ``table.c.col``).
        point: The query geometry (any geometry type: "within 500 m of this route" works).
        meters: The radius: meters for geography columns, the SRID's units for geometry.
        spheroid: Geography only: measure on the WGS 84 spheroid (exact, PostGIS default);
            ``False`` uses the sphere (faster, error up to 0.5%).
        stmt: Add the predicate to this select instead of ``select(<entity of col>)``.

    Raises:
        GeoError: negative or non-finite radius; ``col`` is geometry in degrees (SRID 4326).
        GeoSRIDError: ``point`` has another SRID than ``col``, or none.
    """
    spatial = _spatial(col)
    _flag(spheroid, "spheroid")
    radius = _finite(meters, "the distance")
    if radius < 0:
        raise GeoError(
            f"the distance must be >= 0, got {meters!r}: a negative radius matches nothing."
        )
    _metric(spatial, "within_distance")
    target = _operand(point, spatial, "point")
    if spatial.geography:
        predicate = gf.ST_DWithin(spatial.expr, target, radius, spheroid)
    else:
        predicate = gf.ST_DWithin(spatial.expr, target, radius)
    return _select(spatial, stmt, predicate)


def _check_model(model: object) -> None:
    if isinstance(model, FromClause):
        return
    inspected = inspect(model, raiseerr=False)
    if not isinstance(inspected, (Mapper, AliasedInsp)):
        raise GeoError(
            f"model={model!r:.80} is not a mapped class, an aliased class or a Table: pass "
            "what the rows should be (Store, aliased(Store) or stores_table)."
        )


def _check_k(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or not 0 < k <= _BIGINT_MAX:
        raise GeoError(
            f"k must be a positive integer up to {_BIGINT_MAX} (how many nearest rows; "
            f"LIMIT is a bigint), got {k!r:.80}."
        )
    return k


def nearest_stmt(
    model: Any,
    col: Any,
    point: Any,
    k: int,
    *,
    where: ColumnElement[bool] | Sequence[ColumnElement[bool]] | None = None,
    spheroid: bool = True,
) -> Select[Any]:
    """The ``k`` rows of ``model`` nearest to ``point``, with their exact ``distance``.

    Examples:
        >>> stmt = nearest_stmt(Store, Store.location, point(2.35, 48.85), 3)  # doctest: +SKIP
        >>> [(s.name, round(d)) for s, d in session.execute(stmt)]  # doctest: +SKIP
        [('Rivoli', 212), ('Louvre', 380), ('Halles', 655)]

    Rows are ``(model, distance)`` ordered by distance (meters for geography, the SRID's
    units for geometry). The ordering is the KNN form ``ORDER BY col <-> point LIMIT k``,
    which walks the GiST index and stops after ``k`` rows. On geography ``<->`` measures on
    the sphere; with ``spheroid`` (default) the answer is made exact on the spheroid: the
    k-th sphere distance (an index walk of k rows) bounds an ``ST_DWithin`` search, and
    those candidates are ranked by ``ST_Distance``.

    Warning:
        Filter with ``where=`` rather than ``.where()`` on the result: a filter added after
        ``LIMIT`` would drop rows from the k instead of finding the k nearest that match.
        ``where`` conditions that the index cannot check make the walk read more rows.

    Args:
        model: What to return: a mapped class, an aliased class or a ``Table``.
        col: Its spatial column.
        point: The query geometry.
        k: How many rows (>= 1).
        where: Extra conditions rows must meet.
        spheroid: Geography only: distances on the spheroid (exact) or the sphere.

    Raises:
        GeoError: ``k`` is not a positive integer; ``col`` is geometry in degrees.
        GeoSRIDError: ``point`` has another SRID than ``col``, or none.
    """
    spatial = _spatial(col)
    _check_model(model)
    limit = _check_k(k)
    _flag(spheroid, "spheroid")
    _metric(spatial, "nearest")
    target = _operand(point, spatial, "point")
    filters = _filters(where)
    knn = spatial.expr.distance_centroid(target)  # GeoAlchemy2's <->
    if not (spatial.geography and spheroid):
        # Geometry <-> is the exact distance, geography <-> the sphere distance: one walk.
        exact = gf.ST_Distance(spatial.expr, target, False) if spatial.geography else knn
        distance: Label[Any] = exact.label("distance")
        return select(model, distance).where(*filters).order_by(knn).limit(limit)
    walk = (
        select(spatial.expr.label("g")).where(*filters).order_by(knn).limit(limit)
    ).correlate(None).subquery("knn_walk")
    reach = (
        select(func.max(walk.c.g.distance_centroid(target)) * _SPHEROID_MARGIN)
        .correlate(None)
        .scalar_subquery()
    )
    distance = gf.ST_Distance(spatial.expr, target, True).label("distance")
    return (
        select(model, distance)
        .where(*filters, gf.ST_DWithin(spatial.expr, target, reach, False))
        .order_by(distance)
        .limit(limit)
    )


def nearest(
    session: Session | Connection,
    model: Any,
    col: Any,
    point: Any,
    k: int,
    *,
    where: ColumnElement[bool] | Sequence[ColumnElement[bool]] | None = None,
    spheroid: bool = True,
) -> list[Any]:
    """Run :func:`nearest_stmt`: a list of ``(model, distance)`` rows, nearest first.

    Examples:
        >>> rows = nearest(session, Store, Store.location, point(2.35, 48.85), 5)  # doctest: +SKIP
        >>> rows[0].distance  # doctest: +SKIP
        212.4

    Arguments and errors are those of :func:`nearest_stmt` (raised before any SQL is sent).
    """
    stmt = nearest_stmt(model, col, point, k, where=where, spheroid=spheroid)
    return list(session.execute(stmt).all())


async def nearest_async(
    session: AsyncSession | AsyncConnection,
    model: Any,
    col: Any,
    point: Any,
    k: int,
    *,
    where: ColumnElement[bool] | Sequence[ColumnElement[bool]] | None = None,
    spheroid: bool = True,
) -> list[Any]:
    """The asyncio twin of :func:`nearest`, for ``AsyncSession`` and ``AsyncConnection``.

    Examples:
        >>> rows = await nearest_async(session, Store, Store.location, here, 5)  # doctest: +SKIP
    """
    stmt = nearest_stmt(model, col, point, k, where=where, spheroid=spheroid)
    return list((await session.execute(stmt)).all())


def within(col: Any, area: Any, *, stmt: Select[Any] | None = None) -> Select[Any]:
    """Rows whose ``col`` lies inside ``area`` (boundary included): ``&&`` + ``ST_CoveredBy``.

    Examples:
        >>> zone = from_geojson(zone_feature)  # doctest: +SKIP
        >>> stmt = within(Store.location, zone)  # doctest: +SKIP

    ``ST_CoveredBy`` rather than ``ST_Within``/``ST_Contains``: it counts points on the
    boundary as inside (a store on the edge of a delivery zone is served) and it exists for
    geography too. ``area`` may be a column of another table for a spatial join.

    Raises:
        GeoSRIDError: ``area`` has another SRID than ``col``, or none.
    """
    spatial = _spatial(col)
    target = _operand(area, spatial, "area")
    return _select(
        spatial, stmt, and_(_overlaps(spatial.expr, target), gf.ST_CoveredBy(spatial.expr, target))
    )


def intersecting(col: Any, geom: Any, *, stmt: Select[Any] | None = None) -> Select[Any]:
    """Rows whose ``col`` shares any point with ``geom``: ``&&`` + ``ST_Intersects``.

    Examples:
        >>> stmt = intersecting(Zone.area, from_shapely(route, srid=4326))  # doctest: +SKIP

    Raises:
        GeoSRIDError: ``geom`` has another SRID than ``col``, or none.
    """
    spatial = _spatial(col)
    target = _operand(geom, spatial, "geometry")
    return _select(
        spatial, stmt, and_(_overlaps(spatial.expr, target), gf.ST_Intersects(spatial.expr, target))
    )


def _widened_latitudes(xmin: float, ymin: float, xmax: float, ymax: float) -> tuple[float, float]:
    """Latitudes whose geodesic box covers the lon/lat rectangle (geography edges bulge).

    A geography edge between two corners at latitude y follows a great circle, which bulges
    towards the pole by atan(tan(y) / cos(dlon / 2)): the equatorward edge would cut into the
    rectangle. Moving it to atan(tan(y) * cos(dlon / 2)) makes its great circle peak at y.
    """
    shrink = math.cos(math.radians((xmax - xmin) / 2))
    if ymin > 0:
        ymin = math.degrees(math.atan(math.tan(math.radians(ymin)) * shrink))
    if ymax < 0:
        ymax = math.degrees(math.atan(math.tan(math.radians(ymax)) * shrink))
    return ymin, ymax


def bbox(
    col: Any,
    xmin: float,
    ymin: float,
    xmax: float,
    ymax: float,
    *,
    stmt: Select[Any] | None = None,
) -> Select[Any]:
    """Rows whose ``col`` intersects the rectangle ``[xmin, xmax] x [ymin, ymax]`` (a map view).

    Examples:
        >>> stmt = bbox(Store.location, 2.25, 48.81, 2.42, 48.90)  # doctest: +SKIP

    The rectangle is in the column's SRID: (west, south, east, north) in degrees for lon/lat.
    On geometry this is ``col && ST_MakeEnvelope(...)`` plus ``ST_Intersects``. On geography
    an envelope's edges become great circles, which bulge poleward and would cut rows off
    the rectangle's equatorward side; the index filter uses an envelope widened to cover the
    rectangle exactly, and the rectangle test is done on lon/lat (``col::geometry``).

    Raises:
        GeoCoordinateError: corners out of order or out of range; a geography rectangle
            180 degrees wide or wider, or crossing the antimeridian (split it in two).
    """
    spatial = _spatial(col)
    x0, y0 = _finite(xmin, "xmin"), _finite(ymin, "ymin")
    x1, y1 = _finite(xmax, "xmax"), _finite(ymax, "ymax")
    if x0 > x1 or y0 > y1:
        raise GeoCoordinateError(
            f"bbox corners are out of order: ({xmin}, {ymin}, {xmax}, {ymax}); pass "
            "(xmin, ymin, xmax, ymax) = (west, south, east, north). A view crossing the "
            "antimeridian (west > east) needs two queries, one on each side."
        )
    if spatial.srid in LONLAT_SRIDS:
        check_lonlat(x0, y0, "the bbox")
        check_lonlat(x1, y1, "the bbox")
    srid = spatial.srid or 0
    envelope = gf.ST_MakeEnvelope(x0, y0, x1, y1, srid)
    if not spatial.geography:
        return _select(
            spatial,
            stmt,
            and_(_overlaps(spatial.expr, envelope), gf.ST_Intersects(spatial.expr, envelope)),
        )
    if x1 - x0 >= 180:
        raise GeoCoordinateError(
            f"a geography bbox must be narrower than 180 degrees of longitude, got "
            f"{x1 - x0}: split it into two bbox() queries (e.g. at longitude "
            f"{(x0 + x1) / 2}) and union them."
        )
    w0, w1 = _widened_latitudes(x0, y0, x1, y1)
    cover = cast(gf.ST_MakeEnvelope(x0, w0, x1, w1, srid), _GEOGRAPHY)
    exact = gf.ST_Intersects(cast(spatial.expr, _GEOMETRY), envelope)
    return _select(spatial, stmt, and_(_overlaps(spatial.expr, cover), exact))
