"""One translator for the database's refusals: SQLSTATE + constraint name -> typed error.

Examples:
    >>> from pgpatterns.errors import translate
    >>> with translate():  # doctest: +SKIP
    ...     session.flush()  # or: await session.flush()
    Traceback (most recent call last):
    ...
    pgpatterns.errors.UniqueViolationError: duplicate key on users (email) = (a@x.org) ...

========================  =====================================================================
SQLSTATE / constraint     typed error (fields)
========================  =====================================================================
tree guard, parent FK     ``TreeCycleError``, ``TreeScopeError``, ``TreeNodeNotFoundError``,
                          ``TreeHasChildrenError`` (as :func:`~pgpatterns.trees.tree_errors`)
polymorphic CHECK/guard   ``PolymorphicIntegrityError`` (as ``polymorphic_errors``)
23505 unique              ``UniqueViolationError`` (constraint, table, columns, values)
23503 foreign key         ``ForeignKeyViolationError`` (+ other_table, still_referenced)
23514 check               ``CheckViolationError`` (+ rule: ``positive``, ``one_of``, ...);
                          ``<table>_<column>_schema``: ``JsonbSchemaViolationError``
23502 not null            ``NotNullViolationError`` (columns)
23P01 exclusion           ``OverlapError`` (constraint, key, conflicting)
42501 RLS policy          ``RowSecurityError`` (table)
40001 / 40P01             ``ConcurrentUpdateError`` (retryable)
========================  =====================================================================

Anything else passes through unchanged. The per-family translators (``tree_errors``,
``polymorphic_errors``, ``constraints.translate_errors``, ``jsonb.schema_errors``) are
:func:`guard` with their family's rule only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError

from pgpatterns.errors import (
    ArgumentError,
    CheckViolationError,
    ConcurrentUpdateError,
    ForeignKeyViolationError,
    IntegrityViolationError,
    JsonbSchemaViolationError,
    NotNullViolationError,
    PatternError,
    RowSecurityError,
    UniqueViolationError,
)

__all__ = ["Rule", "guard", "translate", "translate_error", "translate_on"]

Rule = Callable[[DBAPIError], Exception | None]
"""A translation rule: the typed error for a database error, or None to pass it on."""

RETRYABLE_STATES = ("40001", "40P01")  # serialization_failure, deadlock_detected
# the names check.* generates (constraints.py): <column>_<rule>, exactly_one_of_<columns>
_CHECK_RULES = ("non_negative", "positive", "between", "one_of", "not_blank")
_RLS = re.compile(r'row-level security policy.*for table "(?P<table>[^"]*)"')
_OTHER = re.compile(r'(?P<how>is not present in|is still referenced from) table "(?P<t>[^"]*)"')


def _diag(exc: DBAPIError) -> tuple[str | None, Any]:
    return getattr(exc.orig, "sqlstate", None), getattr(exc.orig, "diag", None)


def _key(detail: str | None) -> tuple[tuple[str, ...], str | None]:
    """``(columns, values)`` from a DETAIL ``Key (a, b)=(1, x) ...`` (values may hold ``)``)."""
    text = detail or ""
    start, middle = text.find("Key ("), text.find(")=(")
    if start < 0 or middle < 0:
        return (), None
    end = text.rfind(")")
    columns = tuple(c.strip().strip('"') for c in text[start + 5:middle].split(", "))
    return columns, text[middle + 3:end]


def concurrent(exc: DBAPIError) -> ConcurrentUpdateError | None:
    """:class:`ConcurrentUpdateError` for a serialization failure or deadlock, else None.

    Examples:
        >>> concurrent(operational_error)  # doctest: +SKIP
        ConcurrentUpdateError('the transaction lost a race with another one ...')
    """
    state, _ = _diag(exc)
    if state not in RETRYABLE_STATES:
        return None
    why = "a deadlock" if state == "40P01" else "a concurrent change after its snapshot"
    return ConcurrentUpdateError(
        f"the transaction lost a race with another one ({why}, SQLSTATE {state}); roll it "
        "back and retry it from the start (with fresh data)."
    )


def _check_rule(name: str) -> str | None:
    if name.startswith("exactly_one_of_"):
        return "exactly_one"
    return next((r for r in _CHECK_RULES if name.endswith(f"_{r}")), None)


def integrity(exc: DBAPIError) -> IntegrityViolationError | JsonbSchemaViolationError | None:
    """The typed error for a unique, foreign-key, CHECK or NOT NULL violation, else None.

    Examples:
        >>> integrity(integrity_error)  # doctest: +SKIP
        UniqueViolationError('duplicate key on users (email) = (a@x.org) ...')
    """
    state, diag = _diag(exc)
    constraint = getattr(diag, "constraint_name", None)
    table = getattr(diag, "table_name", None)
    fields: dict[str, Any] = {
        "sqlstate": state, "constraint": constraint, "table": table,
        "schema": getattr(diag, "schema_name", None),
    }
    detail = getattr(diag, "message_detail", None)
    columns, values = _key(detail)
    shown = f"({', '.join(columns)}) = ({values})" if columns else "(key not reported)"
    where = f"{table or 'the table'} (constraint {constraint})"
    if state == "23505":
        return UniqueViolationError(
            f"duplicate key on {where}: {shown} already exists. Use another value, or update "
            "the existing row (INSERT ... ON CONFLICT, or get-or-create).",
            columns=columns, values=values, **fields,
        )
    if state == "23503":
        other = _OTHER.search(detail or "")
        error = ForeignKeyViolationError(
            f"foreign key {constraint} on {table or 'the table'}: {shown} "
            + (f"{other['how']} table {other['t']}" if other else "refused the write")
            + ". Reference an existing row, or delete/move the referencing rows first.",
            columns=columns, values=values, **fields,
        )
        error.still_referenced = bool(other and other["how"].startswith("is still"))
        error.other_table = other["t"] if other else None
        return error
    if state == "23514" and constraint:
        # jsonb_schema_check's default name <table>_<column>_schema (also under a naming
        # convention that adds a prefix such as ck_<table>_)
        if table and f"{table}_" in constraint and constraint.endswith("_schema"):
            return JsonbSchemaViolationError(
                f"a document was rejected by the JSON-schema CHECK {constraint!r} on "
                f"{table!r}: it does not match the schema. Validate the document against "
                "the schema before writing (the jsonschema package does)."
            )
        rule = _check_rule(constraint)
        check = CheckViolationError(
            f"CHECK {constraint} on {table or 'the table'} refused the row"
            + (f" (rule {rule!r})" if rule else "")
            + ". Fix the value; the constraint's name says which rule it breaks.",
            **fields,
        )
        check.rule = rule
        return check
    if state == "23502":
        column = getattr(diag, "column_name", None)
        return NotNullViolationError(
            f"column {column} of {table or 'the table'} cannot be NULL; give it a value.",
            columns=(column,) if column else (), **fields,
        )
    return None


def row_security(exc: DBAPIError) -> RowSecurityError | None:
    """:class:`RowSecurityError` for a row refused by a row-level security policy, else None.

    Examples:
        >>> row_security(programming_error)  # doctest: +SKIP
        RowSecurityError('new row violates row-level security policy for table "docs" ...')
    """
    state, diag = _diag(exc)
    message = getattr(diag, "message_primary", None) or ""
    match = _RLS.search(message)
    if state != "42501" or match is None:
        return None
    return RowSecurityError(
        f"{message}: the row-level security policy of {match['table']} refused the written "
        "row (usually a row for another tenant than the transaction's tenant_context). "
        "Write rows of the current tenant only, or set the right tenant first.",
        table=match["table"],
    )


def _overlap(exc: DBAPIError) -> Exception | None:
    from pgpatterns.constraints import overlap_error

    return overlap_error(exc)


def _trees(exc: DBAPIError) -> Exception | None:
    if not isinstance(exc, IntegrityError):
        return None
    from pgpatterns.trees.errors import translate as tree_translate

    return tree_translate(exc, None)


def _polymorphic(exc: DBAPIError) -> Exception | None:
    from pgpatterns.polymorphic.errors import polymorphic_rule

    return polymorphic_rule(exc)


# family rules first (they know their constraint names), then the generic SQLSTATE rules
RULES: tuple[Rule, ...] = (_trees, _polymorphic, _overlap, row_security, integrity, concurrent)


def translate_error(exc: DBAPIError, rules: tuple[Rule, ...] = RULES) -> Exception | None:
    """The typed error the first matching rule gives for ``exc``, else None.

    Examples:
        >>> translate_error(integrity_error)  # doctest: +SKIP
        UniqueViolationError('duplicate key on users ...')
    """
    for rule in rules:
        error = rule(exc)
        if error is not None:
            return error
    return None


@contextmanager
def guard(*rules: Rule) -> Iterator[None]:
    """Raise the typed error of the first matching rule for a database error in the block.

    Examples:
        >>> with guard(concurrent):  # doctest: +SKIP
        ...     session.commit()

    Works around sync and async code alike (``await session.flush()`` inside a plain
    ``with``). The original SQLAlchemy error is ``__cause__``; errors no rule matches, and
    errors already translated (see :func:`translate_on`), pass through unchanged.
    """
    try:
        yield
    except DBAPIError as exc:
        if isinstance(exc, PatternError):  # already translated by the engine hook
            raise
        error = translate_error(exc, rules or RULES)
        if error is None:
            raise
        raise error from exc


def translate() -> AbstractContextManager[None]:
    """Turn every refusal the table in :mod:`pgpatterns.translate` lists into its typed error.

    Examples:
        >>> with translate():  # doctest: +SKIP
        ...     await session.flush()

    The original SQLAlchemy error is ``__cause__``; the transaction is aborted as after any
    failed statement (roll back, or write inside ``session.begin_nested()``).
    """
    return guard(*RULES)


# -- engine hook -------------------------------------------------------------------------
_HYBRIDS: dict[tuple[type[Exception], type[DBAPIError]], type[Exception]] = {}


def _str(self: BaseException) -> str:
    return Exception.__str__(self)


def _reduce(self: BaseException) -> tuple[Any, ...]:
    """Pickle as the plain typed error (SQLAlchemy's part holds the driver's objects)."""
    typed = type(self).__bases__[0]
    state = {k: v for k, v in self.__dict__.items() if k in getattr(self, "_typed_keys", ())}
    return typed, self.args, state


def _hybrid(error: Exception, wrapped: DBAPIError) -> Exception:
    """``error`` that is also ``wrapped``'s SQLAlchemy class (``.orig``, ``.statement``)."""
    key = (type(error), type(wrapped))
    cls = _HYBRIDS.get(key)
    if cls is None:
        body = {"__str__": _str, "__reduce__": _reduce, "__module__": "pgpatterns.errors"}
        cls = type(type(error).__name__, key, body)
        _HYBRIDS[key] = cls
    both = cls.__new__(cls)
    both.__dict__.update(wrapped.__dict__)
    both.__dict__.update(error.__dict__)
    both.__dict__["_typed_keys"] = tuple(error.__dict__)
    both.args = error.args
    return both


