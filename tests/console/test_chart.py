"""The live chart as a user meets it: drawn data, bands, ranges, crosshair, pause, export.

Offscreen pytest-qt, real widgets and real events (wheel, mouse move, clicks);
time comes from a fixed clock so "now" is known.
"""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QColor, QImage, QWheelEvent
from PySide6.QtWidgets import QApplication, QToolButton
from pytestqt.qtbot import QtBot

from console.client.types import METRICS, Bucket
from console.widgets.chart import ChartTheme, LiveChart, RangePreset, ValueFormat
from console.widgets.sparkline import Sparkline

NOW = 1_764_000_000.0
PERCENT = ValueFormat.of(METRICS["cpu.percent"])


@pytest.fixture
def chart(qtbot: QtBot) -> LiveChart:
    widget = LiveChart(PERCENT, theme=ChartTheme.light(), clock=lambda: NOW)
    qtbot.addWidget(widget)
    widget.resize(900, 400)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def _buckets(start: float, count: int, step: float, avg: float, spread: float) -> list[Bucket]:
    return [
        Bucket(ts=start + i * step, min=avg - spread, max=avg + spread, avg=avg, count=60)
        for i in range(count)
    ]


def _plot_point(chart: LiveChart, x: float, y: float) -> QPoint:
    """Where (time, value) is drawn, in the chart widget's coordinates."""
    view = chart._view
    return view.mapTo(chart, _viewport_point(chart, x, y))


def _viewport_point(chart: LiveChart, x: float, y: float) -> QPoint:
    """Where (time, value) is drawn, in the plot's viewport (which gets the mouse)."""
    scene = chart._plot.getViewBox().mapViewToScene(QPointF(x, y))
    return chart._view.mapFromScene(scene)


def _pixel(image: QImage, point: QPoint) -> QColor:
    ratio = image.devicePixelRatio()
    return image.pixelColor(round(point.x() * ratio), round(point.y() * ratio))


def test_a_burst_of_live_points_is_drawn_with_one_set_data_per_curve(
    chart: LiveChart, qtbot: QtBot
) -> None:
    chart.add_series("cpu", "cpu")
    chart.add_series("load", "load")
    changes = {"cpu": 0, "load": 0}
    for key in changes:
        chart.curve(key).sigPlotChanged.connect(
            lambda _item, k=key: changes.__setitem__(k, changes[k] + 1)
        )

    for i in range(5_000):
        chart.append("cpu", NOW - 5_000 + i, 50.0 + i % 7)
        chart.append("load", NOW - 5_000 + i, 20.0)
    assert chart.curve("cpu").xData is None  # nothing drawn before the refresh tick

    qtbot.waitUntil(lambda: chart.redraws == 1, timeout=2_000)
    qtbot.wait(120)  # two more refresh intervals: nothing else is pending
    assert chart.redraws == 1
    assert changes == {"cpu": 1, "load": 1}
    assert len(chart.curve("cpu").xData) == 5_000
    assert chart.curve("cpu").xData[-1] == NOW - 1
    assert chart.curve("cpu").yData[-3:].tolist() == [56.0, 50.0, 51.0]


def test_the_window_follows_the_newest_point(chart: LiveChart, qtbot: QtBot) -> None:
    chart.append("cpu", NOW + 30, 10.0)  # a point ahead of the clock: the edge follows it
    qtbot.waitUntil(lambda: chart.redraws == 1, timeout=2_000)
    start, end = chart.visible_range()
    assert end == NOW + 30
    assert end - start == RangePreset.H1.seconds


def test_bands_show_min_and_max_around_the_average(chart: LiveChart, qtbot: QtBot) -> None:
    chart.set_range(RangePreset.H24)
    chart.set_buckets("cpu", _buckets(NOW - 86_400, 288, 300, avg=50.0, spread=20.0), 300)
    chart.flush()
    image = chart.grab().toImage()
    # Inside the band (between avg and max) the series colour shows, faintly.
    band = _pixel(image, _plot_point(chart, NOW - 43_200, 62.0))
    assert band.saturation() > 40
    assert band.blue() > band.red()  # the first series is blue
    # Above it only the background and faint grid lines: grey, not tinted.
    outside = _pixel(image, _plot_point(chart, NOW - 43_000, 88.0))
    assert outside.saturation() < 10
    assert outside.lightness() > 200

    chart.show_crosshair(NOW - 43_200)
    assert "cpu: 50.0 % (30.0 % \u2013 70.0 %)" in chart.crosshair_text


