"""Schema upgrades through Alembic, callable from the core and the CLI.

Alembic is imported only when there is work for it: every start of the
embedded console checks the schema, and loading Alembic costs a few hundred
milliseconds of start-up (measured with `python -m bench startup`), while
reading the one-row `alembic_version` table costs almost nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from backend.storage.database import Database

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"

SCHEMA_HEAD = "0001"
"""The newest revision in migrations/versions, which this version of the code needs.

Kept here so the common case (the schema is current) needs no Alembic;
tests/backend/test_migrations.py checks it against Alembic's own head, so a
new migration without this line changed fails the suite."""


def alembic_config(url: str | None = None) -> Config:
    from alembic.config import Config  # noqa: PLC0415 - heavy; only when migrating

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url:
        config.set_main_option("sqlalchemy.url", url)
    return config


async def upgrade(db: Database, revision: str = "head") -> None:
    """Bring the schema to `revision` inside one transaction (nothing to do at the head)."""
    if revision == "head" and await current_revision(db) == SCHEMA_HEAD:
        return

    def _upgrade(connection: Connection) -> None:
        from alembic import command  # noqa: PLC0415 - heavy; only when migrating

        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with db.engine.begin() as conn:
        await conn.run_sync(_upgrade)


async def current_revision(db: Database) -> str | None:
    """The schema's revision as Alembic recorded it; None for an empty database."""

    def _current(connection: Connection) -> str | None:
        if not inspect(connection).has_table("alembic_version"):
            return None
        rows = connection.execute(text("SELECT version_num FROM alembic_version")).scalars()
        versions = list(rows)
        return versions[0] if len(versions) == 1 else None

    async with db.engine.connect() as conn:
        return await conn.run_sync(_current)


def head_revision() -> str | None:
    """Alembic's own view of the newest revision (loads every migration script)."""
    from alembic.script import ScriptDirectory  # noqa: PLC0415 - heavy; only when asked

    return ScriptDirectory.from_config(alembic_config()).get_current_head()
