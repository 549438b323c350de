"""The engine and the unit of work, for SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

CONNECT_TIMEOUT = 5
"""Seconds to wait for a new PostgreSQL connection (a URL's connect_timeout wins)."""


class Database:
    """Owns one async engine. Created by `Core.open`, never at import.

    SQLite allows one writer at a time; rather than let concurrent writers
    fail with "database is locked", write transactions queue on an asyncio
    lock (readers are not blocked thanks to WAL). PostgreSQL needs no lock.
    """

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = make_url(url)
        self.dialect = self.url.get_backend_name()
        kwargs: dict[str, Any] = {"echo": echo}
        if self.dialect == "sqlite":
            database = self.url.database
            if database and database != ":memory:":
                from pathlib import Path  # noqa: PLC0415

                Path(database).parent.mkdir(parents=True, exist_ok=True)
        else:
            # pre-ping replaces connections a database restart broke; the connect
            # timeout bounds a request (and /readyz) when the host drops packets
            # instead of refusing, so callers get a 503 rather than a hang.
            kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True, pool_timeout=10)
            if "connect_timeout" not in self.url.query:
                kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT}
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        if self.dialect == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._write_lock = asyncio.Lock() if self.is_sqlite else None

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction: committed on success, rolled back on error."""
        lock = self._write_lock or contextlib.nullcontext()
        async with lock, self.sessions() as session, session.begin():
            yield session

    @contextlib.asynccontextmanager
    async def reader(self) -> AsyncIterator[AsyncSession]:
        """A session for reads only; it never takes the SQLite write lock."""
        async with self.sessions() as session:
            yield session

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


SQLITE_CACHE_KIB = 65_536
"""Page cache per connection (PRAGMA cache_size, in KiB), filled only as pages are used.

An ingest batch touches the newest index leaf of every series it carries,
all over the (series_id, ts) index; SQLite's default 2 MiB no longer holds
them once a few hundred series report, and every batch then rereads them."""

SQLITE_CHECKPOINT_PAGES = 10_000
"""WAL pages (about 40 MiB) after which a commit checkpoints (PRAGMA wal_autocheckpoint).

The default of 1000 checkpoints every few ingest batches, each time writing
back and syncing the same hot index pages; fewer, larger checkpoints write
each page once for many batches."""


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
    cursor.execute(f"PRAGMA wal_autocheckpoint={SQLITE_CHECKPOINT_PAGES}")
    cursor.close()