def _handle_error(context: Any) -> Exception | None:
    wrapped = context.sqlalchemy_exception
    if not isinstance(wrapped, DBAPIError) or isinstance(wrapped, PatternError):
        return None
    error = translate_error(wrapped)
    return None if error is None else _hybrid(error, wrapped)


def _engine_of(target: Any) -> Engine:
    target = getattr(target, "sync_engine", target)  # AsyncEngine
    if isinstance(target, Engine):
        return target
    bind = getattr(target, "bind", None)  # Session, AsyncSession
    if bind is None and hasattr(target, "kw"):  # sessionmaker, async_sessionmaker
        bind = target.kw.get("bind")
    bind = getattr(bind, "sync_engine", bind)
    bind = getattr(bind, "engine", bind)  # a Connection
    if not isinstance(bind, Engine):
        raise ArgumentError(
            f"translate_on: {target!r} is not bound to an engine; pass an Engine, AsyncEngine, "
            "or a Session/sessionmaker (sync or async) created with bind=engine.",
            argument="target", given=target,
        )
    return bind


def translate_on(target: Any) -> Callable[[], None]:
    """Translate refusals on every statement of an engine (SQLAlchemy's ``handle_error`` event).

    Examples:
        >>> off = translate_on(async_sessionmaker(engine))  # doctest: +SKIP
        >>> off()  # doctest: +SKIP

    The raised error is the typed error of :func:`translate` *and* SQLAlchemy's original
    class (``except UniqueViolationError`` and ``except IntegrityError`` both catch it;
    ``.orig`` is the driver's error, also its ``__cause__``), so code that already catches
    SQLAlchemy errors keeps working. Registering twice is a no-op.

    Args:
        target: An Engine or AsyncEngine, or a Session/sessionmaker (sync or async) bound
            to one; the hook is on the engine, so it covers every session on it.

    Returns:
        A function that removes the hook again.
    """
    engine = _engine_of(target)
    if not event.contains(engine, "handle_error", _handle_error):
        event.listen(engine, "handle_error", _handle_error)

    def off() -> None:
        if event.contains(engine, "handle_error", _handle_error):
            event.remove(engine, "handle_error", _handle_error)

    return off
