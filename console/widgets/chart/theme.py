"""Chart colours for light and dark backgrounds.

Series colours are Okabe-Ito-like hues, distinguishable with the common colour
vision deficiencies, in a darker set for light backgrounds and a brighter set
for dark ones. `ChartTheme.for_palette` picks one from the application's
palette, so charts follow the OS theme the shell applies.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from PySide6.QtGui import QColor, QPalette

_LIGHT_SERIES = (
    "#0072b2",
    "#d55e00",
    "#009e73",
    "#cc79a7",
    "#e69f00",
    "#56b4e9",
    "#7f6d00",
    "#5d3a9b",
)
_DARK_SERIES = (
    "#56b4e9",
    "#f08a4b",
    "#3fd0a0",
    "#e59cc8",
    "#f2c14e",
    "#8fa8ff",
    "#c9c26a",
    "#c39bff",
)


@dataclass(frozen=True, slots=True)
class ChartTheme:
    background: str
    foreground: str
    """Axis lines, tick labels and legend text."""
    grid_alpha: float
    """Share of the foreground mixed into the background for major grid lines."""
    crosshair: str
    label_background: str
    """Behind the crosshair label, drawn semi-opaque over the curves."""
    series: tuple[str, ...]
    envelope_alpha: int = 60
    """0-255: min/max bands faint enough that the avg lines of others show through."""

    @classmethod
    def light(cls) -> ChartTheme:
        return cls("#ffffff", "#3c4043", 0.16, "#5f6368", "#f8f9fa", _LIGHT_SERIES)

    @classmethod
    def dark(cls) -> ChartTheme:
        return cls("#1e1f22", "#c8cacd", 0.16, "#9aa0a6", "#2b2d31", _DARK_SERIES, 70)

    @classmethod
    def for_palette(cls, palette: QPalette) -> ChartTheme:
        """The light or dark set, on the palette's own base and text colours, so a
        chart sits in the console's theme (console.theme sets the palette)."""
        window = palette.color(QPalette.ColorRole.Window)
        preset = cls.dark() if window.lightness() < 128 else cls.light()
        return replace(
            preset,
            background=palette.color(QPalette.ColorRole.Base).name(),
            foreground=palette.color(QPalette.ColorRole.Text).name(),
            label_background=palette.color(QPalette.ColorRole.Window).name(),
        )

    @property
    def is_dark(self) -> bool:
        return QColor(self.background).lightness() < 128

    def series_color(self, index: int) -> QColor:
        """The colour of the `index`th series; past the palette, hues repeat lighter/darker
        so 32 series stay tellable apart in pairs with the legend."""
        base = QColor(self.series[index % len(self.series)])
        round_ = index // len(self.series)
        if round_ == 0:
            return base
        factor = 100 + 25 * round_
        return base.lighter(factor) if self.is_dark else base.darker(factor)
