"""Polymorphism with the integrity of a normalized schema and without N+1 loading.

Examples:
    >>> from pgpatterns.polymorphic import exclusive_arc, single_table_integrity
    >>> single_table_integrity(Item)  # doctest: +SKIP

- :func:`single_table_integrity`: STI with CHECKs that restore each subtype's NOT NULLs,
  a known-discriminator CHECK and per-subtype partial indexes.
- :func:`joined_table_integrity`: CTI guarded by triggers (a base row has at most one
  subtype row, of its own discriminator); :func:`polymorphic_select` loads a mixed list in
  a bounded number of statements.
- :func:`exclusive_arc` (default) and :func:`generic_association`: ``comment.target`` over
  several target types, with real foreign keys or with trigger-enforced integrity.
"""

from pgpatterns.polymorphic.arc import ExclusiveArc, exclusive_arc
from pgpatterns.polymorphic.errors import polymorphic_errors
from pgpatterns.polymorphic.generic import GenericAssociation, generic_association
from pgpatterns.polymorphic.joined import (
    JoinedTableIntegrity,
    joined_table_integrity,
    polymorphic_select,
)
from pgpatterns.polymorphic.single import SingleTableIntegrity, single_table_integrity

__all__ = [
    "ExclusiveArc",
    "GenericAssociation",
    "JoinedTableIntegrity",
    "SingleTableIntegrity",
    "exclusive_arc",
    "generic_association",
    "joined_table_integrity",
    "polymorphic_errors",
    "polymorphic_select",
    "single_table_integrity",
]
