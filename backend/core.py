"""The service core: opens storage and the bus, builds services, runs jobs.

One `Core` serves every front door: the console's embedded mode, the HTTP
server and the CLI. Nothing here exists until `Core.open` is entered, so a
process can hold several cores (tests do) and closing one leaves no state.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import AsyncIterator

from backend.bus.factory import BusBundle, open_bus
from backend.collector.local import run_local_collector
from backend.config import Settings
from backend.domain.errors import Unavailable
from backend.services.api_keys import ApiKeysService
from backend.services.audit import AuditService
from backend.services.auth import AuthService
from backend.services.context import ServiceContext
from backend.services.crypto import Keys
from backend.services.events import EventsService
from backend.services.hosts import HostsService
from backend.services.jobs import Jobs
from backend.services.metrics import MetricsService
from backend.services.settings import SettingsService
from backend.services.users import UsersService
from backend.storage import migrate
from backend.storage.database import Database

log = logging.getLogger(__name__)

EVENT_FLUSH_SECONDS = 0.25
"""How soon a held-back metric update goes out once its series is due again."""
RETENTION_SECONDS = 600.0


async def _require_current_schema(db: Database) -> None:
    current = await migrate.current_revision(db)
    head = migrate.SCHEMA_HEAD
    if current != head:
        raise Unavailable(
            f"the database schema is at revision {current or 'none'} but this version needs "
            f"{head}: run `quarterdeck db upgrade`",
            details={"current": current, "required": head},
        )


class Core:
    def __init__(self, settings: Settings, ctx: ServiceContext, bus: BusBundle) -> None:
        self.config = settings
        self.ctx = ctx
        self._bus = bus
        self.jobs = Jobs()
        self.settings = SettingsService(ctx)
        self.users = UsersService(ctx)
        self.auth = AuthService(ctx, self.settings)
        self.api_keys = ApiKeysService(ctx)
        self.audit = AuditService(ctx)
        self.events = EventsService(ctx)
        self.hosts = HostsService(ctx, self.settings)
        self.metrics = MetricsService(ctx, self.settings, self.hosts)

    @property
    def db(self) -> Database:
        return self.ctx.db

    @property
    def bus(self) -> BusBundle:
        return self._bus

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, settings: Settings) -> AsyncIterator[Core]:
        db = Database(settings.effective_database_url)
        try:
            if settings.migrate_on_open:
                await migrate.upgrade(db)
            else:
                await _require_current_schema(db)
            bus = await open_bus(
                settings.redis_url, settings.redis_prefix, settings.event_retention
            )
            try:
                ctx = ServiceContext(
                    db=db,
                    bus=bus.bus,
                    cache=bus.cache,
                    limiter=bus.limiter,
                    keys=Keys(settings.resolve_secret_key()),
                )
                core = cls(settings, ctx, bus)
                core._start_jobs()
                try:
                    yield core
                finally:
                    await core.jobs.stop()
            finally:
                await bus.close()
        finally:
            await db.dispose()

    def _start_jobs(self) -> None:
        """Background work chosen from the start-up settings."""
        if self.config.live_events:
            self.metrics.publish_on_ingest = True
            self.jobs.every("metrics-events", EVENT_FLUSH_SECONDS, self.metrics.flush_events)
        if self.config.collect_local:
            host = self.config.local_host_name or socket.gethostname()
            self.jobs.run(
                "local-collector",
                lambda: run_local_collector(
                    metrics=self.metrics, settings=self.settings, host=host
                ),
            )
        if self.config.run_jobs:
            self.jobs.every("retention", RETENTION_SECONDS, self.metrics.apply_retention)
            self.jobs.every("host-status", self._sampling_interval, self.hosts.check_status)

    async def _sampling_interval(self) -> float:
        return float(await self.settings.value("collector.interval_seconds"))
