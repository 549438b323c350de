"""`LiveChart`: a time-series chart that draws live points and query results.

The chart knows no client. Its owner feeds it (`append` for live points,
`set_buckets` for query results) and listens to `range_requested`, emitted
when a preset is chosen or the user zooms or pans, to query the range again at
the resolution the plot can show (`max_points` = its width in device pixels).

Drawing is throttled: data calls only mark series dirty, and a single-shot
timer applies them, so a burst of appends costs one `setData` per curve.
"""

from __future__ import annotations

import html
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, QPointF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import (
    QButtonGroup,
    QFileDialog,
    QHBoxLayout,
    QMenu,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from console.widgets.chart.export import write_csv
from console.widgets.chart.items import BandLayer, GridLayer, ValueAxis
from console.widgets.chart.presets import RangePreset
from console.widgets.chart.series import BucketLike, Display, SeriesBuffer
from console.widgets.chart.theme import ChartTheme
from console.widgets.chart.units import ValueFormat

CROSSHAIR_MAX_SERIES = 12
"""Lines in the crosshair label before the rest are summarised as "+N more"."""
_DASH = "\u2013"
_LEGEND_ENTRY_WIDTH = 110
"""Pixels per legend entry when laying the legend out in columns."""
_SNAP_PIXELS = 8
"""How far (in pixels) the nearest point may be from the cursor to be reported."""


@dataclass
class _Series:
    key: str
    label: str
    index: int
    """Position in the legend, which picks the colour."""
    buffer: SeriesBuffer
    curve: Any  # pg.PlotDataItem
    dirty: bool = False


class LiveChart(QWidget):
    """Several series, each an avg line over its min/max band, on a local-time axis."""

    range_requested = Signal(float, float, int)
    """(start, end, max_points): the owner should query this range again."""
    paused_changed = Signal(bool)
    following_changed = Signal(bool)
    """True while the window scrolls with now; False after the user zooms or pans."""

    def __init__(
        self,
        value_format: ValueFormat | None = None,
        *,
        preset: RangePreset = RangePreset.H1,
        theme: ChartTheme | None = None,
        toolbar: bool = True,
        refresh_ms: int = 50,
        phase_ms: int = 0,
        request_delay_ms: int = 300,
        max_live_points: int = 86_400,
        live_interval: float = 1.0,
        clock: Callable[[], float] = time.time,
        parent: QWidget | None = None,
    ) -> None:
        """`theme=None` follows the application palette (light or dark OS theme).

        `refresh_ms` bounds repaints caused by data; `phase_ms` delays the
        once-a-second scroll, so that the charts of one page (given different
        phases and refresh delays) repaint in different turns of the event loop
        rather than all in one. `request_delay_ms` waits for the end of a wheel or
        drag before `range_requested`. `live_interval` is
        the expected spacing of live points (longer pauses break the line) and
        `clock` gives "now" (tests and benchmarks pass their own).
        """
        super().__init__(parent)
        self._format = value_format or ValueFormat()
        self._theme_fixed = theme is not None
        self._theme = theme or ChartTheme.for_palette(self.palette())
        self._max_live = max_live_points
        self._live_interval = live_interval
        self._clock = clock
        self._series: dict[str, _Series] = {}
        self._span = preset.seconds
        self._preset: RangePreset | None = preset
        self._following = True
        self._paused = False
        self._held: list[tuple[str, float, float]] = []
        self._redraws = 0

        self._refresh = QTimer(self, singleShot=True, interval=refresh_ms)
        self._refresh.timeout.connect(self.flush)
        self._request = QTimer(self, singleShot=True, interval=request_delay_ms)
        self._request.timeout.connect(self._emit_range_request)
        # Scrolls the window once a second even when no point arrives (a host
        # that stopped reporting must be seen to fall behind).
        self._follow = QTimer(self, interval=1000)
        self._follow.timeout.connect(self._scroll)
        if phase_ms > 0:
            QTimer.singleShot(phase_ms, self._follow, self._follow.start)
        else:
            self._follow.start()

        self._build_plot()
        self._toolbar = self._build_toolbar() if toolbar else None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        if self._toolbar is not None:
            layout.addWidget(self._toolbar)
        layout.addWidget(self._view, 1)
        self._apply_theme()
        self._scroll()

    # -- construction ---------------------------------------------------------

    def _build_plot(self) -> None:
        self._view = pg.GraphicsLayoutWidget()
        self._view.ci.layout.setContentsMargins(4, 4, 8, 4)
        self._axis = ValueAxis(self._format)
        self._time_axis = pg.DateAxisItem(orientation="bottom")
        self._plot = self._view.addPlot(
            row=0, col=0, axisItems={"left": self._axis, "bottom": self._time_axis}
        )
        self._plot.setMenuEnabled(False)
        self._plot.hideButtons()
        self._axis.setLabel(self._format.title)
        vb = self._plot.getViewBox()
        vb.disableAutoRange()
        # Only time zooms and pans; the value range follows the data (or 0-100 %).
        vb.setMouseEnabled(x=True, y=False)
        vb.sigRangeChangedManually.connect(self._on_user_range)
        vb.sigXRangeChanged.connect(self._on_x_range)
        vb.sigYRangeChanged.connect(self._on_y_range)
        vb.sigResized.connect(self._on_x_range)
        vb.sigResized.connect(self._fit_legend)
        self._vb = vb
        self._grid = GridLayer(vb, self._time_axis, self._axis)
        self._bands = BandLayer(vb)
        # Below the plot rather than over the curves; left-aligned, not stretched.
        self._legend = pg.LegendItem(colCount=4)
        self._legend.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self._view.addItem(self._legend, row=1, col=0)
        self._view.ci.layout.setAlignment(self._legend, Qt.AlignmentFlag.AlignLeft)

        self._cross_line = pg.InfiniteLine(angle=90, movable=False)
        self._cross_line.setZValue(1000)
        self._cross_label = pg.TextItem(anchor=(0, 0))
        self._cross_label.setZValue(1001)
        for item in (self._cross_line, self._cross_label):
            self._plot.addItem(item, ignoreBounds=True)
            item.hide()
        self._view.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self._view.viewport().installEventFilter(self)

    def _build_toolbar(self) -> QWidget:
        bar = QWidget(self)
        row = QHBoxLayout(bar)
        row.setContentsMargins(4, 2, 4, 0)
        self._preset_buttons = QButtonGroup(bar)
        for preset in RangePreset:
            button = _tool_button(bar, preset.label, checkable=True)
            button.setObjectName(f"preset-{preset.name}")
            button.setChecked(preset is self._preset)
            button.clicked.connect(lambda _=False, p=preset: self.set_range(p))
            self._preset_buttons.addButton(button)
            row.addWidget(button)
        row.addStretch(1)
        self._pause_button = _tool_button(bar, "Pause", checkable=True)
        self._pause_button.setObjectName("pause")
        self._pause_button.setToolTip("Stop drawing live points; they are kept and drawn on resume")
        self._pause_button.toggled.connect(self.set_paused)
        row.addWidget(self._pause_button)
        export = _tool_button(bar, "Export")
        export.setObjectName("export")
        export.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(export)
        menu.addAction("PNG image…", self._ask_export_png)
        menu.addAction("CSV data…", self._ask_export_csv)
        export.setMenu(menu)
        row.addWidget(export)
        return bar

    # -- series and data ------------------------------------------------------

    def add_series(self, key: str, label: str | None = None) -> None:
        """Declare a series (its legend entry and colour, in call order)."""
        if key in self._series:
            return
        index = len(self._series)
        color = self._theme.series_color(index)
        curve = pg.PlotDataItem(
            pen=pg.mkPen(color, width=1),
            connect="finite",
            clipToView=True,
            autoDownsample=True,
            downsampleMethod="peak",
        )
        self._plot.addItem(curve, ignoreBounds=True)
        self._legend.addItem(curve, html.escape(label or key))
        buffer = SeriesBuffer(max_live=self._max_live, live_interval=self._live_interval)
        series = _Series(key, label or key, index, buffer, curve)
        # Hiding a curve from its legend entry hides its band too.
        curve.visibleChanged.connect(self._update_bands)
        self._series[key] = series
        self._fit_legend()

    def remove_series(self, key: str) -> None:
        series = self._series.pop(key, None)
        if series is None:
            return
        self._legend.removeItem(series.curve)
        self._plot.removeItem(series.curve)
        self._update_bands()

    def clear(self) -> None:
        for key in list(self._series):
            self.remove_series(key)
        self._held.clear()

    @property
    def series_keys(self) -> list[str]:
        return list(self._series)

    def curve(self, key: str) -> Any:
        """The series' avg line (a `pyqtgraph.PlotDataItem`): its `xData`/`yData`
        are exactly what was last drawn."""
        return self._series[key].curve

    def append(self, series_key: str, ts: float, value: float) -> None:
        """A live point (epoch seconds). Drawn on the next refresh, or on resume if paused."""
        if self._paused:
            self._held.append((series_key, ts, value))
            return
        series = self._series.get(series_key)
        if series is None:
            self.add_series(series_key)
            series = self._series[series_key]
        if series.buffer.append(ts, value):
            self._mark_dirty(series)

    def set_buckets(
        self, series_key: str, buckets: Sequence[BucketLike], bucket_seconds: float = 0.0
    ) -> None:
        """Replace a series' data by a query result (`SeriesData.buckets`, oldest first).

        Live points newer than the last bucket's `ts` are kept; `bucket_seconds`
        (`SeriesData.bucket_seconds`) tells a missing bucket (a gap) from the usual step.
        """
        if series_key not in self._series:
            self.add_series(series_key)
        series = self._series[series_key]
        series.buffer.set_buckets(buckets, bucket_seconds)
        self._mark_dirty(series)

    def set_value_format(self, value_format: ValueFormat) -> None:
        self._format = value_format
        self._axis.value_format = value_format
        self._axis.setLabel(value_format.title)
        self._axis.picture = None  # tick texts are cached in the axis picture
        self._axis.update()
        self._update_y_range()

    def _mark_dirty(self, series: _Series) -> None:
        series.dirty = True
        if not self._refresh.isActive():
            self._refresh.start()

    def flush(self) -> None:
        """Apply pending data now (the refresh timer calls this; benchmarks call it per frame)."""
        self._refresh.stop()
        dirty = [s for s in self._series.values() if s.dirty]
        if not dirty:
            return
        for series in dirty:
            series.dirty = False
            display = series.buffer.display()
            series.curve.setData(display.x, display.avg)
        self._update_bands()
        self._redraws += 1
        if self._following and not self._paused:
            self._scroll()
        else:
            self._update_y_range()

    @property
    def redraws(self) -> int:
        """How many refreshes applied data: a burst of appends counts once."""
        return self._redraws

    # -- range ----------------------------------------------------------------

    def set_range(self, preset: RangePreset) -> None:
        """Show the last `preset` of time, follow now, and request that range."""
        self._preset = preset
        self._span = preset.seconds
        self._set_following(True)
        self._check_preset_button()
        self._scroll(force=True)
        self._request.start()

    def set_window(self, start: float, end: float) -> None:
        """Show a fixed window (stops following) and request it."""
        self._preset = None
        self._set_following(False)
        self._check_preset_button()
        self._vb.setXRange(start, end, padding=0)
        self._request.start()

    @property
    def preset(self) -> RangePreset | None:
        """The preset shown, None after a zoom or pan."""
        return self._preset

    @property
    def is_following(self) -> bool:
        return self._following

    def visible_range(self) -> tuple[float, float]:
        (start, end), _ = self._vb.viewRange()
        return float(start), float(end)

    def plot_pixel_width(self) -> int:
        """The plot area's width in device pixels: the `max_points` worth querying."""
        width = float(self._vb.width())
        return max(1, round(width * self.devicePixelRatioF()))

    def now(self) -> float:
        """The right edge while following: the clock, or the newest point if later."""
        newest = [s.buffer.newest for s in self._series.values()]
        return max([self._clock(), *(n for n in newest if n is not None)])

    def _scroll(self, *, force: bool = False) -> None:
        if not force and (not self._following or self._paused):
            return
        end = self.now()
        self._vb.setXRange(end - self._span, end, padding=0)
        self._update_y_range()

    def _set_following(self, following: bool) -> None:
        if following != self._following:
            self._following = following
            self.following_changed.emit(following)

    def _check_preset_button(self) -> None:
        if self._toolbar is None:
            return
        # An exclusive group cannot show "none checked"; lift it while unchecking.
        self._preset_buttons.setExclusive(False)
        for button in self._preset_buttons.buttons():
            button.setChecked(
                self._preset is not None and button.objectName() == f"preset-{self._preset.name}"
            )
        self._preset_buttons.setExclusive(True)

    def _on_user_range(self, _mask: object) -> None:
        self._preset = None
        self._set_following(False)
        self._check_preset_button()
        self._request.start()

    def _emit_range_request(self) -> None:
        start, end = self.visible_range()
        self.range_requested.emit(start, end, self.plot_pixel_width())

    def _fit_legend(self, *_: object) -> None:
        """As many legend columns as fit the plot's width, so 32 series take 4 rows, not 8."""
        per_row = max(1, int(float(self._vb.width()) // _LEGEND_ENTRY_WIDTH))
        columns = max(1, min(len(self._series), per_row))
        if columns != self._legend.columnCount:
            self._legend.setColumnCount(columns)

    def _on_x_range(self, *_: object) -> None:
        self._update_y_range()
        self._on_y_range()

    def _on_y_range(self, *_: object) -> None:
        # Repaint only: the band layer decides whether its raster still covers the view.
        self._bands.update()
        self._grid.update()

    def _update_bands(self) -> None:
        self._bands.set_bands(
            [
                (self._band_color(self._theme.series_color(s.index)), s.buffer.display())
                for s in self._visible_series()
            ]
        )

    def _update_y_range(self) -> None:
        fixed = self._format.fixed_range
        if fixed is not None:
            low, high = fixed
            pad = (high - low) * 0.02
            self._vb.setYRange(low - pad, high + pad, padding=0)
            return
        start, end = self.visible_range()
        lows: list[float] = []
        highs: list[float] = []
        for series in self._visible_series():
            display = series.buffer.display()
            window = display.visible(start, end)
            if window.stop > window.start:
                lows.append(float(np.fmin.reduce(display.lo[window])))
                highs.append(float(np.fmax.reduce(display.hi[window])))
        finite_lows = [v for v in lows if math.isfinite(v)]
        finite_highs = [v for v in highs if math.isfinite(v)]
        if not finite_lows or not finite_highs:
            return
        low, high = min(finite_lows), max(finite_highs)
        # Levels read against zero: a flat 0.51-0.53 load should not fill the plot.
        low = min(low, 0.0)
        if high <= low:
            high = low + 1.0
        # Hysteresis: keep the range while the data fills 60-100 % of it, so a pan or a
        # new point does not rescale the axis (and rasterise the bands) every frame.
        current_low, current_high = (float(v) for v in self._vb.viewRange()[1])
        if current_low == low and high <= current_high:
            filled = (high - low) / (current_high - current_low)
            if filled >= 0.6:
                return
        self._vb.setYRange(low, high + (high - low) * 0.06, padding=0)

    def _visible_series(self) -> Iterable[_Series]:
        return (s for s in self._series.values() if s.curve.isVisible())

    # -- pause ----------------------------------------------------------------

    @property
    def is_paused(self) -> bool:
        return self._paused

    def set_paused(self, paused: bool) -> None:
        """While paused, live points are held (not drawn) and the window stays put."""
        if paused == self._paused:
            return
        self._paused = paused
        if not paused:
            held, self._held = self._held, []
            for key, ts, value in held:
                self.append(key, ts, value)
            self.flush()
            self._scroll()
        if self._toolbar is not None:
            self._pause_button.setChecked(paused)
            self._pause_button.setText("Resume" if paused else "Pause")
        self.paused_changed.emit(paused)

    @property
    def held_points(self) -> int:
        """Live points received while paused, drawn on resume."""
        return len(self._held)

    # -- crosshair ------------------------------------------------------------

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Leave:
            self._hide_crosshair()
        return super().eventFilter(watched, event)

    def _on_mouse_moved(self, scene_pos: QPointF) -> None:
        if not self._vb.sceneBoundingRect().contains(scene_pos):
            self._hide_crosshair()
            return
        point = self._vb.mapSceneToView(scene_pos)
        self.show_crosshair(point.x())

    def show_crosshair(self, ts: float) -> None:
        """Put the crosshair at `ts` (the mouse does this) and label each series' value."""
        start, end = self.visible_range()
        top = float(self._vb.viewRange()[1][1])
        self._cross_line.setPos(ts)
        self._cross_label.setHtml(self._crosshair_html(ts))
        # Keep the label inside the plot: right of the line in the left half.
        left_half = ts < (start + end) / 2
        self._cross_label.setAnchor((0, 0) if left_half else (1, 0))
        self._cross_label.setPos(ts, top)
        self._cross_line.show()
        self._cross_label.show()

    @property
    def crosshair_text(self) -> str:
        """The crosshair label as shown; empty when the mouse is not over the plot."""
        if not self._cross_label.isVisible():
            return ""
        text: str = self._cross_label.textItem.toPlainText()
        return text

    def _hide_crosshair(self) -> None:
        self._cross_line.hide()
        self._cross_label.hide()

    def _crosshair_html(self, ts: float) -> str:
        start, end = self.visible_range()
        snap = (end - start) / max(1.0, self._vb.width()) * _SNAP_PIXELS
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))
        lines = [f"<b>{stamp}</b>"]
        shown = list(self._visible_series())
        fmt = self._format
        for series in shown[:CROSSHAIR_MAX_SERIES]:
            color = self._theme.series_color(series.index).name()
            value = _nearest(series.buffer.display(), ts, snap)
            label = html.escape(series.label)
            if value is None:
                text = _DASH
            else:
                lo, hi, avg = value
                text = fmt.format(avg)
                if hi > lo:
                    text += f" ({fmt.format(lo)} {_DASH} {fmt.format(hi)})"
            lines.append(f'<span style="color:{color}">●</span> {label}: {html.escape(text)}')
        if len(shown) > CROSSHAIR_MAX_SERIES:
            lines.append(f"+{len(shown) - CROSSHAIR_MAX_SERIES} more")
        return "<br>".join(lines)

    # -- export ---------------------------------------------------------------

    def export_png(self, path: str | Path) -> None:
        """The plot and legend as shown (without the toolbar or crosshair)."""
        crosshair = self._cross_line.isVisible()
        self._hide_crosshair()
        try:
            if not self._view.grab().save(str(path), "PNG"):
                raise OSError(f"could not write {path}")
        finally:
            if crosshair:
                self._cross_line.show()
                self._cross_label.show()

    def export_csv(self, path: str | Path) -> int:
        """The visible range of each visible series; returns the number of rows."""
        start, end = self.visible_range()
        with Path(path).open("w", encoding="utf-8", newline="") as out:
            return write_csv(
                out,
                ((s.label, s.buffer.display()) for s in self._visible_series()),
                start,
                end,
                self._format,
            )

    def _ask_export_png(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export chart", "chart.png", "PNG (*.png)")
        if path:
            self.export_png(path)

    def _ask_export_csv(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export data", "chart.csv", "CSV (*.csv)")
        if path:
            self.export_csv(path)

    # -- theme ----------------------------------------------------------------

    def set_theme(self, theme: ChartTheme | None) -> None:
        """A fixed theme, or None to follow the application palette."""
        self._theme_fixed = theme is not None
        self._theme = theme or ChartTheme.for_palette(self.palette())
        self._apply_theme()

    def changeEvent(self, event: QEvent) -> None:
        if not self._theme_fixed and event.type() == QEvent.Type.PaletteChange:
            self._theme = ChartTheme.for_palette(self.palette())
            self._apply_theme()
        super().changeEvent(event)

    def _band_color(self, color: QColor) -> QColor:
        band = QColor(color)
        band.setAlpha(self._theme.envelope_alpha)
        return band

    def _apply_theme(self) -> None:
        theme = self._theme
        self._view.setBackground(theme.background)
        for axis in (self._axis, self._time_axis):
            axis.setPen(theme.foreground)
            axis.setTextPen(theme.foreground)
        background, foreground = QColor(theme.background), QColor(theme.foreground)
        self._grid.set_colors(
            _mix(background, foreground, theme.grid_alpha),
            _mix(background, foreground, theme.grid_alpha / 2.5),
        )
        self._legend.setLabelTextColor(theme.foreground)
        pen = QPen(QColor(theme.crosshair))
        pen.setStyle(Qt.PenStyle.DashLine)
        pen.setCosmetic(True)
        self._cross_line.setPen(pen)
        label_bg = QColor(theme.label_background)
        label_bg.setAlpha(225)
        self._cross_label.fill = pg.mkBrush(label_bg)
        self._cross_label.border = pg.mkPen(theme.crosshair)
        self._cross_label.setColor(theme.foreground)
        for series in self._series.values():
            color = theme.series_color(series.index)
            series.curve.setPen(pg.mkPen(color, width=1))
        self._update_bands()
        # Legend samples copy the pen when drawn; labels keep the colour they were laid
        # out in until their text is set again (`setLabelTextColor` only notes the new one).
        for _sample, label in self._legend.items:
            label.setText(label.text)
        self._legend.update()


def _mix(base: QColor, other: QColor, share: float) -> QColor:
    """`share` of `other` over `base`, opaque (see `items` for why not alpha)."""
    return QColor(
        round(base.red() + (other.red() - base.red()) * share),
        round(base.green() + (other.green() - base.green()) * share),
        round(base.blue() + (other.blue() - base.blue()) * share),
    )


def _tool_button(parent: QWidget, text: str, *, checkable: bool = False) -> QToolButton:
    button = QToolButton(parent)
    button.setText(text)
    button.setCheckable(checkable)
    button.setAutoRaise(True)
    return button


def _nearest(display: Display, ts: float, snap: float) -> tuple[float, float, float] | None:
    """(min, max, avg) of the point nearest `ts` within `snap` seconds; None in a gap."""
    if len(display) == 0:
        return None
    i = int(np.searchsorted(display.x, ts))
    candidates = [j for j in (i - 1, i) if 0 <= j < len(display)]
    j = min(candidates, key=lambda k: abs(float(display.x[k]) - ts))
    if len(candidates) == 2:
        # Sparse data (zoomed in past its resolution): any point up to its neighbour.
        snap = max(snap, float(display.x[i] - display.x[i - 1]))
    if abs(float(display.x[j]) - ts) > snap or not math.isfinite(display.avg[j]):
        return None
    return float(display.lo[j]), float(display.hi[j]), float(display.avg[j])
