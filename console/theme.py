"""Light and dark palettes that follow the OS, and the app's icons in matching colours.

Qt's native styles ignore much of a palette (Windows' does), so the console
uses Fusion everywhere and sets the palette itself: the app then looks the
same on every OS and switches with the OS colour scheme (Qt 6.5+'s
`QStyleHints.colorScheme`). `QUARTERDECK_THEME=light|dark` overrides the OS,
for people who want it and for screenshots.

Icons are single-colour SVGs drawn with `currentColor`; `icon()` renders
them in the theme's text colour, so one file serves both themes. Widgets
that show icons listen to `ThemeManager.changed` to redraw them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from string import Template

import shiboken6
from PySide6.QtCore import QByteArray, QObject, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QGuiApplication, QIcon, QImage, QPainter, QPalette, QPixmap
from PySide6.QtSvg import QSvgRenderer
from PySide6.QtWidgets import QApplication

from console.resources import icon_path, resource_path

THEME_ENV = "QUARTERDECK_THEME"
ICON_SIZES = (16, 20, 24, 32, 48, 64, 128, 256)


class Theme(StrEnum):
    LIGHT = "light"
    DARK = "dark"


@dataclass(frozen=True, slots=True)
class Colors:
    """One theme's colours: the palette roles plus the few extras the stylesheet uses."""

    window: str
    base: str
    alternate: str
    text: str
    button: str
    highlight: str
    highlighted_text: str
    muted: str
    border: str
    sidebar: str
    hover: str
    selection: str
    selected_text: str
    error: str
    link: str


COLORS: dict[Theme, Colors] = {
    Theme.LIGHT: Colors(
        window="#f6f7f9",
        base="#ffffff",
        alternate="#f1f3f5",
        text="#1f2933",
        button="#eef0f3",
        highlight="#1c6fd1",
        highlighted_text="#ffffff",
        muted="#66707a",
        border="#d5d9de",
        sidebar="#eceff3",
        hover="#e0e4e9",
        selection="#d3e4fa",
        selected_text="#0f3a66",
        error="#c92a2a",
        link="#1c6fd1",
    ),
    Theme.DARK: Colors(
        window="#1f2227",
        base="#17191d",
        alternate="#23272c",
        text="#e4e7eb",
        button="#2b3036",
        highlight="#3d8bfd",
        highlighted_text="#ffffff",
        muted="#97a1ab",
        border="#363c43",
        sidebar="#191c20",
        hover="#2a2f36",
        selection="#24436e",
        selected_text="#e8f1ff",
        error="#ff7070",
        link="#74b0ff",
    ),
}


def palette_for(theme: Theme) -> QPalette:
    c = COLORS[theme]
    palette = QPalette()
    roles = {
        QPalette.ColorRole.Window: c.window,
        QPalette.ColorRole.WindowText: c.text,
        QPalette.ColorRole.Base: c.base,
        QPalette.ColorRole.AlternateBase: c.alternate,
        QPalette.ColorRole.ToolTipBase: c.base,
        QPalette.ColorRole.ToolTipText: c.text,
        QPalette.ColorRole.PlaceholderText: c.muted,
        QPalette.ColorRole.Text: c.text,
        QPalette.ColorRole.Button: c.button,
        QPalette.ColorRole.ButtonText: c.text,
        QPalette.ColorRole.BrightText: c.error,
        QPalette.ColorRole.Highlight: c.highlight,
        QPalette.ColorRole.HighlightedText: c.highlighted_text,
        QPalette.ColorRole.Link: c.link,
        QPalette.ColorRole.LinkVisited: c.link,
        QPalette.ColorRole.Mid: c.border,
        QPalette.ColorRole.Midlight: c.hover,
        QPalette.ColorRole.Dark: c.border,
        QPalette.ColorRole.Light: c.base,
        QPalette.ColorRole.Shadow: "#000000",
    }
    for role, value in roles.items():
        palette.setColor(role, QColor(value))
    disabled = QPalette.ColorGroup.Disabled
    for role in (
        QPalette.ColorRole.WindowText,
        QPalette.ColorRole.Text,
        QPalette.ColorRole.ButtonText,
    ):
        palette.setColor(disabled, role, QColor(c.muted))
    palette.setColor(disabled, QPalette.ColorRole.Highlight, QColor(c.border))
    return palette


