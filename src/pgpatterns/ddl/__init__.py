"""Schema objects beyond tables — the one way pgpatterns declares them.

Examples:
    >>> from sqlalchemy import Column, Integer, MetaData, Table, select
    >>> from pgpatterns.ddl import View, attach
    >>> metadata = MetaData()
    >>> t = Table("t", metadata, Column("id", Integer))
    >>> attach(metadata, View("v", select(t.c.id)))  # metadata.create_all creates it

Each kind (:class:`Extension`, :class:`Function`, :class:`Trigger`, :class:`View`,
:class:`MaterializedView`, :class:`RowLevelSecurity`, :class:`Policy`, :class:`Partition`,
:class:`CompositeForeignKey`)
renders its DDL (``obj.sql()``, ``obj.create_ddl()``), is created/dropped in dependency
order with the MetaData once :func:`attach`-ed, and compares itself with the catalog
(:func:`diff`).
"""

from __future__ import annotations

from pgpatterns.ddl.base import CreateSchemaObject, DropSchemaObject, Identity, SchemaObject
from pgpatterns.ddl.compare import compare
from pgpatterns.ddl.extension import Extension
from pgpatterns.ddl.foreign_key import CompositeForeignKey
from pgpatterns.ddl.function import Function, dollar_quote
from pgpatterns.ddl.grant import DefaultPrivileges, Grant, Role
from pgpatterns.ddl.matview import MaterializedView
from pgpatterns.ddl.partition import MAXVALUE, MINVALUE, Partition
from pgpatterns.ddl.policy import Policy
from pgpatterns.ddl.registry import attach, attached, create_all, diff, drop_all, ordered
from pgpatterns.ddl.rls import RowLevelSecurity
from pgpatterns.ddl.trigger import Trigger, new, old
from pgpatterns.ddl.view import View

__all__ = [
    "MAXVALUE",
    "MINVALUE",
    "CompositeForeignKey",
    "CreateSchemaObject",
    "DefaultPrivileges",
    "DropSchemaObject",
    "Extension",
    "Function",
    "Grant",
    "Identity",
    "MaterializedView",
    "Partition",
    "Policy",
    "Role",
    "RowLevelSecurity",
    "SchemaObject",
    "Trigger",
    "View",
    "attach",
    "attached",
    "compare",
    "create_all",
    "diff",
    "dollar_quote",
    "drop_all",
    "new",
    "old",
    "ordered",
]
