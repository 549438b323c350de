"""One host's page: its charts, live, over a range shared by all of them.

Which charts exist and which series each draws is declared once as data
(`CHARTS`); a metric the host does not report (no load average on Windows,
no swap, no disk counters in a container) has no series, so its chart is
simply not shown.

Data flow, per chart: `LiveChart.range_requested` is the one place a query
starts (a preset, a zoom, a pan, the host opened), at the plot's pixel width;
a newer request for the same chart cancels the older one. Live points come
from the panel's `LiveFeed` through `apply_points`; the chart coalesces them,
so a burst costs one repaint per chart. A zoom or pan on one chart moves the
others to the same window.

A query that a newer one supersedes is left to finish and its result dropped,
never cancelled: cancelling a call cancels it on the backend, and a database
query cancelled half-way costs its connection (closing it can even stall).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from PySide6.QtCore import QSize, Qt, QTimer
from PySide6.QtWidgets import (
    QButtonGroup,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QScrollArea,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from console.asyncslots import run_async
from console.client import Client
from console.client.errors import NotFound
from console.client.types import METRICS, SeriesView
from console.models.hosts import QUERY_CHUNK, STATUS_TEXT, HostRow, seen_ago, status_icon
from console.models.live import LivePoint
from console.widgets.chart import RangePreset, ValueFormat
from console.widgets.chartcard import ChartCard, file_stem

COLUMNS = 2
"""Charts side by side."""
STAGGER_MS = 25
"""Between the repaints of one page's charts. One chart paints in about 15 ms; the
page's seven painted in one turn of the event loop would hold it for 100 ms, so
each gets its own refresh delay, scroll phase and moment to change range."""

SERIES_LABELS = {
    "cpu.percent": "all cores",
    "load.1": "1 min",
    "load.5": "5 min",
    "load.15": "15 min",
    "mem.used_percent": "memory",
    "swap.used_percent": "swap",
    "disk.read_bytes_per_s": "read",
    "disk.write_bytes_per_s": "written",
    "net.rx_bytes_per_s": "received",
    "net.tx_bytes_per_s": "sent",
}
"""Legend entries of host-wide series; split series are named by their label."""


@dataclass(frozen=True, slots=True)
class ChartSpec:
    """One chart of the host page: which metrics it draws, in one unit."""

    key: str
    title: str
    metrics: tuple[str, ...]
    """Same unit; the first one's `MetricSpec` formats the axis."""
    split: str | None = None
    """The label that makes one series per value (`core`, `mount`); None: host-wide only."""

    def accepts(self, metric: str, labels: dict[str, str]) -> bool:
        if metric not in self.metrics:
            return False
        return not labels if self.split is None else set(labels) == {self.split}

    def label(self, metric: str, labels: dict[str, str]) -> str:
        if self.split is None:
            return SERIES_LABELS.get(metric, metric)
        value = labels[self.split]
        return f"core {value}" if self.split == "core" else value

    def order(self, series: SeriesView) -> tuple[int, int, int, str]:
        """Legend order: by metric as declared, then cores by number, mounts by name."""
        value = series.labels.get(self.split, "") if self.split else ""
        numeric = value.isdigit()
        number = int(value) if numeric else 0
        return (self.metrics.index(series.metric), 0 if numeric else 1, number, value)

    @property
    def value_format(self) -> ValueFormat:
        # No axis title: the card's title says what the chart is.
        return ValueFormat.of(METRICS[self.metrics[0]], title="")


CHARTS = (
    ChartSpec("cpu", "CPU", ("cpu.percent",)),
    ChartSpec("cores", "CPU per core", ("cpu.core.percent",), split="core"),
    ChartSpec("memory", "Memory and swap", ("mem.used_percent", "swap.used_percent")),
    ChartSpec("load", "Load average", ("load.1", "load.5", "load.15")),
    ChartSpec("disk", "Disk usage", ("disk.used_percent",), split="mount"),
    ChartSpec("disk_io", "Disk I/O", ("disk.read_bytes_per_s", "disk.write_bytes_per_s")),
    ChartSpec("network", "Network", ("net.rx_bytes_per_s", "net.tx_bytes_per_s")),
)


def spec_for(metric: str, labels: dict[str, str]) -> ChartSpec | None:
    for spec in CHARTS:
        if spec.accepts(metric, labels):
            return spec
    return None


@dataclass(frozen=True, slots=True)
class RangeRequest:
    """The last query a chart started: what `range_requested` asked for."""

    start: float
    end: float
    max_points: int


