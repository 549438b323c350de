"""Shared fixtures: a fresh `Core` per test, on SQLite and on PostgreSQL + Redis.

The schema is migrated once per run (a template SQLite file, one PostgreSQL
database per run); each test then starts from empty tables, so one test body
runs unchanged on both back ends.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import pytest_asyncio
import redis

from backend.config import Settings
from backend.core import Core
from backend.domain.permissions import Role
from backend.domain.principal import Principal
from backend.storage import migrate
from backend.storage.database import Database
from backend.storage.models import Base
from tests.services import postgres_admin_url, redis_url

TEST_SECRET = "test-secret-key-not-for-production-0123456789"
PASSWORD = "correct horse battery"


def _migrate(url: str) -> None:
    async def run() -> None:
        db = Database(url)
        try:
            await migrate.upgrade(db)
        finally:
            await db.dispose()

    asyncio.run(run())


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "quarterdeck.db"
    _migrate(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A database of this run's own, dropped at the end."""
    admin = postgres_admin_url()
    name = f"qd_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = admin.rsplit("/", 1)[0] + f"/{name}"
    try:
        _migrate(url.replace("postgresql://", "postgresql+psycopg://", 1))
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _truncate(url: str) -> None:
    tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")


@dataclass
class Backend:
    kind: str
    settings: Settings


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Start-up settings for one back end, its storage empty and migrated."""
    common: dict[str, Any] = {
        "data_dir": tmp_path,
        "secret_key": TEST_SECRET,
        "auto_migrate": False,
        "run_jobs": False,
        "collect_local": False,
    }
    if request.param == "sqlite":
        db_path = tmp_path / "quarterdeck.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), db_path)
        yield Backend("sqlite", Settings(**common))
        return
    pg_url = request.getfixturevalue("postgres_database")
    _truncate(pg_url)
    prefix = f"qdtest:{uuid.uuid4().hex}:"
    rurl = redis_url()
    yield Backend(
        "postgres",
        Settings(**common, database_url=pg_url, redis_url=rurl, redis_prefix=prefix),
    )
    client = redis.Redis.from_url(rurl)
    try:
        keys = list(client.scan_iter(f"{prefix}*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest_asyncio.fixture
async def core(backend: Backend) -> AsyncIterator[Core]:
    # No background flush: tests that check live metric events call flush_events themselves.
    async with Core.open(backend.settings.model_copy(update={"live_events": False})) as opened:
        yield opened


@dataclass
class Team:
    """One signed-in principal per role, plus the system principal."""

    admin: Principal
    operator: Principal
    viewer: Principal
    system: Principal

    def by_role(self, role: str) -> Principal:
        return {"admin": self.admin, "operator": self.operator, "viewer": self.viewer}[role]


@pytest_asyncio.fixture
async def team(core: Core) -> Team:
    admin_view = await core.users.create_first_admin(username="ada", password=PASSWORD)
    admin = Principal.for_user(user_id=admin_view.id, username="ada", role=Role.ADMIN)
    operator_view = await core.users.create(
        admin, username="otto", password=PASSWORD, role="operator"
    )
    viewer_view = await core.users.create(admin, username="vera", password=PASSWORD, role="viewer")
    return Team(
        admin=admin,
        operator=Principal.for_user(user_id=operator_view.id, username="otto", role=Role.OPERATOR),
        viewer=Principal.for_user(user_id=viewer_view.id, username="vera", role=Role.VIEWER),
        system=Principal.system(),
    )