def stylesheet_for(theme: Theme) -> str:
    template = Template(resource_path("style.qss").read_text(encoding="utf-8"))
    colors = COLORS[theme]
    return template.substitute(
        {name: getattr(colors, name) for name in Colors.__dataclass_fields__}
    )


@cache
def _svg(name: str) -> str:
    return icon_path(name).read_text(encoding="utf-8")


@cache
def _icon(name: str, color: str) -> QIcon:
    """Render once per colour: QIcon pixmaps at the usual sizes (Qt picks and scales)."""
    data = QByteArray(_svg(name).replace("currentColor", color).encode("utf-8"))
    renderer = QSvgRenderer(data)
    if not renderer.isValid():
        raise ValueError(f"icon {name!r} is not a valid SVG")
    result = QIcon()
    for size in ICON_SIZES:
        image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        renderer.render(painter, QRectF(0, 0, size, size))
        painter.end()
        result.addPixmap(QPixmap.fromImage(image))
    return result


def icon(name: str, theme: Theme | None = None, *, muted: bool = False) -> QIcon:
    """The icon `resources/icons/<name>.svg`, drawn in the (current) theme's text colour,
    or its muted colour for decoration.

    Coloured icons (status dots, the app icon) have no `currentColor` and
    look the same in both themes.
    """
    chosen = theme or (_manager.theme if _manager is not None else Theme.LIGHT)
    colors = COLORS[chosen]
    return _icon(name, colors.muted if muted else colors.text)


def os_theme() -> Theme:
    """The OS colour scheme, or the QUARTERDECK_THEME override; light when unknown."""
    forced = os.environ.get(THEME_ENV, "").strip().lower()
    if forced in (Theme.LIGHT, Theme.DARK):
        return Theme(forced)
    hints = QGuiApplication.styleHints()
    if hints.colorScheme() == Qt.ColorScheme.Dark:
        return Theme.DARK
    return Theme.LIGHT


class ThemeManager(QObject):
    """Applies a theme to the application and re-applies it when the OS scheme changes."""

    changed = Signal(str)
    """The new theme's name, after the palette and stylesheet are applied."""

    def __init__(self, app: QApplication) -> None:
        super().__init__(app)
        self._app = app
        self._theme = os_theme()
        self._follow_os = True
        app.setStyle("Fusion")
        app.styleHints().colorSchemeChanged.connect(self._os_changed)
        self._apply()

    @property
    def theme(self) -> Theme:
        return self._theme

    def set_theme(self, theme: Theme | None) -> None:
        """Force `theme`, or follow the OS again with None."""
        self._follow_os = theme is None
        new = theme or os_theme()
        if new != self._theme:
            self._theme = new
            self._apply()

    def _os_changed(self, _scheme: Qt.ColorScheme) -> None:
        if self._follow_os:
            self.set_theme(None)

    def _apply(self) -> None:
        self._app.setPalette(palette_for(self._theme))
        self._app.setStyleSheet(stylesheet_for(self._theme))
        self.changed.emit(self._theme.value)


_manager: ThemeManager | None = None


def install(app: QApplication) -> ThemeManager:
    """Style `app` and follow the OS; idempotent, so tests may call it for every app."""
    global _manager  # noqa: PLW0603 - one theme per QApplication, created at run time
    if _manager is None or not shiboken6.isValid(_manager) or _manager.parent() is not app:
        _manager = ThemeManager(app)
    return _manager


def manager() -> ThemeManager | None:
    """The installed manager, for widgets that redraw icons on `changed`; None before install."""
    return _manager
