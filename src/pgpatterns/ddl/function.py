"""``CREATE FUNCTION``: SQL or PL/pgSQL functions, including trigger functions.

Examples:
    >>> from pgpatterns.ddl import Function
    >>> print(Function("one", returns="integer", body="SELECT 1").sql())
    CREATE FUNCTION one() RETURNS integer LANGUAGE sql VOLATILE AS $fn$SELECT 1$fn$
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from sqlalchemy import Connection, text
from sqlalchemy.sql.compiler import DDLCompiler
from sqlalchemy.types import TypeEngine

from pgpatterns.ddl.base import (
    SchemaObject,
    check_choice,
    check_type,
    literal_sql,
    qualified,
    raw_text,
    regname,
    type_sql,
)
from pgpatterns.errors import DDLOptionError

__all__ = ["Function", "dollar_quote"]

LANGUAGES = ("sql", "plpgsql")
_SETTING = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
VOLATILITIES = ("volatile", "stable", "immutable")


def dollar_quote(body: str) -> str:
    """``body`` as a dollar-quoted literal whose tag cannot occur inside it.

    Examples:
        >>> dollar_quote("SELECT '$fn$'")
        "$fn1$SELECT '$fn$'$fn1$"
    """
    n = 0
    while True:
        tag = f"$fn{n or ''}$"
        quoted = f"{tag}{body}{tag}"
        if quoted.find(tag, len(tag)) == len(tag) + len(body):
            return quoted
        n += 1


@dataclass(eq=False)
class Function(SchemaObject):
    """A function whose source (``body``) you write; ``returns="trigger"`` for triggers.

    Examples:
        >>> f = Function("add", args=[("a", "integer"), ("b", "integer")],
        ...              returns="integer", body="SELECT a + b", volatility="immutable")
        >>> f.sql().startswith('CREATE FUNCTION add(a integer, b integer) RETURNS integer')
        True

    ``security_definer=True`` runs the body with the owner's rights, which is only safe with
    a pinned ``search_path`` (a caller could otherwise shadow the names it uses), so it is
    required.
    """

    kind: ClassVar[str] = "function"

    args: Sequence[tuple[str, TypeEngine[Any] | type[TypeEngine[Any]] | str]] = field(
        default=(), kw_only=True
    )
    returns: TypeEngine[Any] | type[TypeEngine[Any]] | str = field(default="void", kw_only=True)
    body: str = field(default="", kw_only=True)
    language: str = field(default="sql", kw_only=True)
    volatility: str = field(default="volatile", kw_only=True)
    security_definer: bool = field(default=False, kw_only=True)
    search_path: Sequence[str] | None = field(default=None, kw_only=True)
    settings: Mapping[str, str] = field(default_factory=dict, kw_only=True)

    def validate(self) -> None:
        owner = f"Function {self.name!r}"
        self.language = check_choice(owner, "language", self.language, LANGUAGES)
        self.volatility = check_choice(owner, "volatility", self.volatility, VOLATILITIES)
        self.args = tuple(self.args)
        for arg_name, arg_type in self.args:
            if not isinstance(arg_name, str) or not arg_name:
                raise DDLOptionError(f"{owner}: argument names must be non-empty strings.")
            check_type(owner, arg_type)
        check_type(owner, self.returns)
        if not isinstance(self.body, str) or not self.body.strip():
            raise DDLOptionError(f"{owner}: body is empty; pass the function's source text.")
        if isinstance(self.search_path, str):
            self.search_path = (self.search_path,)
        self.settings = dict(self.settings)
        for key, value in self.settings.items():
            if not isinstance(key, str) or not _SETTING.match(key) or key == "search_path":
                raise DDLOptionError(
                    f"{owner}: settings key {key!r} is not a setting name (use search_path= "
                    "for the path); pass names like 'plan_cache_mode'."
                )
            if not isinstance(value, str) or "\x00" in value:
                raise DDLOptionError(f"{owner}: settings[{key!r}] must be a str, got {value!r}.")
        if self.security_definer and not self.search_path:
            raise DDLOptionError(
                f"{owner}: SECURITY DEFINER without a pinned search_path lets callers "
                "shadow the objects the function uses and run code with its owner's "
                "rights; pass search_path=['pg_catalog', 'your_schema']."
            )

    @property
    def is_trigger(self) -> bool:
        return isinstance(self.returns, str) and self.returns.lower() == "trigger"

    def signature(self, compiler: DDLCompiler, *, names: bool = True) -> str:
        """``"schema"."name"(a integer, ...)`` (argument names omitted with ``names=False``)."""
        args = ", ".join(
            (f"{compiler.preparer.quote(n)} " if names else "") + type_sql(compiler.dialect, t)
            for n, t in self.args
        )
        return f"{qualified(compiler, self.name, self.schema)}({args})"

    def render_create(self, compiler: DDLCompiler) -> list[str]:
        parts = [
            f"CREATE FUNCTION {self.signature(compiler)}",
            f"RETURNS {type_sql(compiler.dialect, self.returns)}",
            f"LANGUAGE {self.language}",
            self.volatility.upper(),
        ]
        if self.security_definer:
            parts.append("SECURITY DEFINER")
        if self.search_path:
            path = ", ".join(compiler.preparer.quote_schema(s) for s in self.search_path)
            parts.append(f"SET search_path = {path}")
        for key, value in self.settings.items():  # name checked by validate(); value a literal
            parts.append(f"SET {key} = {literal_sql(compiler, value)}")
        parts.append(f"AS {raw_text(compiler, dollar_quote(self.body))}")
        return [" ".join(parts)]

    def render_drop(self, compiler: DDLCompiler) -> list[str]:
        return [f"DROP FUNCTION IF EXISTS {self.signature(compiler, names=False)}"]

    def _regprocedure(self, conn: Connection) -> Any:
        args = ", ".join(type_sql(conn.dialect, t) for _, t in self.args)
        name = f"{regname(self.name, self.schema)}({args})"
        return conn.execute(text("SELECT to_regprocedure(:n)::oid"), {"n": name}).scalar()

    def exists(self, conn: Connection) -> bool:
        return self._regprocedure(conn) is not None

    def _catalog(self, conn: Connection) -> dict[str, Any] | None:
        oid = self._regprocedure(conn)
        if oid is None:
            return None
        return self._first_row(
            conn,
            "SELECT p.prosrc AS body, p.provolatile AS volatility, p.prosecdef AS"
            " security_definer, p.proconfig AS config, l.lanname AS language,"
            " p.prorettype::regtype::text AS returns FROM pg_proc p"
            " JOIN pg_language l ON l.oid = p.prolang WHERE p.oid = :oid",
            {"oid": oid},
        )

    def reflect_diff(self, conn: Connection) -> list[str]:
        actual = self._catalog(conn)
        if actual is None:
            return self._missing()
        return self._compare(actual, self._expected(conn))
