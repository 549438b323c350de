"""Placeholder replaced by the metrics work in progress."""

from __future__ import annotations

from backend.services.context import ServiceContext
from backend.services.settings import SettingsService


class HostsService:
    def __init__(self, ctx: ServiceContext, settings: SettingsService) -> None:
        self._ctx = ctx
        self._settings = settings
