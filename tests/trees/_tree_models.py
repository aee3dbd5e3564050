"""Tree models shared by the trees tests (each test creates them in its own schema)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, Identity
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from pgpatterns.ddl import attach
from pgpatterns.testing.plugin import PgSchema
from pgpatterns.trees import AdjacencyListMixin, TreeOptions, tree_guard


class Base(DeclarativeBase):
    pass


class Category(AdjacencyListMixin, Base):
    """Integer identity key, ON DELETE CASCADE, children ordered by key."""

    __tablename__ = "tree_categories"
    id: Mapped[int] = mapped_column(Identity(), primary_key=True)
    name: Mapped[str]

    def __repr__(self) -> str:
        return f"Category({self.id}, {self.name!r})"


class Folder(AdjacencyListMixin, Base):
    """A forest per tenant, siblings ordered by position, ON DELETE SET NULL."""

    __tablename__ = "tree_folders"
    __tree__ = TreeOptions(scope="tenant_id", order_by="position", on_delete="set null")
    id: Mapped[int] = mapped_column(Identity(), primary_key=True)
    tenant_id: Mapped[int]
    position: Mapped[int] = mapped_column(default=0)
    name: Mapped[str]


class Doc(AdjacencyListMixin, Base):
    """UUID keys, ON DELETE RESTRICT."""

    __tablename__ = "tree_docs"
    __tree__ = TreeOptions(on_delete="restrict")
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    title: Mapped[str]


attach(Base.metadata, *tree_guard(Category), *tree_guard(Folder), *tree_guard(Doc))


@pytest.fixture
def tree_engine(pg_schema: PgSchema) -> Iterator[Engine]:
    """An engine on a fresh schema holding the three tree tables and their guards."""
    Base.metadata.create_all(pg_schema.engine)
    yield pg_schema.engine
