"""The graphics items the chart adds to pyqtgraph: a value axis, the grid and the bands.

Grid and bands are drawn in the view box's own pixel coordinates, below the
curves, with opaque or pre-rasterised pixels: in Qt's raster engine a
semi-transparent grid line across the plot costs ~0.1 ms (pyqtgraph's axis
grid took 9 ms a frame) and a filled spiky polygon ~4 ms.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import QLineF, QRectF, QTimer
from PySide6.QtGui import QColor, QImage, QPainter, QPen
from PySide6.QtWidgets import QGraphicsObject, QStyleOptionGraphicsItem, QWidget

from console.widgets.chart.bands import Pixels, rasterize
from console.widgets.chart.series import Display
from console.widgets.chart.units import ValueFormat


class ValueAxis(pg.AxisItem):  # type: ignore[misc]  # pyqtgraph is untyped
    """A left axis whose ticks read in the metric's unit (`25 %`, `2 MB/s`)."""

    def __init__(self, value_format: ValueFormat) -> None:
        super().__init__("left")
        self.enableAutoSIPrefix(False)
        self.value_format = value_format

    def tickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:
        return [self.value_format.format_tick(value * scale, spacing * scale) for value in values]


class _ViewLayer(QGraphicsObject):
    """An item covering a view box, in its pixel coordinates, under its curves."""

    def __init__(self, view_box: Any, z: float) -> None:
        super().__init__()
        self._vb = view_box
        self._rect = QRectF()
        self.setZValue(z)

    def attach(self) -> None:
        """Join the view box; subclasses call this once their own state is set."""
        self.setParentItem(self._vb)
        self._vb.sigResized.connect(self._resized)
        self._resized()

    def _resized(self, *_: object) -> None:
        self.prepareGeometryChange()
        self._rect = QRectF(0, 0, float(self._vb.width()), float(self._vb.height()))
        self.invalidate()

    def invalidate(self) -> None:
        self.update()

    def boundingRect(self) -> QRectF:
        return self._rect

    def _view(self) -> tuple[float, float, float, float]:
        (x0, x1), (y0, y1) = self._vb.viewRange()
        return float(x0), float(x1), float(y0), float(y1)


class GridLayer(_ViewLayer):
    """Opaque grid lines at the axes' major and minor ticks."""

    def __init__(self, view_box: Any, x_axis: Any, y_axis: Any) -> None:
        super().__init__(view_box, z=-20)
        self._axes = (x_axis, y_axis)
        self._pens = (QPen(), QPen())
        self._retried = False
        self.attach()

    def set_colors(self, major: QColor, minor: QColor) -> None:
        self._pens = (_cosmetic(major), _cosmetic(minor))
        self.update()

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        x0, x1, y0, y1 = self._view()
        width, height = self._rect.width(), self._rect.height()
        if x1 <= x0 or y1 <= y0 or width <= 0 or height <= 0:
            return
        x_axis, y_axis = self._axes
        if not hasattr(x_axis, "fontMetrics") and not self._retried:
            # The axes paint after the view box: ask for one more frame to get the grid.
            self._retried = True
            QTimer.singleShot(0, self, self.update)
        # Minor first, so major lines are drawn over them where both fall.
        for level in (1, 0):
            lines: list[QLineF] = []
            for value in _ticks(x_axis, x0, x1, width, level):
                px = round((value - x0) / (x1 - x0) * width) + 0.5
                lines.append(QLineF(px, 0, px, height))
            for value in _ticks(y_axis, y0, y1, height, level):
                py = round((y1 - value) / (y1 - y0) * height) + 0.5
                lines.append(QLineF(0, py, width, py))
            painter.setPen(self._pens[level])
            painter.drawLines(lines)


class BandLayer(_ViewLayer):
    """Every series' min/max band, rasterised into one image (see `bands`)."""

    def __init__(self, view_box: Any) -> None:
        super().__init__(view_box, z=-10)
        self._bands: Sequence[tuple[tuple[int, int, int, int], Display]] = ()
        self._pixels: Pixels | None = None
        self._image: QImage | None = None
        self.attach()

    def set_bands(self, bands: Sequence[tuple[QColor, Display]]) -> None:
        """Bands bottom first; each colour carries the band's alpha."""
        self._bands = [
            ((color.red(), color.green(), color.blue(), color.alpha()), display)
            for color, display in bands
        ]
        self.invalidate()

    def invalidate(self) -> None:
        self._image = None
        self.update()

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        if not self._bands:
            return
        if self._image is None:
            ratio = painter.device().devicePixelRatioF() if painter.device() else 1.0
            width = math.ceil(self._rect.width() * ratio)
            height = math.ceil(self._rect.height() * ratio)
            x0, x1, y0, y1 = self._view()
            self._pixels = rasterize(self._bands, (x0, x1), (y0, y1), width, height)
            image = QImage(
                self._pixels.data,
                width,
                height,
                4 * width,
                QImage.Format.Format_ARGB32_Premultiplied,
            )
            image.setDevicePixelRatio(ratio)
            self._image = image  # shares self._pixels' memory, kept alive with it
        painter.drawImage(self._rect.topLeft(), self._image)


def _cosmetic(color: QColor) -> QPen:
    pen = QPen(color)
    pen.setCosmetic(True)
    pen.setWidth(1)
    return pen


def _ticks(axis: Any, low: float, high: float, size: float, level: int) -> list[float]:
    """Tick values of one level of an axis; the axis decides spacing as for its labels.

    A date axis measures its labels with the font metrics it keeps from its first
    paint; until then (the first frame only) it has no ticks to offer.
    """
    if isinstance(axis, pg.DateAxisItem) and not hasattr(axis, "fontMetrics"):
        return []
    levels = axis.tickValues(low, high, size)
    if level >= len(levels):
        return []
    if level == 1:
        majors = set(levels[0][1])
        return [float(v) for v in levels[1][1] if v not in majors]
    return [float(v) for v in levels[level][1]]
