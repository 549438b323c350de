"""The graphics items the chart adds to pyqtgraph: a value axis, the grid and the bands.

Grid and bands are drawn in the view box's own pixel coordinates, below the
curves, with opaque or pre-rasterised pixels: in Qt's raster engine a
semi-transparent grid line across the plot costs ~0.1 ms (pyqtgraph's axis
grid took 9 ms a frame) and a filled spiky polygon ~4 ms.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class _Raster:
    """Bands rasterised for `[x0, x1]`, wider than the view so that a pan only blits."""

    image: QImage | None
    """None when no band has a pixel here: nothing to draw."""
    pixels: Pixels | None
    """The memory `image` shares; kept alive with it."""
    width: int
    x0: float
    x1: float
    y_range: tuple[float, float]
    size: tuple[int, int]
    """The view's size in device pixels when rasterised."""
    ratio: float

    def covers(
        self, view: tuple[float, float, float, float], size: tuple[int, int], ratio: float
    ) -> bool:
        """Whether this holds `view` (x0, x1, y0, y1) at its scale: a pan within the margins."""
        x0, x1, y0, y1 = view
        if self.size != size or self.ratio != ratio or self.y_range != (y0, y1):
            return False
        if x0 < self.x0 or x1 > self.x1:
            return False
        scale = self.width / (self.x1 - self.x0)
        return abs(scale * (x1 - x0) - size[0]) < 0.01


class BandLayer(_ViewLayer):
    """Every series' min/max band, rasterised into one image (see `bands`).

    The image spans up to one view width (at most `PAN_MARGIN` pixels) either
    side of the view: panning then blits another part of it; only new data, a
    zoom, a change of value range or a pan past the margin rasterises again.
    """

    PAN_MARGIN = 1024

    def __init__(self, view_box: Any) -> None:
        super().__init__(view_box, z=-10)
        self._bands: Sequence[tuple[tuple[int, int, int, int], Display]] = ()
        self._raster: _Raster | None = None
        self.rasterized = 0
        """How many times the bands were rasterised (tests and benchmarks read it)."""
        self.attach()

    def set_bands(self, bands: Sequence[tuple[QColor, Display]]) -> None:
        """Bands bottom first; each colour carries the band's alpha."""
        self._bands = [
            ((color.red(), color.green(), color.blue(), color.alpha()), display)
            for color, display in bands
        ]
        self.invalidate()

    def invalidate(self) -> None:
        """The data changed: rasterise on the next paint."""
        self._raster = None
        self.update()

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        if not self._bands:
            return
        device = painter.device()
        ratio = device.devicePixelRatioF() if device is not None else 1.0
        size = (math.ceil(self._rect.width() * ratio), math.ceil(self._rect.height() * ratio))
        view = self._view()
        x0, x1 = view[0], view[1]
        if size[0] <= 0 or size[1] <= 0 or x1 <= x0:
            return
        raster = self._raster
        if raster is None or not raster.covers(view, size, ratio):
            raster = self._raster = self._rasterize(view, size, ratio)
        if raster.image is None:
            return
        scale = raster.width / (raster.x1 - raster.x0)
        offset = round((x0 - raster.x0) * scale)
        source = QRectF(offset, 0, size[0], size[1])
        painter.drawImage(self._rect, raster.image, source)

    def _rasterize(
        self, view: tuple[float, float, float, float], size: tuple[int, int], ratio: float
    ) -> _Raster:
        x0, x1, y0, y1 = view
        width, height = size
        margin = min(width, self.PAN_MARGIN)
        seconds_per_pixel = (x1 - x0) / width
        left, right = x0 - margin * seconds_per_pixel, x1 + margin * seconds_per_pixel
        total = width + 2 * margin
        pixels = rasterize(self._bands, (left, right), (y0, y1), total, height)
        self.rasterized += 1
        if pixels is None:
            return _Raster(None, None, total, left, right, (y0, y1), size, ratio)
        premultiplied = QImage.Format.Format_ARGB32_Premultiplied
        image = QImage(pixels.data, total, height, 4 * total, premultiplied)
        return _Raster(image, pixels, total, left, right, (y0, y1), size, ratio)


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
