"""Light and dark palettes, icons in both, the OS scheme followed."""

from __future__ import annotations

import pytest
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication

from console import theme
from console.resources import resource_dir


@pytest.mark.parametrize("chosen", list(theme.Theme))
def test_every_icon_renders_in_both_themes(app: QApplication, chosen: theme.Theme) -> None:
    names = sorted(path.stem for path in (resource_dir() / "icons").glob("*.svg"))
    assert "quarterdeck" in names
    for name in names:
        icon = theme.icon(name, chosen)
        image = icon.pixmap(32, 32).toImage()
        assert not image.isNull()
        # Something was drawn: not every pixel is transparent.
        assert any(
            image.pixelColor(x, y).alpha() > 0 for x in range(0, 32, 2) for y in range(0, 32, 2)
        ), name


def test_themes_differ_and_fill_the_stylesheet(app: QApplication) -> None:
    light = theme.palette_for(theme.Theme.LIGHT).color(QPalette.ColorRole.Window)
    dark = theme.palette_for(theme.Theme.DARK).color(QPalette.ColorRole.Window)
    assert light.lightness() > 200
    assert dark.lightness() < 60
    for chosen in theme.Theme:
        sheet = theme.stylesheet_for(chosen)
        assert "$" not in sheet
        assert theme.COLORS[chosen].sidebar in sheet


def test_the_manager_applies_and_announces(app: QApplication) -> None:
    manager = theme.install(app)
    assert theme.install(app) is manager
    seen: list[str] = []
    manager.changed.connect(seen.append)
    try:
        manager.set_theme(theme.Theme.DARK)
        assert (
            app.palette().color(QPalette.ColorRole.Window).name()
            == theme.COLORS[theme.Theme.DARK].window
        )
        manager.set_theme(theme.Theme.LIGHT)
        assert seen == ["dark", "light"]
    finally:
        manager.changed.disconnect(seen.append)
        manager.set_theme(None)


def test_the_environment_overrides_the_os(
    monkeypatch: pytest.MonkeyPatch, app: QApplication
) -> None:
    monkeypatch.setenv(theme.THEME_ENV, "dark")
    assert theme.os_theme() is theme.Theme.DARK
    monkeypatch.setenv(theme.THEME_ENV, "light")
    assert theme.os_theme() is theme.Theme.LIGHT
