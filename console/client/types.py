"""The values a panel receives: the backend's domain views, re-exported.

Panels import them from here, never from `backend`, so the console's
architecture contract (panels see only `console.client`) holds while both
modes hand back exactly the objects the services produce.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from backend.domain.audit import AuditEntryView, AuditPage, AuditVerification
from backend.domain.events import Event, StreamReset, Topic
from backend.domain.metrics import METRICS, MetricSpec
from backend.domain.monitoring import Bucket, HostView, SeriesData, SeriesView
from backend.domain.permissions import Permission, Role
from backend.domain.settings import SettingChange, SettingVersionView, SettingView
from backend.domain.users import ApiKeyView, CreatedApiKey, MeView, UserView


class ConnectionState(StrEnum):
    LIVE = "live"
    """Calls succeed and the event stream is connected."""
    RECONNECTING = "reconnecting"
    """The link dropped; the client is retrying with backoff."""
    OFFLINE = "offline"
    """Closed, signed out, or given up: nothing is being retried."""


@dataclass(frozen=True, slots=True)
class ConnectionStatus:
    state: ConnectionState
    latency_ms: float | None = None
    """Last measured round trip; None until measured."""
    detail: str = ""
    """For a person: why it is reconnecting or offline."""


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Filters of the audit table; None leaves a filter out."""

    actor: str | None = None
    action: str | None = None
    since: float | None = None
    until: float | None = None
    text: str | None = None


__all__ = [
    "METRICS",
    "ApiKeyView",
    "AuditEntryView",
    "AuditPage",
    "AuditQuery",
    "AuditVerification",
    "Bucket",
    "ConnectionState",
    "ConnectionStatus",
    "CreatedApiKey",
    "Event",
    "HostView",
    "MeView",
    "MetricSpec",
    "Permission",
    "Role",
    "SeriesData",
    "SeriesView",
    "SettingChange",
    "SettingVersionView",
    "SettingView",
    "StreamReset",
    "Topic",
    "UserView",
]
