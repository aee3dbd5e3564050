"""Hostile identifiers shared by the families' name tests (``%``, quotes, unicode, 63 bytes)."""

from __future__ import annotations

import string

from hypothesis import strategies as st

FIXED = ["na%me", "%s", "%%", "%(x)s", 'q"uote', "a'b", "sp ace", "ünï cödé", "x" * 63,
         "é" * 31 + "z", "Upper", "semi;colon", "$fn$"]
_chars = st.sampled_from(string.printable[:95] + "éß€")
IDENT = st.one_of(st.sampled_from(FIXED), st.text(alphabet=_chars, min_size=1, max_size=20))


def names(count: int) -> st.SearchStrategy[list[str]]:
    """``count`` distinct (case-insensitively) identifiers of at most 63 bytes."""
    return st.lists(
        IDENT.filter(lambda n: len(n.encode()) <= 63 and n.strip() == n and n != ""),
        min_size=count, max_size=count, unique_by=str.lower,
    )
