"""The panel registry: every navigation entry can be drawn and resolved."""

from __future__ import annotations

from dataclasses import replace

import pytest
from PySide6.QtWidgets import QApplication, QWidget

from console.client.types import MeView, Permission, Role
from console.panels.registry import NAVIGATION, NavEntry, entry
from console.resources import icon_path

VIEWER = MeView(
    id=3,
    username="vera",
    role=Role.VIEWER,
    permissions=[
        p.value
        for p in (
            Permission.USERS_READ,
            Permission.SETTINGS_READ,
            Permission.HOSTS_READ,
            Permission.METRICS_READ,
            Permission.ALERTS_READ,
        )
    ],
    kind="user",
)


def test_the_navigation_is_the_designs() -> None:
    assert [e.title for e in NAVIGATION] == [
        "Overview",
        "Hosts",
        "Alerts",
        "Users",
        "Configuration",
        "Audit",
    ]
    assert len({e.key for e in NAVIGATION}) == len(NAVIGATION)
    for nav_entry in NAVIGATION:
        assert icon_path(nav_entry.icon).is_file()


@pytest.mark.parametrize("nav_entry", NAVIGATION, ids=lambda e: e.key)
def test_every_registered_panel_is_a_widget(app: QApplication, nav_entry: object) -> None:
    assert isinstance(nav_entry, NavEntry)
    factory = nav_entry.load()
    if factory is None:
        assert nav_entry.not_built
    else:
        assert isinstance(factory, type)
        assert issubclass(factory, QWidget)


def test_alerts_says_it_is_not_built() -> None:
    alerts = entry("alerts")
    assert alerts.panel is None
    assert "Alerting is not built yet" in alerts.not_built


def test_permissions_gate_entries() -> None:
    assert entry("users").allowed(VIEWER)
    assert not entry("audit").allowed(VIEWER)
    assert "audit" in entry("audit").denied


def test_a_bad_panel_path_fails_loudly() -> None:
    broken = replace(entry("users"), panel="console.panels.registry:NAVIGATION")
    with pytest.raises(TypeError):
        broken.load()
    with pytest.raises(KeyError):
        entry("nope")
