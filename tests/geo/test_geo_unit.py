"""pgpatterns.geo without a database: SQL shapes, input validation and typed errors."""

from __future__ import annotations

import math
from typing import Any

import pytest
import shapely
from geoalchemy2 import Geography, Geometry, WKBElement, WKTElement
from geoalchemy2.shape import to_shape
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Column, Index, Integer, MetaData, Table, func, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from pgpatterns.errors import (
    GeoCoordinateError,
    GeoError,
    GeoIndexError,
    GeoSRIDError,
    PatternError,
)
from pgpatterns.geo import (
    bbox,
    check_spatial_indexes,
    from_geojson,
    from_shapely,
    geometry_column,
    intersecting,
    nearest_stmt,
    point,
    point_column,
    spatial_type,
    within,
    within_distance,
)

DIALECT = postgresql.psycopg.dialect()


class Base(DeclarativeBase):
    pass


class Store(Base):
    __tablename__ = "stores"
    id: Mapped[int] = mapped_column(primary_key=True)
    location: Mapped[WKBElement] = point_column()


class Plot(Base):  # geometry in degrees: meters make no sense here
    __tablename__ = "plots"
    id: Mapped[int] = mapped_column(primary_key=True)
    shape: Mapped[WKBElement] = geometry_column("POLYGON", geography=False)


def sql(stmt: Any) -> str:
    return " ".join(str(stmt.compile(dialect=DIALECT)).split())


# --- columns ------------------------------------------------------------------------------


def test_point_column_is_geography_with_one_gist_index() -> None:
    column = Store.__table__.c.location
    assert isinstance(column.type, Geography)
    assert (column.type.geometry_type, column.type.srid, column.nullable) == ("POINT", 4326, False)
    assert [index.name for index in Store.__table__.indexes] == ["idx_stores_location"]
    check_spatial_indexes(Base.metadata)
    assert isinstance(Plot.__table__.c.shape.type, Geometry)


def test_duplicate_or_missing_spatial_index_is_reported() -> None:
    metadata = MetaData()
    table = Table("t", metadata, Column("id", Integer, primary_key=True),
                  Column("g", spatial_type()))
    Index("t_g_gist", table.c.g, postgresql_using="gist")
    with pytest.raises(GeoIndexError, match=r"2 spatial indexes \(idx_t_g, t_g_gist\)"):
        check_spatial_indexes(metadata)
    bare = Table("b", MetaData(), Column("g", spatial_type(spatial_index=False)))
    with pytest.raises(GeoIndexError, match="no spatial index"):
        check_spatial_indexes(bare)
    check_spatial_indexes(bare, require=False)
    with pytest.raises(GeoError):
        check_spatial_indexes("t")  # type: ignore[arg-type]


@pytest.mark.parametrize("kwargs", [{"srid": 0}, {"srid": "4326"}, {"srid": True}])
def test_bad_srid_is_rejected(kwargs: dict[str, Any]) -> None:
    with pytest.raises(GeoSRIDError, match="positive integer"):
        point_column(**kwargs)


def test_unknown_geometry_type_is_rejected() -> None:
    with pytest.raises(GeoError, match="geometry_type must be one of"):
        spatial_type("CIRCLE")


# --- inputs -------------------------------------------------------------------------------


@given(lon=st.floats(-180, 180), lat=st.floats(-90, 90))
def test_point_round_trips_lon_lat(lon: float, lat: float) -> None:
    element = point(lon, lat)
    assert element.srid == 4326 and element.extended
    assert to_shape(element).coords[0] == (lon, lat)