def test_live_points_after_the_last_bucket_survive_a_query_result(
    chart: LiveChart, qtbot: QtBot
) -> None:
    for i in range(10):
        chart.append("cpu", NOW - 10 + i, 90.0)
    chart.set_buckets("cpu", _buckets(NOW - 3_600, 59, 60, avg=10.0, spread=1.0), 60)
    chart.flush()
    x, y = chart.curve("cpu").xData, chart.curve("cpu").yData
    assert len(x) == 59 + 10
    assert y[-10:].tolist() == [90.0] * 10
    assert x[58] == NOW - 3_600 + 58 * 60


def test_a_range_preset_changes_the_visible_window(chart: LiveChart, qtbot: QtBot) -> None:
    assert chart.visible_range() == (NOW - 3_600, NOW)
    with qtbot.waitSignal(chart.range_requested, timeout=2_000) as request:
        qtbot.mouseClick(chart.findChild(QToolButton, "preset-D7"), Qt.MouseButton.LeftButton)
    assert chart.visible_range() == (NOW - 7 * 86_400, NOW)
    assert chart.preset is RangePreset.D7
    assert request.args == [NOW - 7 * 86_400, NOW, chart.plot_pixel_width()]

    chart.set_range(RangePreset.M5)
    assert chart.visible_range() == (NOW - 300, NOW)


def test_zooming_requests_the_range_at_the_plot_pixel_width(chart: LiveChart, qtbot: QtBot) -> None:
    viewport = chart._view.viewport()
    centre = QPointF(viewport.width() / 2, viewport.height() / 2)
    wheel = QWheelEvent(
        centre,
        QPointF(viewport.mapToGlobal(centre.toPoint())),
        QPoint(0, 0),
        QPoint(0, 120),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    with qtbot.waitSignal(chart.range_requested, timeout=2_000) as request:
        QApplication.sendEvent(viewport, wheel)
    start, end, max_points = request.args
    assert end - start < 3_600  # zoomed in
    assert (start, end) == chart.visible_range()
    vb = chart._plot.getViewBox()
    plot_width = vb.sceneBoundingRect().width() * chart.devicePixelRatioF()
    assert abs(max_points - plot_width) <= 1  # the plot area's pixels, not the widget's
    assert 700 < max_points < 900
    assert not chart.is_following
    assert chart.preset is None


def test_the_crosshair_labels_time_and_values_under_the_mouse(
    chart: LiveChart, qtbot: QtBot
) -> None:
    chart.add_series("a", "web-1")
    chart.add_series("b", "db-1")
    for i in range(600):
        chart.append("a", NOW - 600 + i, 12.25)
        chart.append("b", NOW - 600 + i, 80.0)
    chart.flush()
    at = NOW - 300
    viewport = chart._view.viewport()
    qtbot.mouseMove(viewport, _viewport_point(chart, at, 50.0))
    qtbot.waitUntil(lambda: chart.crosshair_text != "", timeout=2_000)
    text = chart.crosshair_text.splitlines()
    shown = time.mktime(time.strptime(text[0], "%Y-%m-%d %H:%M:%S"))
    seconds_per_pixel = 3_600 / chart.plot_pixel_width()
    assert abs(shown - at) <= seconds_per_pixel + 1
    assert text[1:] == ["● web-1: 12.2 %", "● db-1: 80.0 %"]

    # Before the first point there is no value to show. (pyqtgraph drops mouse
    # moves closer than 10 ms apart; a hand is slower than that.)
    qtbot.wait(50)
    qtbot.mouseMove(viewport, _viewport_point(chart, NOW - 3_000, 50.0))
    qtbot.waitUntil(lambda: "web-1: \u2013" in chart.crosshair_text, timeout=2_000)


def test_pause_holds_live_points_and_resume_draws_them(chart: LiveChart, qtbot: QtBot) -> None:
    chart.append("cpu", NOW - 1, 10.0)
    chart.flush()
    window = chart.visible_range()
    pause = chart.findChild(QToolButton, "pause")
    with qtbot.waitSignal(chart.paused_changed):
        qtbot.mouseClick(pause, Qt.MouseButton.LeftButton)
    assert chart.is_paused
    assert pause.text() == "Resume"
    for i in range(30):
        chart.append("cpu", NOW + i, 20.0)
    qtbot.wait(150)
    assert chart.held_points == 30
    assert len(chart.curve("cpu").xData) == 1
    assert chart.visible_range() == window

    qtbot.mouseClick(pause, Qt.MouseButton.LeftButton)
    assert not chart.is_paused
    assert chart.held_points == 0
    assert len(chart.curve("cpu").xData) == 31
    assert chart.visible_range()[1] == NOW + 29


def test_csv_export_holds_the_visible_points(chart: LiveChart, tmp_path: Path) -> None:
    chart.add_series("cpu", "cpu 0")
    chart.set_buckets("cpu", _buckets(NOW - 7_200, 120, 60, avg=40.0, spread=5.0), 60)
    chart.append("cpu", NOW - 30, 42.5)
    chart.flush()
    path = tmp_path / "chart.csv"
    assert chart.export_csv(path) == 61  # one hour of 1 min buckets, then the live point
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    assert rows[0] == ["time", "epoch", "series", "min", "max", "avg"]
    first = rows[1]
    assert first[1:] == [str(int(NOW - 3_600)), "cpu 0", "35.0", "45.0", "40.0"]
    assert first[0].startswith(time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(NOW - 3_600)))
    assert rows[-1][1:] == [str(int(NOW - 30)), "cpu 0", "42.5", "42.5", "42.5"]


