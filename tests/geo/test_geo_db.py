"""pgpatterns.geo against a real PostGIS (runs on the system PostgreSQL 15 in CI).

The data set (20k points, 70% clustered around 40 "cities", 30% spread over the globe, and
a few polygons) is loaded once per module into tables of the test database and dropped at
the end. References are computed in Python with numpy:

* haversine on PostGIS's mean-radius sphere (R = 6371008.7714 m); on the sphere
  (``spheroid=False``) PostGIS must agree to 1e-6 relative (+1 mm);
* on the WGS 84 spheroid (the default) distances differ from the sphere by -0.56% .. +0.45%,
  so the tolerance against haversine is 0.6% relative; the k nearest on the spheroid are
  also compared exactly with a brute-force ``ORDER BY ST_Distance`` (no index).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import shapely
from geoalchemy2 import Geography, Geometry, WKBElement
from geoalchemy2 import functions as gf
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Index,
    Integer,
    MetaData,
    Table,
    cast,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from pgpatterns.bulk import copy_rows
from pgpatterns.explain import explain, explain_async, has_seq_scan, uses_index
from pgpatterns.geo import (
    bbox,
    from_geojson,
    from_shapely,
    geometry_column,
    intersecting,
    nearest,
    nearest_async,
    nearest_stmt,
    point,
    point_column,
    spatial_type,
    within,
    within_distance,
)
from pgpatterns.testing.plugin import PgSchema

pytestmark = pytest.mark.requires_extension("postgis")

R = 6371008.7714  # PostGIS's sphere (WGS 84 mean radius)
SPHEROID_TOL = 0.006
N = 20_000


class Base(DeclarativeBase):
    pass


class Place(Base):
    __tablename__ = "geo_t_places"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    kind: Mapped[str]
    location: Mapped[WKBElement] = point_column()


class Zone(Base):
    __tablename__ = "geo_t_zones"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    name: Mapped[str]
    area: Mapped[WKBElement] = geometry_column("POLYGON")


class Site(Base):  # planar geometry in a projected SRID (units: meters)
    __tablename__ = "geo_t_sites"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    location: Mapped[WKBElement] = point_column(srid=3857, geography=False)


def generate() -> tuple[np.ndarray, np.ndarray, list[str]]:
    rng = random.Random(20261126)
    cities = [(rng.uniform(-170, 170), rng.uniform(-60, 70)) for _ in range(40)]
    lons, lats, kinds = [], [], []
    for i in range(N):
        if i % 10 < 7:
            lon0, lat0 = rng.choice(cities)
            lon = max(-180.0, min(180.0, rng.gauss(lon0, 0.3)))
            lat = max(-90.0, min(90.0, rng.gauss(lat0, 0.2)))
        else:
            lon = rng.uniform(-180, 180)
            lat = math.degrees(math.asin(rng.uniform(-1, 1)))
        lons.append(lon)
        lats.append(lat)
        kinds.append("a" if i % 3 == 0 else "b")
    return np.array(lons), np.array(lats), kinds


LONS, LATS, KINDS = generate()
CITIES = sorted(
    {(round(lon, 1), round(lat, 1)) for lon, lat in zip(LONS[:50], LATS[:50], strict=True)}
)


def haversine(lon: float, lat: float) -> np.ndarray:
    p1, p2 = np.radians(lat), np.radians(LATS)
    dl, dp = np.radians(LONS - lon), p2 - p1
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * R * np.arcsin(np.sqrt(np.clip(a, 0, 1)))


ZONES = {
    1: shapely.box(LONS[0] - 0.4, LATS[0] - 0.3, LONS[0] + 0.4, LATS[0] + 0.3),
    2: shapely.Polygon([(LONS[1] - 0.5, LATS[1] - 0.4), (LONS[1] + 0.6, LATS[1]),
                        (LONS[1], LATS[1] + 0.5)]),
}


_LOADED: dict[str, Engine] = {}


@pytest.fixture(scope="module")
def _cleanup() -> Iterator[dict[str, Engine]]:
    yield _LOADED
    for engine in _LOADED.values():
        Base.metadata.drop_all(engine)
    _LOADED.clear()


@pytest.fixture
def data(pg_engine: Engine, _cleanup: dict[str, Engine]) -> Engine:
    """The module's tables, loaded once (COPY; geography as EWKT text) and analyzed."""
    if "engine" not in _LOADED:
        with pg_engine.begin() as conn:
            Base.metadata.create_all(conn)
            wkt = [f"SRID=4326;POINT({lon!r} {lat!r})" for lon, lat in zip(
                LONS.tolist(), LATS.tolist(), strict=True)]
            copy_rows(conn, Place, (
                (i, KINDS[i], wkt[i]) for i in range(N)
            ), columns=["id", "kind", "location"])
            copy_rows(conn, Zone, (
                (zid, f"zone {zid}", f"SRID=4326;{poly.wkt}") for zid, poly in ZONES.items()
            ), columns=["id", "name", "area"])
            conn.execute(text(
                "INSERT INTO geo_t_sites (id, location) SELECT id, "
                "ST_Transform(location::geometry, 3857) FROM geo_t_places "
                "WHERE abs(ST_Y(location::geometry)) < 85"
            ))
            conn.execute(text("ANALYZE geo_t_places; ANALYZE geo_t_zones; ANALYZE geo_t_sites"))
        _LOADED["engine"] = pg_engine
    return pg_engine


