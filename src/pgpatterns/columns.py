"""Column conventions: identity and UUID keys, ``timestamptz`` stamps, soft delete, money.

Examples:
    >>> from sqlalchemy.orm import DeclarativeBase
    >>> from pgpatterns.columns import NAMING_CONVENTION, IdentityPrimaryKey, Money, Timestamps
    >>> from sqlalchemy import MetaData
    >>> class Base(DeclarativeBase):
    ...     metadata = MetaData(naming_convention=NAMING_CONVENTION)
    >>> class Invoice(IdentityPrimaryKey, Timestamps, Base):
    ...     __tablename__ = "invoices"
    >>> sorted(Invoice.__table__.c.keys())
    ['created_at', 'id', 'updated_at']
    >>> from pgpatterns.ddl import attach
    >>> attach(Base.metadata, *columns_ddl(Base.metadata))  # the updated_at trigger(s)

* :class:`IdentityPrimaryKey`: ``id bigint GENERATED ALWAYS AS IDENTITY`` (not ``serial``:
  no separately owned sequence, and a hand-written id is refused unless
  ``OVERRIDING SYSTEM VALUE``).
* :class:`UUIDPrimaryKey`: ``id uuid DEFAULT pgpatterns_uuid_v7()``, time-ordered (index
  friendly) UUIDs made by the server.
* :class:`Timestamps`: ``created_at`` / ``updated_at`` as ``timestamptz`` with ``now()``
  defaults; ``updated_at`` is set by a trigger, so raw SQL updates it too.
* :class:`SoftDelete`: ``deleted_at`` and :meth:`SoftDelete.unique_alive` partial unique
  indexes (``WHERE deleted_at IS NULL``).
* :class:`Money`: ``numeric(19, 4)``, ``Decimal`` in and out; floats and sub-0.0001 amounts
  are refused rather than rounded.

Warning:
    - The trigger function and the UUID function are schema objects: pass
      :func:`columns_ddl` to :func:`pgpatterns.ddl.attach` once every model is declared.
    - ``pgpatterns_uuid_v7()`` calls the built-in ``uuidv7()`` when it is created on
      PostgreSQL 18+; on older servers (and in ``sql()`` text rendered without a connection)
      it builds a version-7 UUID from ``gen_random_uuid()`` (PostgreSQL 13+) and the
      millisecond clock. Both sort by creation time (to the millisecond).
    - ``updated_at`` is ``now()``: the *transaction's* start time, the same for every row a
      transaction touches, and not bumped by an UPDATE that changes nothing.
    - With ``AsyncSession``, the ORM cannot lazy-load ``updated_at`` after an UPDATE; set
      ``__mapper_args__ = {"eager_defaults": True}`` to fetch it with RETURNING.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    DateTime,
    FetchedValue,
    Identity,
    Index,
    MetaData,
    Numeric,
    Table,
    column,
    event,
    func,
    literal_column,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.compiler import DDLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeDecorator, Uuid

from pgpatterns._tables import check_identifier
from pgpatterns.ddl import Function, SchemaObject, Trigger
from pgpatterns.ddl.base import body_ident
from pgpatterns.errors import ColumnError

__all__ = [
    "NAMING_CONVENTION",
    "UPDATED_AT_FUNCTION",
    "UUID_V7_FUNCTION",
    "IdentityPrimaryKey",
    "Money",
    "SoftDelete",
    "Timestamps",
    "UUIDPrimaryKey",
    "columns_ddl",
    "updated_at_trigger",
    "uuid_v7_function",
]

NAMING_CONVENTION: dict[str, str] = {
    "ix": "%(table_name)s_%(column_0_N_name)s_idx",
    "uq": "%(table_name)s_%(column_0_N_name)s_key",
    "ck": "%(table_name)s_%(constraint_name)s_check",
    "fk": "%(table_name)s_%(column_0_N_name)s_fkey",
    "pk": "%(table_name)s_pkey",
}
"""``MetaData(naming_convention=...)`` that names constraints the way PostgreSQL itself
would (``orders_pkey``, ``orders_customer_id_fkey``, ``users_email_key``), so migrations
and ``\\d`` agree; CHECKs get ``<table>_<name>_check``."""

UUID_V7_FUNCTION = "pgpatterns_uuid_v7"
UPDATED_AT_FUNCTION = "pgpatterns_set_updated_at"
_UPDATED_AT = "pgpatterns.columns.updated_at"
_UUID_DEFAULT = "pgpatterns.columns.uuid_v7"

# Version-7 layout: 48-bit Unix milliseconds, then the random bits of a v4 UUID with the
# version nibble turned from 4 (0100) into 7 (0111) by setting bits 52 and 53.
_PORTABLE_V7 = (
    "SELECT encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) PLACING "
    "substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) "
    "FROM 3) FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid"
)
_NATIVE_V7 = "SELECT uuidv7()"


@dataclass(eq=False)
class _UUIDv7Function(Function):
    """Created *before* the tables (their defaults call it); native on PostgreSQL 18+."""

    phase: ClassVar[str] = "before"

    def render_create(self, compiler: DDLCompiler) -> list[str]:
        version = getattr(compiler.dialect, "server_version_info", None) or ()
        body = _NATIVE_V7 if tuple(version) >= (18,) else _PORTABLE_V7
        return Function.render_create(dataclasses.replace(self, body=body), compiler)


def uuid_v7_function(*, schema: str | None = None) -> Function:
    """The ``pgpatterns_uuid_v7()`` function that :class:`UUIDPrimaryKey` defaults call.

    Examples:
        >>> print(uuid_v7_function().sql()[:60])
        CREATE FUNCTION pgpatterns_uuid_v7() RETURNS uuid LANGUAGE s
    """
    return _UUIDv7Function(
        UUID_V7_FUNCTION, returns="uuid", body=_PORTABLE_V7,
        schema=_check_name("uuid_v7_function", "schema", schema), keep_on_drop=True,
    )


def _check_name(where: str, argument: str, value: object, optional: bool = True) -> Any:
    """A schema/column name: a non-empty ``str`` without NUL (or None when ``optional``)."""
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value or "\x00" in value:
        raise ColumnError(
            f"{where}: {argument}={value!r:.80} is not accepted: pass a non-empty name (str, "
            "no NUL)" + (" or None." if optional else ".")
        )
    return value


def _set_updated_at_function(column_name: str, schema: str | None) -> Function:
    col = body_ident(column_name)  # the one quoting path for function bodies (% stays %)
    name = UPDATED_AT_FUNCTION if column_name == "updated_at" else f"pgpatterns_set_{column_name}"
    return Function(
        check_identifier(name, ColumnError, "updated_at trigger"),
        returns="trigger",
        language="plpgsql",
        body=f"BEGIN NEW.{col} := now(); RETURN NEW; END",
        schema=schema,
    )


def updated_at_trigger(
    table: Table, function: Function, *, column_name: str = "updated_at"
) -> Trigger:
    """The BEFORE UPDATE trigger that stamps ``table.<column_name>`` through ``function``.

    Examples:
        >>> fn = Function("stamp", returns="trigger", language="plpgsql",
        ...               body="BEGIN NEW.updated_at := now(); RETURN NEW; END")
        >>> updated_at_trigger(Invoice.__table__, fn).sql()  # doctest: +SKIP
        'CREATE TRIGGER invoices_set_updated_at BEFORE UPDATE ON invoices FOR EACH ROW ...'

    Usually built by :func:`columns_ddl`. The trigger fires only when the row really changes
    (``WHEN (OLD.* IS DISTINCT FROM NEW.*)``).
    """
    _check_name("updated_at trigger", "column_name", column_name, optional=False)
    if not isinstance(table, Table):
        raise ColumnError(f"updated_at trigger: table={table!r:.80} is not a Table; pass "
                          "Model.__table__.")
    if not isinstance(function, Function):
        raise ColumnError(f"updated_at trigger: function={function!r:.80} is not a "
                          "pgpatterns.ddl.Function; build it with columns_ddl().")
    if column_name not in table.c:
        raise ColumnError(
            f"updated_at trigger: table {table.name} has no column {column_name!r}; add "
            "the Timestamps mixin or pass column_name= of an existing timestamptz column."
        )
    name = check_identifier(f"{table.name}_set_{column_name}", ColumnError, "updated_at trigger")
    return Trigger(
        name,
        table,
        function,
        timing="before",
        events=["update"],
        when=literal_column("OLD.*").is_distinct_from(literal_column("NEW.*")),
    )


def columns_ddl(metadata: MetaData, *, schema: str | None = None) -> list[SchemaObject]:
    """The functions and triggers the column mixins of ``metadata``'s tables need.

    Examples:
        >>> from pgpatterns.ddl import attach
        >>> attach(Base.metadata, *columns_ddl(Base.metadata))  # doctest: +SKIP

    One ``pgpatterns_uuid_v7()`` when any table uses :class:`UUIDPrimaryKey`, one trigger
    function per stamped column name and one trigger per :class:`Timestamps` table. Call it
    once, after every model is declared (a second call would declare the objects twice).
    ``schema`` is where the functions are created (default: the search_path's first).
    """
    if not isinstance(metadata, MetaData):
        raise ColumnError(f"columns_ddl: metadata={metadata!r:.80} is not a MetaData; pass "
                          "Base.metadata.")
    schema = _check_name("columns_ddl", "schema", schema)
    objects: list[SchemaObject] = []
    functions: dict[str, Function] = {}
    needs_uuid = False
    for table in metadata.sorted_tables:
        for col in table.c:
            needs_uuid = needs_uuid or bool(col.info.get(_UUID_DEFAULT))
            if col.info.get(_UPDATED_AT):
                if col.name not in functions:
                    functions[col.name] = _set_updated_at_function(col.name, schema)
                    objects.append(functions[col.name])
                objects.append(updated_at_trigger(table, functions[col.name], column_name=col.name))
    if needs_uuid:
        objects.insert(0, uuid_v7_function(schema=schema))
    return objects


class IdentityPrimaryKey:
    """``id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY``.

    Examples:
        >>> IdentityPrimaryKey.id.column.type  # doctest: +SKIP
        BigInteger()

    ``ALWAYS``: an INSERT that supplies an id fails instead of colliding with the sequence
    later; bulk loads that must keep ids need ``OVERRIDING SYSTEM VALUE``.
    """

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)


class UUIDPrimaryKey:
    """``id uuid PRIMARY KEY DEFAULT pgpatterns_uuid_v7()`` (time-ordered, made by the server).

    Examples:
        >>> from pgpatterns.ddl import attach
        >>> attach(Base.metadata, *columns_ddl(Base.metadata))  # doctest: +SKIP

    Needs the function from :func:`columns_ddl` (or :func:`uuid_v7_function`) attached.
    """

    id: Mapped[uuid.UUID] = mapped_column(
        Uuid(as_uuid=True),
        primary_key=True,
        server_default=func.pgpatterns_uuid_v7(),
        info={_UUID_DEFAULT: True},
    )


class Timestamps:
    """``created_at`` / ``updated_at timestamptz NOT NULL DEFAULT now()``; a trigger stamps
    ``updated_at`` on every UPDATE that changes the row.

    Examples:
        >>> from pgpatterns.ddl import attach
        >>> attach(Base.metadata, *columns_ddl(Base.metadata))  # doctest: +SKIP
    """

    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True),
        server_default=func.now(),
        server_onupdate=FetchedValue(),
        nullable=False,
        info={_UPDATED_AT: True},
    )


class SoftDelete:
    """``deleted_at timestamptz NULL``: a row is deleted when it has a ``deleted_at``.

    Examples:
        >>> from sqlalchemy.orm import DeclarativeBase
        >>> class B(DeclarativeBase):
        ...     pass
        >>> class User(SoftDelete, B):
        ...     __tablename__ = "users"
        ...     id: Mapped[int] = mapped_column(primary_key=True)
        ...     email: Mapped[str]
        ...     __table_args__ = (SoftDelete.unique_alive("email"),)
        >>> [i.name for i in User.__table__.indexes]
        ['users_email_alive_key']

    Uniqueness must then hold among live rows only: a plain UNIQUE would refuse re-using the
    e-mail of a deleted account. :meth:`unique_alive` makes the partial unique index.
    """

    deleted_at: Mapped[dt.datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True, default=None
    )

    @classmethod
    def alive(cls) -> ColumnElement[bool]:
        """``deleted_at IS NULL`` for ``.where(...)`` (also the unique indexes' predicate)."""
        return getattr(cls, "deleted_at").is_(None)  # type: ignore[no-any-return]  # noqa: B009

    @staticmethod
    def unique_alive(*columns: str, name: str | None = None) -> Index:
        """A ``UNIQUE ... WHERE deleted_at IS NULL`` index, for ``__table_args__``.

        Examples:
            >>> SoftDelete.unique_alive().name
            Traceback (most recent call last):
            ...
            pgpatterns.errors.ColumnError: unique_alive: no columns given; ...

        Named ``<table>_<columns>_alive_key`` unless ``name`` is given.
        """
        if not columns or not all(isinstance(c, str) and c for c in columns):
            raise ColumnError(
                "unique_alive: no columns given; pass the column names that must be unique "
                "among rows that are not deleted, e.g. unique_alive('email')."
            )
        if "deleted_at" in columns:
            raise ColumnError(
                "unique_alive: 'deleted_at' cannot be a key column (it is NULL in every row "
                "the index covers); pass the other columns only."
            )
        index = Index(name, *columns, unique=True, postgresql_where=column("deleted_at").is_(None))
        if name is None:

            def _name(idx: Index, table: Table) -> None:
                # also over a naming convention's "ix" name: a plain index on the same
                # columns would otherwise get the same name
                idx.name = check_identifier(  # type: ignore[assignment]
                    f"{table.name}_{'_'.join(columns)}_alive_key", ColumnError, "unique_alive"
                )

            event.listen(index, "after_parent_attach", _name)
        return index


_MONEY_LIMIT = Decimal(10) ** 15
_MONEY_QUANTUM = Decimal("0.0001")


class Money(TypeDecorator[Decimal]):
    """``numeric(19, 4)``: up to 15 integer digits and 4 decimals, ``Decimal`` both ways.

    Examples:
        >>> Money().process_bind_param(Decimal("12.3456"), None)
        Decimal('12.3456')
        >>> Money().process_bind_param(0.1, None)
        Traceback (most recent call last):
        ...
        pgpatterns.errors.ColumnError: Money got the float 0.1: ...

    Refused before anything is sent: floats (0.1 is not exactly representable), more than
    4 decimal places (PostgreSQL would round silently), NaN/infinity and amounts of 10**15
    or more. ``int`` and ``str`` ("12.50") are accepted and converted to ``Decimal``.
    """

    impl = Numeric(19, 4, asdecimal=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect | None) -> Decimal | None:
        return None if value is None else _money(value)

    def process_literal_param(self, value: Any, dialect: Dialect) -> str:
        return str(_money(value))

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(value)

    @property
    def python_type(self) -> type[Decimal]:
        return Decimal


def _money(value: object) -> Decimal:
    if isinstance(value, float):
        raise ColumnError(
            f"Money got the float {value!r}: binary floats cannot hold most cent amounts "
            "exactly; pass Decimal(str(value)) or a string such as '12.50'."
        )
    if isinstance(value, bool) or not isinstance(value, (Decimal, int, str)):
        raise ColumnError(
            f"Money got {type(value).__name__} {value!r}; pass a Decimal, int or str amount."
        )
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise ColumnError(
            f"Money got {value!r}, which is not a number; pass e.g. '12.50'."
        ) from None
    if not amount.is_finite():
        raise ColumnError(f"Money got {value!r}; an amount must be a finite number.")
    if amount != amount.quantize(_MONEY_QUANTUM, rounding="ROUND_DOWN"):
        raise ColumnError(
            f"Money got {value!r}, which has more than 4 decimal places; numeric(19, 4) would "
            "round it silently. Round it yourself (amount.quantize(Decimal('0.0001')))."
        )
    if abs(amount) >= _MONEY_LIMIT:
        raise ColumnError(
            f"Money got {value!r}: numeric(19, 4) holds less than 10**15 in absolute value; "
            "use a wider Numeric for this column."
        )
    return amount
