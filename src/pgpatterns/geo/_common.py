"""Shared internals of :mod:`pgpatterns.geo.query`: column resolution and operand checks."""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any

import shapely  # type: ignore[import-untyped]  # no stubs (types-shapely)
from geoalchemy2 import Geography, Geometry
from geoalchemy2.elements import _SpatialElement
from sqlalchemy import Boolean, Select, cast, select, type_coerce
from sqlalchemy.orm import QueryableAttribute
from sqlalchemy.sql.elements import ColumnClause, ColumnElement
from sqlalchemy.sql.sqltypes import NullType

from pgpatterns.errors import GeoError, GeoSRIDError
from pgpatterns.geo.inputs import LONLAT_SRIDS

__all__: list[str] = []

# Untyped casts (plain ``geometry``/``geography``): a typmod would pin the geometry type.
_GEOMETRY = Geometry(geometry_type=None)
_GEOGRAPHY = Geography(geometry_type=None)


@dataclass(frozen=True)
class _Spatial:
    expr: ColumnElement[Any]
    entity: Any
    type: Geography | Geometry
    srid: int | None  # None: the column does not declare one

    @property
    def geography(self) -> bool:
        return isinstance(self.type, Geography)

    @property
    def label(self) -> str:
        kind = "geography" if self.geography else "geometry"
        return f"{getattr(self.expr, 'name', 'the column')} ({kind}, SRID {self.srid or '?'})"


def _spatial(col: Any) -> _Spatial:
    entity: Any = None
    if isinstance(col, QueryableAttribute):
        expr = col.__clause_element__()
        entity = col.parent.entity
    elif isinstance(col, ColumnElement):
        expr = col
        entity = getattr(col, "table", None) if isinstance(col, ColumnClause) else None
    else:
        raise GeoError(
            f"expected a spatial column (Model.location or table.c.location), got {col!r:.80}."
        )
    kind = expr.type
    if not isinstance(kind, (Geography, Geometry)):
        raise GeoError(
            f"{col!r:.80} is of type {kind!r}, not a GeoAlchemy2 Geography/Geometry: declare "
            "it with pgpatterns.geo.point_column()/geometry_column() or geoalchemy2 types."
        )
    srid = kind.srid if kind.srid and kind.srid > 0 else None
    if srid is None and isinstance(kind, Geography):
        srid = 4326  # PostGIS's default for geography
    return _Spatial(expr, entity, kind, srid)


def _operand(value: object, spatial: _Spatial, what: str) -> ColumnElement[Any]:
    """The query geometry as SQL of the column's kind, its SRID checked first."""
    if isinstance(value, QueryableAttribute):
        value = value.__clause_element__()
    if isinstance(value, _SpatialElement):
        srid = value.srid if isinstance(value.srid, int) and value.srid > 0 else None
        if srid is None:
            raise GeoSRIDError(
                f"the {what} has no SRID: build it with pgpatterns.geo.point(lon, lat), "
                "from_geojson() or from_shapely(shape, srid=...), which record it."
            )
        _same_srid(srid, spatial, what)
        # Bound the way GeoAlchemy2 binds geometry (ST_GeomFromEWKT reads EWKT and hex EWKB),
        # then cast: GeoAlchemy2's geography binding (ST_GeogFromText) cannot read EWKB.
        geometry = type_coerce(value, _GEOMETRY)
        return cast(geometry, _GEOGRAPHY) if spatial.geography else geometry
    if isinstance(value, ColumnElement):
        other = value.type
        if isinstance(other, (Geography, Geometry)):
            if other.srid and other.srid > 0:
                _same_srid(other.srid, spatial, what)
            if isinstance(other, Geography) != spatial.geography:
                return cast(value, _GEOGRAPHY if spatial.geography else _GEOMETRY)
        return value
    if isinstance(value, shapely.Geometry):
        raise GeoSRIDError(
            f"the {what} is a shapely {value.geom_type}, which carries no SRID: wrap it in "
            f"pgpatterns.geo.from_shapely(shape, srid={spatial.srid or 4326})."
        )
    if isinstance(value, (tuple, list)):
        raise GeoError(
            f"the {what} is a bare {type(value).__name__}: build it with "
            "pgpatterns.geo.point(lon=..., lat=...), so that the order cannot be mistaken."
        )
    raise GeoError(f"the {what} must be a spatial element or expression, got {value!r:.80}.")


def _same_srid(srid: int, spatial: _Spatial, what: str) -> None:
    if spatial.srid is not None and srid != spatial.srid:
        raise GeoSRIDError(
            f"the {what} is in SRID {srid} but {spatial.label} is in SRID {spatial.srid}: "
            "PostGIS refuses to compare geometries across reference systems. Build the "
            f"{what} with srid={spatial.srid} (or transform it, e.g. func.ST_Transform)."
        )


def _overlaps(expr: ColumnElement[Any], target: ColumnElement[Any]) -> ColumnElement[bool]:
    """``expr && target``: GeoAlchemy2's ``.intersects()``, marked as a comparison.

    Written here because GeoAlchemy2's ``&&`` operator is not flagged ``is_comparison``, so
    SQLAlchemy's FROM linter would call a spatial join ``a && b`` a cartesian product.
    """
    return expr.op("&&", is_comparison=True)(target)


def _finite(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise GeoError(f"{name} must be a number, got {type(value).__name__} {value!r:.40}.")
    number = math.inf
    with contextlib.suppress(OverflowError):  # an int beyond float's range
        number = float(value)
    if not math.isfinite(number):
        raise GeoError(f"{name} must be finite, got {value!r:.40}.")
    return number


def _flag(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise GeoError(f"{name} must be True or False, got {value!r:.40}.")
    return value


def _filters(where: object) -> list[ColumnElement[bool]]:
    """``where`` (None, a boolean expression or a list of them) as a list, checked."""
    if where is None:
        return []
    items = [where] if isinstance(where, (ColumnElement, QueryableAttribute)) else where
    if isinstance(items, (str, bytes)) or not isinstance(items, (list, tuple)):
        items = [items]
    checked: list[ColumnElement[bool]] = []
    for item in items:
        expr = item.__clause_element__() if isinstance(item, QueryableAttribute) else item
        if not isinstance(expr, ColumnElement) or not isinstance(
            expr.type, (Boolean, NullType)
        ):
            raise GeoError(
                f"where={item!r:.80} is not a SQLAlchemy boolean expression: pass conditions "
                "such as Store.kind == 'cafe' (or a list of them). SQL strings are refused: "
                "values are bound as parameters, never formatted into SQL."
            )
        checked.append(expr)
    return checked


def _metric(spatial: _Spatial, helper: str) -> None:
    if not spatial.geography and spatial.srid in LONLAT_SRIDS:
        raise GeoError(
            f"{helper} measures in meters, but {spatial.label} is planar geometry in "
            "degrees: a degree of longitude spans 111 km at the equator and 0 km at the "
            "poles. Use a geography column (point_column(geography=True)), a projected SRID "
            "in meters, or an expression index on (col::geography) and pass "
            "cast(col, Geography) with stmt=."
        )


def _select(
    spatial: _Spatial, stmt: Select[Any] | None, *where: ColumnElement[bool]
) -> Select[Any]:
    if stmt is not None:
        if not isinstance(stmt, Select):
            raise GeoError(f"stmt must be a select(...) to add the predicate to, got {stmt!r:.80}.")
        return stmt.where(*where)
    if spatial.entity is None:
        raise GeoError(
            "cannot tell which table to select from for an expression column: pass stmt="
            "select(...) to add the predicate to."
        )
    return select(spatial.entity).where(*where)