class HostPage(QWidget):
    """The charts of one host (see the module docstring)."""

    def __init__(
        self, client: Client, *, preset: RangePreset = RangePreset.H1, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("HostPage")
        self._client = client
        self._host: str | None = None
        self._preset: RangePreset | None = preset
        self._paused = False
        self._routes: dict[int, tuple[ChartCard, str]] = {}
        self._loads: dict[str, asyncio.Task[None]] = {}
        """The newest load per chart: the ones the progress bar waits for."""
        self._opening: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        """Every load still running, superseded ones included (`shutdown` waits for them)."""
        self._error_shown = False
        self.last_request: dict[str, RangeRequest] = {}
        """Per chart key, the range last queried (what a person could read off the chart)."""

        self._build_header()
        self._build_toolbar()
        self.cards: dict[str, ChartCard] = {}
        grid_host = QWidget(self)
        grid = QGridLayout(grid_host)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(12)
        grid.setVerticalSpacing(12)
        for number, spec in enumerate(CHARTS):
            card = ChartCard(
                spec.title,
                spec.value_format,
                preset=preset,
                refresh_ms=40 + number * STAGGER_MS,
                phase_ms=number * 1000 // len(CHARTS),
                parent=grid_host,
            )
            card.setObjectName(f"chart-{spec.key}")
            card.setVisible(False)
            card.chart.range_requested.connect(
                lambda start, end, points, key=spec.key: self._range_requested(
                    key, start, end, points
                )
            )
            card.chart.following_changed.connect(self._following_changed)
            grid.addWidget(card, number // COLUMNS, number % COLUMNS)
            self.cards[spec.key] = card
        for column in range(COLUMNS):
            grid.setColumnStretch(column, 1)
        grid.setRowStretch(len(CHARTS) // COLUMNS + 1, 1)
        self._empty = QLabel("This host has reported no metrics yet.", self)
        self._empty.setObjectName("Muted")
        self._empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._empty.setVisible(False)
        scroll = QScrollArea(self)
        scroll.setObjectName("HostCharts")
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setWidget(grid_host)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 10, 12, 8)
        layout.setSpacing(6)
        layout.addLayout(self._header)
        layout.addLayout(self._toolbar)
        layout.addWidget(self._empty)
        layout.addWidget(scroll, 1)

    # -- construction -------------------------------------------------------------

    def _build_header(self) -> None:
        self._status_icon = QLabel(self)
        self._status_icon.setFixedSize(QSize(14, 14))
        self.name_label = QLabel(self)
        self.name_label.setObjectName("HostName")
        self.info_label = QLabel(self)
        self.info_label.setObjectName("Muted")
        self._header = QHBoxLayout()
        self._header.setSpacing(8)
        self._header.addWidget(self._status_icon)
        self._header.addWidget(self.name_label)
        self._header.addWidget(self.info_label)
        self._header.addStretch(1)

    def _build_toolbar(self) -> None:
        self._toolbar = QHBoxLayout()
        self._toolbar.setSpacing(2)
        self.preset_buttons = QButtonGroup(self)
        for preset in RangePreset:
            button = QToolButton(self)
            button.setText(preset.label)
            button.setObjectName(f"preset-{preset.name}")
            button.setToolTip(f"Show the last {preset.label} on every chart, following now")
            button.setCheckable(True)
            button.setAutoRaise(True)
            button.setChecked(preset is self._preset)
            button.clicked.connect(lambda _=False, p=preset: self.set_range(p))
            self.preset_buttons.addButton(button)
            self._toolbar.addWidget(button)
        self._toolbar.addStretch(1)
        self.progress = QProgressBar(self)
        self.progress.setObjectName("HostLoading")
        self.progress.setRange(0, 0)
        self.progress.setTextVisible(False)
        self.progress.setFixedSize(QSize(90, 6))
        self.progress.setToolTip("Loading the charts…")
        self.progress.setVisible(False)
        self._toolbar.addWidget(self.progress)
        self.pause_button = QToolButton(self)
        self.pause_button.setObjectName("pause")
        self.pause_button.setText("Pause")
        self.pause_button.setCheckable(True)
        self.pause_button.setAutoRaise(True)
        self.pause_button.setToolTip(
            "Stop drawing live points on every chart; they are kept and drawn on resume"
        )
        self.pause_button.toggled.connect(self.set_paused)
        self._toolbar.addWidget(self.pause_button)

    # -- state --------------------------------------------------------------------

    @property
    def host(self) -> str | None:
        return self._host

    @property
    def preset(self) -> RangePreset | None:
        """The shared preset; None after a zoom or pan."""
        return self._preset

    @property
    def loading(self) -> bool:
        return self._opening is not None or bool(self._loads)

    def visible_cards(self) -> list[ChartCard]:
        return [card for card in self.cards.values() if not card.isHidden()]

    def series_ids(self, key: str) -> list[int]:
        card = self.cards[key]
        return sorted(sid for sid, (owner, _) in self._routes.items() if owner is card)

    # -- opening a host -----------------------------------------------------------

    def show_host(self, name: str) -> asyncio.Task[None]:
        """Show `name`'s charts: list its series, then each chart queries its range."""
        self._forget_loads()
        self._host = name
        self._error_shown = False
        self.name_label.setText(name)
        self.info_label.setText("")
        for card in self.cards.values():
            card.file_stem = file_stem(name, card.title.text())
        task = self._track(run_async(self._open(name), parent=self, what=f"open {name}"))
        self._opening = task
        task.add_done_callback(self._opened)
        self._show_progress()
        return task

    def clear(self) -> None:
        """Show no host (the one shown was deleted)."""
        self._forget_loads()
        self._host = None
        self._routes.clear()
        for card in self.cards.values():
            card.chart.clear()
            card.setVisible(False)

    def reload(self) -> None:
        """List the series and query every chart again (events were lost)."""
        if self._host is not None:
            self.show_host(self._host)

    async def _open(self, name: str) -> None:
        series = await self._client.list_series(host=name)
        if asyncio.current_task() is not self._opening:
            return  # another host, or this one again, was opened meanwhile
        self._routes.clear()
        self.last_request.clear()
        wanted: dict[str, list[SeriesView]] = {spec.key: [] for spec in CHARTS}
        for view in series:
            spec = spec_for(view.metric, view.labels)
            if spec is not None:
                wanted[spec.key].append(view)
        window = self._window()
        for spec in CHARTS:
            card = self.cards[spec.key]
            chart = card.chart
            chart.clear()
            views = sorted(wanted[spec.key], key=spec.order)
            for view in views:
                self._add_series(card, spec, view.id, view.metric, view.labels)
            card.setVisible(bool(views))
            chart.set_paused(self._paused)
        self._empty.setVisible(not self._routes)
        if self._preset is None and window is None:
            self._preset = RangePreset.H1
            self._check_preset(self._preset)
        self._apply_range(window)

    def _opened(self, task: asyncio.Task[None]) -> None:
        if task is self._opening:
            self._opening = None
        self._show_progress()

    def _add_series(
        self, card: ChartCard, spec: ChartSpec, series_id: int, metric: str, labels: dict[str, str]
    ) -> None:
        key = str(series_id)
        card.chart.add_series(key, spec.label(metric, labels))
        self._routes[series_id] = (card, key)

    def _window(self) -> tuple[float, float] | None:
        """The zoomed window shown (to keep across a reload), None while following a preset."""
        for card in self.visible_cards():
            if not card.chart.is_following:
                return card.chart.visible_range()
        return None

    # -- range --------------------------------------------------------------------

    def set_range(self, preset: RangePreset) -> None:
        """Show the last `preset` on every chart, following now."""
        self._preset = preset
        self._error_shown = False
        self._check_preset(preset)
        self._apply_range()

    def _apply_range(self, window: tuple[float, float] | None = None) -> None:
        """The page's preset (or else `window`) on every chart shown, one per STAGGER_MS."""
        for number, card in enumerate(self.visible_cards()):
            chart = card.chart
            if self._preset is not None:
                action = functools.partial(chart.set_range, self._preset)
            elif window is not None:
                action = functools.partial(chart.set_window, *window)
            else:
                continue
            QTimer.singleShot(number * STAGGER_MS, chart, action)

    def _check_preset(self, preset: RangePreset | None) -> None:
        self.preset_buttons.setExclusive(False)
        for button in self.preset_buttons.buttons():
            button.setChecked(preset is not None and button.objectName() == f"preset-{preset.name}")
        self.preset_buttons.setExclusive(True)

    def _following_changed(self, following: bool) -> None:
        if not following and self._preset is not None:
            self._preset = None
            self._check_preset(None)

    def _range_requested(self, key: str, start: float, end: float, max_points: int) -> None:
        """The one place a chart's data is queried (see the module docstring)."""
        card = self.cards[key]
        host = self._host
        ids = self.series_ids(key)
        if host is None or not ids or self._opening is not None:
            return  # no series yet, or the charts are being set up (they ask again)
        if card.chart.preset is None:
            self._align_others(card, start, end)
        wanted = RangeRequest(start, end, max_points)
        self.last_request[key] = wanted
        task = run_async(
            self._query(key, host, ids, wanted),
            parent=self,
            what=f"load the {card.title.text()} chart of {host}",
            on_error=self._report_once,
        )
        self._loads[key] = self._track(task)
        task.add_done_callback(functools.partial(self._load_done, key))
        self._show_progress()

    def _align_others(self, source: ChartCard, start: float, end: float) -> None:
        """A zoom or pan on one chart moves the others to the same window."""
        tolerance = (end - start) * 1e-6
        for card in self.visible_cards():
            if card is source:
                continue
            shown_start, shown_end = card.chart.visible_range()
            if abs(shown_start - start) > tolerance or abs(shown_end - end) > tolerance:
                card.chart.set_window(start, end)

    async def _query(self, key: str, host: str, ids: Sequence[int], wanted: RangeRequest) -> None:
        chunks = [ids[i : i + QUERY_CHUNK] for i in range(0, len(ids), QUERY_CHUNK)]
        try:
            results = await asyncio.gather(
                *(
                    self._client.query_metrics(
                        chunk, start=wanted.start, end=wanted.end, max_points=wanted.max_points
                    )
                    for chunk in chunks
                )
            )
        except NotFound:
            # The host was deleted meanwhile: the panel drops it on the "hosts" event.
            self.info_label.setText("Some of this host's data no longer exists.")
            return
        if self._host != host or self.last_request.get(key) is not wanted:
            return  # superseded by a newer query or another host
        card = self.cards[key]
        for result in results:
            for data in result:
                card.chart.set_buckets(str(data.series_id), data.buckets, data.bucket_seconds)

    def _load_done(self, key: str, task: asyncio.Task[None]) -> None:
        if self._loads.get(key) is task:
            del self._loads[key]
        self._show_progress()

    def _report_once(self, _error: BaseException) -> bool:
        """Show the first failure of a round of queries: the other charts failed for the same."""
        if self._error_shown:
            return True
        self._error_shown = True
        return False

    def _show_progress(self) -> None:
        self.progress.setVisible(self.loading)

    def _track(self, task: asyncio.Task[None]) -> asyncio.Task[None]:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _forget_loads(self) -> None:
        """Drop the results of the loads under way (see the module docstring)."""
        self._loads.clear()
        self._opening = None
        self.last_request.clear()
        self._show_progress()

    # -- live ---------------------------------------------------------------------

    def apply_points(self, points: Iterable[LivePoint]) -> None:
        """Live points of this host to their charts; a new series (a new mount) is added."""
        host = self._host
        if host is None or self._opening is not None:
            return
        for point in points:
            route = self._routes.get(point.series_id)
            if route is None:
                if point.host != host:
                    continue
                spec = spec_for(point.metric, point.labels)
                if spec is None:
                    continue
                card = self.cards[spec.key]
                self._add_series(card, spec, point.series_id, point.metric, point.labels)
                if card.isHidden():
                    card.setVisible(True)
                    self._empty.setVisible(False)
                    if self._preset is not None:
                        card.chart.set_range(self._preset)
                route = self._routes[point.series_id]
            card, key = route
            card.chart.append(key, point.ts, point.value)

    def set_paused(self, paused: bool) -> None:
        """Hold live points on every chart (the button does this)."""
        self._paused = paused
        self.pause_button.setChecked(paused)
        self.pause_button.setText("Resume" if paused else "Pause")
        for card in self.cards.values():
            card.chart.set_paused(paused)

    @property
    def paused(self) -> bool:
        return self._paused

    def set_row(self, row: HostRow | None, now: float) -> None:
        """The header's status and last-seen, from the hosts model."""
        if row is None or row.name != self._host:
            return
        self._status_icon.setPixmap(status_icon(row.status).pixmap(QSize(14, 14)))
        status = STATUS_TEXT.get(row.status, row.status)
        self.info_label.setText(f"{status} · last seen {seen_ago(max(0.0, now - row.last_seen))}")

    async def shutdown(self) -> None:
        self._forget_loads()
        # Let them end on their own (see the module docstring); run_async reported errors.
        await asyncio.gather(*self._tasks, return_exceptions=True)