@pytest.fixture
def conn(data: Engine) -> Iterator[Connection]:
    with data.connect() as connection:
        yield connection


def ids(conn: Connection | Session, stmt: Any) -> set[int]:
    return {row.id for row in conn.execute(stmt.with_only_columns(Place.id))}


lon_st = st.floats(-180, 180, allow_nan=False)
lat_st = st.floats(-85, 85, allow_nan=False)


def centers() -> st.SearchStrategy[tuple[float, float]]:
    """Near a city (where the data is dense) or anywhere."""
    near = st.tuples(st.sampled_from(CITIES), st.floats(-0.5, 0.5), st.floats(-0.5, 0.5)).map(
        lambda t: (max(-180.0, min(180.0, t[0][0] + t[1])), t[0][1] + t[2])
    )
    return st.one_of(near, st.tuples(lon_st, lat_st))


# --- schema -------------------------------------------------------------------------------


def test_exactly_one_spatial_index_per_column(data: Engine) -> None:
    query = text(
        "SELECT c.relname, a.attname, count(*) FROM pg_index x "
        "JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_am am ON am.oid = i.relam "
        "JOIN pg_class c ON c.oid = x.indrelid "
        "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(x.indkey) "
        "WHERE am.amname = 'gist' AND c.relname LIKE 'geo_t_%' GROUP BY 1, 2 ORDER BY 1, 2"
    )
    with data.connect() as conn:
        rows = [tuple(r) for r in conn.execute(query)]
        kinds = dict(conn.execute(text(
            "SELECT c.relname || '.' || a.attname, format_type(a.atttypid, a.atttypmod) "
            "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
            "WHERE c.relname LIKE 'geo_t_%' AND a.attname IN ('location', 'area')"
        )).all())
    assert rows == [
        ("geo_t_places", "location", 1),
        ("geo_t_sites", "location", 1),
        ("geo_t_zones", "area", 1),
    ]
    assert kinds == {
        "geo_t_places.location": "geography(Point,4326)",
        "geo_t_sites.location": "geometry(Point,3857)",
        "geo_t_zones.area": "geography(Polygon,4326)",
    }


def test_manual_index_next_to_spatial_index_really_duplicates(pg_schema: PgSchema) -> None:
    """GeoAlchemy2 #319 on this version: why check_spatial_indexes exists."""
    table = Table("dup", MetaData(), Column("id", Integer, primary_key=True),
                  Column("geom", spatial_type()))
    Index("dup_geom_gist", table.c.geom, postgresql_using="gist")
    with pg_schema.engine.begin() as conn:
        table.create(conn)
        count = conn.execute(text(
            "SELECT count(*) FROM pg_indexes WHERE tablename = 'dup' AND indexdef LIKE '%gist%'"
        )).scalar_one()
    assert count == 2


# --- radius -------------------------------------------------------------------------------


@given(center=centers(), meters=st.floats(10, 400_000), spheroid=st.booleans())
def test_within_distance_matches_haversine(
    conn: Connection, center: tuple[float, float], meters: float, spheroid: bool
) -> None:
    lon, lat = center
    found = ids(conn, within_distance(Place.location, point(lon, lat), meters, spheroid=spheroid))
    ref = haversine(lon, lat)
    tol = SPHEROID_TOL * meters if spheroid else 1e-6 * meters + 1e-3
    must = set(np.nonzero(ref < meters - tol)[0].tolist())
    may = set(np.nonzero(ref <= meters + tol)[0].tolist())
    assert must <= found <= may


def test_within_distance_projected_geometry_is_euclidean(conn: Connection) -> None:
    center = conn.execute(select(gf.ST_AsText(Site.location)).where(Site.id == 7)).scalar_one()
    x, y = shapely.from_wkt(center).coords[0]
    stmt = within_distance(Site.location, point(x, y, srid=3857), 50_000)
    found = {row.id for row in conn.execute(stmt.with_only_columns(Site.id))}
    coords = conn.execute(select(Site.id, gf.ST_X(Site.location), gf.ST_Y(Site.location))).all()
    ref = {i for i, sx, sy in coords if math.hypot(sx - x, sy - y) <= 50_000}
    assert found == ref and 7 in found


