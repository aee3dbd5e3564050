"""Translate the database's rejections of polymorphic rows into typed errors."""

from __future__ import annotations

import re
from contextlib import AbstractContextManager

from sqlalchemy.exc import DBAPIError, IntegrityError

from pgpatterns.errors import PolymorphicIntegrityError

__all__ = ["polymorphic_errors"]

# The names this family generates (see single.py, joined.py, arc.py, generic.py).
_OURS = re.compile(r"^(ck_.+_(known|required|only|one)|.+_pgp_(guard|fixed_type|target))$")


def polymorphic_rule(exc: DBAPIError) -> PolymorphicIntegrityError | None:
    """The typed error for a violation of a generated constraint or guard, else None.

    Examples:
        >>> polymorphic_rule(integrity_error)  # doctest: +SKIP
        PolymorphicIntegrityError('the database rejected the row: ...')
    """
    if not isinstance(exc, IntegrityError):
        return None
    diag = getattr(exc.orig, "diag", None)
    name = getattr(diag, "constraint_name", None) or ""
    if not _OURS.match(name):
        return None
    message = getattr(diag, "message_primary", None) or str(exc.orig)
    return PolymorphicIntegrityError(
        f"the database rejected the row: {message} (constraint {name}). Fix the row, "
        "or the subtype's declaration if the rule itself is wrong."
    )


def polymorphic_errors() -> AbstractContextManager[None]:
    """Turn violations of the generated constraints and guards into
    :class:`~pgpatterns.errors.PolymorphicIntegrityError` (the original is ``__cause__``).

    Examples:
        >>> with polymorphic_errors():  # doctest: +SKIP
        ...     session.commit()

    The family's rule of :func:`pgpatterns.errors.translate`, alone.
    """
    from pgpatterns.translate import guard

    return guard(polymorphic_rule)
