"""One Alembic history that builds exactly the schema the code declares, on both back ends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from backend.core import Core
from backend.storage import migrate
from backend.storage.database import Database
from backend.storage.models import Base

pytestmark = pytest.mark.asyncio


async def test_schema_matches_models_and_is_at_head(core: Core) -> None:
    def diff(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))

    async with core.db.engine.connect() as conn:
        differences = await conn.run_sync(diff)
    assert differences == []
    assert await migrate.current_revision(core.db) == migrate.head_revision()


async def test_upgrade_is_idempotent(core: Core) -> None:
    await migrate.upgrade(core.db)
    assert await migrate.current_revision(core.db) == migrate.head_revision()


async def test_the_head_the_code_needs_is_alembics_head() -> None:
    """A new migration must move `SCHEMA_HEAD`, or starts would skip it."""
    assert migrate.head_revision() == migrate.SCHEMA_HEAD


async def test_an_empty_database_has_no_revision_until_upgraded(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    try:
        assert await migrate.current_revision(db) is None
        await migrate.upgrade(db)
        assert await migrate.current_revision(db) == migrate.SCHEMA_HEAD
    finally:
        await db.dispose()
