"""geo: PostGIS queries through pgpatterns.geo versus the forms that cannot use the GiST index.

Data: N points (quick 10^4, default 10^6), 90% clustered around 300 "cities" whose sizes
follow a power law, 10% spread over land and sea; ``geography(POINT,4326)`` with the one GiST
index of :func:`pgpatterns.geo.spatial_type`. Loaded once per module: (id, lon, lat) with
``copy_rows`` (binary COPY), the point a generated column, the index built after the load.

Questions (each round runs the same Q queries around Q "users", drawn from the clustered
points: density-weighted, as real users are):

* ``geo:radius`` -- points within 2 km: ``within_distance`` (ST_DWithin, GiST) vs
  ``ST_Distance(...) < r`` (baseline);
* ``geo:nearest-10`` -- the 10 nearest with their spheroid distance: ``nearest_stmt`` vs
  ``ORDER BY ST_Distance LIMIT 10`` (baseline), KNN on the sphere (alternative) and the
  hand-written ``ORDER BY location <-> p LIMIT 10`` (limit);
* ``geo:polygon-containment`` -- points inside a city polygon: ``within`` (``&&`` +
  ST_CoveredBy) vs ST_CoveredBy alone (baseline: PostGIS >= 3 adds the index condition
  itself) and ``ST_Within(location::geometry, polygon)`` (alternative: what a geography
  user writes, since ST_Within has no geography form; it cannot use the index).

Needs PostGIS: the module is marked ``requires_extension("postgis")``, so ``pg_engine`` is on
a server that has it (the system PostgreSQL 15 here); without one the suite is skipped, with
the reason in the report. Slow baselines run fewer rounds (``extra.rounds_note``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import shapely
from geoalchemy2 import Geography, Geometry
from geoalchemy2 import functions as gf
from sqlalchemy import (
    BigInteger,
    Column,
    Computed,
    Double,
    Engine,
    MetaData,
    Table,
    cast,
    select,
    text,
)

from benchmarks.conftest import Scale, record
from pgpatterns.bulk import copy_rows
from pgpatterns.explain import explain, plan_summary
from pgpatterns.geo import (
    from_shapely,
    nearest_stmt,
    point,
    spatial_type,
    within,
    within_distance,
)

pytestmark = pytest.mark.requires_extension("postgis")

RADIUS = 2_000.0
K = 10
QUERIES = 5

metadata = MetaData()
places = Table(
    "bench_geo_places",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("lon", Double, nullable=False),
    Column("lat", Double, nullable=False),
    Column(
        "location",
        spatial_type("POINT"),
        Computed("ST_SetSRID(ST_MakePoint(lon, lat), 4326)::geography", persisted=True),
    ),
)
INDEX = "idx_bench_geo_places_location"
ANY_GEOGRAPHY = Geography(geometry_type=None)
loc = places.c.location


def generate(
    scale: Scale, n: int
) -> tuple[list[tuple[int, float, float]], list[tuple[float, float]]]:
    rng = np.random.default_rng(scale.seed)
    cities = np.column_stack([rng.uniform(-160, 160, 300), rng.uniform(-50, 65, 300)])
    weights = 1.0 / np.arange(1, 301) ** 1.1
    weights /= weights.sum()
    clustered = int(n * 0.9)
    which = rng.choice(300, size=clustered, p=weights)
    spread = rng.exponential(0.05, size=clustered)[:, None]  # most within ~5 km of the centre
    pts = cities[which] + rng.normal(0, 1, (clustered, 2)) * spread
    rural = np.column_stack([
        rng.uniform(-180, 180, n - clustered),
        np.degrees(np.arcsin(rng.uniform(-1, 1, n - clustered))),
    ])
    pts = np.vstack([pts, rural])
    pts[:, 0] = np.clip(pts[:, 0], -180, 180)
    pts[:, 1] = np.clip(pts[:, 1], -89.9, 89.9)
    rows = [(i, lon, lat) for i, (lon, lat) in enumerate(pts.tolist())]
    # query centres: where users are, i.e. drawn from the clustered points themselves
    picks = rng.choice(clustered, size=QUERIES, replace=False)
    centres = [(float(x) + 0.001, float(y) - 0.001) for x, y in pts[picks]]
    return rows, centres


@pytest.fixture(scope="module")
def data(pg_module_engine: Engine, scale: Scale) -> Iterator[dict[str, Any]]:
    """Load once per module (dropped at the end); n, the query centres and their polygons."""
    pg_engine = pg_module_engine
    n = scale.pick(quick=10**4, default=10**6)
    rows, centres = generate(scale, n)
    metadata.drop_all(pg_engine)
    with pg_engine.begin() as conn:
        metadata.create_all(conn)
        conn.execute(text(f"DROP INDEX {INDEX}"))  # built after the load: much faster
    with pg_engine.begin() as conn:
        copy_rows(conn, places, rows, columns=["id", "lon", "lat"])
    with pg_engine.begin() as conn:
        next(i for i in places.indexes if i.name == INDEX).create(conn)
    with pg_engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(
            text("VACUUM ANALYZE bench_geo_places")
        )
    # ~3 km "city districts": irregular hexagons around each centre
    polygons = [
        shapely.Polygon([
            (x + 0.03 * math.cos(a) * (1 + 0.2 * (j % 2)), y + 0.02 * math.sin(a))
            for j, a in enumerate(np.linspace(0, 2 * math.pi, 7)[:-1])
        ])
        for x, y in centres
    ]
    yield {"engine": pg_engine, "n": n, "centres": [point(x, y) for x, y in centres],
           "polygons": [from_shapely(p) for p in polygons]}
    metadata.drop_all(pg_engine)


def _run(
    benchmark: Any, engine: Engine, stmts: list[Any], *, rounds: int
) -> list[list[tuple[Any, ...]]]:
    results: list[list[tuple[Any, ...]]] = []

    def once() -> None:
        with engine.connect() as conn:
            results[:] = [[tuple(r) for r in conn.execute(s)] for s in stmts]

    benchmark.pedantic(once, rounds=rounds, iterations=1, warmup_rounds=0)
    return results


def _plan(engine: Engine, stmt: Any) -> str:
    with engine.connect() as conn:
        return plan_summary(explain(conn, stmt))


def _slow_rounds(scale: Scale) -> int:
    return 2 if scale.name != "quick" else scale.rounds


def _case(
    benchmark: Any,
    data: dict[str, Any],
    scale: Scale,
    *,
    question: str,
    case: str,
    role: str,
    build: Callable[[int], Any],
    slow: bool = False,
) -> list[list[tuple[Any, ...]]]:
    engine: Engine = data["engine"]
    stmts = [build(i) for i in range(QUERIES)]
    rounds = _slow_rounds(scale) if slow else scale.rounds
    extra: dict[str, Any] = {"queries_per_round": QUERIES}
    if slow and rounds < scale.rounds:
        extra["rounds_note"] = f"{rounds} rounds (full-scan baseline)"
    record(benchmark, question=question, case=case, role=role, rows=data["n"], scale=scale,
           plan=_plan(engine, stmts[0]), **extra)
    return _run(benchmark, engine, stmts, rounds=rounds)


def _ids(results: list[list[tuple[Any, ...]]]) -> list[set[Any]]:
    return [{row[0] for row in rows} for rows in results]


# --- geo:radius --------------------------------------------------------------------------

RADIUS_Q = "geo:radius"


def _radius_pattern(data: dict[str, Any]) -> list[set[Any]]:
    with data["engine"].connect() as conn:
        return [
            {r[0] for r in conn.execute(within_distance(loc, c, RADIUS, stmt=select(places.c.id)))}
            for c in data["centres"]
        ]


def test_radius_within_distance(benchmark: Any, data: dict[str, Any], scale: Scale) -> None:
    got = _case(benchmark, data, scale, question=RADIUS_Q, case="within_distance (ST_DWithin)",
                role="pattern", build=lambda i: within_distance(
                    loc, data["centres"][i], RADIUS, stmt=select(places.c.id)))
    assert _ids(got) == _radius_pattern(data) and any(_ids(got))


def test_radius_st_distance(benchmark: Any, data: dict[str, Any], scale: Scale) -> None:
    got = _case(benchmark, data, scale, question=RADIUS_Q, case="ST_Distance(...) < r",
                role="baseline", slow=True, build=lambda i: select(places.c.id).where(
                    gf.ST_Distance(loc, data["centres"][i]) < RADIUS))
    assert _ids(got) == _radius_pattern(data)


# --- geo:nearest-10 ----------------------------------------------------------------------

NEAREST_Q = "geo:nearest-10"


def _nearest(data: dict[str, Any], i: int, *, spheroid: bool = True) -> Any:
    return nearest_stmt(places, loc, data["centres"][i], K, spheroid=spheroid)


def _exact_nearest(data: dict[str, Any], i: int) -> Any:
    centre = data["centres"][i]
    d = gf.ST_Distance(loc, centre).label("distance")
    return select(places, d).order_by(d).limit(K)


def test_nearest_knn(benchmark: Any, data: dict[str, Any], scale: Scale) -> None:
    got = _case(benchmark, data, scale, question=NEAREST_Q, case="nearest_stmt (KNN, spheroid)",
                role="pattern", build=lambda i: _nearest(data, i))
    with data["engine"].connect() as conn:
        exact = [conn.execute(_exact_nearest(data, i)).all() for i in range(QUERIES)]
    assert [[r[0] for r in rows] for rows in got] == [[r[0] for r in rows] for rows in exact]


def test_nearest_order_by_st_distance(
    benchmark: Any, data: dict[str, Any], scale: Scale
) -> None:
    got = _case(benchmark, data, scale, question=NEAREST_Q, case="ORDER BY ST_Distance LIMIT k",
                role="baseline", slow=True, build=lambda i: _exact_nearest(data, i))
    assert all(len(rows) == K for rows in got)


def test_nearest_knn_sphere(benchmark: Any, data: dict[str, Any], scale: Scale) -> None:
    got = _case(benchmark, data, scale, question=NEAREST_Q,
                case="nearest_stmt(spheroid=False) (KNN only)", role="alternative",
                build=lambda i: _nearest(data, i, spheroid=False))
    assert all(len(rows) == K for rows in got)


def test_nearest_handwritten_knn(benchmark: Any, data: dict[str, Any], scale: Scale) -> None:
    def build(i: int) -> Any:
        centre = cast(gf.ST_GeomFromEWKT(data["centres"][i].data), ANY_GEOGRAPHY)
        return select(places).order_by(loc.distance_centroid(centre)).limit(K)

    got = _case(benchmark, data, scale, question=NEAREST_Q, case="hand-written <-> LIMIT k",
                role="limit", build=build)
    assert all(len(rows) == K for rows in got)


# --- geo:polygon-containment -------------------------------------------------------------

CONTAIN_Q = "geo:polygon-containment"


def _within_ids(data: dict[str, Any]) -> list[set[Any]]:
    with data["engine"].connect() as conn:
        return [
            {r[0] for r in conn.execute(within(loc, p, stmt=select(places.c.id)))}
            for p in data["polygons"]
        ]


def test_contain_within(benchmark: Any, data: dict[str, Any], scale: Scale) -> None:
    got = _case(benchmark, data, scale, question=CONTAIN_Q, case="within (&& + ST_CoveredBy)",
                role="pattern", build=lambda i: within(
                    loc, data["polygons"][i], stmt=select(places.c.id)))
    assert _ids(got) == _within_ids(data) and any(_ids(got))


def test_contain_exact_only(benchmark: Any, data: dict[str, Any], scale: Scale) -> None:
    got = _case(benchmark, data, scale, question=CONTAIN_Q, case="ST_CoveredBy only",
                role="baseline", build=lambda i: select(places.c.id).where(
                    gf.ST_CoveredBy(loc, cast(gf.ST_GeomFromEWKT(
                        data["polygons"][i].data), ANY_GEOGRAPHY))))
    assert _ids(got) == _within_ids(data)


def test_contain_geometry_cast(benchmark: Any, data: dict[str, Any], scale: Scale) -> None:
    got = _case(benchmark, data, scale, question=CONTAIN_Q,
                case="ST_Within(location::geometry, polygon)", role="alternative", slow=True,
                build=lambda i: select(places.c.id).where(gf.ST_Within(
                    cast(loc, Geometry(geometry_type=None)),
                    gf.ST_GeomFromEWKT(data["polygons"][i].data))))
    # planar vs geodesic edges may differ for points within centimetres of an edge
    for mine, ref in zip(_ids(got), _within_ids(data), strict=True):
        assert len(mine ^ ref) <= max(2, len(ref) // 1000)
