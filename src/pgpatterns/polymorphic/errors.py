"""Translate the database's rejections of polymorphic rows into typed errors."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import IntegrityError

from pgpatterns.errors import PolymorphicIntegrityError

__all__ = ["polymorphic_errors"]

# The names this family generates (see single.py, joined.py, arc.py, generic.py).
_OURS = re.compile(r"^(ck_.+_(known|required|only|one)|.+_pgp_(guard|fixed_type|target))$")


@contextmanager
def polymorphic_errors() -> Iterator[None]:
    """Turn violations of the generated constraints and guards into
    :class:`~pgpatterns.errors.PolymorphicIntegrityError` (the original is ``__cause__``).

    Examples:
        >>> with polymorphic_errors():  # doctest: +SKIP
        ...     session.commit()
    """
    try:
        yield
    except IntegrityError as exc:
        diag = getattr(exc.orig, "diag", None)
        name = getattr(diag, "constraint_name", None) or ""
        if not _OURS.match(name):
            raise
        message = getattr(diag, "message_primary", None) or str(exc.orig)
        raise PolymorphicIntegrityError(
            f"the database rejected the row: {message} (constraint {name}). Fix the row, "
            "or the subtype's declaration if the rule itself is wrong."
        ) from exc