@pytest.mark.parametrize(
    ("lon", "lat", "message"),
    [
        (-33.87, 151.21, r"latitude 151.21 is outside \[-90, 90\].*look swapped"),
        (100.0, -95.0, r"latitude -95.0 is outside \[-90, 90\] in the point. Check"),
        (180.5, 0.0, r"longitude 180.5 is outside \[-180, 180\]"),
        (math.nan, 0.0, "must be finite"),
        (0.0, math.inf, "must be finite"),
        ("1", 2.0, "must be a number"),
        (True, 2.0, "must be a number"),
    ],
)
def test_bad_coordinates_are_rejected(lon: Any, lat: Any, message: str) -> None:
    with pytest.raises(GeoCoordinateError, match=message):
        point(lon, lat)


def test_projected_points_skip_lonlat_ranges() -> None:
    assert point(500_000.0, 4_649_776.0, srid=32633).srid == 32633


def test_geojson_and_shapely_inputs() -> None:
    feature = {"type": "Feature", "properties": {},
               "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}}
    element = from_geojson(feature)
    assert to_shape(element).equals(shapely.Polygon([(0, 0), (1, 0), (1, 1)]))
    assert from_geojson('{"type": "Point", "coordinates": [2.35, 48.85]}').srid == 4326
    assert from_shapely(shapely.Point(1, 2), srid=3857).srid == 3857
    bowtie = shapely.Polygon([(0, 0), (1, 1), (1, 0), (0, 1)])
    with pytest.raises(GeoCoordinateError, match=r"not valid.*make_valid"):
        from_shapely(bowtie)
    assert from_shapely(bowtie, require_valid=False).srid == 4326
    with pytest.raises(GeoCoordinateError, match="empty"):
        from_shapely(shapely.Polygon())
    with pytest.raises(GeoCoordinateError, match="look swapped"):
        from_geojson({"type": "Point", "coordinates": [48.85, 122.35]})
    with pytest.raises(GeoError, match="FeatureCollection"):
        from_geojson({"type": "FeatureCollection", "features": []})
    with pytest.raises(GeoError, match="not valid JSON"):
        from_geojson("{nope")
    with pytest.raises(GeoError, match="could not be read"):
        from_geojson({"type": "Polygon", "coordinates": "x"})
    with pytest.raises(GeoError, match="no geometry"):
        from_geojson({"type": "Feature", "geometry": None})
    with pytest.raises(GeoError, match="expected a shapely geometry"):
        from_shapely((1, 2))  # type: ignore[arg-type]


# --- query shapes -------------------------------------------------------------------------

HERE = point(2.35, 48.85)


def test_within_distance_is_st_dwithin_with_bound_parameters() -> None:
    stmt = within_distance(Store.location, HERE, 500)
    compiled = stmt.compile(dialect=DIALECT)
    assert "ST_DWithin(stores.location, CAST(ST_GeomFromEWKT(" in sql(stmt)
    assert "AS geography)" in sql(stmt)
    assert 500.0 in compiled.params.values() and True in compiled.params.values()
    assert "ST_Distance" not in sql(stmt)
    stmt = within_distance(Store.location, HERE, 500, stmt=select(Store.id))
    assert sql(stmt).startswith("SELECT stores.id FROM stores WHERE ST_DWithin(")


def test_nearest_is_knn_ordered_with_limit() -> None:
    plain = sql(nearest_stmt(Store, Store.location, HERE, 3, spheroid=False))
    assert "ORDER BY stores.location <-> CAST(" in plain and "LIMIT" in plain
    exact = sql(nearest_stmt(Store, Store.location, HERE, 3, where=Store.id > 10))
    assert "ORDER BY stores.location <-> CAST(" in exact  # the index walk bounding the search
    assert "max(knn_walk.g <-> CAST(" in exact and "ORDER BY distance" in exact
    assert exact.count("stores.id >") == 2  # the filter is applied in the walk and the search


def test_within_and_intersecting_pair_bbox_with_exact_predicate() -> None:
    area = from_shapely(shapely.box(2.2, 48.8, 2.5, 48.9))
    assert "stores.location && CAST(" in sql(within(Store.location, area))
    assert "ST_CoveredBy(stores.location, CAST(" in sql(within(Store.location, area))
    text = sql(intersecting(Plot.shape, from_shapely(shapely.box(0, 0, 1, 1))))
    assert "plots.shape && ST_GeomFromEWKT(" in text and "ST_Intersects(plots.shape" in text


def test_bbox_shapes() -> None:
    geo = sql(bbox(Store.location, 2.2, 48.8, 2.5, 48.9))
    assert "stores.location && CAST(ST_MakeEnvelope(" in geo
    assert "ST_Intersects(CAST(stores.location AS geometry), ST_MakeEnvelope(" in geo
    flat = sql(bbox(Plot.shape, 2.2, 48.8, 2.5, 48.9))
    assert "plots.shape && ST_MakeEnvelope(" in flat


# --- typed errors, before any SQL --------------------------------------------------------


def test_negative_distance_and_bad_k() -> None:
    with pytest.raises(GeoError, match="distance must be >= 0"):
        within_distance(Store.location, HERE, -1)
    with pytest.raises(GeoError, match="must be finite"):
        within_distance(Store.location, HERE, math.nan)
    for k in (0, -3, True, 2.5):
        with pytest.raises(GeoError, match="k must be a positive integer"):
            nearest_stmt(Store, Store.location, HERE, k)  # type: ignore[arg-type]


def test_srid_mismatch_and_missing_srid() -> None:
    with pytest.raises(GeoSRIDError, match=r"SRID 3857 but location .* SRID 4326"):
        within_distance(Store.location, point(1, 2, srid=3857), 10)
    with pytest.raises(GeoSRIDError, match="has no SRID"):
        within(Store.location, WKTElement("POLYGON((0 0,1 0,1 1,0 0))"))
    with pytest.raises(GeoSRIDError, match="shapely Point, which carries no SRID"):
        nearest_stmt(Store, Store.location, shapely.Point(1, 2), 3)
    wrong = func.ST_SetSRID(func.ST_MakePoint(1, 2), 3857, type_=Geometry(srid=3857))
    with pytest.raises(GeoSRIDError, match="SRID 3857"):
        intersecting(Store.location, wrong)


def test_lonlat_tuple_and_non_spatial_column_are_rejected() -> None:
    with pytest.raises(GeoError, match=r"point\(lon=..., lat=...\)"):
        within_distance(Store.location, (2.35, 48.85), 10)
    with pytest.raises(GeoError, match="not a GeoAlchemy2 Geography/Geometry"):
        within_distance(Store.id, HERE, 10)
    with pytest.raises(GeoError, match="expected a spatial column"):
        within_distance("location", HERE, 10)


def test_meters_on_degree_geometry_is_rejected() -> None:
    with pytest.raises(GeoError, match="planar geometry in degrees"):
        within_distance(Plot.shape, HERE, 100)
    with pytest.raises(GeoError, match="planar geometry in degrees"):
        nearest_stmt(Plot, Plot.shape, HERE, 3)


def test_bad_bbox() -> None:
    with pytest.raises(GeoCoordinateError, match="out of order"):
        bbox(Store.location, 3, 48, 2, 49)
    with pytest.raises(GeoCoordinateError, match="latitude 95"):
        bbox(Store.location, 0, 0, 1, 95)
    with pytest.raises(GeoCoordinateError, match="narrower than 180"):
        bbox(Store.location, -100, 0, 100, 10)
    bbox(Plot.shape, -100, 0, 100, 10)  # planar: fine


def test_all_errors_are_pattern_errors() -> None:
    for cls in (GeoError, GeoCoordinateError, GeoSRIDError, GeoIndexError):
        assert issubclass(cls, PatternError)


# --- issue 17: GeoJSON crs members and hostile arguments ------------------------------------

MERCATOR = {"type": "name", "properties": {"name": "EPSG:3857"}}


@pytest.mark.parametrize("crs", [
    MERCATOR,
    {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::3857"}},
    {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG:6.6:3857"}},
    {"type": "name", "properties": {"name": "http://www.opengis.net/def/crs/EPSG/0/3857"}},
    {"type": "EPSG", "properties": {"code": 3857}},
])
def test_geojson_crs_member_sets_the_srid(crs: dict[str, Any]) -> None:
    """The crs member used to be ignored: a 3857 shape got SRID 4326 (issue 17)."""
    shape = {"type": "Point", "coordinates": [261_845.7, 6_250_564.3], "crs": crs}
    assert from_geojson(shape).srid == 3857
    feature = {"type": "Feature", "crs": crs, "properties": {},
               "geometry": {"type": "Point", "coordinates": [261_845.7, 6_250_564.3]}}
    assert from_geojson(feature).srid == 3857
    assert from_geojson(shape, srid=3857).srid == 3857


def test_geojson_crs_is_honoured_in_queries() -> None:
    mercator = from_geojson({"type": "Point", "coordinates": [261_845.7, 6_250_564.3],
                             "crs": MERCATOR})
    # a 3857 point never meets a 4326 column silently: typed error, before any SQL
    with pytest.raises(GeoSRIDError, match="SRID 3857 but location"):
        within_distance(Store.location, mercator, 10)
    crs84 = {"type": "name", "properties": {"name": "urn:ogc:def:crs:OGC:1.3:CRS84"}}
    assert from_geojson({"type": "Point", "coordinates": [2.35, 48.85], "crs": crs84}).srid == 4326


@pytest.mark.parametrize(("geojson", "kwargs", "match"), [
    ({"type": "Point", "coordinates": [1, 2], "crs": MERCATOR}, {"srid": 4326}, "crs member says"),
    ({"type": "Point", "coordinates": [1, 2],
      "crs": {"type": "link", "properties": {"href": "http://x/crs", "type": "proj4"}}}, {},
     "names no EPSG code"),
    ({"type": "Point", "coordinates": [1, 2], "crs": "EPSG:3857"}, {}, "names no EPSG code"),
    ({"type": "Point", "coordinates": [1, 2],
      "crs": {"type": "name", "properties": {"name": "EPSG:99999999"}}}, {}, "names no EPSG"),
    ({"type": "Feature", "crs": MERCATOR, "properties": {},
      "geometry": {"type": "Point", "coordinates": [1, 2],
                   "crs": {"type": "name", "properties": {"name": "EPSG:4326"}}}}, {},
     "different crs members"),
])
def test_unreadable_or_conflicting_crs_is_refused(
    geojson: dict[str, Any], kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(GeoSRIDError, match=match):
        from_geojson(geojson, **kwargs)


def test_hostile_numbers_and_filters_fail_typed() -> None:
    with pytest.raises(GeoError, match="k must be a positive integer"):
        nearest_stmt(Store, Store.location, HERE, 2**63)
    assert "LIMIT" in sql(nearest_stmt(Store, Store.location, HERE, 2**63 - 1))
    with pytest.raises(GeoError, match="must be finite"):
        within_distance(Store.location, HERE, 2**1100)
    with pytest.raises(GeoCoordinateError, match="must be finite"):
        point(2**1100, 0)
    with pytest.raises(GeoSRIDError, match="positive integer"):
        point(0, 0, srid=2**63)
    for where in ("id = 1", ["id = 1"], Store.id):
        with pytest.raises(GeoError, match="not a SQLAlchemy boolean expression"):
            nearest_stmt(Store, Store.location, HERE, 3, where=where)  # type: ignore[arg-type]
    with pytest.raises(GeoError, match="True or False"):
        nearest_stmt(Store, Store.location, HERE, 3, spheroid="no")  # type: ignore[arg-type]
    with pytest.raises(GeoError, match="stmt must be a select"):
        within_distance(Store.location, HERE, 3, stmt="SELECT 1")  # type: ignore[arg-type]
