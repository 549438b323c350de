"""Hosts: registered by their first report, up or down by how recently they reported."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from backend.domain.errors import NotFound
from backend.domain.events import Topic
from backend.domain.monitoring import HostStatus, HostView
from backend.domain.permissions import Permission
from backend.domain.principal import Principal
from backend.services.context import ServiceContext, unit_of_work
from backend.services.settings import SettingsService
from backend.storage import metrics as store

HostViews = list[HostView]
Changes = list[dict[str, Any]]
"""Aliases, since the method `list` shadows the builtin inside the class."""


class HostsService:
    """Host status is derived, never stored: `last_seen` plus the live settings decide it.

    `check_status` remembers what it announced last, so the "hosts" topic
    carries changes only. With several server instances each one announces
    a change; the event states a status rather than a transition, so a
    repeat is harmless.
    """

    def __init__(self, ctx: ServiceContext, settings: SettingsService) -> None:
        self._ctx = ctx
        self._settings = settings
        self._announced: dict[int, HostStatus] = {}
        self._delete_listeners: list[Callable[[int], None]] = []

    def on_delete(self, listener: Callable[[int], None]) -> None:
        """Call `listener(host_id)` after a host is deleted (caches keyed by host id)."""
        self._delete_listeners.append(listener)

    async def list(self, principal: Principal) -> HostViews:
        principal.require(Permission.HOSTS_READ)
        return await self._views()

    async def check_status(self) -> Changes:
        """Publish a "hosts" event per host whose status changed; run by a job.

        A host seen for the first time counts as a change, so subscribers
        learn of new hosts. Returns the events published.
        """
        views = await self._views()
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
        for listener in self._delete_listeners:
            listener(host_id)

    async def _views(self) -> HostViews:
        values = await self._settings.values(
            "hosts.down_after_missed", "collector.interval_seconds"
        )
        allowed = values["hosts.down_after_missed"] * values["collector.interval_seconds"]
        now = self._ctx.clock()
        async with self._ctx.db.reader() as session:
            hosts = await store.all_hosts(session)
        return [
            HostView(
                id=host.id,
                name=host.name,
                status="up" if now - host.last_seen <= allowed else "down",
                first_seen=host.first_seen,
                last_seen=host.last_seen,
            )
            for host in hosts
        ]