def test_radius_plan_uses_gist_and_st_distance_does_not(conn: Connection) -> None:
    here = point(*CITIES[0])
    plan = explain(conn, within_distance(Place.location, here, 2_000))
    assert uses_index(plan, "idx_geo_t_places_location")
    naive = select(Place).where(gf.ST_Distance(Place.location, here) < 2_000)
    plan = explain(conn, naive)
    assert has_seq_scan(plan, "geo_t_places")
    assert not uses_index(plan, "idx_geo_t_places_location")


# --- nearest ------------------------------------------------------------------------------


@given(center=centers(), k=st.integers(1, 25), only_a=st.booleans())
def test_nearest_on_sphere_matches_haversine(
    conn: Connection, center: tuple[float, float], k: int, only_a: bool
) -> None:
    lon, lat = center
    where = Place.kind == "a" if only_a else None
    rows = nearest(conn, Place, Place.location, point(lon, lat), k, where=where, spheroid=False)
    ref = haversine(lon, lat)
    if only_a:
        ref = np.where(np.array(KINDS) == "a", ref, np.inf)
    order = np.argsort(ref, kind="stable")[:k]
    got = np.array([row.distance for row in rows])
    assert len(rows) == k
    assert np.allclose(got, ref[order], rtol=1e-6, atol=1e-3)
    assert list(got) == sorted(got)
    # the same rows, except where two candidates tie within the tolerance
    gap = ref[order[-1]] * 1e-6 + 1e-3
    assert {row.id for row in rows} >= set(np.nonzero(ref < ref[order[-1]] - gap)[0].tolist())


@given(center=centers(), k=st.integers(1, 25), only_a=st.booleans())
def test_nearest_on_spheroid_is_exact(
    conn: Connection, center: tuple[float, float], k: int, only_a: bool
) -> None:
    lon, lat = center
    here = point(lon, lat)
    where = [Place.kind == "a"] if only_a else None
    rows = nearest(conn, Place, Place.location, here, k, where=where)
    brute = select(Place.id, gf.ST_Distance(Place.location, here).label("d"))
    if only_a:
        brute = brute.where(Place.kind == "a")
    exact = conn.execute(brute.order_by(text("d")).limit(k)).all()
    assert [row.distance for row in rows] == pytest.approx([r.d for r in exact], rel=1e-12)
    ref = np.sort(haversine(lon, lat)[[r.id for r in exact]])
    assert np.allclose([row.distance for row in rows], ref, rtol=SPHEROID_TOL)


def test_nearest_returns_orm_objects_in_a_session(data: Engine) -> None:
    with Session(data) as session:
        rows = nearest(session, Place, Place.location, point(*CITIES[3]), 3)
        assert [type(place) for place, _ in rows] == [Place, Place, Place]
        assert rows[0].distance <= rows[1].distance <= rows[2].distance


@pytest.mark.parametrize("spheroid", [True, False])
def test_nearest_plan_uses_knn_and_order_by_st_distance_does_not(
    conn: Connection, spheroid: bool
) -> None:
    here = point(*CITIES[5])
    plan = explain(conn, nearest_stmt(Place, Place.location, here, 10, spheroid=spheroid))
    assert uses_index(plan, "idx_geo_t_places_location")
    assert not has_seq_scan(plan, "geo_t_places")
    naive = select(Place).order_by(gf.ST_Distance(Place.location, here)).limit(10)
    plan = explain(conn, naive)
    assert has_seq_scan(plan, "geo_t_places")


async def test_nearest_async_matches_sync(data: Engine, pg_async_session: AsyncSession) -> None:
    here = point(*CITIES[2])
    rows = await nearest_async(pg_async_session, Place, Place.location, here, 5)
    with Session(data) as session:
        expected = nearest(session, Place, Place.location, here, 5)
    assert [(p.id, d) for p, d in rows] == [(p.id, d) for p, d in expected]
    with data.connect() as conn:  # Core: the entity's columns, then distance
        flat = nearest(conn, Place, Place.location, here, 5)
    assert [(r.id, r.distance) for r in flat] == [(p.id, d) for p, d in expected]
    plan = await explain_async(pg_async_session, within_distance(Place.location, here, 500))
    assert uses_index(plan, "idx_geo_t_places_location")


# --- containment, intersection, viewport -------------------------------------------------