def test_png_export_is_an_image_of_the_plot(chart: LiveChart, tmp_path: Path) -> None:
    chart.set_buckets("cpu", _buckets(NOW - 3_600, 60, 60, avg=50.0, spread=10.0), 60)
    chart.flush()
    path = tmp_path / "chart.png"
    chart.export_png(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = QImage(str(path))
    assert image.width() >= 900
    assert image.height() > 300
    colours = {
        image.pixel(x, y) for x in range(0, image.width(), 7) for y in range(0, image.height(), 7)
    }
    assert len(colours) > 5  # axes, text, band and line, not a blank canvas


def test_values_read_in_their_unit() -> None:
    rate = ValueFormat.of(METRICS["net.rx_bytes_per_s"])
    assert rate.format(1_520_000) == "1.52 MB/s"
    assert rate.format(512) == "512 B/s"
    assert rate.format_tick(2_000_000, 500_000) == "2.0 MB/s"
    assert PERCENT.fixed_range == (0.0, 100.0)
    assert PERCENT.format(12.345) == "12.3 %"
    assert ValueFormat.of(METRICS["load.1"]).format(0.5) == "0.50"


def test_sparkline_draws_the_recent_trend(qtbot: QtBot) -> None:
    theme = ChartTheme.dark()
    line = Sparkline(span=60, value_range=(0, 100), theme=theme)
    qtbot.addWidget(line)
    line.resize(120, 30)
    for i in range(120):
        line.append(NOW + i, 50.0 + 40.0 * np.sin(i / 5))
    image = line.grab().toImage()
    series = theme.series_color(0)
    near = [
        image.pixelColor(x, y)
        for x in range(image.width())
        for y in range(image.height())
        if abs(image.pixelColor(x, y).hue() - series.hue()) < 20
        and image.pixelColor(x, y).alpha() > 200
    ]
    assert len(near) > 60  # a line across the cell


def test_bands_move_with_the_data_when_panned(chart: LiveChart, qtbot: QtBot) -> None:
    chart.set_range(RangePreset.H24)
    # A wide band for the first half of the day, nothing in the second.
    chart.set_buckets("cpu", _buckets(NOW - 86_400, 144, 300, avg=50.0, spread=30.0), 300)
    chart.flush()

    def tinted(ts: float) -> bool:
        image = chart.grab().toImage()
        return _pixel(image, _plot_point(chart, ts, 70.0)).saturation() > 40

    edge = NOW - 86_400 + 144 * 300  # where the band ends
    assert tinted(edge - 3_600)
    assert not tinted(edge + 3_600)
    chart.set_window(NOW - 86_400 - 7_200, NOW - 7_200)  # pan two hours back
    assert tinted(edge - 3_600)
    assert not tinted(edge + 3_600)
    assert chart.preset is None


def test_the_chart_follows_the_console_theme(app: QApplication, qtbot: QtBot) -> None:
    from console import theme

    manager = theme.install(app)
    manager.set_theme(theme.Theme.LIGHT)
    widget = LiveChart(PERCENT, clock=lambda: NOW)
    qtbot.addWidget(widget)
    widget.resize(600, 300)
    widget.show()
    corner = QPoint(widget.width() // 2, widget.height() // 2)

    def background() -> QColor:
        return _pixel(widget.grab().toImage(), corner)

    try:
        assert background().lightness() > 200
        manager.set_theme(theme.Theme.DARK)
        qtbot.waitUntil(lambda: background().lightness() < 60, timeout=2_000)
    finally:
        manager.set_theme(None)  # follow the OS again, as other tests expect
