"""``ExcludeConstraint`` rendered with its operator classes (Alembic issue #958).

Examples:
    >>> from pgpatterns.alembic.exclude import with_ops
    >>> with_ops("ExcludeConstraint((sa.column('room'), '='))", {"room": "gist_text_ops"})
    "ExcludeConstraint((sa.column('room'), '='), ops={'room': 'gist_text_ops'})"

Alembic renders ``ExcludeConstraint(...)`` without its ``ops=`` (operator classes), so the
migration creates the constraint with the default operator classes, or fails where the
type has none. :func:`register` wraps Alembic's renderers to add them back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["register", "with_ops"]


def with_ops(rendered: str, ops: Mapping[str, str] | None) -> str:
    """``rendered`` (a call ending in ``)``) with ``ops={...}`` added as its last argument."""
    if not ops or "ops=" in rendered or not rendered.endswith(")"):
        return rendered
    return f"{rendered[:-1]}, ops={dict(ops)!r})"


def _ops(constraint: Any, metadata: Any) -> Mapping[str, str] | None:
    """The constraint's ``ops``; SQLAlchemy's copy of a constraint (which Alembic renders)
    loses them, so they are looked up on the original in the MetaData, by name."""
    if getattr(constraint, "ops", None):
        return constraint.ops  # type: ignore[no-any-return]
    table = getattr(constraint, "table", None)
    if metadata is None or table is None or constraint.name is None:
        return None
    original = metadata.tables.get(table.fullname)
    for other in getattr(original, "constraints", ()):
        if type(other) is type(constraint) and other.name == constraint.name:
            return getattr(other, "ops", None)
    return None


def register() -> None:
    """Wrap Alembic's ExcludeConstraint renderers (inline and ``create_exclude_constraint``)."""
    try:
        from alembic.autogenerate import render
        from alembic.ddl import postgresql as alembic_pg
        from sqlalchemy.dialects.postgresql import ExcludeConstraint

        inline: Callable[..., str] = alembic_pg._render_inline_exclude_constraint
        alter: Callable[..., str] = alembic_pg._add_exclude_constraint
        create_op: Any = alembic_pg.CreateExcludeConstraintOp
    except (ImportError, AttributeError):  # another Alembic layout: leave it alone
        return

    def render_inline(constraint: Any, autogen_context: Any, namespace_metadata: Any) -> str:
        rendered = inline(constraint, autogen_context, namespace_metadata)
        return with_ops(rendered, _ops(constraint, namespace_metadata))

    def render_alter(autogen_context: Any, op: Any) -> str:
        rendered = alter(autogen_context, op)
        return with_ops(rendered, getattr(op.to_constraint(), "ops", None))

    for dispatcher, target, fn in (
        (render._constraint_renderers, ExcludeConstraint, render_inline),
        (render.renderers, create_op, render_alter),
    ):
        try:
            dispatcher.dispatch_for(target, replace=True)(fn)
        except TypeError:  # Alembic before 1.16: a later registration wins anyway
            dispatcher.dispatch_for(target)(fn)
