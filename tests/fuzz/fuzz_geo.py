"""Geo fuzz cases, compile-level (PostGIS may be absent): imported only with geoalchemy2."""

from __future__ import annotations

from typing import Any

from fuzz_harness import DIALECT, Case, Env
from geoalchemy2 import WKBElement
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from pgpatterns import geo


class _Base(DeclarativeBase):
    metadata = MetaData()


class FzStore(_Base):
    __tablename__ = "fz_stores"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str]
    location: Mapped[WKBElement] = geo.point_column()


def compiled(result: Any, env: Env) -> None:
    """Compile whatever a geo builder returns (statements are not run: no PostGIS needed)."""
    if hasattr(result, "compile"):
        str(result.compile(dialect=DIALECT))


HERE = geo.point(2.35, 48.85)
ZONE = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}


def geo_cases() -> list[Case]:
    loc = FzStore.location
    rows: list[tuple[Any, Any, tuple[str, ...]]] = [
        (geo.point, lambda env: {"lon": 2.35, "lat": 48.85}, ("lon", "lat", "srid")),
        (geo.from_geojson, lambda env: {"geojson": ZONE}, ("geojson", "srid", "require_valid")),
        (geo.within_distance, lambda env: {"col": loc, "point": HERE, "meters": 100.0},
         ("col", "point", "meters", "spheroid", "stmt")),
        (geo.nearest_stmt, lambda env: {"model": FzStore, "col": loc, "point": HERE, "k": 3},
         ("point", "k", "where", "spheroid", "model")),
        (geo.within, lambda env: {"col": loc, "area": geo.from_geojson(ZONE)}, ("area", "stmt")),
        (geo.intersecting, lambda env: {"col": loc, "geom": HERE}, ("geom", "col")),
        (geo.bbox, lambda env: {"col": loc, "xmin": 0.0, "ymin": 0.0, "xmax": 1.0, "ymax": 1.0},
         ("xmin", "ymin", "xmax", "ymax", "stmt")),
        (geo.spatial_type, lambda env: {}, ("geometry_type", "srid", "geography",
                                            "spatial_index")),
        (geo.check_spatial_indexes, lambda env: {"target": FzStore}, ("target", "require")),
    ]
    return [
        Case(name=f"geo.{func.__name__}", func=func, base=base, fuzz=fuzz, consume=compiled)
        for func, base, fuzz in rows
    ]
