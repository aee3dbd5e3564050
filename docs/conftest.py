"""Run every ```python block of ``docs/**/*.md`` as part of the pytest suite (Sybil).

Conventions for a page (see docs/getting-started.md for a worked example):

* The blocks of one page run top to bottom in one shared namespace, like one script.
* Each page gets a schema of its own on the test database, first on the search_path and
  dropped (CASCADE) after the page, so pages may ``CREATE TABLE`` freely. The namespace starts
  with these names (a page may rebind them; ``<!-- clear-namespace -->`` brings them back):

  ``engine``         Engine as the database owner, search_path = page schema, public
  ``app_engine``     Engine as a non-superuser, non-owner role (row-level security applies)
  ``async_engine``   AsyncEngine as the owner (NullPool: usable across ``asyncio.run`` calls)
  ``schema_name``    the page schema's name (str)
  ``database``       the :class:`pgpatterns.testing.Database` (``.url``, ``.server.major`` ...)

* Hidden setup: ``<!-- invisible-code-block: python`` ... ``-->`` runs without being shown.
  ``<!-- skip: next -->`` skips the next block; ``<!-- clear-namespace -->`` resets names.
* A page that needs an extension says so once, anywhere in the page:
  ``<!-- requires-extension: postgis -->`` (comma-separate several). Its blocks then run on a
  server that has it, and skip when none has it (fail when ``PGPATTERNS_REQUIRE`` lists it).
"""

from __future__ import annotations

import gc
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine
from sqlalchemy.pool import NullPool
from sybil import Sybil
from sybil.integration.pytest import SybilItem
from sybil.parsers.markdown import ClearNamespaceParser, PythonCodeBlockParser, SkipParser

from pgpatterns.testing import Database

# On a line of its own, like Sybil's directives (so prose can mention it inline).
_REQUIRES = re.compile(
    r"^[ \t]*<!--\s*requires-extension:\s*(?P<names>[\w, \t-]+?)\s*-->[ \t]*$", re.MULTILINE
)


@dataclass
class _Page:
    """The per-page schema, its engines and the namespace they were injected into."""

    database: Database
    schema_name: str
    app_name: str
    engine: Engine
    app_engine: Engine
    async_engine: Any
    namespaces: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def create(cls, database: Database) -> _Page:
        name = database.create_schema("doc")
        app_name = f"pgpatterns-docs-{name}"
        args = database.search_path_args(name, application_name=app_name)
        from sqlalchemy.ext.asyncio import create_async_engine

        return cls(
            database=database,
            schema_name=name,
            app_name=app_name,
            engine=create_engine(database.url, pool_size=2, max_overflow=8, connect_args=args),
            app_engine=create_engine(
                database.app_url, pool_size=2, max_overflow=8, connect_args=args
            ),
            async_engine=create_async_engine(database.url, poolclass=NullPool, connect_args=args),
        )

    def inject(self, namespace: dict[str, Any]) -> None:
        if not any(ns is namespace for ns in self.namespaces):
            self.namespaces.append(namespace)
        names = {
            "engine": self.engine,
            "app_engine": self.app_engine,
            "async_engine": self.async_engine,
            "schema_name": self.schema_name,
            "database": self.database,
        }
        for key, value in names.items():
            namespace.setdefault(key, value)

    def close(self) -> None:
        for namespace in self.namespaces:  # release the page's sessions and connections
            namespace.clear()
        # Sessions sit in reference cycles: collect them now, so their connections go back to
        # the pool here rather than inside some later, unrelated code (e.g. ast.parse).
        gc.collect()
        self.engine.dispose()
        self.app_engine.dispose()
        # terminate: a page that left a transaction open would otherwise block the DROP.
        self.database.drop_schema(self.schema_name, terminate=self.app_name)


@pytest.fixture(scope="module")  # Sybil maps "module" to the document: one holder per page
def _docs_page_holder() -> Iterator[dict[str, _Page]]:
    holder: dict[str, _Page] = {}
    yield holder
    for page in holder.values():
        page.close()


@pytest.fixture
def _docs_page(
    request: pytest.FixtureRequest, _docs_page_holder: dict[str, _Page], pg_database: Database
) -> _Page:
    """Creates the page schema on the page's first block; injects the names on every block."""
    page = _docs_page_holder.get("page")
    if page is None:
        page = _docs_page_holder["page"] = _Page.create(pg_database)
    page.inject(request.node.example.namespace)
    return page


pytest_collect_file = Sybil(
    parsers=[PythonCodeBlockParser(), SkipParser(), ClearNamespaceParser()],
    patterns=["*.md"],
    fixtures=["_docs_page"],
).pytest()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every block of a page that declares ``<!-- requires-extension: ... -->``."""
    for item in items:
        if not isinstance(item, SybilItem):
            continue
        names = [
            name.strip()
            for match in _REQUIRES.finditer(item.example.document.text)
            for name in match.group("names").split(",")
            if name.strip()
        ]
        if names:
            item.add_marker(pytest.mark.requires_extension(*names))
