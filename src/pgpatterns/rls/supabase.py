"""Supabase preset: owner policies on ``auth.uid()``, wrapped for an initPlan, ``TO authenticated``.

Examples:
    >>> from sqlalchemy import Column, MetaData, Table, Uuid
    >>> from pgpatterns.rls import enable_rls
    >>> from pgpatterns.rls.supabase import owner_policy
    >>> todos = Table("todos", MetaData(), Column("user_id", Uuid))
    >>> _ = enable_rls(todos)
    >>> print(owner_policy(todos).sql().split(" USING")[0])
    CREATE POLICY todos_owner ON todos AS PERMISSIVE FOR ALL TO authenticated

Supabase's ``auth.uid()`` reads the request's JWT claims from the ``request.jwt.claims``
setting. ``user_id = auth.uid()`` calls it for every row; ``user_id = (select auth.uid())``
once per statement (Supabase's own performance advice). Outside Supabase (tests, CI),
:func:`auth_stand_in` declares an ``auth`` schema whose ``uid()``, ``jwt()`` and ``role()``
read the claims exactly as Supabase's do, and :func:`jwt_context` sets the claims the way
PostgREST does (transaction-local).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.schema import CreateSchema, DDLElement
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import Text, Uuid

from pgpatterns.ddl import Function, Policy
from pgpatterns.errors import RLSContextError
from pgpatterns.rls.context import set_context, set_context_async
from pgpatterns.rls.expressions import initplan, owner_only
from pgpatterns.rls.policies import policy

__all__ = [
    "AUTHENTICATED",
    "CLAIMS_SETTING",
    "auth_jwt",
    "auth_schema_ddl",
    "auth_stand_in",
    "auth_uid",
    "install_auth_stand_in",
    "jwt_context",
    "jwt_context_async",
    "owner_policy",
]

AUTHENTICATED = "authenticated"
"""The role PostgREST switches to for a request with a valid JWT."""
CLAIMS_SETTING = "request.jwt.claims"
"""The setting PostgREST fills with the JWT's claims (JSON text), per transaction."""


def auth_uid() -> ColumnElement[Any]:
    """``(SELECT auth.uid())``: the JWT's ``sub`` as a UUID, evaluated once per statement.

    Examples:
        >>> print(auth_uid())
        (SELECT auth.uid() AS uid_1)
    """
    return initplan(func.auth.uid(type_=Uuid()))


def auth_jwt() -> ColumnElement[Any]:
    """``(SELECT auth.jwt())``: the JWT's claims as ``jsonb``, once per statement.

    Examples:
        >>> print(auth_jwt()["app_metadata"]["org_id"].astext)  # doctest: +SKIP
    """
    return initplan(func.auth.jwt(type_=JSONB()))


def owner_policy(
    table: Table,
    column: str = "user_id",
    *,
    name: str | None = None,
    command: str = "all",
    to: Sequence[str] | str = (AUTHENTICATED,),
) -> Policy:
    """``<column> = (SELECT auth.uid())`` for ``authenticated``: users see their own rows.

    Examples:
        >>> owner_policy(todos, command="select").sql()  # doctest: +SKIP

    ``USING`` and, for commands that write, ``WITH CHECK`` (a user cannot insert a row for
    someone else). The table must have had :func:`pgpatterns.rls.enable_rls`.
    """
    condition = owner_only(table.c[column], user=auth_uid())
    command = command.lower() if isinstance(command, str) else command
    return policy(
        name or f"{table.name}_owner",
        table,
        to=to,
        command=command,
        using=None if command == "insert" else condition,
        with_check=condition if command in ("all", "insert", "update") else None,
    )


_UID = """SELECT coalesce(
    nullif(current_setting('request.jwt.claim.sub', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
)::uuid"""
_JWT = """SELECT coalesce(
    nullif(current_setting('request.jwt.claim', true), ''),
    nullif(current_setting('request.jwt.claims', true), '')
)::jsonb"""
_ROLE = """SELECT coalesce(
    nullif(current_setting('request.jwt.claim.role', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
)::text"""


