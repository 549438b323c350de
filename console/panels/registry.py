"""Which panel each navigation entry shows, declared once as data.

To plug a panel in, set `panel=` of its entry to "module:Class" (one line):

    panel="console.panels.users:UsersPanel",

The class is a QWidget whose constructor is `(client: Client, me: MeView,
parent: QWidget | None)`. It is imported and built the first time its
entry is selected, so start-up does not pay for pyqtgraph, and a panel that
is never opened costs nothing. It should load its data asynchronously
(`console.asyncslots.run_async`) and never block in `__init__`.

Optional: `async def shutdown(self) -> None`, awaited when the window
closes or signs out, before the client is closed (stop streams and timers
there). A panel whose class is missing or fails to build shows an error
page instead of taking the window down.

Optional, to lead from one panel to another (an overview card opens its
host in the Hosts panel): a signal `navigate_requested(key, target)`, which
the window answers by showing the entry `key` and calling that panel's
`reveal(target)` if it has one (`RevealingPanel`).

`requires` names the permission without which the entry is disabled, with
the reason as its tooltip, as the design asks of every control.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from PySide6.QtWidgets import QWidget

from console.client import Client
from console.client.types import MeView, Permission

PanelFactory = Callable[[Client, MeView, QWidget | None], QWidget]

COMING_LATER = "This panel is coming in a later build of Quarterdeck."


@runtime_checkable
class ClosablePanel(Protocol):
    """A panel with something to stop before its client closes."""

    def shutdown(self) -> Awaitable[None]: ...


@runtime_checkable
class RevealingPanel(Protocol):
    """A panel that can show one item (a host) when another panel leads to it."""

    def reveal(self, target: str) -> None: ...


@dataclass(frozen=True, slots=True)
class NavEntry:
    key: str
    """Stable identifier: remembered per window, used in tests."""
    title: str
    icon: str
    """Name of the SVG in resources/icons/."""
    requires: Permission | None
    denied: str
    """Tooltip when the signed-in user lacks `requires`."""
    panel: str | None = None
    """"package.module:Class" of the panel; None shows `not_built`."""
    not_built: str = COMING_LATER

    def allowed(self, me: MeView) -> bool:
        return self.requires is None or self.requires.value in me.permissions

    def load(self) -> PanelFactory | None:
        """The panel class, imported now; None while the panel is not built."""
        if self.panel is None:
            return None
        module_name, _, attribute = self.panel.partition(":")
        factory = getattr(importlib.import_module(module_name), attribute)
        if not (isinstance(factory, type) and issubclass(factory, QWidget)):
            raise TypeError(f"{self.panel} is not a QWidget subclass")
        return factory


NAVIGATION: tuple[NavEntry, ...] = (
    NavEntry(
        key="overview",
        title="Overview",
        icon="nav-overview",
        requires=Permission.METRICS_READ,
        denied="Your role cannot read metrics.",
        panel="console.panels.overview:OverviewPanel",
    ),
    NavEntry(
        key="hosts",
        title="Hosts",
        icon="nav-hosts",
        requires=Permission.HOSTS_READ,
        denied="Your role cannot read hosts.",
        panel="console.panels.hosts:HostsPanel",
    ),
    NavEntry(
        key="alerts",
        title="Alerts",
        icon="nav-alerts",
        requires=Permission.ALERTS_READ,
        denied="Your role cannot read alerts.",
        panel=None,
        not_built=(
            "Alerting is not built yet. Alert rules, acknowledgements and mail "
            "notifications come in a later milestone."
        ),
    ),
    NavEntry(
        key="users",
        title="Users",
        icon="nav-users",
        requires=Permission.USERS_READ,
        denied="Your role cannot read users.",
        panel="console.panels.users:UsersPanel",
    ),
    NavEntry(
        key="configuration",
        title="Configuration",
        icon="nav-configuration",
        requires=Permission.SETTINGS_READ,
        denied="Your role cannot read the configuration.",
        panel="console.panels.configuration:ConfigurationPanel",
    ),
    NavEntry(
        key="audit",
        title="Audit",
        icon="nav-audit",
        requires=Permission.AUDIT_READ,
        denied="Your role cannot read the audit log (viewers have no access to it).",
        panel="console.panels.audit:AuditPanel",
    ),
)


def entry(key: str) -> NavEntry:
    """The entry called `key`; `KeyError` for an unknown key."""
    for candidate in NAVIGATION:
        if candidate.key == key:
            return candidate
    raise KeyError(key)