@pytest.mark.parametrize("zone_id", sorted(ZONES))
def test_within_zone_matches_exact_predicate(conn: Connection, zone_id: int) -> None:
    polygon = ZONES[zone_id]
    area = from_shapely(polygon)
    found = ids(conn, within(Place.location, area))
    exact = {r.id for r in conn.execute(
        select(Place.id).where(gf.ST_CoveredBy(Place.location, area))
    )}
    assert found == exact and found
    # planar reference away from the (geodesic vs planar) edges
    inside = set(np.nonzero(shapely.contains_xy(polygon.buffer(-0.01), LONS, LATS))[0].tolist())
    near = set(np.nonzero(shapely.contains_xy(polygon.buffer(0.01), LONS, LATS))[0].tolist())
    assert inside <= found <= near
    plan = explain(conn, within(Place.location, area))
    assert uses_index(plan, "idx_geo_t_places_location")


def test_within_spatial_join_and_intersecting(conn: Connection) -> None:
    stmt = within(Place.location, Zone.area, stmt=select(Zone.id, Place.id.label("place")))
    pairs = conn.execute(stmt).all()
    for zone_id in ZONES:
        assert {p for z, p in pairs if z == zone_id} == ids(
            conn, within(Place.location, from_shapely(ZONES[zone_id]))
        )
    box = from_shapely(shapely.box(LONS[0] - 1, LATS[0] - 1, LONS[0] + 1, LATS[0] + 1))
    hit = {r.id for r in conn.execute(intersecting(Zone.area, box).with_only_columns(Zone.id))}
    assert {1} <= hit, hit


@given(
    west=st.floats(-179, 170), south=st.floats(-85, 80),
    width=st.floats(0.01, 170), height=st.floats(0.01, 60),
)
def test_bbox_on_geography_is_exact_lonlat_rectangle(
    conn: Connection, west: float, south: float, width: float, height: float
) -> None:
    east, north = min(180.0, west + width), min(89.0, south + height)
    found = ids(conn, bbox(Place.location, west, south, east, north))
    ref = set(np.nonzero(
        (west <= LONS) & (east >= LONS) & (south <= LATS) & (north >= LATS)
    )[0].tolist())
    assert found == ref


def test_bbox_uses_the_index(conn: Connection) -> None:
    lon, lat = CITIES[1]
    plan = explain(conn, bbox(Place.location, lon - 0.1, lat - 0.1, lon + 0.1, lat + 0.1))
    assert uses_index(plan, "idx_geo_t_places_location")
    plan = explain(conn, bbox(Site.location, 0, 0, 100_000, 100_000))
    assert uses_index(plan, "idx_geo_t_sites_location")


def test_geography_cast_of_query_geometry_column(conn: Connection) -> None:
    """A geometry-typed expression is cast to the geography column's kind."""
    expr = gf.ST_SetSRID(gf.ST_MakePoint(*CITIES[0]), 4326)
    stmt = within_distance(Place.location, expr, 5_000)
    assert "geography" in str(stmt.compile()).lower()
    assert ids(conn, stmt) == ids(conn, within_distance(Place.location, point(*CITIES[0]), 5_000))
    assert isinstance(Place.__table__.c.location.type, Geography)


def test_input_helpers_can_be_inserted_through_the_orm(pg_session: Session, data: Engine) -> None:
    """WKTElement (EWKT) works for geography and geometry attributes alike."""
    pg_session.add_all([
        Place(id=N + 1, kind="new", location=point(lon=2.3522, lat=48.8566)),
        Zone(id=99, name="new", area=from_shapely(shapely.box(2.3, 48.8, 2.4, 48.9))),
        Site(id=N + 1, location=point(261_845.7, 6_250_564.3, srid=3857)),
    ])
    pg_session.flush()
    lon, lat = pg_session.execute(select(
        gf.ST_X(cast(Place.location, Geometry)), gf.ST_Y(cast(Place.location, Geometry))
    ).where(Place.id == N + 1)).one()
    assert (lon, lat) == (2.3522, 48.8566)
    inside = pg_session.scalars(within(Place.location, Zone.area, stmt=select(Place.id).where(
        Zone.id == 99))).all()
    assert N + 1 in inside


def test_geojson_crs_member_is_honoured(pg_session: Session, data: Engine) -> None:
    """Issue 17: a GeoJSON crs (EPSG:3857) used to be dropped and the shape stored as 4326."""
    mercator = {"type": "Point", "coordinates": [261_845.7, 6_250_564.3],
                "crs": {"type": "name", "properties": {"name": "EPSG:3857"}}}
    pg_session.add(Site(id=N + 2, location=from_geojson(mercator)))
    pg_session.flush()
    srid = pg_session.scalar(select(gf.ST_SRID(Site.location)).where(Site.id == N + 2))
    assert srid == 3857
    near = pg_session.scalars(within_distance(Site.location, from_geojson(mercator), 1)).all()
    assert [s.id for s in near] == [N + 2]
    pg_session.rollback()
