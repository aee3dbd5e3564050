"""The Citus test schema: a reference table, three colocated tenant tables, 4 tenants."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import BigInteger, ForeignKey, MetaData, Table, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from pgpatterns.bulk import copy_rows
from pgpatterns.citus import distribute
from pgpatterns.rls import TenantScoped
from pgpatterns.testing.citus import APP_ROLE, CitusSchema

TENANTS = (1, 2, 3, 4)
PROJECTS_PER_TENANT = 5
TASKS_PER_PROJECT = 4


class Base(DeclarativeBase):
    metadata = MetaData()


class Plan(Base):
    """Shared by every tenant: a reference table."""

    __tablename__ = "plans"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    name: Mapped[str]


class Project(TenantScoped, Base):
    __tablename__ = "projects"
    __tenant_roles__ = (APP_ROLE,)
    __tenant_primary_key__ = True
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    name: Mapped[str]
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id"))
    tasks: Mapped[list[Task]] = relationship(
        back_populates="project",
        primaryjoin="and_(Project.tenant_id == foreign(Task.tenant_id), "
        "Project.id == Task.project_id)",
    )


class Task(TenantScoped, Base):
    __tablename__ = "tasks"
    __tenant_roles__ = (APP_ROLE,)
    __tenant_primary_key__ = True
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    title: Mapped[str]
    project: Mapped[Project] = relationship(
        back_populates="tasks",
        primaryjoin="and_(Project.tenant_id == foreign(Task.tenant_id), "
        "Project.id == Task.project_id)",
    )


DISTRIBUTION = distribute(Base.metadata, shard_count=8)


@dataclass
class World:
    schema: CitusSchema
    plans: Table
    projects: Table
    tasks: Table


def build(schema: CitusSchema) -> World:
    plans, projects, tasks = (Base.metadata.tables[n] for n in ("plans", "projects", "tasks"))
    with schema.engine.begin() as conn:
        Base.metadata.create_all(conn)
        copy_rows(conn, plans, [(1, "free"), (2, "pro")], columns=["id", "name"])
        rows, task_rows = [], []
        for t in TENANTS:
            for p in range(1, PROJECTS_PER_TENANT + 1):
                pid = t * 100 + p
                rows.append((t, pid, f"project {pid}", 1 + p % 2))
                for k in range(1, TASKS_PER_PROJECT + 1):
                    task_rows.append((t, pid * 10 + k, pid, f"task {k}"))
        copy_rows(conn, projects, rows, columns=["tenant_id", "id", "name", "plan_id"])
        copy_rows(conn, tasks, task_rows, columns=["tenant_id", "id", "project_id", "title"])
        conn.execute(text("ANALYZE"))
    return World(schema, plans, projects, tasks)