def auth_stand_in(schema: str = "auth") -> list[Function]:
    """Functions ``auth.uid()``, ``auth.jwt()``, ``auth.role()`` as Supabase defines them.

    Examples:
        >>> [f.name for f in auth_stand_in()]
        ['uid', 'jwt', 'role']

    For tests and local development without Supabase: create the schema first
    (:func:`auth_schema_ddl`), then these (``ddl.create_all(conn, *auth_stand_in(),
    checkfirst=True)``), and grant ``USAGE`` on the schema to the application role. Never
    create them on a Supabase database: it has its own.
    """
    return [
        Function("uid", schema=schema, returns=Uuid(), body=_UID, volatility="stable"),
        Function("jwt", schema=schema, returns=JSONB(), body=_JWT, volatility="stable"),
        Function("role", schema=schema, returns=Text(), body=_ROLE, volatility="stable"),
    ]


def auth_schema_ddl(schema: str = "auth") -> DDLElement:
    """``CREATE SCHEMA IF NOT EXISTS auth`` (SQLAlchemy's ``CreateSchema``).

    Examples:
        >>> print(auth_schema_ddl())
        CREATE SCHEMA IF NOT EXISTS auth
    """
    return CreateSchema(schema, if_not_exists=True)


def _claims(claims: Mapping[str, Any]) -> str:
    if not isinstance(claims, Mapping) or "sub" not in claims:
        raise RLSContextError(
            f"jwt_context(): claims must be a mapping with a 'sub' (the user's UUID), got "
            f"{claims!r}; auth.uid() reads claims['sub']."
        )
    try:
        return json.dumps(dict(claims), default=str)
    except (TypeError, ValueError) as exc:
        raise RLSContextError(f"jwt_context(): claims are not JSON-serialisable: {exc}") from exc


def jwt_context(session: Session | Connection, claims: Mapping[str, Any]) -> None:
    """Set ``request.jwt.claims`` for the current transaction, as PostgREST does.

    Examples:
        >>> with Session(app_engine) as s, s.begin():  # doctest: +SKIP
        ...     jwt_context(s, {"sub": str(user_id), "role": "authenticated"})

    Raises:
        RLSContextError: outside a transaction, or claims without ``sub``.
    """
    set_context(session, {CLAIMS_SETTING: _claims(claims)})


async def jwt_context_async(
    session: AsyncSession | AsyncConnection, claims: Mapping[str, Any]
) -> None:
    """The asyncio twin of :func:`jwt_context`.

    Examples:
        >>> await jwt_context_async(session, {"sub": str(user_id)})  # doctest: +SKIP
    """
    await set_context_async(session, {CLAIMS_SETTING: _claims(claims)})


def install_auth_stand_in(
    conn: Connection, *, grant_to: Sequence[str] = (), schema: str = "auth"
) -> None:
    """Create the stand-in ``auth`` schema and functions if missing; grant ``USAGE`` on it.

    Examples:
        >>> with engine.begin() as conn:  # doctest: +SKIP
        ...     install_auth_stand_in(conn, grant_to=["authenticated"])

    For tests and local development only (see :func:`auth_stand_in`). Idempotent.
    """
    from pgpatterns.ddl import create_all

    conn.execute(auth_schema_ddl(schema))
    create_all(conn, *auth_stand_in(schema), checkfirst=True)
    prep = conn.dialect.identifier_preparer
    for role in grant_to:
        # GRANT has no SQLAlchemy construct; both names are quoted by the dialect's preparer.
        grant = f"GRANT USAGE ON SCHEMA {prep.quote_schema(schema)} TO {prep.quote(role)}"
        conn.execute(text(grant.replace(":", "\\:")))  # text() would read ":x" as a bind
