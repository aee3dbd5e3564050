"""Query geometries from (lon, lat), GeoJSON and shapely, validated before any SQL is sent.

Examples:
    >>> from pgpatterns.geo import from_geojson, point
    >>> here = point(13.405, 52.52)  # (lon, lat): longitude first, like GeoJSON and PostGIS
    >>> here.srid
    4326
    >>> point(52.52, 113.405)
    Traceback (most recent call last):
    ...
    pgpatterns.errors.GeoCoordinateError: latitude 113.405 is outside [-90, 90] ...
    >>> zone = from_geojson({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]})
    >>> zone.srid
    4326

Every helper returns a GeoAlchemy2 ``WKTElement`` holding EWKT (``SRID=4326;POINT(...)``: the
SRID travels with the value). The query helpers of :mod:`pgpatterns.geo` bind it as a
parameter, and it can be assigned to a geography or geometry attribute to be inserted (EWKB
cannot: GeoAlchemy2 reads geography input with ``ST_GeogFromText``). Points are written with
Python's shortest round-trip ``repr`` (exact); other shapes with shapely's WKT writer
(16 significant digits). Coordinates are checked against the ranges of longitude/latitude
only for the geographic SRIDs in :data:`LONLAT_SRIDS`; projected SRIDs (3857, UTM...) only
need finite numbers.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Mapping
from typing import Any

import shapely  # type: ignore[import-untyped]  # no stubs (types-shapely)
from geoalchemy2.elements import WKTElement

from pgpatterns.errors import GeoCoordinateError, GeoError, GeoSRIDError

__all__ = ["LONLAT_SRIDS", "MAX_SRID", "from_geojson", "from_shapely", "point"]

#: SRIDs whose coordinates are (longitude, latitude) in degrees: WGS 84, ETRS89, NAD83,
#: GDA94, NZGD2000, CGCS2000, SIRGAS 2000, ... Range checks apply to these only.
LONLAT_SRIDS = frozenset({4326, 4258, 4269, 4283, 4167, 4490, 4617, 4674, 4612, 4019})
MAX_SRID = 999_999  # PostGIS's SRID_MAXIMUM


def check_srid(srid: object) -> int:
    """``srid`` as a positive int, or :class:`GeoSRIDError`."""
    if isinstance(srid, bool) or not isinstance(srid, int) or not 0 < srid <= MAX_SRID:
        raise GeoSRIDError(
            f"srid must be a positive integer (1 to {MAX_SRID}) such as 4326 (WGS 84 "
            f"lon/lat), got {srid!r:.40}: "
            "PostGIS compares geometries only within one spatial reference system."
        )
    return srid


def _number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise GeoCoordinateError(f"{name} must be a number, got {type(value).__name__} {value!r}.")
    number = math.inf
    with contextlib.suppress(OverflowError):  # an int beyond float's range
        number = float(value)
    if not math.isfinite(number):
        raise GeoCoordinateError(f"{name} must be finite, got {value!r:.40}.")
    return number


def check_lonlat(lon: float, lat: float, what: str = "the point") -> None:
    """Raise :class:`GeoCoordinateError` unless ``lon`` in [-180, 180] and ``lat`` in [-90, 90].

    Examples:
        >>> check_lonlat(48.85, 2.35)  # Paris given as (lat, lon): plausible, cannot be caught
        >>> check_lonlat(-33.9, 151.2)
        Traceback (most recent call last):
        ...
        pgpatterns.errors.GeoCoordinateError: latitude 151.2 is outside [-90, 90] ...
    """
    swapped = abs(lat) > 90 and abs(lat) <= 180 and abs(lon) <= 90
    hint = (
        f" The values look swapped: ({lon}, {lat}) reads as (lat, lon). pgpatterns.geo takes "
        "longitude first, (lon, lat), like GeoJSON and PostGIS: pass (lat, lon) reversed."
        if swapped
        else ""
    )
    if not -90 <= lat <= 90:
        raise GeoCoordinateError(
            f"latitude {lat} is outside [-90, 90] in {what}.{hint or ' Check the input.'}"
        )
    if not -180 <= lon <= 180:
        raise GeoCoordinateError(
            f"longitude {lon} is outside [-180, 180] in {what}: wrap it into range "
            "(e.g. ((lon + 180) % 360) - 180) or check that the SRID is really lon/lat."
        )


def point(lon: float, lat: float, *, srid: int = 4326) -> WKTElement:
    """A point from longitude and latitude (x, y), validated, with its SRID.

    Examples:
        >>> point(lon=-0.1276, lat=51.5072).srid
        4326
        >>> point(-0.1276, 91)
        Traceback (most recent call last):
        ...
        pgpatterns.errors.GeoCoordinateError: latitude 91.0 is outside [-90, 90] ...

    Warning:
        Swapped input, ``point(lat, lon)``, is the classic bug. It is caught only when the
        latitude it produces is impossible (``|lat| > 90``, e.g. Sydney ``(-33.9, 151.2)``);
        for places where both values are within [-90, 90] (Paris, New York) a swap yields a
        valid point elsewhere on Earth. Prefer keywords: ``point(lon=..., lat=...)``.

    Args:
        lon: Longitude (x) in degrees for lon/lat SRIDs, or x in the SRID's units.
        lat: Latitude (y) in degrees for lon/lat SRIDs, or y in the SRID's units.
        srid: The spatial reference of the coordinates (default WGS 84).

    Raises:
        GeoCoordinateError: a value is not a finite number, out of range, or swapped.
        GeoSRIDError: ``srid`` is not a positive integer.
    """
    srid = check_srid(srid)
    x, y = _number(lon, "longitude (x)"), _number(lat, "latitude (y)")
    if srid in LONLAT_SRIDS:
        check_lonlat(x, y)
    return WKTElement(f"SRID={srid};POINT({x!r} {y!r})", srid=srid, extended=True)


def from_shapely(
    shape: shapely.Geometry, *, srid: int = 4326, require_valid: bool = True
) -> WKTElement:
    """A query geometry from a shapely geometry, validated, with the SRID it is in.

    Examples:
        >>> import shapely
        >>> from_shapely(shapely.box(2.25, 48.81, 2.42, 48.90)).srid
        4326

    shapely geometries carry no SRID: say which one the coordinates are in.

    Args:
        shape: A non-empty shapely geometry.
        srid: The spatial reference of its coordinates (default WGS 84 lon/lat).
        require_valid: Reject invalid geometries (self-intersecting polygons, ...), for
            which PostGIS predicates give wrong answers or raise.

    Raises:
        GeoCoordinateError: empty, invalid, non-finite or out-of-range coordinates.
        GeoSRIDError: ``srid`` is not a positive integer.
        GeoError: ``shape`` is not a shapely geometry.
    """
    srid = check_srid(srid)
    if not isinstance(shape, shapely.Geometry):
        raise GeoError(
            f"expected a shapely geometry, got {type(shape).__name__}: use point(lon, lat) "
            "for coordinates and from_geojson() for GeoJSON."
        )
    if shape.is_empty:
        raise GeoCoordinateError(f"the {shape.geom_type} is empty: it matches nothing.")
    coords = shapely.get_coordinates(shape)
    if not all(math.isfinite(v) for v in coords.flat):
        raise GeoCoordinateError(f"the {shape.geom_type} has non-finite coordinates.")
    if srid in LONLAT_SRIDS:
        for lon, lat in coords:
            check_lonlat(float(lon), float(lat), f"the {shape.geom_type}")
    if require_valid and not shape.is_valid:
        raise GeoCoordinateError(
            f"the {shape.geom_type} is not valid ({shapely.is_valid_reason(shape)}): PostGIS "
            "predicates on invalid geometries give wrong answers. Repair it with "
            "shapely.make_valid(shape), or pass require_valid=False."
        )
    text = shapely.to_wkt(shape, rounding_precision=-1, trim=True)
    return WKTElement(f"SRID={srid};{text}", srid=srid, extended=True)


_CRS84 = frozenset({"urn:ogc:def:crs:ogc:1.3:crs84", "urn:ogc:def:crs:ogc::crs84", "ogc:crs84",
                    "crs84", "http://www.opengis.net/def/crs/ogc/1.3/crs84"})
_EPSG_NAME = re.compile(
    r"(?:urn:ogc:def:crs:epsg:[0-9.]*:|epsg:{1,2}|http://www\.opengis\.net/def/crs/epsg/[0-9.]+/)"
    r"([0-9]{1,6})",
    re.IGNORECASE,
)


def _crs_srid(crs: object) -> int:
    """The SRID a GeoJSON 2008 ``crs`` member names (``EPSG:3857``, an OGC URN, CRS84)."""
    if isinstance(crs, Mapping) and isinstance(crs.get("properties"), Mapping):
        kind, props = crs.get("type"), crs["properties"]
        name, code = props.get("name"), props.get("code")
        if kind == "name" and isinstance(name, str):
            if name.strip().lower() in _CRS84:
                return 4326  # WGS 84 in (lon, lat) order, PostGIS's reading of 4326
            match = _EPSG_NAME.fullmatch(name.strip())
            if match:
                return check_srid(int(match.group(1)))
        elif kind == "EPSG" and isinstance(code, int) and not isinstance(code, bool):
            return check_srid(code)
    raise GeoSRIDError(
        f"the GeoJSON crs member {crs!r:.120} names no EPSG code pgpatterns can read "
        "(accepted: {'type': 'name', 'properties': {'name': 'EPSG:3857'}}, OGC URNs such as "
        "'urn:ogc:def:crs:EPSG::3857', CRS84). Drop it and pass srid=, or reproject to "
        "WGS 84 (RFC 7946 GeoJSON has no crs member)."
    )


def _declared_srid(*objects: Any) -> int | None:
    """The SRID named by the ``crs`` members of ``objects`` (None: no crs anywhere)."""
    found = {_crs_srid(o["crs"]) for o in objects
             if isinstance(o, Mapping) and o.get("crs") is not None}
    if len(found) > 1:
        raise GeoSRIDError(
            f"the GeoJSON declares different crs members (SRIDs {sorted(found)}): a Feature "
            "and its geometry must agree. Remove the wrong one."
        )
    return found.pop() if found else None


def from_geojson(
    geojson: Mapping[str, Any] | str, *, srid: int | None = None, require_valid: bool = True
) -> WKTElement:
    """A query geometry from a GeoJSON geometry or Feature (dict or JSON text).

    Examples:
        >>> from_geojson('{"type": "Point", "coordinates": [2.35, 48.85]}').srid
        4326
        >>> mercator = {"type": "Point", "coordinates": [261845.7, 6250564.3],
        ...             "crs": {"type": "name", "properties": {"name": "EPSG:3857"}}}
        >>> from_geojson(mercator).srid
        3857

    GeoJSON (RFC 7946) coordinates are (longitude, latitude) on WGS 84 (SRID 4326). Legacy
    (2008) GeoJSON may name another reference system in a ``crs`` member: its SRID is
    honoured, not overridden: the shape gets that SRID (coordinates are not transformed), so
    querying a 4326 column with it raises :class:`~pgpatterns.errors.GeoSRIDError` instead
    of comparing meters with degrees. Reproject such input first (``ST_Transform`` or
    pyproj), or store it in a column of that SRID. ``srid`` states the reference system of a
    file without a ``crs`` member; it must agree with ``crs`` when both are given. A
    Feature's ``geometry`` is used.

    Raises:
        GeoError: not a GeoJSON geometry or Feature (a FeatureCollection: pass one feature).
        GeoSRIDError: a ``crs`` member that names no EPSG code, crs members that disagree,
            or a ``srid`` that differs from the ``crs``.
        GeoCoordinateError: see :func:`from_shapely`.
    """
    data: Any = geojson
    if isinstance(geojson, str):
        try:
            data = json.loads(geojson)
        except (ValueError, RecursionError) as exc:
            raise GeoError(f"the GeoJSON text is not valid JSON: {exc}.") from exc
    if not isinstance(data, Mapping) or "type" not in data:
        raise GeoError(
            f"expected a GeoJSON geometry or Feature (a mapping with a 'type'), got {data!r:.80}."
        )
    outer = data
    if data["type"] == "Feature":
        data = data.get("geometry")
        if not isinstance(data, Mapping):
            raise GeoError("the GeoJSON Feature has no geometry (null): nothing to query with.")
    elif data["type"] == "FeatureCollection":
        raise GeoError(
            "a GeoJSON FeatureCollection holds many geometries: pass one feature, or "
            "from_shapely(shapely.union_all([...])) for their union."
        )
    declared = _declared_srid(outer, data)
    if srid is None:
        srid = 4326 if declared is None else declared
    elif declared is not None and check_srid(srid) != declared:
        raise GeoSRIDError(
            f"srid={srid} but the GeoJSON's crs member says SRID {declared}: the coordinates "
            f"are in {declared}. Drop srid= (the crs is used), or reproject the input to "
            f"{srid} first."
        )
    try:
        shape = shapely.from_geojson(json.dumps(data))
    except (ValueError, TypeError, RecursionError, shapely.errors.ShapelyError) as exc:
        raise GeoError(f"the GeoJSON geometry could not be read: {exc!r:.200}.") from exc
    return from_shapely(shape, srid=srid, require_valid=require_valid)
