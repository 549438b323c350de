"""The Overview panel: one card per host, its status and the last five minutes of CPU and memory.

A card shows the host's status colour, name, how long ago it last reported,
and two sparklines with their newest values. Clicking a card (or Enter on
it) asks the main window to open that host in the Hosts panel
(`navigate_requested`). The cards are drawn from a `HostsModel`, fed as in
the Hosts panel: a snapshot query (five minutes at the sparklines' width),
then a `LiveFeed`'s batches; a host not seen before, or a lost stream,
reloads the snapshot.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QKeyEvent, QMouseEvent, QResizeEvent
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from console.asyncslots import SerialLoad
from console.client import Client
from console.client.types import MeView
from console.models.hosts import (
    CPU,
    MEMORY,
    NO_VALUE,
    STATUS_TEXT,
    STATUS_TIP,
    HostRow,
    HostsModel,
    HostsSnapshot,
    format_percent,
    load_snapshot,
    seen_ago,
    status_icon,
)
from console.models.live import HostChange, LiveFeed, LivePoint
from console.widgets.sparkline import Sparkline

SPARK_SPAN = 300.0
"""Seconds of history on a card."""
SPARK_POINTS = 150
"""Buckets queried per sparkline: about its width in pixels."""
CARD_WIDTH = 290
CARD_SPACING = 12
RELOAD_DELAY_MS = 500


class HostCard(QFrame):
    """One host: status, name, last seen, CPU and memory sparklines. Click to open it."""

    activated = Signal(str)

    def __init__(self, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self.setObjectName("HostCard")
        self.setFixedWidth(CARD_WIDTH)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setToolTip(f"Open {name} in the Hosts panel")
        self.setAccessibleName(name)
        self.status_icon = QLabel(self)
        self.status_icon.setFixedSize(QSize(12, 12))
        self.name_label = QLabel(name, self)
        self.name_label.setObjectName("HostCardName")
        self.status_label = QLabel(self)
        self.seen_label = QLabel(self)
        self.seen_label.setObjectName("Muted")
        self.sparklines = {
            CPU: Sparkline(span=SPARK_SPAN, value_range=(0.0, 100.0), color_index=0, parent=self),
            MEMORY: Sparkline(
                span=SPARK_SPAN, value_range=(0.0, 100.0), color_index=1, parent=self
            ),
        }
        self.values = {CPU: QLabel(NO_VALUE, self), MEMORY: QLabel(NO_VALUE, self)}

        top = QHBoxLayout()
        top.setSpacing(6)
        top.addWidget(self.status_icon)
        top.addWidget(self.name_label, 1)
        top.addWidget(self.status_label)
        grid = QGridLayout()
        grid.setHorizontalSpacing(8)
        grid.setVerticalSpacing(4)
        for row, (metric, title) in enumerate(((CPU, "CPU"), (MEMORY, "Memory"))):
            label = QLabel(title, self)
            label.setObjectName("Muted")
            line = self.sparklines[metric]
            line.setFixedHeight(26)
            value = self.values[metric]
            value.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            value.setMinimumWidth(54)
            grid.addWidget(label, row, 0)
            grid.addWidget(line, row, 1)
            grid.addWidget(value, row, 2)
        grid.setColumnStretch(1, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 10, 12, 10)
        layout.setSpacing(4)
        layout.addLayout(top)
        layout.addWidget(self.seen_label)
        layout.addSpacing(4)
        layout.addLayout(grid)

    def show_row(self, row: HostRow, now: float) -> None:
        self.status_icon.setPixmap(status_icon(row.status).pixmap(QSize(12, 12)))
        self.status_label.setText(STATUS_TEXT.get(row.status, row.status))
        self.status_label.setToolTip(STATUS_TIP.get(row.status, ""))
        down = row.status != "up"
        if self.property("down") != down:
            self.setProperty("down", down)
            # A dynamic property takes effect in the style sheet only once re-polished.
            self.style().unpolish(self)
            self.style().polish(self)
        self.seen_label.setText(f"Last seen {seen_ago(max(0.0, now - row.last_seen))}")
        for metric, label in self.values.items():
            label.setText(format_percent(metric, row.values.get(metric)))

    def status_text(self) -> str:
        return self.status_label.text()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton and self.rect().contains(
            event.position().toPoint()
        ):
            self.activated.emit(self.name)
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Space):
            self.activated.emit(self.name)
            event.accept()
            return
        super().keyPressEvent(event)


class OverviewPanel(QWidget):
    navigate_requested = Signal(str, str)
    """(navigation key, target): open the host `target` in the "hosts" panel."""

    def __init__(
        self,
        client: Client,
        me: MeView,
        parent: QWidget | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("OverviewPanel")
        self._client = client
        self._clock = clock
        self._loaded = False
        self._columns = 0
        self.model = HostsModel(self, clock=clock)
        self.cards: dict[str, HostCard] = {}

        self._build()

        self.feed = LiveFeed(client, self)
        self.feed.points_arrived.connect(self._on_points)
        self.feed.hosts_changed.connect(self._on_changes)
        self.feed.reset.connect(self.reload)
        self._tick = QTimer(self, interval=1000)
        self._tick.timeout.connect(self._refresh_cards)
        self._tick.start()
        self._reload_later = QTimer(self, singleShot=True, interval=RELOAD_DELAY_MS)
        self._reload_later.timeout.connect(self.reload)
        self.feed.start()
        self.reload()

    def _build(self) -> None:
        """The summary line with its progress bar, the empty-state text and the card grid."""
        self.summary = QLabel(self)
        self.summary.setObjectName("OverviewSummary")
        self.progress = QProgressBar(self)
        self.progress.setObjectName("OverviewLoading")
        self.progress.setRange(0, 0)
        self.progress.setTextVisible(False)
        self.progress.setFixedSize(QSize(120, 6))
        self.progress.setToolTip("Loading the hosts…")
        self.progress.setVisible(False)
        self._loads = SerialLoad(
            self, self._load, what="load the overview", busy=self.progress.setVisible
        )
        self.empty_label = QLabel(self)
        self.empty_label.setObjectName("Muted")
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setWordWrap(True)
        self.empty_label.setVisible(False)
        self.empty_label.setText(
            "No host has reported yet.\n\nThe embedded backend reports this computer; "
            "a cluster's nodes appear once their agents push metrics."
        )
        self._grid_host = QWidget(self)
        self._grid = QGridLayout(self._grid_host)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setSpacing(CARD_SPACING)
        self._grid.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.card_area = QScrollArea(self)
        self.card_area.setObjectName("HostCards")
        self.card_area.setWidgetResizable(True)
        self.card_area.setFrameShape(QScrollArea.Shape.NoFrame)
        self.card_area.setWidget(self._grid_host)

        top = QHBoxLayout()
        top.addWidget(self.summary)
        top.addStretch(1)
        top.addWidget(self.progress)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 12)
        layout.setSpacing(10)
        layout.addLayout(top)
        layout.addWidget(self.empty_label, 1)
        layout.addWidget(self.card_area, 1)

    # -- loading ------------------------------------------------------------------

    def reload(self) -> None:
        self._loads.request()

    async def _load(self) -> None:
        snapshot = await load_snapshot(
            self._client, span=SPARK_SPAN, max_points=SPARK_POINTS, clock=self._clock
        )
        self.model.apply_snapshot(snapshot)
        self._loaded = True
        self._sync_cards(snapshot)

    def _sync_cards(self, snapshot: HostsSnapshot | None = None) -> None:
        """One card per model row, in name order; history from `snapshot` when given."""
        rows = sorted(self.model.hosts, key=lambda row: row.name.lower())
        names = {row.name for row in rows}
        for name in [name for name in self.cards if name not in names]:
            card = self.cards.pop(name)
            self._grid.removeWidget(card)
            card.deleteLater()
        for row in rows:
            card = self.cards.get(row.name) or self._new_card(row.name)
            if snapshot is not None:
                for metric, line in card.sparklines.items():
                    series_id = snapshot.series.get((row.name, metric))
                    data = snapshot.history.get(series_id) if series_id is not None else None
                    if data is not None:
                        line.set_buckets(data.buckets, data.bucket_seconds)
        self._place_cards(force=True)
        self._refresh_cards()

    def _new_card(self, name: str) -> HostCard:
        card = HostCard(name, self._grid_host)
        card.activated.connect(self.open_host)
        self.cards[name] = card
        return card

    def _place_cards(self, *, force: bool = False) -> None:
        width = self.card_area.viewport().width()
        columns = max(1, (width + CARD_SPACING) // (CARD_WIDTH + CARD_SPACING))
        if columns == self._columns and not force:
            return
        self._columns = columns
        ordered = [self.cards[name] for name in sorted(self.cards, key=str.lower)]
        for card in ordered:
            self._grid.removeWidget(card)
        for number, card in enumerate(ordered):
            self._grid.addWidget(card, number // columns, number % columns)
            card.show()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._place_cards()

    def _refresh_cards(self) -> None:
        now = self._clock()
        rows = self.model.hosts
        for row in rows:
            card = self.cards.get(row.name)
            if card is not None:
                card.show_row(row, now)
        up = sum(row.status == "up" for row in rows)
        down = len(rows) - up
        noun = "host" if len(rows) == 1 else "hosts"
        parts = [f"{len(rows)} {noun}", f"{up} up"]
        if down:
            parts.append(f"{down} down")
        self.summary.setText(" · ".join(parts) if self._loaded else "")
        empty = self._loaded and not rows
        self.empty_label.setVisible(empty)
        self.card_area.setVisible(not empty)

    # -- live ---------------------------------------------------------------------

    def _on_points(self, points: list[LivePoint]) -> None:
        if not self._loaded:
            return  # the snapshot being read covers them
        if self.model.apply_points(points):
            self._reload_later.start()
        for point in points:
            if point.unlabelled and point.metric in (CPU, MEMORY):
                card = self.cards.get(point.host)
                if card is not None:
                    card.sparklines[point.metric].append(point.ts, point.value)
        self._refresh_cards()

    def _on_changes(self, changes: list[HostChange]) -> None:
        if not self._loaded:
            return
        if self.model.apply_changes(changes):
            self._reload_later.start()
        self._sync_cards()

    def open_host(self, name: str) -> None:
        """Ask the window to show `name` in the Hosts panel."""
        self.navigate_requested.emit("hosts", name)

    async def shutdown(self) -> None:
        await self._loads.stop()  # first: no load starts while the rest stops
        self._tick.stop()
        self._reload_later.stop()
        await self.feed.stop()
