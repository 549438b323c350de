"""Placeholder replaced by the metrics work in progress."""

from __future__ import annotations

from backend.services.context import ServiceContext
from backend.services.hosts import HostsService
from backend.services.settings import SettingsService


class MetricsService:
    def __init__(self, ctx: ServiceContext, settings: SettingsService, hosts: HostsService) -> None:
        self._ctx = ctx
        self._settings = settings
        self._hosts = hosts
