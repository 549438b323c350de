"""`Sparkline`: a tiny trend line for a host grid cell, without axes or interaction.

Painted with QPainter rather than pyqtgraph: a grid of fifty hosts would
otherwise hold fifty graphics views. Qt merges `update()` calls into one paint
per event-loop pass, which is all the coalescing a line of a few hundred
points needs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PySide6.QtCore import QEvent, QPointF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPaintEvent, QPen
from PySide6.QtWidgets import QWidget

from console.widgets.chart.series import Array, BucketLike, SeriesBuffer
from console.widgets.chart.theme import ChartTheme


class Sparkline(QWidget):
    """The last `span` seconds of one series, scaled to `value_range` or to the data."""

    def __init__(
        self,
        *,
        span: float = 300.0,
        value_range: tuple[float, float] | None = None,
        color_index: int = 0,
        theme: ChartTheme | None = None,
        live_interval: float = 1.0,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._span = span
        self._range = value_range
        self._color_index = color_index
        self._theme_fixed = theme is not None
        self._theme = theme or ChartTheme.for_palette(self.palette())
        self._buffer = SeriesBuffer(
            max_live=max(16, int(2 * span / live_interval)), live_interval=live_interval
        )
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent, False)

    def sizeHint(self) -> QSize:
        return QSize(120, 28)

    def minimumSizeHint(self) -> QSize:
        return QSize(24, 10)

    def append(self, ts: float, value: float) -> None:
        if self._buffer.append(ts, value):
            self.update()

    def set_buckets(self, buckets: Sequence[BucketLike], bucket_seconds: float = 0.0) -> None:
        """History from a query; live points after it stay."""
        self._buffer.set_buckets(buckets, bucket_seconds)
        self.update()

    def set_theme(self, theme: ChartTheme | None) -> None:
        self._theme_fixed = theme is not None
        self._theme = theme or ChartTheme.for_palette(self.palette())
        self.update()

    def changeEvent(self, event: QEvent) -> None:
        if not self._theme_fixed and event.type() == QEvent.Type.PaletteChange:
            self._theme = ChartTheme.for_palette(self.palette())
            self.update()
        super().changeEvent(event)

    def paintEvent(self, event: QPaintEvent) -> None:
        display = self._buffer.display()
        newest = self._buffer.newest
        if newest is None:
            return
        window = display.visible(newest - self._span, newest)
        x, y = display.x[window], display.avg[window]
        if len(x) < 2:
            return
        width, height = self.width(), self.height()
        x_pix = (x - (newest - self._span)) / self._span * (width - 1)
        low, high = self._range or _data_range(y)
        y_pix = (height - 1) - (y - low) / (high - low) * (height - 2) - 0.5
        color = self._theme.series_color(self._color_index)
        line = QPainterPath()
        area = QPainterPath()
        _trace(line, area, x_pix, np.clip(y_pix, 0, height - 1), float(height))
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        fill = QColor(color)
        fill.setAlpha(self._theme.envelope_alpha)
        painter.fillPath(area, fill)
        painter.setPen(QPen(color, 1.2))
        painter.drawPath(line)
        painter.end()


def _data_range(y: Array) -> tuple[float, float]:
    low = float(np.fmin.reduce(y))
    high = float(np.fmax.reduce(y))
    if not np.isfinite(low) or not np.isfinite(high):
        return 0.0, 1.0
    low = min(low, 0.0)
    return (low, high) if high > low else (low, low + 1.0)


def _trace(line: QPainterPath, area: QPainterPath, x: Array, y: Array, bottom: float) -> None:
    """The line, broken at gaps (NaN), and the area under each of its pieces."""
    start: float | None = None
    last = 0.0
    for xi, yi in zip(x.tolist(), y.tolist(), strict=True):
        if math.isnan(yi):  # a gap
            if start is not None:
                area.lineTo(last, bottom)
                area.lineTo(start, bottom)
                area.closeSubpath()
            start = None
            continue
        if start is None:
            line.moveTo(xi, yi)
            area.moveTo(xi, yi)
            start = xi
        else:
            line.lineTo(xi, yi)
            area.lineTo(xi, yi)
        last = xi
    if start is not None:
        area.lineTo(QPointF(last, bottom))
        area.lineTo(QPointF(start, bottom))
        area.closeSubpath()
