"""Hosts: registered by their first report, up or down by how recently they reported."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from backend.domain.errors import NotFound
from backend.domain.events import Topic
from backend.domain.monitoring import HostStatus, HostView
from backend.domain.permissions import Permission
from backend.domain.principal import Principal
from backend.services.context import ServiceContext, unit_of_work
from backend.services.settings import SettingsService
from backend.services.shared import SharedCall
from backend.storage import metrics as store

HostViews = list[HostView]
Changes = list[dict[str, Any]]
"""Aliases, since the method `list` shadows the builtin inside the class."""

SNAPSHOT_TTL = 1.0
"""Seconds a read of the hosts table answers listings. What this process
ingests shows at once (`note_seen`); hosts registered, reporting or deleted
through another server instance show within this delay."""


class _Row(NamedTuple):
    id: int
    name: str
    first_seen: float
    last_seen: float


@dataclass(frozen=True, slots=True)
class _Listed:
    """Views computed once, reused while nothing they depend on changed."""

    rows: dict[int, _Row]
    seen_version: int
    allowed: float
    computed_at: float
    until: float
    """`ctx.clock()` time before which no listed host can go from up to down."""
    views: tuple[HostView, ...]


class HostsService:
    """Host status is derived, never stored: `last_seen` plus the live settings decide it.

    `check_status` remembers what it announced last, so the "hosts" topic
    carries changes only. With several server instances each one announces
    a change; the event states a status rather than a transition, so a
    repeat is harmless.

    Listing is what dashboards poll, so it answers from a snapshot of the
    hosts table at most `SNAPSHOT_TTL` seconds old instead of reading the
    database per request. The metrics service keeps it current for this
    process: `note_seen` after every ingest moves last_seen forward (kept
    aside in `_seen`, so a re-read that started before the ingest committed
    cannot move it back) and drops the snapshot when a host it does not
    hold reported; `delete` drops it too. A generation number, bumped by
    each drop, keeps a read that started before the change from being kept.
    The views themselves are reused while the snapshot, what `note_seen`
    added and the settings are unchanged and no host can have gone down
    meanwhile (`_Listed`).
    """

    def __init__(self, ctx: ServiceContext, settings: SettingsService) -> None:
        self._ctx = ctx
        self._settings = settings
        self._announced: dict[int, HostStatus] = {}
        self._delete_listeners: list[Callable[[int], None]] = []
        self._snapshot: tuple[float, dict[int, _Row]] | None = None
        """When the rows were read (`time.monotonic()`), and them by id."""
        self._seen: dict[int, float] = {}
        """Newest last_seen this process stored per host id, applied over the snapshot."""
        self._seen_version = 0
        self._listed: _Listed | None = None
        self._generation = 0
        self._reading: SharedCall[dict[int, _Row]] = SharedCall()

    def on_delete(self, listener: Callable[[int], None]) -> None:
        """Call `listener(host_id)` after a host is deleted (caches keyed by host id)."""
        self._delete_listeners.append(listener)

    async def list(self, principal: Principal) -> HostViews:
        principal.require(Permission.HOSTS_READ)
        return await self._views(await self._rows())

    def note_seen(self, last_seen: Mapping[int, float]) -> None:
        """After an ingest committed: these hosts (by id) reported up to these times."""
        seen = self._seen
        for host_id, ts in last_seen.items():
            if ts > seen.get(host_id, -1.0):
                seen[host_id] = ts
                self._seen_version += 1
        snapshot = self._snapshot
        known = snapshot[1] if snapshot is not None else {}
        if not last_seen.keys() <= known.keys():
            # New to this process (or re-registered): also discards a read in flight.
            self._forget_snapshot()

    async def check_status(self) -> Changes:
        """Publish a "hosts" event per host whose status changed; run by a job.

        A host seen for the first time counts as a change, so subscribers
        learn of new hosts. Returns the events published. It reads the hosts
        table afresh (once per interval), which also renews the snapshot.
        """
        self._forget_snapshot()
        views = await self._views(await self._read(self._generation))
        current = {view.id: view.status for view in views}
        changes = [
            {"host": view.name, "host_id": view.id, "status": view.status}
            for view in views
            if self._announced.get(view.id) != view.status
        ]
        self._announced = current
        for change in changes:
            await self._ctx.bus.publish(Topic.HOSTS, change)
        return changes

    async def delete(self, principal: Principal, host_id: int) -> None:
        """Forget a host with all its series and data; it re-registers if it reports again."""
        principal.require(Permission.HOSTS_WRITE)
        async with unit_of_work(self._ctx) as uow:
            host = await store.delete_host(uow.session, host_id)
            if host is None:
                raise NotFound(f"there is no host {host_id}", details={"host_id": host_id})
            await uow.audit(principal, "hosts.delete", host.name, {"host_id": host_id})
            uow.publish(Topic.HOSTS, {"host": host.name, "host_id": host_id, "status": "deleted"})
        self._announced.pop(host_id, None)
        self._seen.pop(host_id, None)
        self._seen_version += 1
        self._forget_snapshot()
        for listener in self._delete_listeners:
            listener(host_id)

    async def _views(self, rows: dict[int, _Row]) -> HostViews:
        values = await self._settings.recent(
            "hosts.down_after_missed", "collector.interval_seconds"
        )
        allowed = float(values["hosts.down_after_missed"] * values["collector.interval_seconds"])
        now = self._ctx.clock()
        listed = self._listed
        if (
            listed is not None
            and listed.rows is rows
            and listed.seen_version == self._seen_version
            and listed.allowed == allowed
            and listed.computed_at <= now < listed.until
        ):
            return list(listed.views)
        seen = self._seen
        views = []
        until = math.inf
        for row in rows.values():  # by name, as read
            last_seen = max(row.last_seen, seen.get(row.id, row.last_seen))
            up = now - last_seen <= allowed
            if up:
                # A millisecond early, so float rounding at the edge cannot keep it up.
                until = min(until, last_seen + allowed - 0.001)
            views.append(
                HostView(
                    id=row.id,
                    name=row.name,
                    status="up" if up else "down",
                    first_seen=row.first_seen,
                    last_seen=last_seen,
                )
            )
        self._listed = _Listed(rows, self._seen_version, allowed, now, until, tuple(views))
        return views

    # -- the snapshot ----------------------------------------------------------

    async def _rows(self) -> dict[int, _Row]:
        """The hosts by id, from a snapshot at most SNAPSHOT_TTL seconds old.

        Requests arriving while it is re-read wait for that one read.
        """
        snapshot = self._snapshot
        if snapshot is not None and time.monotonic() - snapshot[0] < SNAPSHOT_TTL:
            return snapshot[1]
        generation = self._generation
        return await self._reading(generation, lambda: self._read(generation))

    async def _read(self, generation: int) -> dict[int, _Row]:
        started = time.monotonic()
        async with self._ctx.db.reader() as session:
            hosts = await store.all_hosts(session)
        rows = {h.id: _Row(h.id, h.name, h.first_seen, h.last_seen) for h in hosts}
        if generation == self._generation:
            self._snapshot = (started, rows)
            # Newer than the table only until the next read; deleted hosts leave.
            self._seen = {
                host_id: ts
                for host_id, ts in self._seen.items()
                if host_id in rows and ts > rows[host_id].last_seen
            }
        return rows

    def _forget_snapshot(self) -> None:
        self._generation += 1
        self._snapshot = None
